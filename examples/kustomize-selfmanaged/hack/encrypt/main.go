// Command encrypt makes the example's OpenPGP key and SOPS-encrypts Secret
// manifests for it without GnuPG or the sops CLI, the way `sops --encrypt
// --encrypted-regex '^(data|stringData)$' --pgp FINGERPRINT` does:
//
//	go run ./examples/kustomize-selfmanaged/hack/encrypt -keygen > demo.asc
//	go run ./examples/kustomize-selfmanaged/hack/encrypt demo.asc < secret.yaml > secret.sops.yaml
//
// -keygen prints a new ASCII-armored private key without a passphrase: what
// `gpg --export-secret-keys --armor FINGERPRINT` prints and what tend's
// decryption Secret holds under a key ending in .asc. Encrypting reads the
// public key from such a file (a private or a public key).
package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	"github.com/getsops/sops/v3/pgp"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
)

func main() {
	keygen := flag.String("keygen", "", `print a new private key for this user ID ("name <email>") instead of encrypting`)
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: encrypt -keygen 'name <email>' > key.asc\n       encrypt key.asc < plain.yaml > encrypted.yaml")
	}
	flag.Parse()
	var err error
	switch {
	case *keygen != "":
		err = newKey(*keygen, os.Stdout)
	case flag.NArg() == 1:
		err = encrypt(flag.Arg(0), os.Stdin, os.Stdout)
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "encrypt:", err)
		os.Exit(1)
	}
}

// newKey writes a new Ed25519 signing key with a Curve25519 encryption
// subkey (GnuPG's default since 2.3), armored and without a passphrase.
func newKey(userID string, out io.Writer) error {
	name, email, ok := strings.Cut(strings.TrimSuffix(userID, ">"), " <")
	if !ok {
		return fmt.Errorf("user ID %q: want \"name <email>\"", userID)
	}
	e, err := openpgp.NewEntity(name, "", email, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		return err
	}
	w, err := armor.Encode(out, openpgp.PrivateKeyType, nil)
	if err != nil {
		return err
	}
	if err := e.SerializePrivate(w, nil); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	_, err = io.WriteString(out, "\n")
	return err
}

func encrypt(keyFile string, in io.Reader, out io.Writer) error {
	raw, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	keys, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("%s: %w", keyFile, err)
	}
	if len(keys) != 1 {
		return fmt.Errorf("%s holds %d keys, want one", keyFile, len(keys))
	}
	key := keys[0]
	plain, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	store := &sopsyaml.Store{}
	branches, err := store.LoadPlainFile(plain)
	if err != nil {
		return fmt.Errorf("read YAML: %w", err)
	}
	dataKey := make([]byte, 32)
	if _, err := rand.Read(dataKey); err != nil {
		return err
	}
	encKey, err := encryptFor(key, dataKey)
	if err != nil {
		return err
	}
	tree := sops.Tree{Branches: branches, Metadata: sops.Metadata{
		KeyGroups: []sops.KeyGroup{{&pgp.MasterKey{
			Fingerprint:  strings.ToUpper(hex.EncodeToString(key.PrimaryKey.Fingerprint)),
			EncryptedKey: encKey,
			CreationDate: time.Now().UTC(),
		}}},
		EncryptedRegex: "^(data|stringData)$",
		Version:        "3.13.3",
	}}
	cipher := aes.NewCipher()
	mac, err := tree.Encrypt(dataKey, cipher)
	if err != nil {
		return err
	}
	tree.Metadata.LastModified = time.Now().UTC()
	if tree.Metadata.MessageAuthenticationCode, err = cipher.Encrypt(mac, dataKey, tree.Metadata.LastModified.Format(time.RFC3339)); err != nil {
		return err
	}
	enc, err := store.EmitEncryptedFile(tree)
	if err != nil {
		return err
	}
	_, err = out.Write(enc)
	return err
}

// encryptFor encrypts the data key for key as an armored OpenPGP message,
// as sops's pgp key source does.
func encryptFor(key *openpgp.Entity, dataKey []byte) (string, error) {
	var buf bytes.Buffer
	aw, err := armor.Encode(&buf, "PGP MESSAGE", nil)
	if err != nil {
		return "", err
	}
	w, err := openpgp.Encrypt(aw, []*openpgp.Entity{key}, nil, nil, nil)
	if err != nil {
		return "", fmt.Errorf("encrypt for %X: %w", key.PrimaryKey.Fingerprint, err)
	}
	if _, err := w.Write(dataKey); err != nil {
		return "", err
	}
	if err := errors.Join(w.Close(), aw.Close()); err != nil {
		return "", err
	}
	return buf.String(), nil
}
