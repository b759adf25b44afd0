package apply_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/yaml"

	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/health"
	"github.com/tend-gitops/tend/internal/livestate"
	"github.com/tend-gitops/tend/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// requestCounter counts API requests by verb at the transport, and dry runs.
type requestCounter struct {
	mu     sync.Mutex
	verbs  map[string]int
	paths  map[string]int // by "METHOD path"
	dryRun int
	on     atomic.Bool
}

func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if c.on.Load() {
			c.mu.Lock()
			verb := r.Method
			if r.Method == http.MethodGet && r.URL.Query().Get("watch") == "true" {
				verb = "WATCH"
			}
			c.verbs[verb]++
			c.paths[verb+" "+r.URL.Path]++
			if r.URL.Query().Has("dryRun") {
				c.dryRun++
			}
			c.mu.Unlock()
		}
		return rt.RoundTrip(r)
	})
}

func (c *requestCounter) reset() {
	c.mu.Lock()
	c.verbs = map[string]int{}
	c.paths = map[string]int{}
	c.dryRun = 0
	c.mu.Unlock()
	c.on.Store(true)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type fixture struct {
	env     *testenv.Env
	engine  *apply.Engine
	live    *livestate.Cache
	dyn     dynamic.Interface
	counter *requestCounter
	app     apply.AppRef
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := testenv.New(t)
	return newEngineFixture(t, env, &apply.SecretStore{Client: env.Clientset})
}

// newEngineFixture builds an engine with its own watch cache and request
// counter; two of them on one namespace are a controller and its restart.
func newEngineFixture(t *testing.T, env *testenv.Env, inv apply.InventoryStore) *fixture {
	t.Helper()
	counter := &requestCounter{verbs: map[string]int{}, paths: map[string]int{}}
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(counter.wrap)
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		t.Fatal(err)
	}
	live, err := livestate.New(cfg, mapper, livestate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(live.Close)
	dyn, err := dynamic.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		t.Fatal(err)
	}
	checker, err := health.NewChecker(nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &apply.Engine{
		Dynamic:      dyn,
		Mapper:       mapper,
		Live:         live,
		Health:       checker,
		Inventory:    inv,
		Fingerprint:  livestate.Fingerprint,
		PollInterval: 50 * time.Millisecond,
	}
	return &fixture{env: env, engine: e, live: live, dyn: dyn, counter: counter, app: apply.AppRef{Namespace: env.Namespace, Name: "app"}}
}

// objs parses YAML documents, replacing NS with the test namespace.
func (f *fixture) objs(t *testing.T, docs ...string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, d := range docs {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(strings.ReplaceAll(d, "NS", f.env.Namespace)), &u.Object); err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
	return out
}

func (f *fixture) sync(t *testing.T, req apply.Request) (*apply.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if req.App == (apply.AppRef{}) {
		req.App = f.app
	}
	if req.HealthTimeout == 0 {
		req.HealthTimeout = 60 * time.Second
	}
	return f.engine.Sync(ctx, req)
}

func deployment(name string, replicas int, extraAnnotations string) string {
	return fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: %s, namespace: NS, annotations: {%s}}
spec:
  replicas: %d
  selector: {matchLabels: {app: %s}}
  template:
    metadata: {labels: {app: %s}}
    spec: {containers: [{name: web, image: "nginx:1.27"}]}
`, name, extraAnnotations, replicas, name, name)
}

func configMap(name, value, annotations string) string {
	return fmt.Sprintf(`{apiVersion: v1, kind: ConfigMap, metadata: {name: %s, namespace: NS, annotations: {%s}}, data: {k: %q}}`, name, annotations, value)
}

const widgetCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: CRDNAME}
spec:
  group: GROUP
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
          spec: {type: object, properties: {size: {type: integer}}}
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

// crd returns a CRD and a Widget of it in a group unique to the test (CRDs
// are cluster-scoped and tests share the cluster).
func (f *fixture) crd(t *testing.T) (crd, widget string, group string) {
	group = f.env.Namespace + ".example.tend.dev"
	crd = strings.NewReplacer("CRDNAME", "widgets."+group, "GROUP", group).Replace(widgetCRD)
	widget = fmt.Sprintf(`{apiVersion: %s/v1, kind: Widget, metadata: {name: w1, namespace: NS}, spec: {size: 3}}`, group)
	t.Cleanup(func() {
		_ = f.dyn.Resource(crdGVR).Delete(context.Background(), "widgets."+group, metav1.DeleteOptions{})
	})
	return crd, widget, group
}

var crdGVR = apiextGVR()

func TestCRDAndCustomResourceInOneSync(t *testing.T) {
	f := newFixture(t)
	crd, widget, group := f.crd(t)
	res, err := f.sync(t, apply.Request{Objects: f.objs(t, widget, crd)})
	if err != nil {
		t.Fatalf("sync: %v\n%+v", err, res.Objects)
	}
	got, err := f.dyn.Resource(widgetGVR(group)).Namespace(f.env.Namespace).Get(context.Background(), "w1", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("widget not created: %v", err)
	}
	if size, _, _ := unstructured.NestedInt64(got.Object, "spec", "size"); size != 3 {
		t.Errorf("widget size = %d, want 3", size)
	}
	if got.GetAnnotations()[apply.AnnotationOwner] != f.app.String() {
		t.Errorf("owner annotation = %q", got.GetAnnotations()[apply.AnnotationOwner])
	}
	if res.Changed != 2 {
		t.Errorf("changed = %d, want 2", res.Changed)
	}
}

func TestWaveWaitsForHealthyDeployment(t *testing.T) {
	f := newFixture(t)
	var readyWhenWave1Applied atomic.Int32
	readyWhenWave1Applied.Store(-1)
	res, err := f.sync(t, apply.Request{
		Objects: f.objs(t, deployment("db", 2, ""), configMap("after-db", "x", `tend.dev/wave: "1"`)),
		Progress: func(ev apply.Event) {
			if ev.Object.Name == "after-db" && ev.Action == apply.Created {
				d, err := f.env.Clientset.AppsV1().Deployments(f.env.Namespace).Get(context.Background(), "db", metav1.GetOptions{})
				if err == nil {
					readyWhenWave1Applied.Store(d.Status.AvailableReplicas)
				}
			}
		},
	})
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	if got, want := readyWhenWave1Applied.Load(), int32(2); got != want {
		t.Fatalf("wave 1 applied when db had %d available replicas, want %d", got, want)
	}
	if res.Changed != 2 {
		t.Errorf("changed = %d, want 2", res.Changed)
	}
}

func TestFailingPreSyncHookStopsSync(t *testing.T) {
	f := newFixture(t)
	if _, err := f.sync(t, apply.Request{Objects: f.objs(t, configMap("main", "v1", ""), deployment("web", 1, "")), WaitHealthy: true}); err != nil {
		t.Fatal(err)
	}
	before := mainObjects(t, f)
	failing := `
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: NS, annotations: {tend.dev/hook: pre-sync}}
spec:
  backoffLimit: 0
  template:
    metadata: {annotations: {tend.dev/kwok-pod: fail}}
    spec: {restartPolicy: Never, containers: [{name: m, image: migrate:1}]}
`
	res, err := f.sync(t, apply.Request{Objects: f.objs(t, configMap("main", "v2", ""), deployment("web", 3, ""), failing)})
	if err == nil {
		t.Fatal("sync succeeded with a failing pre-sync hook")
	}
	if !strings.Contains(err.Error(), "pre-sync") || !strings.Contains(err.Error(), "migrate") {
		t.Errorf("error does not name the hook: %v", err)
	}
	if after := mainObjects(t, f); after != before {
		t.Fatalf("main objects changed after a failed pre-sync hook: %s -> %s", before, after)
	}
	for _, o := range res.Objects {
		if o.Ref.Name == "migrate" && o.Action != apply.HookFailed {
			t.Errorf("hook result %s", o.Action)
		}
	}
}

// mainObjects says what tend applied of the ConfigMap main and the
// Deployment web: the ConfigMap's resourceVersion (nobody else writes it)
// and the Deployment's generation and replicas (its status, which the
// cluster keeps writing, does not count).
func mainObjects(t *testing.T, f *fixture) string {
	t.Helper()
	ctx := context.Background()
	cm, err := f.env.Clientset.CoreV1().ConfigMaps(f.env.Namespace).Get(ctx, "main", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := f.env.Clientset.AppsV1().Deployments(f.env.Namespace).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("ConfigMap %s %v, Deployment generation %d replicas %d", cm.ResourceVersion, cm.Data, d.Generation, *d.Spec.Replicas)
}

func TestPostSyncHookRunsAfterMainObjectsAreHealthy(t *testing.T) {
	f := newFixture(t)
	post := `
apiVersion: batch/v1
kind: Job
metadata: {name: smoke, namespace: NS, annotations: {argocd.argoproj.io/hook: PostSync, argocd.argoproj.io/hook-delete-policy: HookSucceeded}}
spec:
  template:
    spec: {restartPolicy: Never, containers: [{name: s, image: smoke:1}]}
`
	var order []string
	var mu sync.Mutex
	_, err := f.sync(t, apply.Request{
		Objects: f.objs(t, deployment("web", 2, ""), post),
		Progress: func(ev apply.Event) {
			mu.Lock()
			order = append(order, ev.Object.Name+":"+string(ev.Action))
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(order, " "), "web:created smoke:hook-succeeded"; got != want {
		t.Fatalf("order = %q, want %q", got, want)
	}
	if _, err := f.env.Clientset.BatchV1().Jobs(f.env.Namespace).Get(context.Background(), "smoke", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("hook with HookSucceeded policy not deleted: %v", err)
	}
}

// A hook of two phases (Argo CD's "PreSync,PostSync") runs before the main
// objects and again after they are healthy: the first run's Job is deleted
// and created anew.
func TestHookOfTwoPhasesRunsTwice(t *testing.T) {
	f := newFixture(t)
	both := `
apiVersion: batch/v1
kind: Job
metadata: {name: check, namespace: NS, annotations: {argocd.argoproj.io/hook: "PreSync,PostSync"}}
spec:
  template:
    spec: {restartPolicy: Never, containers: [{name: c, image: check:1}]}
`
	var order []string
	var uids []string
	var mu sync.Mutex
	_, err := f.sync(t, apply.Request{
		Objects: f.objs(t, deployment("web", 1, ""), both),
		Progress: func(ev apply.Event) {
			mu.Lock()
			defer mu.Unlock()
			order = append(order, ev.Step+" "+ev.Object.Name+":"+string(ev.Action))
			if ev.Object.Name == "check" {
				j, err := f.env.Clientset.BatchV1().Jobs(f.env.Namespace).Get(context.Background(), "check", metav1.GetOptions{})
				if err == nil {
					uids = append(uids, string(j.UID))
				}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(order, ", "), "pre-sync hooks check:hook-succeeded, wave 0 web:created, post-sync hooks check:hook-succeeded"; got != want {
		t.Fatalf("order = %q, want %q", got, want)
	}
	if len(uids) != 2 || uids[0] == uids[1] {
		t.Errorf("Job uids after each run %v, want two different Jobs", uids)
	}
}

func TestPrune(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	all := f.objs(t, configMap("a", "1", ""), configMap("b", "1", ""), configMap("keep", "1", `tend.dev/prune: disabled`))
	if _, err := f.sync(t, apply.Request{Objects: all, Prune: true}); err != nil {
		t.Fatal(err)
	}
	// b and keep leave git: b is deleted, keep stays, a is untouched.
	aBefore, _ := f.env.Clientset.CoreV1().ConfigMaps(f.env.Namespace).Get(ctx, "a", metav1.GetOptions{})
	res, err := f.sync(t, apply.Request{Objects: f.objs(t, configMap("a", "1", "")), Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.env.Clientset.CoreV1().ConfigMaps(f.env.Namespace).Get(ctx, "b", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("b not pruned: %v", err)
	}
	if _, err := f.env.Clientset.CoreV1().ConfigMaps(f.env.Namespace).Get(ctx, "keep", metav1.GetOptions{}); err != nil {
		t.Errorf("annotated object pruned: %v", err)
	}
	aAfter, _ := f.env.Clientset.CoreV1().ConfigMaps(f.env.Namespace).Get(ctx, "a", metav1.GetOptions{})
	if aBefore.ResourceVersion != aAfter.ResourceVersion {
		t.Errorf("a was written during prune")
	}
	if res.Changed != 1 {
		t.Errorf("changed = %d, want 1 (b pruned)", res.Changed)
	}
	// An empty render prunes nothing unless allowed.
	if _, err := f.sync(t, apply.Request{Prune: true}); err == nil || !strings.Contains(err.Error(), "allowEmpty") {
		t.Fatalf("empty render: %v", err)
	}
	if _, err := f.env.Clientset.CoreV1().ConfigMaps(f.env.Namespace).Get(ctx, "a", metav1.GetOptions{}); err != nil {
		t.Fatalf("empty render pruned a: %v", err)
	}
	if _, err := f.sync(t, apply.Request{Prune: true, AllowEmpty: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.env.Clientset.CoreV1().ConfigMaps(f.env.Namespace).Get(ctx, "a", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("allowEmpty did not prune a: %v", err)
	}
}

// Argo CD's sync options on objects: Prune=false keeps an object that left
// git; Delete=false keeps it only when the App is deleted, and is pruned
// like any other when it leaves git.
func TestArgoCDSyncOptionsOnPrune(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	exists := func(name string) bool {
		_, err := f.env.Clientset.CoreV1().ConfigMaps(f.env.Namespace).Get(ctx, name, metav1.GetOptions{})
		return err == nil
	}
	all := f.objs(t,
		configMap("plain", "1", ""),
		configMap("no-prune", "1", `argocd.argoproj.io/sync-options: "Prune=false"`),
		configMap("no-delete", "1", `argocd.argoproj.io/sync-options: "ServerSideApply=true,Delete=false"`),
		configMap("left", "1", `argocd.argoproj.io/sync-options: "Delete=false"`),
	)
	if _, err := f.sync(t, apply.Request{Objects: all, Prune: true}); err != nil {
		t.Fatal(err)
	}
	// no-prune and left leave git.
	if _, err := f.sync(t, apply.Request{Objects: all[:3:3], Prune: true}); err != nil {
		t.Fatal(err)
	}
	if exists("left") || !exists("no-prune") {
		t.Fatalf("after leaving git: left exists %v (want pruned: Delete=false is for App deletion), no-prune exists %v (want kept)", exists("left"), exists("no-prune"))
	}
	// The App is deleted.
	if _, err := f.sync(t, apply.Request{Prune: true, AllowEmpty: true, Deleting: true}); err != nil {
		t.Fatal(err)
	}
	if exists("plain") || !exists("no-delete") {
		t.Errorf("after the App's deletion: plain exists %v (want deleted), no-delete exists %v (want kept)", exists("plain"), exists("no-delete"))
	}
}

func TestTwoAppsClaimingOneObject(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.sync(t, apply.Request{Objects: f.objs(t, configMap("shared", "first", ""))}); err != nil {
		t.Fatal(err)
	}
	other := apply.AppRef{Namespace: f.env.Namespace, Name: "other"}
	_, err := f.sync(t, apply.Request{App: other, Objects: f.objs(t, configMap("shared", "second", ""))})
	if err == nil || !strings.Contains(err.Error(), "owned by App "+f.app.String()) {
		t.Fatalf("second App's sync: %v", err)
	}
	cm, _ := f.env.Clientset.CoreV1().ConfigMaps(f.env.Namespace).Get(ctx, "shared", metav1.GetOptions{})
	if cm.Data["k"] != "first" {
		t.Fatalf("second App changed the object: %v", cm.Data)
	}
	// Pruning in the second App never touches the first App's object.
	if _, err := f.sync(t, apply.Request{App: other, Objects: f.objs(t, configMap("mine", "x", "")), Prune: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.env.Clientset.CoreV1().ConfigMaps(f.env.Namespace).Get(ctx, "shared", metav1.GetOptions{}); err != nil {
		t.Fatalf("shared object deleted: %v", err)
	}
}

func TestSteadyStateSendsNoRequests(t *testing.T) {
	f := newFixture(t)
	objs := func() []*unstructured.Unstructured {
		return f.objs(t, configMap("a", "1", ""), deployment("web", 2, ""),
			`{apiVersion: v1, kind: Secret, metadata: {name: s, namespace: NS}, stringData: {password: hunter2}}`,
			`{apiVersion: v1, kind: Service, metadata: {name: web, namespace: NS}, spec: {ports: [{port: 80}], selector: {app: web}}}`)
	}
	if _, err := f.sync(t, apply.Request{Objects: objs(), WaitHealthy: true, Prune: true}); err != nil {
		t.Fatal(err)
	}
	f.counter.reset()
	for i := 0; i < 3; i++ {
		res, err := f.sync(t, apply.Request{Objects: objs(), WaitHealthy: true, Prune: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Changed != 0 {
			t.Fatalf("re-sync %d changed %d objects: %+v", i, res.Changed, res.Objects)
		}
	}
	f.counter.mu.Lock()
	defer f.counter.mu.Unlock()
	writes := f.counter.verbs["POST"] + f.counter.verbs["PUT"] + f.counter.verbs["PATCH"] + f.counter.verbs["DELETE"]
	if writes != 0 || f.counter.dryRun != 0 {
		t.Fatalf("steady-state re-syncs sent %d writes and %d dry runs (%v)", writes, f.counter.dryRun, f.counter.verbs)
	}
	// Only the inventory is read from the apiserver; objects come from the
	// watch cache.
	if f.counter.verbs["GET"] > 3 {
		t.Errorf("steady-state re-syncs sent %d GETs, want at most 3 (inventory)", f.counter.verbs["GET"])
	}
}

func TestDriftIsDetectedAndRestored(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	res, err := f.sync(t, apply.Request{Objects: f.objs(t, deployment("web", 1, ""))})
	if err != nil {
		t.Fatal(err)
	}
	// Someone edits the image by hand.
	patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"evil:1"}]}}}}`)
	if _, err := f.env.Clientset.AppsV1().Deployments(f.env.Namespace).Patch(ctx, "web", types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "drift seen in the watch cache", func() bool { return len(f.engine.Drift(res.Inventory)) == 1 })
	if got := f.engine.Drift(res.Inventory); got[0].Name != "web" {
		t.Fatalf("drift = %v", got)
	}
	res2, err := f.sync(t, apply.Request{Objects: f.objs(t, deployment("web", 1, ""))})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := f.env.Clientset.AppsV1().Deployments(f.env.Namespace).Get(ctx, "web", metav1.GetOptions{})
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "nginx:1.27" {
		t.Fatalf("image = %s after re-sync, want nginx:1.27", img)
	}
	if res2.Changed != 1 {
		t.Errorf("changed = %d", res2.Changed)
	}
	waitFor(t, "no drift after restore", func() bool { return len(f.engine.Drift(res2.Inventory)) == 0 })
}

// TestFieldsTendsControllerUpdatedAreTakenBack: a field written with an
// Update under tend's own manager name (the controller's client) is not
// "another controller's": the next apply takes it back.
func TestFieldsTendsControllerUpdatedAreTakenBack(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.sync(t, apply.Request{Objects: f.objs(t, deployment("web", 1, ""))}); err != nil {
		t.Fatal(err)
	}
	patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"stale:0"}]}}}}`)
	if _, err := f.env.Clientset.AppsV1().Deployments(f.env.Namespace).Patch(ctx, "web", types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: apply.FieldManager}); err != nil {
		t.Fatal(err)
	}
	res, err := f.sync(t, apply.Request{Objects: f.objs(t, deployment("web", 1, "")), Force: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range res.Objects {
		if o.Message != "" && strings.Contains(o.Message, "left to the controllers") {
			t.Errorf("%s: %s", o.Ref, o.Message)
		}
	}
	d, _ := f.env.Clientset.AppsV1().Deployments(f.env.Namespace).Get(ctx, "web", metav1.GetOptions{})
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "nginx:1.27" {
		t.Fatalf("image = %s after the sync, want nginx:1.27 taken back from tend's own Update", img)
	}
}

func TestReplicasLeftToAnotherManager(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.sync(t, apply.Request{Objects: f.objs(t, deployment("web", 2, ""))}); err != nil {
		t.Fatal(err)
	}
	// An autoscaler-like manager scales through the scale subresource.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		scale, err := f.env.Clientset.AppsV1().Deployments(f.env.Namespace).GetScale(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		scale.Spec.Replicas = 5
		_, err = f.env.Clientset.AppsV1().Deployments(f.env.Namespace).UpdateScale(ctx, "web", scale, metav1.UpdateOptions{FieldManager: "keda-like"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Also a change tend must apply, so the sync really writes.
	res, err := f.sync(t, apply.Request{Objects: f.objs(t, deployment("web", 2, `team: a`))})
	if err != nil {
		t.Fatalf("sync fought the autoscaler: %v", err)
	}
	d, _ := f.env.Clientset.AppsV1().Deployments(f.env.Namespace).Get(ctx, "web", metav1.GetOptions{})
	if got := *d.Spec.Replicas; got != 5 {
		t.Fatalf("replicas = %d, want 5 (left to keda-like)", got)
	}
	if d.Annotations["team"] != "a" {
		t.Fatalf("the rest of the object was not applied: %v", d.Annotations)
	}
	if len(res.Warnings) == 0 || !strings.Contains(strings.Join(res.Warnings, " "), "keda-like") {
		t.Errorf("no warning naming the other manager: %v", res.Warnings)
	}
	// And the next sync is a no-op, not a fight.
	res, err = f.sync(t, apply.Request{Objects: f.objs(t, deployment("web", 2, `team: a`))})
	if err != nil || res.Changed != 0 {
		t.Fatalf("follow-up sync changed %d objects (%v)", res.Changed, err)
	}
}

func TestDegradedDeploymentFailsTheWait(t *testing.T) {
	f := newFixture(t)
	stuck := strings.Replace(deployment("stuck", 1, ""), "metadata: {labels: {app: stuck}}", "metadata: {labels: {app: stuck}, annotations: {tend.dev/kwok-pod: not-ready}}", 1)
	// The health timeout, not the caller's context (f.sync gives two
	// minutes), ends the wait: the error names it.
	_, err := f.sync(t, apply.Request{Objects: f.objs(t, stuck, configMap("later", "x", `tend.dev/wave: "1"`)), HealthTimeout: 3 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "stuck") || !strings.Contains(err.Error(), "not healthy after 3s") {
		t.Fatalf("sync with a never-ready Deployment: %v, want the 3s health timeout", err)
	}
	if _, err := f.env.Clientset.CoreV1().ConfigMaps(f.env.Namespace).Get(context.Background(), "later", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("wave 1 applied although wave 0 never became healthy: %v", err)
	}
}

func TestRejectedObjectFailsSyncKeepsEarlierWaves(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.sync(t, apply.Request{Objects: f.objs(t, configMap("old", "1", "")), Prune: true}); err != nil {
		t.Fatal(err)
	}
	bad := `{apiVersion: v1, kind: Service, metadata: {name: bad, namespace: NS, annotations: {tend.dev/wave: "1"}}, spec: {ports: [{port: 99999}]}}`
	_, err := f.sync(t, apply.Request{Objects: f.objs(t, configMap("first", "1", ""), bad), Prune: true})
	if err == nil || !strings.Contains(err.Error(), "Service "+f.env.Namespace+"/bad") || !strings.Contains(err.Error(), "99999") {
		t.Fatalf("rejected object: %v", err)
	}
	if _, err := f.env.Clientset.CoreV1().ConfigMaps(f.env.Namespace).Get(ctx, "first", metav1.GetOptions{}); err != nil {
		t.Errorf("earlier wave rolled back: %v", err)
	}
	if _, err := f.env.Clientset.CoreV1().ConfigMaps(f.env.Namespace).Get(ctx, "old", metav1.GetOptions{}); err != nil {
		t.Errorf("failed sync pruned: %v", err)
	}
}

func TestInventorySurvivesRestart(t *testing.T) {
	f := newFixture(t)
	if _, err := f.sync(t, apply.Request{Objects: f.objs(t, configMap("a", "1", ""), deployment("web", 1, ""))}); err != nil {
		t.Fatal(err)
	}
	// A new engine with a new, empty watch cache: the inventory in the
	// cluster says nothing needs applying.
	g := newEngineFixture(t, f.env, f.engine.Inventory)
	g.counter.reset()
	res, err := g.sync(t, apply.Request{Objects: g.objs(t, configMap("a", "1", ""), deployment("web", 1, ""))})
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed != 0 {
		t.Fatalf("after restart, %d objects re-applied", res.Changed)
	}
	g.counter.mu.Lock()
	defer g.counter.mu.Unlock()
	if w := g.counter.verbs["PATCH"] + g.counter.verbs["POST"] + g.counter.verbs["PUT"]; w != 0 {
		t.Fatalf("after restart, %d writes", w)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func apiextGVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
}

func widgetGVR(group string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: group, Version: "v1", Resource: "widgets"}
}

func TestConflictsWithAControllerAreLeftUnlessForced(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.sync(t, apply.Request{Objects: f.objs(t, configMap("cfg", "from-git", ""))}); err != nil {
		t.Fatal(err)
	}
	// An operator takes the field over with a forced apply.
	takeover := f.objs(t, configMap("cfg", "from-operator", ""))[0]
	takeover.SetAnnotations(nil)
	if _, err := f.dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}).Namespace(f.env.Namespace).
		Apply(ctx, "cfg", takeover, metav1.ApplyOptions{FieldManager: "operator-x", Force: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ownership change seen", func() bool {
		cm, ok := f.live.Get(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, f.env.Namespace, "cfg")
		return ok && cm.Object["data"].(map[string]any)["k"] == "from-operator"
	})
	res, err := f.sync(t, apply.Request{Objects: f.objs(t, configMap("cfg", "from-git", ""))})
	if err != nil {
		t.Fatal(err)
	}
	cm, _ := f.env.Clientset.CoreV1().ConfigMaps(f.env.Namespace).Get(ctx, "cfg", metav1.GetOptions{})
	if cm.Data["k"] != "from-operator" {
		t.Fatalf("tend took the field from a controller without being told to: %v", cm.Data)
	}
	if !strings.Contains(strings.Join(res.Warnings, " "), "operator-x") {
		t.Errorf("conflict not reported: %v", res.Warnings)
	}
	// The object's annotation says to take it over.
	if _, err := f.sync(t, apply.Request{Objects: f.objs(t, configMap("cfg", "from-git", `tend.dev/force-conflicts: "true"`))}); err != nil {
		t.Fatal(err)
	}
	cm, _ = f.env.Clientset.CoreV1().ConfigMaps(f.env.Namespace).Get(ctx, "cfg", metav1.GetOptions{})
	if cm.Data["k"] != "from-git" {
		t.Fatalf("force-conflicts annotation did not take the field over: %v", cm.Data)
	}
}

func TestCustomResourceReadyFalseIsDegraded(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	crd, widget, group := f.crd(t)
	if _, err := f.sync(t, apply.Request{Objects: f.objs(t, crd, widget)}); err != nil {
		t.Fatal(err)
	}
	// Play the operator: report the widget as failed.
	status := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": group + "/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "w1", "namespace": f.env.Namespace},
		"status": map[string]any{"conditions": []any{map[string]any{
			"type": "Ready", "status": "False", "reason": "ProvisioningFailed", "message": "disk quota exceeded",
			"lastTransitionTime": time.Now().UTC().Format(time.RFC3339),
		}}},
	}}
	ri := f.dyn.Resource(widgetGVR(group)).Namespace(f.env.Namespace)
	if _, err := ri.ApplyStatus(ctx, "w1", status, metav1.ApplyOptions{FieldManager: "widget-operator", Force: true}); err != nil {
		t.Fatal(err)
	}
	bigger := strings.Replace(widget, "size: 3", "size: 4", 1)
	_, err := f.sync(t, apply.Request{Objects: f.objs(t, crd, bigger), WaitHealthy: true, HealthTimeout: 60 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "Degraded") || !strings.Contains(err.Error(), "disk quota exceeded") {
		t.Fatalf("sync with a Ready=False custom resource: %v", err)
	}
}
