package appspec

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/health"
	"github.com/tend-gitops/tend/internal/render"
)

func TestHealthCheckerUsesTheAppsRules(t *testing.T) {
	app := &tendv1.App{}
	if c, err := HealthChecker(app); c != nil || err != nil {
		t.Fatalf("no rules: HealthChecker = %v, %v; want nil, nil", c, err)
	}
	app.Spec.Health.Rules = []tendv1.HealthRule{{
		Group: "keda.sh", Kind: "ScaledObject",
		Healthy: `object.?status.?conditions.orValue([]).exists(c, c.type == "Ready" && c.status == "True")`,
	}}
	c, err := HealthChecker(app)
	if err != nil {
		t.Fatal(err)
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
		"metadata": map[string]any{"name": "web", "namespace": "x"},
	}}
	if r := c.Check(obj); r.State != health.Progressing {
		t.Errorf("without the Ready condition: %v, want Progressing", r)
	}
	obj.Object["status"] = map[string]any{"conditions": []any{map[string]any{"type": "Ready", "status": "True"}}}
	if r := c.Check(obj); r.State != health.Healthy {
		t.Errorf("with Ready=True: %v, want Healthy", r)
	}

	app.Spec.Health.Rules = append(app.Spec.Health.Rules, tendv1.HealthRule{Kind: "Widget", Healthy: "object.status.ready =="})
	_, err = HealthChecker(app)
	if err == nil || !strings.Contains(err.Error(), "spec.health.rules[1]") || !strings.Contains(err.Error(), `"Widget"`) {
		t.Errorf("a broken rule: error = %v, want it to name spec.health.rules[1] and the kind", err)
	}
	app.Spec.Health.Rules = append(app.Spec.Health.Rules, tendv1.HealthRule{Kind: "Gadget", Degraded: "1"})
	_, err = HealthChecker(app)
	if err == nil || !strings.Contains(err.Error(), "spec.health.rules[1]") || !strings.Contains(err.Error(), "spec.health.rules[2]") || strings.Contains(err.Error(), "rules[0]") {
		t.Errorf("two broken rules: error = %v, want both named and the good one not", err)
	}
}

// A chart directory in git renders with no spec.helm: the release is named
// after the App (docs/api.md, spec.helm.releaseName's default).
func TestChartDirWithoutHelmSpecNamesTheReleaseAfterTheApp(t *testing.T) {
	root := t.TempDir()
	for name, body := range map[string]string{
		"chart/Chart.yaml":        "apiVersion: v2\nname: chart\nversion: 1.0.0\n",
		"chart/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \"{{ .Release.Name }}-cfg\"}\n",
	} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	app := &tendv1.App{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "team"}, Spec: tendv1.AppSpec{Path: "chart"}}
	src := &tendv1.Source{ObjectMeta: metav1.ObjectMeta{Name: "repo", Namespace: "team"}, Spec: tendv1.SourceSpec{Git: &tendv1.GitSource{URL: "https://example.com/repo.git"}}}
	opts, err := RenderOptions(context.Background(), nil, nil, app, src)
	if err != nil {
		t.Fatal(err)
	}
	res, err := (&render.Renderer{}).Render(context.Background(), root, opts)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	var names []string
	for _, o := range res.Objects() {
		names = append(names, o.GetName())
	}
	if !slices.Equal(names, []string{"web-cfg"}) {
		t.Errorf("rendered %v, want [web-cfg]", names)
	}
}
