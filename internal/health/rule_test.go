package health

import (
	"strings"
	"testing"
)

func widgetRules(t *testing.T) *Checker {
	t.Helper()
	c, err := NewChecker([]Rule{{
		Group:       "example.com",
		Kind:        "Widget",
		Degraded:    `object.?status.?phase.orValue("") == "Failed"`,
		Healthy:     `has(object.status) && object.status.phase == "Running" && object.status.readyWidgets >= object.spec.replicas`,
		Progressing: `true`,
		Message:     `object.?status.?message.orValue("")`,
	}, {
		// Overrides the built-in Deployment check.
		Group:   "apps",
		Kind:    "Deployment",
		Healthy: `object.metadata.name.startsWith("ok-")`,
	}, {
		Group:    "example.com",
		Kind:     "Gadget",
		Healthy:  `object.status.ready`,
		Degraded: `object.status.broken`,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRules(t *testing.T) {
	runCases(t, widgetRules(t), []healthCase{{
		name: "healthy by rule",
		manifest: `
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
spec: {replicas: 2}
status: {phase: Running, readyWidgets: 2}
`,
		state: Healthy, reason: "HealthRule", message: `Widget w: health rule for Widget.example.com: healthy: has(object.status)`,
	}, {
		name: "degraded by rule, with message",
		manifest: `
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
spec: {replicas: 2}
status: {phase: Failed, message: disk full}
`,
		state: Degraded, reason: "HealthRule", message: "Widget w: disk full",
	}, {
		name: "progressing by rule",
		manifest: `
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
spec: {replicas: 2}
status: {phase: Running, readyWidgets: 1}
`,
		state: Progressing, reason: "HealthRule", message: "progressing: true",
	}, {
		name: "rule replaces the built-in check",
		manifest: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: ok-web, generation: 7}
spec: {replicas: 3}
`,
		state: Healthy, reason: "HealthRule",
	}, {
		name: "no expression true",
		manifest: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
`,
		state: Progressing, reason: "NoRuleMatched", message: "no expression of the health rule for Deployment.apps is true",
	}, {
		name: "deletion comes before rules",
		manifest: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: ok-web, deletionTimestamp: "2026-01-01T00:00:00Z"}
`,
		state: Progressing, reason: ReasonTerminating,
	}, {
		name: "other kinds keep the built-in checks",
		manifest: `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, generation: 1}
`,
		state: Progressing, reason: ReasonGenerationNotObserved,
	}, {
		name: "evaluation error is Unknown",
		manifest: `
apiVersion: example.com/v1
kind: Gadget
metadata: {name: g}
`,
		state: Unknown, reason: ReasonRuleError, message: "Gadget g: health rule for Gadget.example.com: degraded expression: no such key: status",
	}, {
		name: "wrong result type is Unknown",
		manifest: `
apiVersion: example.com/v1
kind: Gadget
metadata: {name: g}
status: {broken: "yes"}
`,
		state: Unknown, reason: ReasonRuleError, message: "degraded expression: returned string, want bool",
	}})
}

func TestNewCheckerErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules []Rule
		want  []string
	}{{
		name:  "syntax error",
		rules: []Rule{{Group: "example.com", Kind: "Widget", Healthy: `object.status.phase ==`}},
		want:  []string{"health rule for Widget.example.com: healthy expression:", "Syntax error"},
	}, {
		name:  "not a bool",
		rules: []Rule{{Group: "example.com", Kind: "Widget", Degraded: `"Failed"`}},
		want:  []string{"health rule for Widget.example.com: degraded expression:", "returns string, want bool"},
	}, {
		name:  "message not a string",
		rules: []Rule{{Group: "example.com", Kind: "Widget", Healthy: `true`, Message: `1 + 1`}},
		want:  []string{"health rule for Widget.example.com: message expression:", "returns int, want string"},
	}, {
		name:  "undeclared variable",
		rules: []Rule{{Kind: "Pod", Healthy: `self.status.phase == "Running"`}},
		want:  []string{"health rule for Pod: healthy expression:", "undeclared reference to 'self'"},
	}, {
		name:  "no expression",
		rules: []Rule{{Group: "example.com", Kind: "Widget", Message: `"hi"`}},
		want:  []string{"health rule for Widget.example.com: set at least one of degraded, healthy or progressing"},
	}, {
		name:  "no kind",
		rules: []Rule{{Group: "example.com", Healthy: `true`}},
		want:  []string{`health rule for group "example.com": kind is empty`},
	}, {
		name:  "Secret",
		rules: []Rule{{Kind: "Secret", Healthy: `true`}},
		want:  []string{"health rule for Secret: not allowed"},
	}, {
		name: "duplicate kind",
		rules: []Rule{
			{Group: "example.com", Kind: "Widget", Healthy: `true`},
			{Group: "example.com", Kind: "Widget", Degraded: `false`},
		},
		want: []string{"health rule for Widget.example.com: more than one rule for this kind"},
	}, {
		name: "every broken rule is reported",
		rules: []Rule{
			{Group: "example.com", Kind: "Widget", Healthy: `(`},
			{Group: "example.com", Kind: "Gadget", Healthy: `true`, Degraded: `)`},
		},
		want: []string{"health rule for Widget.example.com: healthy expression:", "health rule for Gadget.example.com: degraded expression:"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewChecker(tc.rules)
			if err == nil {
				t.Fatalf("NewChecker succeeded (%v), want an error", c)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestRuleCostLimit(t *testing.T) {
	c, err := NewChecker([]Rule{{
		Group: "example.com", Kind: "Widget",
		Healthy: `object.spec.items.all(a, object.spec.items.all(b, object.spec.items.all(c, a + b + c >= 0)))`,
	}})
	if err != nil {
		t.Fatal(err)
	}
	var items strings.Builder
	for i := range 200 {
		if i > 0 {
			items.WriteString(", ")
		}
		items.WriteString("1")
	}
	got := c.Check(object(t, "{apiVersion: example.com/v1, kind: Widget, metadata: {name: w}, spec: {items: ["+items.String()+"]}}"))
	if got.State != Unknown || !strings.Contains(got.Message, "cost limit") {
		t.Fatalf("got %v, want Unknown for exceeding the cost limit", got)
	}
}

// TestCheckerConcurrent runs one Checker from many goroutines; run with
// -race.
func TestCheckerConcurrent(t *testing.T) {
	c := widgetRules(t)
	objs := []string{
		`{apiVersion: example.com/v1, kind: Widget, metadata: {name: w}, spec: {replicas: 1}, status: {phase: Running, readyWidgets: 1}}`,
		`{apiVersion: apps/v1, kind: Deployment, metadata: {name: ok-web}}`,
		`{apiVersion: v1, kind: Pod, metadata: {name: p}, status: {phase: Succeeded}}`,
	}
	done := make(chan Result)
	for i := range 30 {
		u := object(t, objs[i%len(objs)])
		go func() { done <- c.Check(u) }()
	}
	for range 30 {
		if got := <-done; got.State != Healthy {
			t.Errorf("got %v, want Healthy", got)
		}
	}
}

// Flux's healthCheckExprs name the object's top-level fields directly
// (`status.conditions`): they work as they are, and a field the object
// lacks is an evaluation error, as object.status is.
func TestRulesSeeTopLevelFields(t *testing.T) {
	c, err := NewChecker([]Rule{{
		Group:       "example.com",
		Kind:        "Cluster",
		Degraded:    `status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'False')`,
		Healthy:     `status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'True') && metadata.name == spec.expectedName && kind == 'Cluster' && apiVersion == 'example.com/v1'`,
		Progressing: `status.?observedGeneration.orValue(0) != metadata.generation`,
	}})
	if err != nil {
		t.Fatal(err)
	}
	runCases(t, c, []healthCase{{
		name: "current",
		manifest: `
apiVersion: example.com/v1
kind: Cluster
metadata: {name: prod, generation: 2}
spec: {expectedName: prod}
status: {observedGeneration: 2, conditions: [{type: Ready, status: "True"}]}
`,
		state: Healthy, reason: "HealthRule",
	}, {
		name: "failed",
		manifest: `
apiVersion: example.com/v1
kind: Cluster
metadata: {name: prod, generation: 2}
spec: {expectedName: prod}
status: {observedGeneration: 2, conditions: [{type: Ready, status: "False"}]}
`,
		state: Degraded, reason: "HealthRule",
	}, {
		name: "a missing top-level field is Unknown",
		manifest: `
apiVersion: example.com/v1
kind: Cluster
metadata: {name: prod, generation: 1}
spec: {expectedName: prod}
`,
		state: Unknown, reason: ReasonRuleError, message: "degraded expression: no such attribute",
	}})
}
