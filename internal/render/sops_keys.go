package render

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/ProtonMail/go-crypto/openpgp"
	pgparmor "github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/getsops/sops/v3/shamir"
)

// sopsMasterKey is one entry of a SOPS file's key groups: the data key (or a
// Shamir share of it) encrypted for one recipient.
type sopsMasterKey struct {
	// Type is "age", "pgp", or another key source tend cannot use ("kms",
	// "gcp_kms", "azure_kv", "hc_vault", ...).
	Type string
	// ID names the recipient: an age public key, a PGP fingerprint, a KMS
	// key ARN or URL.
	ID string
	// EncryptedKey is the armored age or OpenPGP message.
	EncryptedKey string
}

// sopsKeyGroups are the key groups of a SOPS file.
type sopsKeyGroups struct {
	Groups [][]sopsMasterKey
	// Threshold is how many groups' shares recover the data key when
	// there is more than one group (Shamir secret sharing).
	Threshold int
}

// keyring holds an App's parsed decryption keys and their public names,
// which are all errors ever mention.
type keyring struct {
	age             []age.Identity
	ageRecipients   []string
	pgp             openpgp.EntityList
	pgpFingerprints []string
}

// keyring parses f.keys once per render.
func (f *files) keyring() (*keyring, error) {
	f.krOnce.Do(func() { f.kr, f.krErr = parseKeys(f.keys) })
	return f.kr, f.krErr
}

func parseKeys(keys *Keys) (*keyring, error) {
	kr := &keyring{}
	for i, s := range keys.Age {
		ids, err := age.ParseIdentities(strings.NewReader(s))
		if err != nil {
			// The parser's error could quote the key; say only which one.
			return nil, fmt.Errorf("decryption key %d is not a valid age identity (AGE-SECRET-KEY-1...); fix the App's decryption secret", i+1)
		}
		for _, id := range ids {
			kr.age = append(kr.age, id)
			if x, ok := id.(*age.X25519Identity); ok {
				kr.ageRecipients = append(kr.ageRecipients, x.Recipient().String())
			}
		}
	}
	for i, k := range keys.PGP {
		ents, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(k))
		if err != nil {
			return nil, fmt.Errorf("decryption key %d is not an ASCII-armored OpenPGP key; export it with gpg --export-secret-keys --armor", i+1)
		}
		for _, e := range ents {
			fp := pgpFingerprint(e.PrimaryKey.Fingerprint)
			if e.PrivateKey == nil {
				return nil, fmt.Errorf("OpenPGP key %s is a public key; the App's decryption secret needs the private key (gpg --export-secret-keys --armor %s)", fp, fp)
			}
			if e.PrivateKey.Encrypted {
				return nil, fmt.Errorf("OpenPGP key %s is protected by a passphrase; tend cannot prompt for one, so store the key without a passphrase", fp)
			}
			kr.pgp = append(kr.pgp, e)
			kr.pgpFingerprints = append(kr.pgpFingerprints, fp)
		}
	}
	return kr, nil
}

func pgpFingerprint(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

// dataKey recovers a SOPS file's data key from its key groups.
func (kr *keyring) dataKey(g sopsKeyGroups) ([]byte, error) {
	var parts [][]byte
	var failures []string
	for _, group := range g.Groups {
		part, failure := kr.decryptGroup(group)
		if part != nil {
			parts = append(parts, part)
		} else if failure != "" {
			failures = append(failures, failure)
		}
	}
	switch {
	case len(g.Groups) <= 1 && len(parts) == 1:
		return parts[0], nil
	case len(g.Groups) > 1:
		threshold := g.Threshold
		if threshold == 0 {
			threshold = len(g.Groups)
		}
		if len(parts) >= threshold {
			key, err := shamir.Combine(parts)
			if err != nil {
				return nil, fmt.Errorf("combine the key groups' shares: %w", err)
			}
			return key, nil
		}
	}
	return nil, kr.noKeyError(g, failures)
}

// decryptGroup returns the group's share of the data key, or why a key the
// App has that is listed in the group failed.
func (kr *keyring) decryptGroup(group []sopsMasterKey) ([]byte, string) {
	var failures []string
	for _, k := range group {
		var (
			part []byte
			err  error
		)
		switch {
		case k.Type == "age" && len(kr.age) > 0:
			part, err = kr.decryptAge(k.EncryptedKey)
			var noMatch *age.NoIdentityMatchError
			if errors.As(err, &noMatch) {
				continue
			}
		case k.Type == "pgp" && len(kr.pgp) > 0:
			part, err = kr.decryptPGP(k.EncryptedKey)
			if errors.Is(err, errNoPGPKey) {
				continue
			}
		default:
			continue
		}
		if err == nil {
			return part, ""
		}
		failures = append(failures, fmt.Sprintf("%s key %s: %v", k.Type, k.ID, err))
	}
	return nil, strings.Join(failures, "; ")
}

func (kr *keyring) decryptAge(enc string) ([]byte, error) {
	r, err := age.Decrypt(armor.NewReader(strings.NewReader(enc)), kr.age...)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

var errNoPGPKey = errors.New("no matching OpenPGP key")

func (kr *keyring) decryptPGP(enc string) ([]byte, error) {
	block, err := pgparmor.Decode(strings.NewReader(enc))
	if err != nil {
		return nil, fmt.Errorf("read the armored data key: %w", err)
	}
	md, err := openpgp.ReadMessage(block.Body, kr.pgp, nil, nil)
	if err != nil {
		if errors.Is(err, pgperrors.ErrKeyIncorrect) {
			return nil, errNoPGPKey
		}
		return nil, err
	}
	return io.ReadAll(md.UnverifiedBody)
}

// noKeyError says which recipients the file is encrypted for and which
// (public) keys were tried.
func (kr *keyring) noKeyError(g sopsKeyGroups, failures []string) error {
	var ageR, pgpR, other []string
	for _, group := range g.Groups {
		for _, k := range group {
			switch k.Type {
			case "age":
				ageR = append(ageR, k.ID)
			case "pgp":
				pgpR = append(pgpR, k.ID)
			default:
				other = append(other, k.Type+" "+k.ID)
			}
		}
	}
	var b strings.Builder
	b.WriteString("none of the App's keys can decrypt it; it is encrypted for ")
	b.WriteString(listOrNone("age recipients", ageR) + ", " + listOrNone("PGP fingerprints", pgpR))
	if len(other) > 0 {
		b.WriteString(", and key sources tend does not support (" + strings.Join(other, ", ") + ")")
	}
	b.WriteString("; tried " + listOrNone("age recipients", kr.ageRecipients) + ", " + listOrNone("PGP fingerprints", kr.pgpFingerprints))
	if len(failures) > 0 {
		b.WriteString("; failures: " + strings.Join(failures, "; "))
	}
	b.WriteString("; add the matching private key to the App's decryption secret or re-encrypt the file for one of its keys")
	return errors.New(b.String())
}

func listOrNone(what string, l []string) string {
	if len(l) == 0 {
		return "no " + what
	}
	return what + " " + strings.Join(l, ", ")
}
