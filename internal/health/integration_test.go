package health

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/tend-gitops/tend/internal/testenv"
)

// These tests run against the local control plane: kwok makes pods Running
// and Ready, Job pods Succeed, and pods annotated tend.dev/kwok-pod stay
// not ready or fail.

const waitTimeout = 60 * time.Second

// create creates manifest in env's namespace (when namespaced) and returns
// the object the API server returned.
func create(t *testing.T, env *testenv.Env, manifest string) *unstructured.Unstructured {
	t.Helper()
	u := object(t, manifest)
	if u.GetKind() != "CustomResourceDefinition" {
		u.SetNamespace(env.Namespace)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := env.Client.Create(ctx, u); err != nil {
		t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return u
}

// fields decodes a YAML mapping.
func fields(t *testing.T, manifest string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(manifest), &m); err != nil {
		t.Fatalf("bad test YAML: %v", err)
	}
	return m
}

// live reads obj's current state from the cluster.
func live(t *testing.T, env *testenv.Env, obj *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(obj.GroupVersionKind())
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), u); err != nil {
		t.Fatalf("get %s %s: %v", obj.GetKind(), obj.GetName(), err)
	}
	return u
}

// waitFor polls check on the live obj until it returns a result of state
// want, and returns that result together with every distinct result seen
// before it.
func waitFor(t *testing.T, env *testenv.Env, obj *unstructured.Unstructured, want State, check func(*unstructured.Unstructured) Result) (Result, []Result) {
	t.Helper()
	return waitUntil(t, env, obj, string(want), check, func(r Result) bool { return r.State == want })
}

// waitUntil polls check on the live obj until done accepts its result.
func waitUntil(t *testing.T, env *testenv.Env, obj *unstructured.Unstructured, what string, check func(*unstructured.Unstructured) Result, done func(Result) bool) (Result, []Result) {
	t.Helper()
	var seen []Result
	deadline := time.Now().Add(waitTimeout)
	for {
		got := check(live(t, env, obj))
		if done(got) {
			return got, seen
		}
		if len(seen) == 0 || seen[len(seen)-1] != got {
			seen = append(seen, got)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s not %s after %s; results seen:\n%s", obj.GetKind(), obj.GetName(), what, waitTimeout, results(seen))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func results(rs []Result) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "  %v\n", r)
	}
	return b.String()
}

func deployment(name string, replicas int, podAnnotations string) string {
	return fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  replicas: %[2]d
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata:
      labels: {app: %[1]s}
      annotations: {%[3]s}
    spec:
      containers: [{name: app, image: registry.example/web:1}]
`, name, replicas, podAnnotations)
}

func job(name, podAnnotations string) string {
	return fmt.Sprintf(`
apiVersion: batch/v1
kind: Job
metadata: {name: %[1]s}
spec:
  backoffLimit: 0
  template:
    metadata:
      annotations: {%[2]s}
    spec:
      restartPolicy: Never
      containers: [{name: run, image: registry.example/migrate:1}]
`, name, podAnnotations)
}

func TestIntegrationDeploymentBecomesHealthy(t *testing.T) {
	env := testenv.New(t)
	c := &Checker{}
	created := create(t, env, deployment("web", 3, ""))
	if got := c.Check(created); got.State != Progressing {
		t.Fatalf("just created: got %v, want Progressing", got)
	}
	got, seen := waitFor(t, env, created, Healthy, c.Check)
	if got.Reason != "Available" || got.Message != "Deployment web: 3 of 3 replicas available" {
		t.Fatalf("got %v, want Available with 3 of 3 replicas", got)
	}
	for _, r := range seen {
		if r.State != Progressing {
			t.Fatalf("on the way to Healthy: got %v, want only Progressing; seen:\n%s", r, results(seen))
		}
	}
	t.Logf("seen on the way:\n%s", results(seen))
}

func TestIntegrationDeploymentNeverReadyTimesOut(t *testing.T) {
	env := testenv.New(t)
	c := &Checker{}
	start := time.Now()
	const timeout = 3 * time.Second
	created := create(t, env, deployment("stuck", 1, `tend.dev/kwok-pod: not-ready`))

	// Its pod runs but never becomes ready: Progressing with a message
	// that says so.
	got, _ := waitUntil(t, env, created, "ReplicasUnavailable", c.Check, func(r Result) bool {
		return r.State == Progressing && r.Reason == "ReplicasUnavailable"
	})
	if want := "Deployment stuck: 1 of 1 replicas unavailable"; got.Message != want {
		t.Fatalf("got message %q, want %q", got.Message, want)
	}

	got, seen := waitFor(t, env, created, Degraded, func(u *unstructured.Unstructured) Result {
		return c.CheckWithTimeout(u, start, timeout, time.Now())
	})
	if elapsed := time.Since(start); elapsed < timeout {
		t.Fatalf("Degraded after %s, before the %s timeout", elapsed, timeout)
	}
	if got.Reason != ReasonTimeout ||
		!strings.HasPrefix(got.Message, "Deployment stuck: still progressing after ") ||
		!strings.HasSuffix(got.Message, " (timeout 3s): 1 of 1 replicas unavailable") {
		t.Fatalf("got %v, want Timeout naming how long and why", got)
	}
	for _, r := range seen {
		if r.State != Progressing {
			t.Fatalf("before the timeout: got %v, want Progressing", r)
		}
	}
}

func TestIntegrationJobCompletes(t *testing.T) {
	env := testenv.New(t)
	created := create(t, env, job("migrate", ""))
	got, _ := waitFor(t, env, created, Healthy, (&Checker{}).Check)
	if got.Reason != "Complete" || got.Message != "Job migrate: completed: 1 succeeded" {
		t.Fatalf("got %v, want Complete", got)
	}
}

func TestIntegrationJobFails(t *testing.T) {
	env := testenv.New(t)
	created := create(t, env, job("broken", `tend.dev/kwok-pod: fail`))
	got, seen := waitFor(t, env, created, Degraded, (&Checker{}).Check)
	if got.Reason != "BackoffLimitExceeded" || !strings.Contains(got.Message, "Job broken: failed: Job has reached the specified backoff limit") {
		t.Fatalf("got %v, want BackoffLimitExceeded with the Job's message", got)
	}
	for _, r := range seen {
		if r.State != Progressing {
			t.Fatalf("before failing: got %v, want Progressing", r)
		}
	}
}

// createWidgetCRD creates a namespaced Widget kind with a status subresource
// in a group unique to the test, waits until it is Healthy, and returns the
// group.
func createWidgetCRD(t *testing.T, env *testenv.Env) string {
	t.Helper()
	group := env.Namespace + ".test.tend.dev"
	crd := create(t, env, fmt.Sprintf(`
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.%[1]s}
spec:
  group: %[1]s
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
`, group))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := env.Client.Delete(ctx, crd); err != nil {
			t.Errorf("delete CRD: %v", err)
		}
	})
	c := &Checker{}
	if got := c.Check(crd); got.State != Progressing || got.Reason != "NotEstablished" {
		t.Fatalf("CRD just created: got %v, want Progressing (NotEstablished)", got)
	}
	got, _ := waitFor(t, env, crd, Healthy, c.Check)
	if got.Reason != "Established" {
		t.Fatalf("CRD: got %v, want Established", got)
	}
	return group
}

func TestIntegrationCRDEstablished(t *testing.T) {
	env := testenv.New(t)
	createWidgetCRD(t, env)
}

func TestIntegrationCustomResourceConditions(t *testing.T) {
	env := testenv.New(t)
	group := createWidgetCRD(t, env)
	c := &Checker{}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	w := create(t, env, fmt.Sprintf(`
apiVersion: %s/v1
kind: Widget
metadata: {name: w}
spec: {size: 1}
`, group))
	if got := c.Check(live(t, env, w)); got.State != Healthy || got.Reason != "Exists" {
		t.Fatalf("without status: got %v, want Healthy (Exists)", got)
	}

	setStatus := func(status string) Result {
		t.Helper()
		u := live(t, env, w)
		u.Object["status"] = fields(t, status)
		if err := env.Client.Status().Update(ctx, u); err != nil {
			t.Fatalf("update status: %v", err)
		}
		return c.Check(live(t, env, w))
	}

	got := setStatus(`{observedGeneration: 1, conditions: [{type: Ready, status: "False", reason: OutOfStock, message: no widgets left, lastTransitionTime: "2026-01-01T00:00:00Z"}]}`)
	if got.State != Degraded || got.Reason != "OutOfStock" || got.Message != "Widget w: not ready: OutOfStock: no widgets left" {
		t.Fatalf("Ready=False: got %v, want Degraded (OutOfStock)", got)
	}

	got = setStatus(`{observedGeneration: 1, conditions: [{type: Ready, status: "True", reason: Stocked, message: "", lastTransitionTime: "2026-01-01T00:00:00Z"}]}`)
	if got.State != Healthy || got.Reason != "Stocked" {
		t.Fatalf("Ready=True: got %v, want Healthy (Stocked)", got)
	}

	// A spec change bumps the generation; until the Widget's controller
	// writes the new observedGeneration, the old Ready=True is stale.
	u := live(t, env, w)
	u.Object["spec"] = map[string]any{"size": int64(2)}
	if err := env.Client.Update(ctx, u); err != nil {
		t.Fatalf("update spec: %v", err)
	}
	u = live(t, env, w)
	if u.GetGeneration() != 2 {
		t.Fatalf("generation after a spec change: %d, want 2", u.GetGeneration())
	}
	got = c.Check(u)
	if got.State != Progressing || got.Reason != ReasonGenerationNotObserved || got.Message != "Widget w: controller has observed generation 1, latest is 2" {
		t.Fatalf("observedGeneration lagging: got %v, want Progressing (%s)", got, ReasonGenerationNotObserved)
	}

	got = setStatus(`{observedGeneration: 2, conditions: [{type: Ready, status: "True", reason: Stocked, message: "", lastTransitionTime: "2026-01-01T00:00:00Z"}]}`)
	if got.State != Healthy {
		t.Fatalf("caught up: got %v, want Healthy", got)
	}
}

// TestIntegrationRuleOnLiveObject checks that CEL rules see objects as the
// API server returns them (integers as int64, nested maps and lists).
func TestIntegrationRuleOnLiveObject(t *testing.T) {
	env := testenv.New(t)
	group := createWidgetCRD(t, env)
	c, err := NewChecker([]Rule{{
		Group:    group,
		Kind:     "Widget",
		Degraded: `object.?status.?phase.orValue("") == "Failed"`,
		Healthy:  `object.?status.?phase.orValue("") == "Running" && object.status.readyReplicas >= object.spec.replicas && object.status.parts.all(p, p.ok)`,
		Message:  `object.?status.?phase.orValue("new") + ": " + string(object.?status.?readyReplicas.orValue(0)) + "/" + string(object.spec.replicas) + " ready"`,
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	w := create(t, env, fmt.Sprintf(`
apiVersion: %s/v1
kind: Widget
metadata: {name: w}
spec: {replicas: 2}
`, group))
	if got := c.Check(live(t, env, w)); got.State != Progressing || got.Message != "Widget w: new: 0/2 ready" {
		t.Fatalf("without status: got %v, want Progressing with the rule's message", got)
	}
	u := live(t, env, w)
	u.Object["status"] = fields(t, `{phase: Running, readyReplicas: 2, parts: [{ok: true}, {ok: true}]}`)
	if err := env.Client.Status().Update(ctx, u); err != nil {
		t.Fatalf("update status: %v", err)
	}
	if got := c.Check(live(t, env, w)); got.State != Healthy || got.Message != "Widget w: Running: 2/2 ready" {
		t.Fatalf("running: got %v, want Healthy with the rule's message", got)
	}
}
