package v1alpha1_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The objects under testdata/upgrade/<version> are tend's kinds as tend
// stored them while <version> was the newest API version, and they are
// kept forever: a later tend whose types or CRDs no longer take one of them
// fails the tests below, and upgrading to it would break users' objects.
// Never edit them; add files for a new version (docs/upgrade.md).
const (
	upgradeFixtures = "testdata/upgrade"
	// crdFiles are the CRDs controller-gen generates from this package.
	crdFiles = "../../config/crd/*.yaml"
)

// apiFixture is one stored object.
type apiFixture struct {
	path string
	raw  []byte
	obj  *unstructured.Unstructured
}

func readAPIFixtures(t *testing.T) []apiFixture {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(upgradeFixtures, "*", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []apiFixture
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(raw, &u.Object); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, apiFixture{path: p, raw: raw, obj: u})
	}
	return out
}

func scheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := tendv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// tendKinds returns the kinds this package defines (not lists, not the
// options types every group version registers), sorted.
func tendKinds(s *runtime.Scheme) []string {
	pkg := reflect.TypeOf(tendv1.App{}).PkgPath()
	var out []string
	for kind, typ := range s.KnownTypes(tendv1.GroupVersion) {
		if typ.PkgPath() == pkg && !strings.HasSuffix(kind, "List") {
			out = append(out, kind)
		}
	}
	sort.Strings(out)
	return out
}

// decodeStrict decodes JSON or YAML of a tend kind into its Go type;
// a field the type does not have is an error.
func decodeStrict(s *runtime.Scheme, raw []byte, u *unstructured.Unstructured) (runtime.Object, error) {
	obj, err := s.New(u.GroupVersionKind())
	if err != nil {
		return nil, err
	}
	if err := yaml.UnmarshalStrict(raw, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// TestUpgradeFixturesDecodeStrictly: every stored object decodes into the
// Go type of its kind with no field left over and no value lost, and every
// kind of this package has at least one.
func TestUpgradeFixturesDecodeStrictly(t *testing.T) {
	s := scheme(t)
	fixtures := readAPIFixtures(t)
	covered := map[string]bool{}
	for _, fx := range fixtures {
		t.Run(fx.path, func(t *testing.T) {
			if !bytes.HasPrefix(fx.raw, []byte("# ")) || !bytes.Contains(fx.raw, []byte("KEPT FOREVER")) {
				t.Errorf("%s lost its header saying it is kept forever", fx.path)
			}
			gvk := fx.obj.GroupVersionKind()
			if got, want := filepath.Base(filepath.Dir(fx.path)), gvk.Version; got != want {
				t.Errorf("%s is a %s object in directory %s, want %s", fx.path, gvk.Version, got, want)
			}
			obj, err := decodeStrict(s, fx.raw, fx.obj)
			if err != nil {
				t.Fatalf("the current tend cannot decode a stored %s: %v", gvk.Kind, err)
			}
			covered[gvk.Kind] = true
			b, err := json.Marshal(obj)
			if err != nil {
				t.Fatal(err)
			}
			var back map[string]any
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			for _, field := range []string{"spec", "status"} {
				if d := diffValues(field, fx.obj.Object[field], back[field]); d != "" {
					t.Errorf("%s: the Go type does not keep the stored %s: %s", fx.path, field, d)
				}
			}
		})
	}
	for _, kind := range tendKinds(s) {
		if !covered[kind] {
			t.Errorf("no fixture of kind %s in %s: add one (a new version's kinds go in a new directory)", kind, upgradeFixtures)
		}
	}
}

// TestUpgradeFixturesAcceptedByCRDs: the current CRDs, on a real
// apiserver, accept every stored object (unknown fields rejected, not
// pruned) and give back the same spec and status.
func TestUpgradeFixturesAcceptedByCRDs(t *testing.T) {
	env := testenv.New(t)
	testenv.InstallCRDs(t, env.Config)
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	s := scheme(t)
	ctx := context.Background()
	strict := metav1.FieldValidationStrict
	for _, fx := range readAPIFixtures(t) {
		t.Run(fx.path, func(t *testing.T) {
			gvk := fx.obj.GroupVersionKind()
			res := dyn.Resource(gvk.GroupVersion().WithResource(strings.ToLower(gvk.Kind) + "s")).Namespace(env.Namespace)
			in := fx.obj.DeepCopy()
			in.SetNamespace(env.Namespace)
			created, err := res.Create(ctx, in, metav1.CreateOptions{FieldValidation: strict})
			if err != nil {
				t.Fatalf("the current CRD refuses a stored %s: %v", gvk.Kind, err)
			}
			if len(in.GetFinalizers()) > 0 {
				t.Cleanup(func() {
					patch := []byte(`{"metadata":{"finalizers":null}}`)
					if _, err := res.Patch(context.Background(), in.GetName(), types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
						t.Errorf("drop finalizers: %v", err)
					}
				})
			}
			if status, ok := fx.obj.Object["status"]; ok {
				created.Object["status"] = status
				if _, err := res.UpdateStatus(ctx, created, metav1.UpdateOptions{FieldValidation: strict}); err != nil {
					t.Fatalf("the current CRD refuses the status of a stored %s: %v", gvk.Kind, err)
				}
			}
			got, err := res.Get(ctx, in.GetName(), metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, field := range []string{"spec", "status"} {
				if d := diffValues(field, fx.obj.Object[field], got.Object[field]); d != "" {
					t.Errorf("stored %s differs from the fixture's: %s", field, d)
				}
			}
			for _, field := range []string{"labels", "annotations", "finalizers"} {
				want, _, _ := unstructured.NestedFieldNoCopy(fx.obj.Object, "metadata", field)
				have, _, _ := unstructured.NestedFieldNoCopy(got.Object, "metadata", field)
				if d := diffValues("metadata."+field, want, have); d != "" {
					t.Errorf("stored %s", d)
				}
			}
			b, err := got.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := decodeStrict(s, b, got); err != nil {
				t.Errorf("the current tend cannot decode the %s the apiserver returns: %v", gvk.Kind, err)
			}
		})
	}
}

// TestEveryCRDHasOneStorageVersion: each CRD in config/crd stores its
// objects at exactly one version, which it serves, and every kind of this
// package has a CRD. A second version (v1beta1) must come with a
// conversion plan (docs/upgrade.md).
func TestEveryCRDHasOneStorageVersion(t *testing.T) {
	paths, err := filepath.Glob(crdFiles)
	if err != nil || len(paths) == 0 {
		t.Fatalf("no CRDs at %s (%v)", crdFiles, err)
	}
	kinds := map[string]bool{}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(raw, crd); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		var storage []string
		for _, v := range crd.Spec.Versions {
			if v.Storage {
				storage = append(storage, v.Name)
				if !v.Served {
					t.Errorf("%s: storage version %s is not served", p, v.Name)
				}
			}
		}
		if len(storage) != 1 {
			t.Errorf("%s: storage versions %v, want exactly one", p, storage)
		}
		if crd.Spec.Group == tendv1.GroupVersion.Group {
			kinds[crd.Spec.Names.Kind] = true
		}
	}
	var missing []string
	for _, kind := range tendKinds(scheme(t)) {
		if !kinds[kind] {
			missing = append(missing, kind)
		}
	}
	if len(missing) > 0 {
		t.Errorf("kinds without a CRD in %s: %v (run make generate)", crdFiles, missing)
	}
}

// diffValues compares two decoded JSON values as stored objects mean them:
// a field set to its zero value equals an absent one, durations compare by
// length ("10m" is "10m0s"), and numbers by value. It returns "" when they
// are equal, else the first difference.
func diffValues(path string, want, got any) string {
	want, got = normalize(want), normalize(got)
	if reflect.DeepEqual(want, got) {
		return ""
	}
	wm, wok := want.(map[string]any)
	gm, gok := got.(map[string]any)
	if wok && gok {
		keys := map[string]bool{}
		for k := range wm {
			keys[k] = true
		}
		for k := range gm {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			if d := diffValues(path+"."+k, wm[k], gm[k]); d != "" {
				return d
			}
		}
	}
	ws, wok := want.([]any)
	gs, gok := got.([]any)
	if wok && gok && len(ws) == len(gs) {
		for i := range ws {
			if d := diffValues(fmt.Sprintf("%s[%d]", path, i), ws[i], gs[i]); d != "" {
				return d
			}
		}
	}
	return fmt.Sprintf("%s = %v, want %v", path, got, want)
}

func normalize(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range v {
			if n := normalize(e); n != nil {
				out[k] = n
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []any:
		if len(v) == 0 {
			return nil
		}
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = normalize(e)
		}
		return out
	case string:
		if v == "" {
			return nil
		}
		if d, err := time.ParseDuration(v); err == nil {
			return d.String()
		}
		return v
	case bool:
		if !v {
			return nil
		}
		return v
	case int64:
		return normalize(float64(v))
	case int:
		return normalize(float64(v))
	case float64:
		if v == 0 {
			return nil
		}
		return v
	}
	return v
}
