package appspec

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/health"
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
