package livestate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Fingerprint returns the ownership fingerprint of a live object for a field
// manager: a hash of the object's UID and of the fields manager owns through
// server-side apply (its managedFields entry with operation Apply on the main
// resource). It is "" when obj has no such entry, that is when manager never
// applied it.
//
// Drift shows up as a changed fingerprint, with no dry-run and no schema:
// when anyone else changes the value of a field manager owns (kubectl edit,
// a controller's update, another applier with force), the API server moves
// that field out of manager's set; deleting and recreating the object changes
// its UID. What does not change it: re-applying the same content, other
// managers adding fields manager does not own, and other appliers setting the
// same value on a field manager owns (the ownership is then shared).
//
// Fields listed in the object's IgnoredFieldsAnnotation (an App's
// ignoreDifferences) are left out: another writer taking them is not drift.
//
// Record the fingerprint of the object the apply returned; a later
// fingerprint of the cached object that differs means drift.
//
// Objects from a Cache carry the fingerprint in place of the field set
// (unless Options.KeepOwnFieldSet); Fingerprint returns it.
func Fingerprint(obj *unstructured.Unstructured, manager string) string {
	entry := applyEntry(obj, manager)
	if entry == nil {
		return ""
	}
	if entry["fieldsV1"] == nil {
		fp, _ := entry[fingerprintKey].(string)
		return fp
	}
	set := entry["fieldsV1"]
	if ptrs := ignoredPointers(obj); ptrs != nil {
		if m, ok := set.(map[string]any); ok {
			set = withoutIgnored(obj.Object, m, ptrs)
		}
	}
	// encoding/json sorts map keys, so equal sets encode equally.
	fields, err := json.Marshal(set)
	if err != nil {
		return ""
	}
	h := sha256.New()
	h.Write([]byte(obj.GetUID()))
	h.Write([]byte{0})
	h.Write(fields)
	return hex.EncodeToString(h.Sum(nil))
}

// fingerprintKey holds, in a managedFields entry the cache compacted, the
// fingerprint of the field set it removed. The API server never returns
// this key, so only the cache sets it.
const fingerprintKey = "tend.dev/fingerprint"

// applyEntry returns obj's managedFields entry for manager's server-side
// apply of the main resource, or nil.
func applyEntry(obj *unstructured.Unstructured, manager string) map[string]any {
	if obj == nil {
		return nil
	}
	md, _ := obj.Object["metadata"].(map[string]any)
	entries, _ := md["managedFields"].([]any)
	for _, e := range entries {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		name, _ := m["manager"].(string)
		op, _ := m["operation"].(string)
		sub, _ := m["subresource"].(string)
		if name == manager && op == "Apply" && sub == "" {
			return m
		}
	}
	return nil
}
