package appspec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/objstatus"
)

// FuzzAppSpec compiles an App's spec as written in YAML: its health rules
// and ignoreDifferences (Compile) and its kustomize overlay (Overlay).
// Errors are returned, not panics, and name the fields at fault (the
// overlay's are permanent: retrying does not help); a compiled spec is
// current for the App it was compiled from. `make fuzz-smoke` runs it
// briefly; see docs/development.md for longer runs.
func FuzzAppSpec(f *testing.F) {
	for _, p := range []string{"app.yaml", "app-chart.yaml"} {
		b, err := os.ReadFile(filepath.Join("../../api/v1alpha1/testdata/upgrade/v1alpha1", p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`spec:
  health:
    rules:
    - {group: example.com, kind: Widget, healthy: 'object.status.phase == "Ready"', message: 'object.?status.?message.orValue("")'}
    - {kind: Secret, healthy: 'true'}
  ignoreDifferences:
  - {group: apps, kind: Deployment, jsonPointers: [/spec/replicas]}
  - {kind: ConfigMap, jqPathExpressions: ['.data["x"]', '.data[']}
  kustomize:
    namePrefix: p-
    namespace: Team_A
    images: [{name: nginx, newTag: "1.27"}, {name: ""}]
    patches:
    - {patch: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"}
    - {patch: '[{"op": "remove", "path": "/x"}]'}
    - {path: /etc/passwd}
    components: [../shared, "https://x/y"]
    commonLabels: {"a/b/c": "x"}
    replicas: [{name: web, count: -1}]
`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		var app tendv1.App
		if yaml.Unmarshal(doc, &app) != nil {
			return
		}
		c, err := Compile(&app)
		if err != nil {
			if !strings.Contains(err.Error(), "spec.") {
				t.Fatalf("Compile error names no field: %v", err)
			}
		} else if !c.Current(&app) {
			t.Fatalf("compiled spec is not current for its App")
		}
		if _, err := Overlay(app.Spec.Kustomize); err != nil {
			if !objstatus.IsPermanent(err) || !strings.Contains(err.Error(), "spec.kustomize") {
				t.Fatalf("Overlay error is not permanent or names no field: %v", err)
			}
		}
	})
}
