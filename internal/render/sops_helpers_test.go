package render

import (
	"bytes"
	"crypto/rand"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/ProtonMail/go-crypto/openpgp"
	pgparmor "github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/pgp"
	"github.com/getsops/sops/v3/shamir"
	"github.com/getsops/sops/v3/stores/dotenv"
	"github.com/getsops/sops/v3/stores/ini"
	sopsjson "github.com/getsops/sops/v3/stores/json"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
)

// The tests encrypt with sops's own Go packages, exactly as `sops
// --encrypt` does (cmd/sops: load the plain file, encrypt the tree, encrypt
// its MAC with the last-modified time, emit), so what tend decrypts is what
// the sops CLI writes and reads. Keys are generated per test; the OpenPGP
// data key is encrypted with go-crypto, as sops's pgp key source does
// without GnuPG.

// testPGPKey is a generated OpenPGP key pair.
type testPGPKey struct {
	entity      *openpgp.Entity
	fingerprint string
	armored     []byte // the armored private key, as a decryption secret holds it
}

func newAgeKey(t testing.TB) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newPGPKey(t testing.TB) testPGPKey {
	t.Helper()
	e, err := openpgp.NewEntity("tend test", "", "test@example.com", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := pgparmor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SerializePrivate(w, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return testPGPKey{entity: e, fingerprint: pgpFingerprint(e.PrimaryKey.Fingerprint), armored: buf.Bytes()}
}

// sopsRecipients says whom a test file is encrypted for: each group is a
// Shamir key group (one group means no Shamir).
type sopsRecipients struct {
	groups []sopsGroup
	// configure changes the metadata before encryption (encrypted_regex...).
	configure func(*sops.Metadata)
}

type sopsGroup struct {
	age []string // age recipients (public keys)
	pgp []testPGPKey
}

func forAge(ids ...*age.X25519Identity) sopsRecipients {
	var g sopsGroup
	for _, id := range ids {
		g.age = append(g.age, id.Recipient().String())
	}
	return sopsRecipients{groups: []sopsGroup{g}}
}

func forPGP(keys ...testPGPKey) sopsRecipients {
	return sopsRecipients{groups: []sopsGroup{{pgp: keys}}}
}

type testStore interface {
	LoadPlainFile(in []byte) (sops.TreeBranches, error)
	EmitEncryptedFile(in sops.Tree) ([]byte, error)
}

func testStoreFor(t testing.TB, format string) testStore {
	switch format {
	case "yaml":
		return &sopsyaml.Store{}
	case "json":
		return &sopsjson.Store{}
	case "dotenv":
		return &dotenv.Store{}
	case "ini":
		return &ini.Store{}
	case "binary":
		return &sopsjson.BinaryStore{}
	}
	t.Fatalf("unknown format %q", format)
	return nil
}

// sopsEncrypt encrypts plain (in format yaml, json, dotenv, ini or binary)
// for to.
func sopsEncrypt(t testing.TB, format string, plain []byte, to sopsRecipients) []byte {
	t.Helper()
	store := testStoreFor(t, format)
	branches, err := store.LoadPlainFile(plain)
	if err != nil {
		t.Fatalf("load plain %s: %v", format, err)
	}
	dataKey := make([]byte, 32)
	if _, err := rand.Read(dataKey); err != nil {
		t.Fatal(err)
	}
	parts := [][]byte{dataKey}
	threshold := 0
	if len(to.groups) > 1 {
		threshold = len(to.groups)
		parts, err = shamir.Split(dataKey, len(to.groups), threshold)
		if err != nil {
			t.Fatal(err)
		}
	}
	md := sops.Metadata{UnencryptedSuffix: sops.DefaultUnencryptedSuffix, Version: "3.13.3", ShamirThreshold: threshold}
	for i, g := range to.groups {
		var group sops.KeyGroup
		for _, r := range g.age {
			k, err := sopsage.MasterKeyFromRecipient(r)
			if err != nil {
				t.Fatal(err)
			}
			if err := k.Encrypt(parts[i]); err != nil {
				t.Fatal(err)
			}
			group = append(group, k)
		}
		for _, k := range g.pgp {
			group = append(group, &pgp.MasterKey{Fingerprint: k.fingerprint, EncryptedKey: pgpEncrypt(t, k.entity, parts[i]), CreationDate: time.Now().UTC()})
		}
		md.KeyGroups = append(md.KeyGroups, group)
	}
	if to.configure != nil {
		to.configure(&md)
	}
	tree := sops.Tree{Branches: branches, Metadata: md}
	cipher := aes.NewCipher()
	mac, err := tree.Encrypt(dataKey, cipher)
	if err != nil {
		t.Fatalf("encrypt: %v", err)
	}
	tree.Metadata.LastModified = time.Now().UTC()
	tree.Metadata.MessageAuthenticationCode, err = cipher.Encrypt(mac, dataKey, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		t.Fatal(err)
	}
	out, err := store.EmitEncryptedFile(tree)
	if err != nil {
		t.Fatalf("emit %s: %v", format, err)
	}
	return out
}

func pgpEncrypt(t testing.TB, e *openpgp.Entity, data []byte) string {
	t.Helper()
	var buf bytes.Buffer
	aw, err := pgparmor.Encode(&buf, "PGP MESSAGE", nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := openpgp.Encrypt(aw, []*openpgp.Entity{e}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}
