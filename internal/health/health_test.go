package health

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// object decodes a YAML manifest the way a client does (integers as int64).
func object(t testing.TB, manifest string) *unstructured.Unstructured {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(manifest))
	if err != nil {
		t.Fatalf("bad test YAML: %v", err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(j); err != nil {
		t.Fatalf("bad test object: %v", err)
	}
	return u
}

// healthCase is one object and the health it must have.
type healthCase struct {
	name     string
	manifest string
	state    State
	reason   string
	// message must appear in Result.Message.
	message string
}

func runCases(t *testing.T, c *Checker, cases []healthCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := c.Check(object(t, tc.manifest))
			if got.State != tc.state || got.Reason != tc.reason || !strings.Contains(got.Message, tc.message) {
				t.Fatalf("got %v\nwant %s (%s) with message containing %q", got, tc.state, tc.reason, tc.message)
			}
		})
	}
}

func TestCheckMissing(t *testing.T) {
	var c *Checker // a nil Checker uses the built-in checks
	if got, want := c.Check(nil).State, Missing; got != want {
		t.Fatalf("Check(nil) = %s, want %s", got, want)
	}
	if got, want := c.CheckWithTimeout(nil, time.Time{}, time.Second, time.Now()).State, Missing; got != want {
		t.Fatalf("CheckWithTimeout(nil) = %s, want %s", got, want)
	}
}

func TestCheckTerminating(t *testing.T) {
	runCases(t, nil, []healthCase{{
		name: "healthy ConfigMap being deleted",
		manifest: `
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, deletionTimestamp: "2026-01-01T00:00:00Z", finalizers: [example.com/hold]}
`,
		state: Progressing, reason: ReasonTerminating, message: "ConfigMap cfg: being deleted",
	}, {
		name: "failed Job being deleted",
		manifest: `
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, deletionTimestamp: "2026-01-01T00:00:00Z"}
status:
  conditions: [{type: Failed, status: "True", reason: BackoffLimitExceeded}]
`,
		state: Progressing, reason: ReasonTerminating, message: "being deleted",
	}})
}

func TestCheckSecretNeverReadsData(t *testing.T) {
	u := object(t, `
apiVersion: v1
kind: Secret
metadata: {name: creds}
data: {password: c2VjcmV0LXZhbHVl}
stringData: {token: secret-value}
status:
  conditions: [{type: Ready, status: "False", message: secret-value}]
`)
	got := (&Checker{}).Check(u)
	if got.State != Healthy || strings.Contains(got.Message, "secret-value") || strings.Contains(got.Message, "c2VjcmV0") {
		t.Fatalf("got %v, want Healthy without Secret data", got)
	}
}

func TestCheckWithTimeout(t *testing.T) {
	stuck := object(t, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 2}
spec: {replicas: 3}
status: {observedGeneration: 2, replicas: 3, updatedReplicas: 3, availableReplicas: 2}
`)
	healthy := object(t, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 2}
spec: {replicas: 3}
status: {observedGeneration: 2, replicas: 3, updatedReplicas: 3, availableReplicas: 3}
`)
	since := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	c := &Checker{}

	got := c.CheckWithTimeout(stuck, since, 5*time.Minute, since.Add(4*time.Minute))
	if got.State != Progressing || got.Reason != "ReplicasUnavailable" {
		t.Fatalf("before the timeout: got %v, want Progressing (ReplicasUnavailable)", got)
	}

	got = c.CheckWithTimeout(stuck, since, 5*time.Minute, since.Add(5*time.Minute+1500*time.Millisecond))
	if got.State != Degraded || got.Reason != ReasonTimeout {
		t.Fatalf("after the timeout: got %v, want Degraded (Timeout)", got)
	}
	if want := "Deployment web: still progressing after 5m1s (timeout 5m0s): 1 of 3 replicas unavailable"; got.Message != want {
		t.Fatalf("after the timeout: message %q, want %q", got.Message, want)
	}

	if got := c.CheckWithTimeout(healthy, since, 5*time.Minute, since.Add(time.Hour)); got.State != Healthy {
		t.Fatalf("healthy after the timeout: got %v, want Healthy", got)
	}
	if got := c.CheckWithTimeout(stuck, since, 0, since.Add(time.Hour)); got.State != Progressing {
		t.Fatalf("zero timeout: got %v, want Progressing", got)
	}
}

func TestCheckConditions(t *testing.T) {
	runCases(t, nil, []healthCase{{
		name:     "ConfigMap without status",
		manifest: `{apiVersion: v1, kind: ConfigMap, metadata: {name: cfg}, data: {k: v}}`,
		state:    Healthy, reason: "Exists", message: "ConfigMap cfg: exists",
	}, {
		name:     "ClusterRole",
		manifest: `{apiVersion: rbac.authorization.k8s.io/v1, kind: ClusterRole, metadata: {name: reader}, rules: []}`,
		state:    Healthy, reason: "Exists",
	}, {
		name: "custom resource Ready",
		manifest: `
apiVersion: example.com/v1
kind: Widget
metadata: {name: w, generation: 3}
status:
  observedGeneration: 3
  conditions: [{type: Ready, status: "True", reason: Succeeded, message: all good}]
`,
		state: Healthy, reason: "Succeeded", message: "Widget w: ready: Succeeded: all good",
	}, {
		name: "custom resource not Ready",
		manifest: `
apiVersion: example.com/v1
kind: Widget
metadata: {name: w, generation: 3}
status:
  observedGeneration: 3
  conditions: [{type: Ready, status: "False", reason: InstallFailed, message: chart not found}]
`,
		state: Degraded, reason: "InstallFailed", message: "Widget w: not ready: InstallFailed: chart not found",
	}, {
		name: "custom resource not Ready yet by reason",
		manifest: `
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
status:
  conditions: [{type: Ready, status: "False", reason: Progressing, message: installing}]
`,
		state: Progressing, reason: "Progressing", message: "not ready yet",
	}, {
		name: "custom resource not Ready while Progressing=True",
		manifest: `
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
status:
  conditions:
  - {type: Ready, status: "False", reason: Issuing}
  - {type: Progressing, status: "True"}
`,
		state: Progressing, reason: "Issuing",
	}, {
		name: "custom resource Ready Unknown",
		manifest: `
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
status:
  conditions: [{type: Ready, status: Unknown, reason: Reconciling}]
`,
		state: Progressing, reason: "Reconciling",
	}, {
		name: "observedGeneration lagging",
		manifest: `
apiVersion: example.com/v1
kind: Widget
metadata: {name: w, generation: 4}
status:
  observedGeneration: 3
  conditions: [{type: Ready, status: "True"}]
`,
		state: Progressing, reason: ReasonGenerationNotObserved, message: "controller has observed generation 3, latest is 4",
	}, {
		name: "Ready condition for an older generation",
		manifest: `
apiVersion: example.com/v1
kind: Widget
metadata: {name: w, generation: 4}
status:
  conditions: [{type: Ready, status: "True", observedGeneration: 3}]
`,
		state: Progressing, reason: ReasonGenerationNotObserved,
	}, {
		name: "Stalled wins over Ready",
		manifest: `
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
status:
  conditions:
  - {type: Ready, status: "True"}
  - {type: Stalled, status: "True", reason: InvalidSpec, message: bad port}
`,
		state: Degraded, reason: "InvalidSpec", message: "stalled: InvalidSpec: bad port",
	}, {
		name: "Reconciling",
		manifest: `
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
status:
  conditions:
  - {type: Ready, status: "False", reason: Failed}
  - {type: Reconciling, status: "True", reason: Retrying}
`,
		state: Progressing, reason: "Retrying",
	}, {
		name: "conditions without Ready",
		manifest: `
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: pdb}
status:
  conditions: [{type: DisruptionAllowed, status: "False", reason: InsufficientPods}]
`,
		state: Healthy, reason: "NoReadyCondition",
	}, {
		name: "malformed conditions are ignored",
		manifest: `
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
status:
  conditions: [oops, {status: "False"}]
`,
		state: Healthy, reason: "Exists",
	}})
}

func TestNestedInt(t *testing.T) {
	for _, v := range []any{int64(3), 3, int32(3), float64(3)} {
		if got, ok := nestedInt(map[string]any{"n": v}, "n"); !ok || got != 3 {
			t.Errorf("nestedInt(%T 3) = %d, %v; want 3, true", v, got, ok)
		}
	}
	for _, v := range []any{3.5, "3", nil} {
		if _, ok := nestedInt(map[string]any{"n": v}, "n"); ok {
			t.Errorf("nestedInt(%T %v) ok, want not ok", v, v)
		}
	}
}
