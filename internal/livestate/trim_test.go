package livestate

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestTrimIsIdempotentAndHidesSecretValues(t *testing.T) {
	c := &Cache{keep: map[string]bool{"tend": true}, fm: "tend"}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "Secret",
		"metadata": map[string]any{
			"name":        "s",
			"annotations": map[string]any{LastAppliedAnnotation: `{"data":{"a":"c2VjcmV0"}}`},
			"managedFields": []any{
				map[string]any{"manager": "kubectl", "operation": "Update", "fieldsV1": map[string]any{"f:data": map[string]any{}}},
				map[string]any{"manager": "tend", "operation": "Apply", "fieldsV1": map[string]any{"f:data": map[string]any{"f:a": map[string]any{}}}},
			},
		},
		"data":       map[string]any{"a": base64.StdEncoding.EncodeToString([]byte("secret"))},
		"stringData": map[string]any{"b": "plain"},
	}}
	obj.SetUID("u1")
	gvk := schema.GroupVersionKind{Version: "v1", Kind: "Secret"}
	fp := Fingerprint(obj, "tend")
	c.trim(gvk, obj)
	once, _ := json.Marshal(obj.Object)
	c.trim(gvk, obj)
	twice, _ := json.Marshal(obj.Object)
	if string(once) != string(twice) {
		t.Fatalf("trim is not idempotent:\n%s\n%s", once, twice)
	}
	for _, plain := range []string{"secret", "c2VjcmV0", "plain"} {
		if strings.Contains(string(once), plain) {
			t.Errorf("trimmed Secret contains %q: %s", plain, once)
		}
	}
	if got, want := obj.Object["data"].(map[string]any)["a"], HashSecretValue([]byte("secret")); got != want {
		t.Errorf("data.a = %v, want %v", got, want)
	}
	if got, want := obj.Object["stringData"].(map[string]any)["b"], HashSecretValue([]byte("plain")); got != want {
		t.Errorf("stringData.b = %v, want %v", got, want)
	}
	if mf := obj.GetManagedFields(); len(mf) != 1 || mf[0].Manager != "tend" {
		t.Errorf("managedFields = %+v, want only tend's", mf)
	} else if mf[0].FieldsV1 != nil {
		t.Errorf("tend's field set is kept: %s", mf[0].FieldsV1.GetRawString())
	}
	if got := Fingerprint(obj, "tend"); got != fp || fp == "" {
		t.Errorf("Fingerprint after trimming = %q, before %q", got, fp)
	}
	if _, ok := obj.Object["metadata"].(map[string]any)["annotations"]; ok {
		t.Errorf("annotations left after removing the only one: %v", obj.GetAnnotations())
	}
}

func TestTrimLeavesOtherKindsData(t *testing.T) {
	c := &Cache{keep: map[string]bool{"tend": true}, fm: "tend"}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": "c"},
		"data":     map[string]any{"a": "not a secret"},
	}}
	c.trim(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, obj)
	if got := obj.Object["data"].(map[string]any)["a"]; got != "not a secret" {
		t.Fatalf("ConfigMap data changed to %v", got)
	}
	// A kind named Secret in another group is not a Secret.
	c.trim(schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Secret"}, obj)
	if got := obj.Object["data"].(map[string]any)["a"]; got != "not a secret" {
		t.Fatalf("example.com Secret data changed to %v", got)
	}
}

func TestNewerResourceVersion(t *testing.T) {
	mk := func(rv string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{}}
		u.SetResourceVersion(rv)
		return u
	}
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"10", "9", true}, // numerically, not as strings
		{"9", "10", false},
		{"10", "10", false},
		{"x", "1", false}, // unparseable: the watched object wins
		{"2", "", false},
	} {
		if got := newerResourceVersion(mk(tc.a), mk(tc.b)); got != tc.want {
			t.Errorf("newerResourceVersion(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestKeepOwnFieldSet(t *testing.T) {
	c := &Cache{keep: map[string]bool{"tend": true}, fm: "tend", keepOwnFields: true}
	obj := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{
		"uid": "u1",
		"managedFields": []any{
			map[string]any{"manager": "tend", "operation": "Apply", "fieldsV1": map[string]any{"f:data": map[string]any{"f:a": map[string]any{}}}},
		},
	}}}
	fp := Fingerprint(obj, "tend")
	c.trim(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, obj)
	if mf := obj.GetManagedFields(); len(mf) != 1 || mf[0].FieldsV1 == nil {
		t.Fatalf("field set dropped despite KeepOwnFieldSet: %+v", mf)
	}
	if got := Fingerprint(obj, "tend"); got != fp {
		t.Fatalf("Fingerprint changed: %q, want %q", got, fp)
	}
}
