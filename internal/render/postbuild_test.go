package render

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// PostBuild substitutes with Flux's rules: defaults, string functions,
// objects that opt out left alone, nothing without variables unless
// Always, and strict mode naming the object and the variable.
func TestPostBuildSubstitution(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"app/cm.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: "settings-${cluster:=dev}", namespace: "${ns}"}
data:
  region: "${region}"
  upper: "${cluster^^}"
  replicas: "${replicas:=1}"
  big: "${big}"
  missing: "[${missing}]"
`,
		"app/deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: x, labels: {v: "${big}"}}
spec:
  replicas: ${big}
  template:
    spec: {containers: [{name: w, image: w, args: ["${big}"], env: [{name: N, value: "${big}"}]}]}
`,
		"app/raw.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: raw, namespace: x, annotations: {kustomize.toolkit.fluxcd.io/substitute: disabled}}
data: {script: "echo ${HOME}"}
`,
	})
	data := func(res *Result, name string) map[string]any {
		t.Helper()
		for _, o := range res.Objects() {
			if o.GetName() == name {
				d, _, _ := unstructured.NestedMap(o.Object, "data")
				return d
			}
		}
		t.Fatalf("no ConfigMap %s in %v", name, ids(res.Objects()))
		return nil
	}
	opts := Options{Path: "app", PostBuild: &PostBuild{Vars: map[string]string{"cluster": "prod", "ns": "shop", "region": "eu-1", "big": "1000000"}}}
	res := mustRender(t, &Renderer{}, root, opts)
	cm := data(res, "settings-prod")
	for k, want := range map[string]string{"region": "eu-1", "upper": "PROD", "replicas": "1", "big": "1000000", "missing": "[]"} {
		if cm[k] != want {
			t.Errorf("data.%s = %#v, want %q (a string)", k, cm[k], want)
		}
	}
	// Where Kubernetes wants strings they stay strings; elsewhere a
	// number is a number, as in Flux.
	for _, o := range res.Objects() {
		if o.GetKind() != "Deployment" {
			continue
		}
		replicas, _, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", "replicas")
		c := o.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
		env := c["env"].([]any)[0].(map[string]any)
		if replicas != int64(1000000) || o.GetLabels()["v"] != "1000000" || c["args"].([]any)[0] != "1000000" || env["value"] != "1000000" {
			t.Errorf("Deployment: replicas %#v, label %q, args %#v, env value %#v; want the number 1000000 and three strings", replicas, o.GetLabels()["v"], c["args"], env["value"])
		}
	}
	if got := data(res, "raw")["script"]; got != "echo ${HOME}" {
		t.Errorf("an object that opted out was substituted: %v", got)
	}

	// Without variables nothing is substituted (WithVariables), unless
	// Always: then defaults apply.
	res = mustRender(t, &Renderer{}, root, Options{Path: "app", PostBuild: &PostBuild{}})
	data(res, "settings-${cluster:=dev}")
	res = mustRender(t, &Renderer{}, root, Options{Path: "app", PostBuild: &PostBuild{Always: true}})
	data(res, "settings-dev")

	// Strict: an undefined variable without a default is an error.
	err := renderErr(t, &Renderer{}, root, Options{Path: "app", PostBuild: &PostBuild{Strict: true, Vars: map[string]string{"ns": "shop", "region": "r", "cluster": "c", "big": "1"}}})
	for _, want := range []string{"ConfigMap ${ns}/settings-${cluster:=dev}", "spec.postBuild", `"missing"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("strict error %q lacks %q", err, want)
		}
	}
}

// A substitution that breaks the YAML is an error naming the object; the
// parser's message does not carry the variables' values.
func TestPostBuildInvalidYAMLMasksValues(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: x}\ndata:\n  k: ${secret}\n",
	})
	err := renderErr(t, &Renderer{}, root, Options{Path: "app", PostBuild: &PostBuild{Vars: map[string]string{"secret": "s3cr3t: [unclosed"}}})
	if !strings.Contains(err.Error(), "ConfigMap x/cfg") || !strings.Contains(err.Error(), "spec.postBuild") || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error %q: want it to name the object and spec.postBuild, without the value", err)
	}
	// The parser quotes no text today; should it, the values are masked.
	if got := maskValues(`line 5: unexpected "s3cr3t: [unclosed" at ab`, map[string]string{"secret": "s3cr3t: [unclosed", "short": "ab"}); got != `line 5: unexpected "***" at ab` {
		t.Errorf("maskValues = %q", got)
	}
}
