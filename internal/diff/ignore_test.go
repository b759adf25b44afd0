package diff_test

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tend-gitops/tend/internal/diff"
)

// liveScaled is a Deployment whose replicas an autoscaler ("hpa-like") owns
// and into which a webhook ("injector") added an env var and a sidecar.
const liveScaled = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  managedFields:
  - manager: tend
    operation: Apply
    fieldsType: FieldsV1
    fieldsV1:
      f:spec:
        f:template:
          f:spec:
            f:containers:
              'k:{"name":"web"}': {.: {}, f:name: {}, f:image: {}}
  - manager: hpa-like
    operation: Update
    fieldsType: FieldsV1
    fieldsV1:
      f:spec: {f:replicas: {}}
  - manager: injector
    operation: Apply
    fieldsType: FieldsV1
    fieldsV1:
      f:metadata:
        f:finalizers: {'v:"injector.example.com/cleanup"': {}}
      f:spec:
        f:template:
          f:spec:
            f:containers:
              'k:{"name":"web"}':
                .: {}
                f:name: {}
                f:image: {}
                f:env:
                  'k:{"name":"INJECTED"}': {.: {}, f:name: {}, f:value: {}}
              'k:{"name":"proxy"}': {.: {}, f:name: {}, f:image: {}}
spec:
  replicas: 7
  template:
    spec:
      containers:
      - name: web
        image: nginx:1.27
        env:
        - {name: INJECTED, value: "yes"}
      - name: proxy
        image: envoy:1.30
`

const desiredScaled = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  finalizers: [injector.example.com/cleanup, example.com/mine]
spec:
  replicas: 3
  template:
    spec:
      containers:
      - name: web
        image: nginx:1.27
        env:
        - {name: OURS, value: "1"}
`

func ignore(t *testing.T, desired, live *unstructured.Unstructured, rules ...diff.IgnoreRule) *unstructured.Unstructured {
	t.Helper()
	out, err := diff.ApplyIgnoreRules(desired, live, rules)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestIgnoreFieldsOfManagers(t *testing.T) {
	desired, live := object(t, desiredScaled), object(t, liveScaled)
	out := ignore(t, desired, live, diff.IgnoreRule{Kind: "Deployment", Managers: []string{"hpa-like", "injector"}})

	if _, found, _ := unstructured.NestedFieldNoCopy(out.Object, "spec", "replicas"); found {
		t.Error("spec.replicas, owned by hpa-like, is still desired")
	}
	if got, _, _ := unstructured.NestedStringSlice(out.Object, "metadata", "finalizers"); strings.Join(got, ",") != "example.com/mine" {
		t.Errorf("finalizers = %v, want only example.com/mine (injector owns the other)", got)
	}
	containers, _, _ := unstructured.NestedSlice(out.Object, "spec", "template", "spec", "containers")
	if len(containers) != 1 {
		t.Fatalf("containers = %v, want web only", containers)
	}
	web := containers[0].(map[string]any)
	// injector co-owns web's name and image: the container keeps its key,
	// loses the image, and keeps tend's env var.
	if web["name"] != "web" {
		t.Errorf("container name = %v, want web (a key is never removed)", web["name"])
	}
	if _, ok := web["image"]; ok {
		t.Errorf("container image, co-owned by injector, is still desired")
	}
	if env, _ := web["env"].([]any); len(env) != 1 || env[0].(map[string]any)["name"] != "OURS" {
		t.Errorf("env = %v, want OURS only", web["env"])
	}
	orig, _, _ := unstructured.NestedSlice(desired.Object, "spec", "template", "spec", "containers")
	if orig[0].(map[string]any)["image"] != "nginx:1.27" {
		t.Error("ApplyIgnoreRules modified its desired argument's containers")
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(desired.Object, "spec", "replicas"); !found {
		t.Error("ApplyIgnoreRules modified its desired argument")
	}
}

func TestIgnoreRuleSelectsObjects(t *testing.T) {
	desired, live := object(t, desiredScaled), object(t, liveScaled)
	for _, r := range []diff.IgnoreRule{
		{Kind: "StatefulSet", Managers: []string{"hpa-like"}},
		{Group: "apps", Kind: "Deployment", Name: "api", Managers: []string{"hpa-like"}},
		{Namespace: "other", Managers: []string{"hpa-like"}},
		{Group: "batch", Managers: []string{"hpa-like"}},
	} {
		out := ignore(t, desired, live, r)
		if _, found, _ := unstructured.NestedFieldNoCopy(out.Object, "spec", "replicas"); !found {
			t.Errorf("rule %+v pruned an object it does not select", r)
		}
	}
	out := ignore(t, desired, live, diff.IgnoreRule{Group: "apps", Kind: "Deployment", Name: "web", Namespace: "shop", Managers: []string{"hpa-like"}})
	if _, found, _ := unstructured.NestedFieldNoCopy(out.Object, "spec", "replicas"); found {
		t.Error("rule naming the object exactly did not prune it")
	}
	// Without a live object, managers own nothing.
	out = ignore(t, desired, nil, diff.IgnoreRule{Managers: []string{"hpa-like"}})
	if _, found, _ := unstructured.NestedFieldNoCopy(out.Object, "spec", "replicas"); !found {
		t.Error("manager rule pruned without a live object")
	}
}

const desiredTwoContainers = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations: {example.com/hash: abc, "a~b": x}
spec:
  replicas: 3
  template:
    spec:
      containers:
      - {name: web, image: nginx:1.27}
      - {name: proxy, image: envoy:1.30}
`

func newIgnore(t *testing.T, rules ...diff.IgnoreRule) *diff.Ignore {
	t.Helper()
	ig, err := diff.NewIgnore(rules)
	if err != nil {
		t.Fatal(err)
	}
	return ig
}

func replicasOf(o *unstructured.Unstructured) string {
	v, _, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", "replicas")
	return fmt.Sprint(v)
}

func TestIgnoreJSONPointers(t *testing.T) {
	desired := object(t, desiredTwoContainers)
	ig := newIgnore(t, diff.IgnoreRule{JSONPointers: []string{
		"/spec/replicas",
		"/metadata/annotations/example.com~1hash",
		"/metadata/annotations/a~0b",
		"/spec/template/spec/containers/1/image",
		"/spec/does/not/exist",
		"/spec/template/spec/containers/9",
	}})

	// Strip: what git decides, without the ignored fields.
	out := ig.Strip(desired)
	if _, found, _ := unstructured.NestedFieldNoCopy(out.Object, "spec", "replicas"); found {
		t.Error("Strip: /spec/replicas not removed")
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(out.Object, "metadata", "annotations"); found {
		t.Errorf("Strip: annotations left after removing both: %v", out.GetAnnotations())
	}
	containers, _, _ := unstructured.NestedSlice(out.Object, "spec", "template", "spec", "containers")
	if len(containers) != 2 || containers[1].(map[string]any)["image"] != nil || containers[0].(map[string]any)["image"] != "nginx:1.27" {
		t.Errorf("Strip: containers = %v, want proxy's image removed only", containers)
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(desired.Object, "spec", "replicas"); !found {
		t.Error("Strip modified its argument")
	}

	// Created: as git declares it, the ignored fields named.
	created, ptrs, err := ig.ForApply(desired, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := replicasOf(created); got != "3" {
		t.Errorf("created with replicas %s, want git's 3", got)
	}
	want := `["/metadata/annotations/a~0b","/metadata/annotations/example.com~1hash","/spec/replicas","/spec/template/spec/containers/1/image"]`
	if got := created.GetAnnotations()["tend.dev/ignored-fields"]; got != want {
		t.Errorf("ignored-fields annotation = %s, want %s", got, want)
	}
	if len(ptrs) != 4 {
		t.Errorf("pointers = %v, want 4", ptrs)
	}

	// Updated: ignored fields keep their live values, or stay unset.
	live := object(t, desiredTwoContainers)
	_ = unstructured.SetNestedField(live.Object, int64(7), "spec", "replicas")
	live.SetAnnotations(map[string]string{"example.com/hash": "live"})
	lc, _, _ := unstructured.NestedSlice(live.Object, "spec", "template", "spec", "containers")
	lc[1].(map[string]any)["image"] = "envoy:1.31"
	_ = unstructured.SetNestedSlice(live.Object, lc, "spec", "template", "spec", "containers")
	updated, _, err := ig.ForApply(desired, live)
	if err != nil {
		t.Fatal(err)
	}
	if got := replicasOf(updated); got != "7" {
		t.Errorf("updated with replicas %s, want live's 7", got)
	}
	ann := updated.GetAnnotations()
	if ann["example.com/hash"] != "live" {
		t.Errorf("annotation example.com/hash = %q, want live's value", ann["example.com/hash"])
	}
	if _, ok := ann["a~b"]; ok {
		t.Error("annotation a~b, ignored and not in the live object, is applied")
	}
	uc, _, _ := unstructured.NestedSlice(updated.Object, "spec", "template", "spec", "containers")
	if uc[1].(map[string]any)["image"] != "envoy:1.31" || uc[0].(map[string]any)["image"] != "nginx:1.27" {
		t.Errorf("containers = %v, want proxy's live image and web's git image", uc)
	}

	for _, bad := range []string{"spec/replicas", "", "/metadata/name", "/kind", "/spec/a~2b"} {
		if _, err := diff.NewIgnore([]diff.IgnoreRule{{JSONPointers: []string{bad}}}); err == nil || !strings.Contains(err.Error(), "spec.ignoreDifferences[0].jsonPointers[0]") {
			t.Errorf("pointer %q: error %v, want one naming the field", bad, err)
		}
	}
}

func TestIgnoreJQPathExpressions(t *testing.T) {
	desired := object(t, desiredTwoContainers)
	ig := newIgnore(t,
		diff.IgnoreRule{Kind: "Deployment", JQPathExpressions: []string{
			`.spec.template.spec.containers[] | select(.name == "proxy") | .image`,
			`.metadata.annotations["example.com/hash"]`,
		}},
		// Fails on a Deployment (iterating over a string): selects nothing.
		diff.IgnoreRule{JQPathExpressions: []string{`.metadata.name[]`}},
	)
	out := ig.Strip(desired)
	containers, _, _ := unstructured.NestedSlice(out.Object, "spec", "template", "spec", "containers")
	if len(containers) != 2 || containers[1].(map[string]any)["image"] != nil || containers[0].(map[string]any)["image"] != "nginx:1.27" {
		t.Errorf("containers = %v, want proxy's image removed only", containers)
	}
	if got := out.GetAnnotations(); len(got) != 1 || got["a~b"] != "x" {
		t.Errorf("annotations = %v, want a~b only", got)
	}
	if got := replicasOf(out); got != "3" {
		t.Errorf("replicas = %s, a field no expression selects changed", got)
	}
	created, ptrs, err := ig.ForApply(desired, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(ptrs, ","), "/metadata/annotations/example.com~1hash,/spec/template/spec/containers/1/image"; got != want {
		t.Errorf("pointers = %s, want %s", got, want)
	}
	if created.GetAnnotations()["tend.dev/ignored-fields"] == "" {
		t.Error("no ignored-fields annotation")
	}
	_, err = diff.NewIgnore([]diff.IgnoreRule{{}, {JQPathExpressions: []string{".spec", ".spec | select("}}})
	if err == nil || !strings.Contains(err.Error(), "spec.ignoreDifferences[1].jqPathExpressions[1]") {
		t.Errorf("a broken expression: error %v, want it to name spec.ignoreDifferences[1].jqPathExpressions[1]", err)
	}
}
