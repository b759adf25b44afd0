package git

import (
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"golang.org/x/crypto/ssh"
)

// Signer signs commits: it returns the armored signature of a commit
// object's bytes, which git keeps in the commit's gpgsig header.
type Signer interface {
	Sign(payload []byte) ([]byte, error)
}

// NewOpenPGPSigner signs with the first private key of an armored OpenPGP
// key ring (gpg --export-secret-keys --armor), decrypting it with
// passphrase when it is protected. git verifies such commits with gpg.
func NewOpenPGPSigner(armored, passphrase []byte) (Signer, error) {
	ring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(armored))
	if err != nil {
		return nil, fmt.Errorf("read the OpenPGP key: %w", err)
	}
	for _, e := range ring {
		if e.PrivateKey == nil {
			continue
		}
		if e.PrivateKey.Encrypted {
			if len(passphrase) == 0 {
				return nil, errors.New("the OpenPGP key is protected by a passphrase; add it to the Secret as \"passphrase\"")
			}
			if err := e.DecryptPrivateKeys(passphrase); err != nil {
				return nil, fmt.Errorf("decrypt the OpenPGP key with the passphrase: %w", err)
			}
		}
		return openPGPSigner{e}, nil
	}
	return nil, errors.New("the OpenPGP key ring holds no private key (export it with gpg --export-secret-keys --armor)")
}

type openPGPSigner struct{ e *openpgp.Entity }

func (s openPGPSigner) Sign(payload []byte) ([]byte, error) {
	var out bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&out, s.e, bytes.NewReader(payload), &packet.Config{}); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// NewSSHSigner signs with an OpenSSH private key (PEM), decrypting it with
// passphrase when it is protected: git's gpg.format=ssh signatures
// (SSHSIG, namespace "git"), which git verifies with ssh-keygen and an
// allowed signers file.
func NewSSHSigner(pemKey, passphrase []byte) (Signer, error) {
	var signer ssh.Signer
	var err error
	if len(passphrase) > 0 {
		signer, err = ssh.ParsePrivateKeyWithPassphrase(pemKey, passphrase)
	} else {
		signer, err = ssh.ParsePrivateKey(pemKey)
	}
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, errors.New("the SSH key is protected by a passphrase; add it to the Secret as \"passphrase\"")
	}
	if err != nil {
		return nil, fmt.Errorf("read the SSH key: %w", err)
	}
	return sshSigner{signer}, nil
}

type sshSigner struct{ s ssh.Signer }

// sshsigNamespace is the namespace git signs commits in.
const sshsigNamespace = "git"

// Sign makes an SSHSIG signature
// (https://github.com/openssh/openssh-portable/blob/master/PROTOCOL.sshsig).
func (s sshSigner) Sign(payload []byte) ([]byte, error) {
	sum := sha512.Sum512(payload)
	signed := append([]byte("SSHSIG"), ssh.Marshal(struct {
		Namespace, Reserved, Hash string
		Digest                    []byte
	}{sshsigNamespace, "", "sha512", sum[:]})...)
	var sig *ssh.Signature
	var err error
	if as, ok := s.s.(ssh.AlgorithmSigner); ok && s.s.PublicKey().Type() == ssh.KeyAlgoRSA {
		sig, err = as.SignWithAlgorithm(rand.Reader, signed, ssh.KeyAlgoRSASHA512)
	} else {
		sig, err = s.s.Sign(rand.Reader, signed)
	}
	if err != nil {
		return nil, err
	}
	var version [4]byte
	binary.BigEndian.PutUint32(version[:], 1)
	blob := append([]byte("SSHSIG"), version[:]...)
	blob = append(blob, ssh.Marshal(struct {
		PublicKey                 []byte
		Namespace, Reserved, Hash string
		Signature                 []byte
	}{s.s.PublicKey().Marshal(), sshsigNamespace, "", "sha512", ssh.Marshal(sig)})...)
	enc := base64.StdEncoding.EncodeToString(blob)
	var out strings.Builder
	out.WriteString("-----BEGIN SSH SIGNATURE-----\n")
	for len(enc) > 70 {
		out.WriteString(enc[:70] + "\n")
		enc = enc[70:]
	}
	out.WriteString(enc + "\n-----END SSH SIGNATURE-----\n")
	return []byte(out.String()), nil
}

// withSignature is commit object raw with sig in its gpgsig header.
func withSignature(raw, sig []byte) ([]byte, error) {
	i := bytes.Index(raw, []byte("\n\n"))
	if i < 0 {
		return nil, errors.New("sign: a commit object without a message")
	}
	lines := strings.Split(strings.TrimRight(string(sig), "\n"), "\n")
	var out bytes.Buffer
	out.Write(raw[:i])
	out.WriteString("\ngpgsig " + strings.Join(lines, "\n ") + "\n")
	out.Write(raw[i+1:])
	return out.Bytes(), nil
}
