package render

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// This file decrypts SOPS documents the way sops (github.com/getsops/sops/v3)
// does, without linking it: sops's packages import its key service, which
// links the AWS, GCP, Azure, Vault and Huawei SDKs (about 60 MB of binary)
// and an audit hook that can connect to PostgreSQL at start-up. tend only
// needs decryption with age and OpenPGP keys, so it implements that part of
// the format: the tree of values each store loads, the walk that decides
// which values are encrypted, AES-256-GCM values bound to their path, and
// the MAC over all values. The tests encrypt with sops's own packages, so
// any drift from sops shows up there.

// sopsComment is a comment line in a document's tree.
type sopsComment struct{ value string }

// sopsItem is one key (a string, or a sopsComment) and its value in a
// mapping.
type sopsItem struct {
	key   any
	value any
}

// sopsBranch is an ordered mapping. Values are sopsBranch, []any, string,
// int, float64, bool, nil or sopsComment (comments in lists).
type sopsBranch []sopsItem

// sopsDoc is a loaded encrypted document: its branches (YAML documents,
// or one for the other formats) and its metadata.
type sopsDoc struct {
	branches []sopsBranch
	meta     sopsMetadata
}

// sopsMetadata is what decryption needs from a document's "sops" entry.
type sopsMetadata struct {
	keys                    sopsKeyGroups
	lastModified            string // as written (RFC 3339)
	mac                     string
	unencryptedSuffix       string
	encryptedSuffix         string
	unencryptedRegex        string
	encryptedRegex          string
	unencryptedCommentRegex string
	encryptedCommentRegex   string
	macOnlyEncrypted        bool
}

// macOnlyEncryptedInit starts the MAC of documents with mac_only_encrypted,
// as in sops.
var macOnlyEncryptedInit = []byte{0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0xb, 0xb, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69}

var errTampered = errors.New("the file was changed after it was encrypted; edit it with sops or re-encrypt it")

// decryptSOPS decrypts a SOPS document of the given format with kr and
// verifies its MAC, returning the plaintext in the same format.
func decryptSOPS(format sopsFormat, b []byte, kr *keyring) ([]byte, error) {
	doc, err := loadSOPS(format, b)
	if err != nil {
		return nil, fmt.Errorf("read SOPS %s document: %w", format, err)
	}
	key, err := kr.dataKey(doc.meta.keys)
	if err != nil {
		return nil, err
	}
	mac, err := doc.decrypt(key)
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", errTampered, err)
	}
	stored, err := decryptValue(doc.meta.mac, key, doc.meta.lastModified)
	if err != nil {
		return nil, fmt.Errorf("%w (cannot decrypt its MAC: %v)", errTampered, err)
	}
	if s, ok := stored.(string); !ok || s != mac {
		return nil, fmt.Errorf("%w (MAC mismatch)", errTampered)
	}
	return emitSOPS(format, doc.branches)
}

// decrypt decrypts the document's values in place and returns the MAC
// of the plaintext (upper-case hex SHA-512), as sops's Tree.Decrypt.
func (d *sopsDoc) decrypt(key []byte) (string, error) {
	h := sha512.New()
	if d.meta.macOnlyEncrypted {
		h.Write(macOnlyEncryptedInit)
	}
	leaf := func(in any, path []string, comments [][]string) (any, error) {
		c, isComment := in.(sopsComment)
		encrypted := d.meta.shouldBeEncrypted(path, comments, isComment)
		v := in
		if encrypted {
			ad := strings.Join(path, ":") + ":"
			switch in := in.(type) {
			case sopsComment:
				if p, err := decryptValue(c.value, key, ad); err == nil {
					v = p
				} // else: a comment sops did not encrypt (older versions)
			case string:
				p, err := decryptValue(in, key, ad)
				if err != nil {
					return nil, fmt.Errorf("value at %s: %w", strings.Join(path, "."), err)
				}
				v = p
			default:
				return nil, fmt.Errorf("value at %s: expected an encrypted string, found %T", strings.Join(path, "."), in)
			}
		}
		if !d.meta.macOnlyEncrypted || encrypted {
			if _, isComment := v.(sopsComment); !isComment {
				b, err := macBytes(v)
				if err != nil {
					return nil, fmt.Errorf("value at %s: %w", strings.Join(path, "."), err)
				}
				h.Write(b)
			}
		}
		return v, nil
	}
	for _, b := range d.branches {
		if _, err := walkBranch(b, nil, nil, leaf); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%X", h.Sum(nil)), nil
}

type leafFunc func(in any, path []string, comments [][]string) (any, error)

func walkValue(in any, path []string, comments [][]string, fn leafFunc) (any, error) {
	switch in := in.(type) {
	case string, int, bool, float64, sopsComment, time.Time:
		return fn(in, path, comments)
	case sopsBranch:
		return walkBranch(in, path, comments, fn)
	case []any:
		return walkSlice(in, path, comments, fn)
	case nil:
		return nil, nil
	default:
		return nil, fmt.Errorf("cannot walk a value of type %T", in)
	}
}

func walkSlice(in []any, path []string, comments [][]string, fn leafFunc) ([]any, error) {
	comments = append(comments[:len(comments):len(comments)], []string{})
	for i, v := range in {
		c, isComment := v.(sopsComment)
		if isComment {
			comments[len(comments)-1] = append(comments[len(comments)-1], c.value)
		}
		nv, err := walkValue(v, path, comments, fn)
		if err != nil {
			return nil, err
		}
		in[i] = nv
		if !isComment {
			comments[len(comments)-1] = []string{}
		}
	}
	return in, nil
}

func walkBranch(in sopsBranch, path []string, comments [][]string, fn leafFunc) (sopsBranch, error) {
	comments = append(comments[:len(comments):len(comments)], []string{})
	for i, item := range in {
		if c, ok := item.key.(sopsComment); ok {
			comments[len(comments)-1] = append(comments[len(comments)-1], c.value)
			nv, err := walkValue(c, path, comments, fn)
			if err != nil {
				return nil, err
			}
			switch nv := nv.(type) {
			case sopsComment:
				in[i].key = nv
			case string:
				in[i].key = sopsComment{value: nv}
			default:
				return nil, fmt.Errorf("comment decrypted to a %T", nv)
			}
			continue
		}
		c, valueIsComment := item.value.(sopsComment)
		if valueIsComment {
			comments[len(comments)-1] = append(comments[len(comments)-1], c.value)
		}
		key, ok := item.key.(string)
		if !ok {
			return nil, fmt.Errorf("non-string key %v (%T); sops documents only have string keys", item.key, item.key)
		}
		nv, err := walkValue(item.value, append(path[:len(path):len(path)], key), comments, fn)
		if err != nil {
			return nil, err
		}
		in[i].value = nv
		if !valueIsComment {
			comments[len(comments)-1] = []string{}
		}
	}
	return in, nil
}

// shouldBeEncrypted says whether the value at path was encrypted, from the
// document's encryption rules (sops's Tree.shouldBeEncrypted).
func (m *sopsMetadata) shouldBeEncrypted(path []string, comments [][]string, isComment bool) bool {
	encrypted := true
	match := func(re, s string) bool {
		ok, _ := regexp.MatchString(re, s)
		return ok
	}
	if m.unencryptedSuffix != "" {
		for _, p := range path {
			if strings.HasSuffix(p, m.unencryptedSuffix) {
				encrypted = false
				break
			}
		}
	}
	if m.encryptedSuffix != "" {
		encrypted = false
		for _, p := range path {
			if strings.HasSuffix(p, m.encryptedSuffix) {
				encrypted = true
				break
			}
		}
	}
	if m.unencryptedRegex != "" {
		for _, p := range path {
			if match(m.unencryptedRegex, p) {
				encrypted = false
				break
			}
		}
	}
	if m.encryptedRegex != "" {
		encrypted = false
		for _, p := range path {
			if match(m.encryptedRegex, p) {
				encrypted = true
				break
			}
		}
	}
	if m.unencryptedCommentRegex != "" {
	unencrypted:
		for _, cs := range comments {
			for _, c := range cs {
				if match(m.unencryptedCommentRegex, c) {
					encrypted = false
					break unencrypted
				}
			}
		}
	}
	if m.encryptedCommentRegex != "" {
		last := len(comments) - 1
		lastLen := len(comments[last])
		encrypted = false
	encryptedLoop:
		for i, cs := range comments {
			for j, c := range cs {
				// The comment line that matches is itself not encrypted.
				if isComment && i == last && j == lastLen-1 {
					continue
				}
				if match(m.encryptedCommentRegex, c) {
					encrypted = true
					break encryptedLoop
				}
			}
		}
	}
	return encrypted
}

// macBytes is how a value enters the MAC (sops.ToBytes).
func macBytes(v any) ([]byte, error) {
	switch v := v.(type) {
	case string:
		return []byte(v), nil
	case int:
		return []byte(strconv.Itoa(v)), nil
	case float64:
		return []byte(strconv.FormatFloat(v, 'f', -1, 64)), nil
	case bool:
		if v {
			return []byte("True"), nil
		}
		return []byte("False"), nil
	case []byte:
		return v, nil
	case time.Time:
		return v.MarshalText()
	case sopsComment:
		return []byte(v.value), nil
	default:
		return nil, fmt.Errorf("cannot hash a value of type %T", v)
	}
}

var encryptedValue = regexp.MustCompile(`^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]`)

// decryptValue decrypts one ENC[AES256_GCM,...] value bound to
// additionalData and returns it with its original type (sops's aes
// Cipher.Decrypt). Errors never contain the plaintext.
func decryptValue(s string, key []byte, additionalData string) (any, error) {
	if s == "" {
		return "", nil
	}
	m := encryptedValue.FindStringSubmatch(s)
	if m == nil {
		return nil, errors.New("not a SOPS-encrypted value (ENC[AES256_GCM,...])")
	}
	var parts [3][]byte
	for i := range parts {
		b, err := base64.StdEncoding.DecodeString(m[i+1])
		if err != nil {
			return nil, fmt.Errorf("encrypted value is not valid base64: %v", err)
		}
		parts[i] = b
	}
	data, iv, tag := parts[0], parts[1], parts[2]
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	if len(iv) == 0 {
		return nil, errors.New("encrypted value has an empty IV")
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(iv))
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, iv, append(data[:len(data):len(data)], tag...), []byte(additionalData))
	if err != nil {
		return nil, errors.New("AES-GCM authentication failed")
	}
	switch typ := m[4]; typ {
	case "str":
		return string(plain), nil
	case "int":
		i, err := strconv.Atoi(string(plain))
		if err != nil {
			return nil, errors.New("encrypted int does not decrypt to an integer")
		}
		return i, nil
	case "float":
		f, err := strconv.ParseFloat(string(plain), 64)
		if err != nil {
			return nil, errors.New("encrypted float does not decrypt to a number")
		}
		return f, nil
	case "bytes":
		return plain, nil
	case "bool":
		b, err := strconv.ParseBool(string(plain))
		if err != nil {
			return nil, errors.New("encrypted bool does not decrypt to a boolean")
		}
		return b, nil
	case "time":
		var t time.Time
		if err := t.UnmarshalText(plain); err != nil {
			return nil, errors.New("encrypted time does not decrypt to a timestamp")
		}
		return t, nil
	case "comment":
		return sopsComment{value: string(plain)}, nil
	default:
		return nil, fmt.Errorf("unknown encrypted value type %q", typ)
	}
}
