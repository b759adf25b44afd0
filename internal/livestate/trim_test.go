package livestate

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
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

func TestPackedKeepsIntegersAndKeys(t *testing.T) {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "shop", "resourceVersion": "42", "labels": map[string]any{"app": "web"}},
		"spec":     map[string]any{"replicas": int64(3), "progressDeadlineSeconds": int64(600)},
		"status":   map[string]any{"observedGeneration": int64(7), "ratio": 0.5},
	}}
	p, err := pack(obj)
	if err != nil {
		t.Fatal(err)
	}
	if key, err := cache.MetaNamespaceKeyFunc(p); err != nil || key != "shop/web" {
		t.Errorf("store key = %q, %v; want shop/web", key, err)
	}
	if p.resourceVersion != "42" {
		t.Errorf("resourceVersion = %q, want 42", p.resourceVersion)
	}
	got, err := p.object()
	if err != nil {
		t.Fatal(err)
	}
	// Health checks and fingerprints read integers as int64, as the API
	// machinery decodes them; a plain JSON decode would give float64.
	if n, ok, err := unstructured.NestedInt64(got.Object, "spec", "replicas"); !ok || err != nil || n != 3 {
		t.Errorf("spec.replicas = %v, %v, %v; want int64 3", n, ok, err)
	}
	if n, ok, err := unstructured.NestedInt64(got.Object, "status", "observedGeneration"); !ok || err != nil || n != 7 {
		t.Errorf("status.observedGeneration = %v, %v, %v; want int64 7", n, ok, err)
	}
	if f, ok, err := unstructured.NestedFloat64(got.Object, "status", "ratio"); !ok || err != nil || f != 0.5 {
		t.Errorf("status.ratio = %v, %v, %v; want 0.5", f, ok, err)
	}
	if !equality.Semantic.DeepEqual(got.Object, obj.Object) {
		t.Errorf("decoded object differs:\n got %v\nwant %v", got.Object, obj.Object)
	}
	// Each read is a copy of its own.
	again, _ := p.object()
	again.SetName("changed")
	if got.GetName() != "web" {
		t.Error("decoded objects share memory")
	}
}
