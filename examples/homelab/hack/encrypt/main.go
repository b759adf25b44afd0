// Command encrypt SOPS-encrypts a Kubernetes Secret manifest for age
// recipients, encrypting only data and stringData (as `sops --encrypt
// --encrypted-regex '^(data|stringData)$' --age ...` would). It exists so the
// example's demo secret can be regenerated without installing the sops CLI:
//
//	go run ./examples/homelab/hack/encrypt age1... < secret.yaml > secret.sops.yaml
package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "encrypt:", err)
		os.Exit(1)
	}
}

func run(recipients []string, in io.Reader, out io.Writer) error {
	if len(recipients) == 0 {
		return fmt.Errorf("usage: encrypt AGE_RECIPIENT... < plain.yaml > encrypted.yaml")
	}
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
	var group sops.KeyGroup
	for _, r := range recipients {
		k, err := sopsage.MasterKeyFromRecipient(r)
		if err != nil {
			return fmt.Errorf("recipient %s: %w", r, err)
		}
		if err := k.Encrypt(dataKey); err != nil {
			return err
		}
		group = append(group, k)
	}
	tree := sops.Tree{Branches: branches, Metadata: sops.Metadata{
		KeyGroups:      []sops.KeyGroup{group},
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
