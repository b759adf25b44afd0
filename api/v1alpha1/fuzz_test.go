package v1alpha1

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// FuzzCRDs decodes a tend object (App, AppSet, Source, Cluster, Notifier,
// Project, or a list of them) as the API server and kubectl read it, from
// YAML. Encoding it as JSON and decoding it again gives the same object
// (after one encoding: time fields keep whole seconds, as on the API
// server), and the generated DeepCopy is equal to what it copies.
// `make fuzz-smoke` runs it briefly; see docs/development.md for longer
// runs.
func FuzzCRDs(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/upgrade/v1alpha1/*.yaml")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("apiVersion: tend.dev/v1alpha1\nkind: AppList\nitems: [{metadata: {name: a}, spec: {path: x}}]\n"))
	f.Add([]byte("apiVersion: tend.dev/v1alpha1\nkind: App\nmetadata: {name: a, creationTimestamp: '2024-01-01T00:00:00.5Z'}\nspec: {sync: {interval: 1m30s}, health: {timeout: 90s}}\nstatus: {conditions: [{type: Ready, status: 'True', lastTransitionTime: '2024-01-01T00:00:00Z', reason: R, message: m}]}\n"))
	scheme := runtime.NewScheme()
	if err := AddToScheme(scheme); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		var head struct {
			Kind string `json:"kind"`
		}
		if yaml.Unmarshal(doc, &head) != nil {
			return
		}
		newObj := func() runtime.Object {
			o, err := scheme.New(GroupVersion.WithKind(head.Kind))
			if err != nil {
				return nil
			}
			return o
		}
		obj := newObj()
		if obj == nil || yaml.Unmarshal(doc, obj) != nil {
			return
		}
		j1, err := json.Marshal(obj)
		if err != nil {
			t.Fatalf("encode %s: %v", head.Kind, err)
		}
		obj2 := newObj()
		if err := json.Unmarshal(j1, obj2); err != nil {
			t.Fatalf("the %s encoded does not decode: %v\n%s", head.Kind, err, j1)
		}
		j2, err := json.Marshal(obj2)
		if err != nil {
			t.Fatal(err)
		}
		obj3 := newObj()
		if err := json.Unmarshal(j2, obj3); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(j1, j2) || !reflect.DeepEqual(obj2, obj3) {
			t.Fatalf("%s changes on a JSON round trip:\n%s\n%s", head.Kind, j1, j2)
		}
		if cp := obj2.DeepCopyObject(); !reflect.DeepEqual(cp, obj2) {
			t.Fatalf("DeepCopy of the %s differs from it:\n%+v\n%+v", head.Kind, cp, obj2)
		}
	})
}
