package livestate

import (
	"encoding/json"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// ignoredTestObject returns a Deployment tend applied, owning fields (its
// fieldsV1), annotated with the ignored pointers when given.
func ignoredTestObject(t *testing.T, fields string, ignored ...string) *unstructured.Unstructured {
	t.Helper()
	var fv any
	if err := json.Unmarshal([]byte(fields), &fv); err != nil {
		t.Fatal(err)
	}
	o := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{
			"name": "web", "namespace": "shop", "uid": "u1",
			"managedFields": []any{map[string]any{"manager": "tend", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": fv}},
		},
		"spec": map[string]any{
			"replicas": int64(3),
			"template": map[string]any{"spec": map[string]any{"containers": []any{
				map[string]any{"name": "web", "image": "nginx"},
				map[string]any{"name": "proxy", "image": "envoy"},
			}}},
		},
	}}
	if len(ignored) > 0 {
		b, _ := json.Marshal(ignored)
		o.SetAnnotations(map[string]string{IgnoredFieldsAnnotation: string(b)})
	}
	return o
}

func TestFingerprintLeavesIgnoredFieldsOut(t *testing.T) {
	const all = `{"f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{
		"k:{\"name\":\"web\"}":{".":{},"f:name":{},"f:image":{}},
		"k:{\"name\":\"proxy\"}":{".":{},"f:name":{},"f:image":{}}}}}}}`
	// Another writer took replicas and the proxy's image.
	const taken = `{"f:spec":{"f:template":{"f:spec":{"f:containers":{
		"k:{\"name\":\"web\"}":{".":{},"f:name":{},"f:image":{}},
		"k:{\"name\":\"proxy\"}":{".":{},"f:name":{}}}}}}}`
	// And also the web container's image, which is not ignored.
	const takenMore = `{"f:spec":{"f:template":{"f:spec":{"f:containers":{
		"k:{\"name\":\"web\"}":{".":{},"f:name":{}},
		"k:{\"name\":\"proxy\"}":{".":{},"f:name":{}}}}}}}`
	ignored := []string{"/spec/replicas", "/spec/template/spec/containers/1/image"}

	if a, b := Fingerprint(ignoredTestObject(t, all), "tend"), Fingerprint(ignoredTestObject(t, taken), "tend"); a == b {
		t.Fatal("without the annotation, taking fields does not change the fingerprint")
	}
	before := Fingerprint(ignoredTestObject(t, all, ignored...), "tend")
	if got := Fingerprint(ignoredTestObject(t, taken, ignored...), "tend"); got != before {
		t.Error("taking only ignored fields changed the fingerprint: that would be drift")
	}
	if got := Fingerprint(ignoredTestObject(t, takenMore, ignored...), "tend"); got == before {
		t.Error("taking a field that is not ignored left the fingerprint alone: drift would go unseen")
	}
	// The cache computes the same fingerprint when it compacts the set.
	o := ignoredTestObject(t, taken, ignored...)
	compactOwnFields(o, "tend")
	if got := Fingerprint(o, "tend"); got != before {
		t.Error("the compacted object's fingerprint differs from the one computed at apply")
	}
}
