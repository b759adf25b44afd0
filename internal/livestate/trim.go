package livestate

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// SecretHashPrefix starts every Secret value stored in the cache. A colon
// never occurs in base64, so a cached data value cannot be mistaken for a
// real one.
const SecretHashPrefix = "hmac-sha256:"

// secretKey keys the Secret value hashes. It is random per process: a hash
// that leaks (it never should) cannot be matched against guessed values
// offline, and nothing may persist a hash across restarts.
var secretKey = func() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("livestate: no randomness for the Secret hash key: %v", err))
	}
	return b
}()

// HashSecretValue returns the form in which the cache stores a Secret value:
// SecretHashPrefix followed by the hex HMAC-SHA-256 of the decoded value
// under a per-process random key. To compare a desired value with a cached
// one, hash the desired (decoded) bytes with this function and compare the
// strings. Never log, display or persist the result.
func HashSecretValue(value []byte) string {
	m := hmac.New(sha256.New, secretKey)
	m.Write(value)
	return SecretHashPrefix + hex.EncodeToString(m.Sum(nil))
}

// IsSecretValueHash reports whether s is a value HashSecretValue produced.
func IsSecretValueHash(s string) bool {
	return strings.HasPrefix(s, SecretHashPrefix)
}

// trim removes from obj, in place, what the engine never reads from the
// cache, and hashes Secret values. It is idempotent, as informer transforms
// must be.
func (c *Cache) trim(gvk schema.GroupVersionKind, obj *unstructured.Unstructured) {
	if md, ok := obj.Object["metadata"].(map[string]any); ok {
		trimManagedFields(md, c.keep)
		if !c.keepOwnFields {
			compactOwnFields(obj, c.fm)
		}
		if ann, ok := md["annotations"].(map[string]any); ok {
			delete(ann, LastAppliedAnnotation)
			if len(ann) == 0 {
				delete(md, "annotations")
			}
		}
	}
	if gvk.Group == "" && gvk.Kind == "Secret" {
		hashSecretValues(obj.Object)
	}
	if c.xform != nil {
		c.xform(gvk, obj)
	}
}

// trimManagedFields keeps only the managedFields entries of the managers in
// keep.
func trimManagedFields(md map[string]any, keep map[string]bool) {
	entries, ok := md["managedFields"].([]any)
	if !ok {
		return
	}
	kept := entries[:0]
	for _, e := range entries {
		if m, ok := e.(map[string]any); ok {
			if name, _ := m["manager"].(string); keep[name] {
				kept = append(kept, e)
			}
		}
	}
	clear(entries[len(kept):])
	if len(kept) == 0 {
		delete(md, "managedFields")
		return
	}
	md["managedFields"] = kept
}

// compactOwnFields replaces the field set of manager's Apply entry (about
// 40% of a cached Deployment) by its fingerprint, which is all the engine
// reads from it. Fingerprint returns the stored value.
func compactOwnFields(obj *unstructured.Unstructured, manager string) {
	entry := applyEntry(obj, manager)
	if entry == nil || entry["fieldsV1"] == nil {
		return
	}
	entry[fingerprintKey] = Fingerprint(obj, manager)
	delete(entry, "fieldsV1")
}

// hashSecretValues replaces every data and stringData value by its hash.
func hashSecretValues(obj map[string]any) {
	if data, ok := obj["data"].(map[string]any); ok {
		for k, v := range data {
			s, isString := v.(string)
			if isString && IsSecretValueHash(s) {
				continue
			}
			var raw []byte
			if isString {
				if b, err := base64.StdEncoding.DecodeString(s); err == nil {
					raw = b
				} else {
					raw = []byte(s)
				}
			} else {
				raw = fmt.Append(nil, v)
			}
			data[k] = HashSecretValue(raw)
		}
	}
	if data, ok := obj["stringData"].(map[string]any); ok {
		for k, v := range data {
			s, isString := v.(string)
			if isString && IsSecretValueHash(s) {
				continue
			}
			if isString {
				data[k] = HashSecretValue([]byte(s))
			} else {
				data[k] = HashSecretValue(fmt.Append(nil, v))
			}
		}
	}
}
