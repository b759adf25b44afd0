package livestate

import (
	"encoding/json"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// IgnoredFieldsAnnotation lists, as a JSON array of RFC 6901 pointers, the
// fields of an object that its App's ignoreDifferences leave to others. The
// engine sets it on what it applies; Fingerprint leaves these fields out of
// tend's field set, so another writer changing one of them (and so taking
// it from tend) is not drift. It lives on the object so that every process
// (a restarted controller, `tend diff`) computes the same fingerprint.
const IgnoredFieldsAnnotation = tendv1.AnnotationIgnoredFields

// ignoredPointers returns the pointers obj's IgnoredFieldsAnnotation lists,
// split into unescaped tokens; nil when there are none or the annotation is
// not a JSON array of strings.
func ignoredPointers(obj *unstructured.Unstructured) [][]string {
	v, ok := obj.GetAnnotations()[IgnoredFieldsAnnotation]
	if !ok {
		return nil
	}
	var ptrs []string
	if err := json.Unmarshal([]byte(v), &ptrs); err != nil {
		return nil
	}
	var out [][]string
	for _, p := range ptrs {
		if !strings.HasPrefix(p, "/") || len(p) < 2 {
			continue
		}
		tokens := strings.Split(p[1:], "/")
		for i, t := range tokens {
			tokens[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
		}
		out = append(out, tokens)
	}
	return out
}

// withoutIgnored returns a copy of fields (a managedFields entry's fieldsV1)
// without the fields the pointers name in obj. List items are found the way
// the API server keys them: by key fields (k:), value (v:) or index (i:).
// Maps left empty by a removal are removed too, as the API server never
// writes them.
func withoutIgnored(obj map[string]any, fields map[string]any, pointers [][]string) map[string]any {
	out, _ := copyJSON(fields).(map[string]any)
	for _, p := range pointers {
		removeField(obj, out, p)
	}
	return out
}

func removeField(node any, fields map[string]any, tokens []string) {
	var (
		key   string
		child any
	)
	switch n := node.(type) {
	case map[string]any:
		key, child = "f:"+tokens[0], n[tokens[0]]
	case []any:
		i, err := strconv.Atoi(tokens[0])
		if err != nil || i < 0 || i >= len(n) {
			return
		}
		child = n[i]
		key = itemKey(fields, child, i)
	default:
		return
	}
	if _, ok := fields[key]; !ok || key == "" {
		return
	}
	if len(tokens) == 1 {
		delete(fields, key)
		return
	}
	sub, ok := fields[key].(map[string]any)
	if !ok {
		return
	}
	removeField(child, sub, tokens[1:])
	if len(sub) == 0 {
		delete(fields, key)
	}
}

// itemKey returns the key fields uses for list item number i, or "".
func itemKey(fields map[string]any, item any, i int) string {
	itemJSON, _ := json.Marshal(item)
	for k := range fields {
		switch {
		case strings.HasPrefix(k, "k:"):
			var keys map[string]any
			if json.Unmarshal([]byte(k[2:]), &keys) != nil {
				continue
			}
			m, ok := item.(map[string]any)
			if !ok {
				continue
			}
			match := true
			for kk, kv := range keys {
				a, _ := json.Marshal(kv)
				b, _ := json.Marshal(m[kk])
				if string(a) != string(b) {
					match = false
					break
				}
			}
			if match {
				return k
			}
		case strings.HasPrefix(k, "v:"):
			var v any
			if json.Unmarshal([]byte(k[2:]), &v) != nil {
				continue
			}
			if b, _ := json.Marshal(v); string(b) == string(itemJSON) {
				return k
			}
		case k == "i:"+strconv.Itoa(i):
			return k
		}
	}
	return ""
}

func copyJSON(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, v := range t {
			out[k] = copyJSON(v)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, v := range t {
			out[i] = copyJSON(v)
		}
		return out
	}
	return v
}
