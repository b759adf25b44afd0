// Package sopsfile encrypts and decrypts files the way the sops CLI does,
// with age keys only, using sops's own Go packages: `Encrypt` is
// `sops --encrypt` with the creation rules of the nearest .sops.yaml, and
// `Decrypt` is `sops --decrypt`. It lets the example's secrets be written
// and checked without installing sops; with sops installed, use sops.
package sopsfile

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/stores/dotenv"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
	"sigs.k8s.io/yaml"
)

// version is written into the metadata, as the sops CLI writes its own.
const version = "3.13.3"

// ConfigFile is the name of sops's configuration file.
const ConfigFile = ".sops.yaml"

// Rule is one entry of creation_rules in .sops.yaml (the fields this
// package understands).
type Rule struct {
	PathRegex      string `json:"path_regex"`
	EncryptedRegex string `json:"encrypted_regex"`
	// Age is a comma-separated list of age recipients (public keys).
	Age string `json:"age"`
}

type config struct {
	CreationRules []Rule `json:"creation_rules"`
}

type store interface {
	sops.PlainFileLoader
	sops.EncryptedFileLoader
	sops.PlainFileEmitter
	sops.EncryptedFileEmitter
}

// storeFor picks the format by extension, as sops does.
func storeFor(path string) (store, error) {
	switch filepath.Ext(path) {
	case ".yaml", ".yml":
		return &sopsyaml.Store{}, nil
	case ".env":
		return &dotenv.Store{}, nil
	}
	return nil, fmt.Errorf("%s: only .yaml, .yml and .env files are supported", path)
}

// RuleFor finds the nearest .sops.yaml in path's directory or above it and
// returns its first creation rule whose path_regex matches path, relative
// to that file's directory.
func RuleFor(path string) (Rule, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Rule{}, err
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		b, err := os.ReadFile(filepath.Join(dir, ConfigFile))
		if errors.Is(err, os.ErrNotExist) {
			if parent := filepath.Dir(dir); parent != dir {
				continue
			}
			return Rule{}, fmt.Errorf("no %s in the directories above %s", ConfigFile, path)
		}
		if err != nil {
			return Rule{}, err
		}
		var cfg config
		if err := yaml.Unmarshal(b, &cfg); err != nil {
			return Rule{}, fmt.Errorf("%s: %w", filepath.Join(dir, ConfigFile), err)
		}
		rel, err := filepath.Rel(dir, abs)
		if err != nil {
			return Rule{}, err
		}
		for _, r := range cfg.CreationRules {
			re, err := regexp.Compile(r.PathRegex)
			if err != nil {
				return Rule{}, fmt.Errorf("%s: path_regex %q: %w", filepath.Join(dir, ConfigFile), r.PathRegex, err)
			}
			if re.MatchString(filepath.ToSlash(rel)) {
				return r, nil
			}
		}
		return Rule{}, fmt.Errorf("no creation rule of %s matches %s", filepath.Join(dir, ConfigFile), rel)
	}
}

// Encrypt returns plain, the content of the file at path, encrypted
// under the creation rule .sops.yaml has for path.
func Encrypt(path string, plain []byte) ([]byte, error) {
	rule, err := RuleFor(path)
	if err != nil {
		return nil, err
	}
	st, err := storeFor(path)
	if err != nil {
		return nil, err
	}
	if _, err := st.LoadEncryptedFile(plain); err == nil {
		return nil, fmt.Errorf("%s is already encrypted", path)
	}
	branches, err := st.LoadPlainFile(plain)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	dataKey := make([]byte, 32)
	if _, err := rand.Read(dataKey); err != nil {
		return nil, err
	}
	var group sops.KeyGroup
	for _, r := range strings.Split(rule.Age, ",") {
		k, err := sopsage.MasterKeyFromRecipient(strings.TrimSpace(r))
		if err != nil {
			return nil, fmt.Errorf("age recipient %q: %w", r, err)
		}
		if err := k.Encrypt(dataKey); err != nil {
			return nil, err
		}
		group = append(group, k)
	}
	md := sops.Metadata{KeyGroups: []sops.KeyGroup{group}, EncryptedRegex: rule.EncryptedRegex, Version: version}
	if md.EncryptedRegex == "" {
		md.UnencryptedSuffix = "_unencrypted" // sops's default: encrypt every value
	}
	tree := sops.Tree{Branches: branches, Metadata: md}
	cipher := aes.NewCipher()
	mac, err := tree.Encrypt(dataKey, cipher)
	if err != nil {
		return nil, err
	}
	tree.Metadata.LastModified = time.Now().UTC()
	if tree.Metadata.MessageAuthenticationCode, err = cipher.Encrypt(mac, dataKey, tree.Metadata.LastModified.Format(time.RFC3339)); err != nil {
		return nil, err
	}
	return st.EmitEncryptedFile(tree)
}

// Decrypt returns the plaintext of the encrypted content of the file at
// path, with the age identities in keys (a key file as age-keygen writes
// it). It checks the file's MAC, as sops does.
func Decrypt(path string, encrypted, keys []byte) ([]byte, error) {
	st, err := storeFor(path)
	if err != nil {
		return nil, err
	}
	tree, err := st.LoadEncryptedFile(encrypted)
	if err != nil {
		return nil, fmt.Errorf("%s is not SOPS-encrypted: %w", path, err)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(keys))
	if err != nil {
		return nil, fmt.Errorf("age identities: %w", err)
	}
	var dataKey []byte
	for _, g := range tree.Metadata.KeyGroups {
		for _, k := range g {
			ak, ok := k.(*sopsage.MasterKey)
			if !ok || dataKey != nil {
				continue
			}
			r, err := age.Decrypt(armor.NewReader(strings.NewReader(ak.EncryptedKey)), ids...)
			if err != nil {
				continue // for another recipient
			}
			if dataKey, err = io.ReadAll(r); err != nil {
				return nil, err
			}
		}
	}
	if dataKey == nil {
		return nil, fmt.Errorf("%s: none of the age identities can decrypt it", path)
	}
	cipher := aes.NewCipher()
	mac, err := tree.Decrypt(dataKey, cipher)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	want, err := cipher.Decrypt(tree.Metadata.MessageAuthenticationCode, dataKey, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		return nil, fmt.Errorf("%s: MAC: %w", path, err)
	}
	if want != mac {
		return nil, fmt.Errorf("%s was changed after it was encrypted", path)
	}
	return st.EmitPlainFile(tree.Branches)
}
