package example_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/testenv"
)

// env is the cluster, the controller running in this process, and clients.
type env struct {
	*testenv.Env
	c   client.Client
	dyn dynamic.Interface
	log *syncBuffer
}

func setup(t *testing.T) *env {
	t.Helper()
	te := testenv.New(t)
	testenv.InstallCRDs(t, te.Config)
	c, err := client.New(te.Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(te.Config)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{Env: te, c: c, dyn: dyn, log: &syncBuffer{}}
	e.releaseStaleCRDs(t)

	ctx, cancel := context.WithCancel(context.Background())
	ctl, err := controller.New(ctx, controller.Options{
		Config: te.Config, DataDir: t.TempDir(), MetricsAddr: "0", ProbeAddr: "0",
		Namespaces: []string{te.Namespace},
		Log:        slog.New(slog.NewTextHandler(e.log, nil)),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ctl.Start(ctx) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("controller log (last lines):\n%s", e.log.tail(60))
			for _, name := range apps {
				var a tendv1.App
				if err := c.Get(context.Background(), types.NamespacedName{Namespace: te.Namespace, Name: name}, &a); err == nil {
					b, _ := yaml.Marshal(a.Status)
					t.Logf("App %s status:\n%s", name, b)
				}
			}
		}
		// The root App first: deleting it prunes the other Apps, which
		// prune their objects (the CRDs too) while the controller runs.
		e.deleteApps(t)
		cancel()
		<-done
	})
	return e
}

// bootstrap creates what `tend bootstrap` would: the Source "tend" for the
// repository and the App "tend" that applies path (recursively) into the
// tend namespace, here the test's. Both are applied as field manager tend,
// so the App adopts the Source that the repository declares too.
func (e *env) bootstrap(t *testing.T, url, path string) {
	t.Helper()
	src := map[string]any{
		"apiVersion": "tend.dev/v1alpha1", "kind": "Source",
		"metadata": map[string]any{"name": "tend", "namespace": e.Namespace},
		"spec":     map[string]any{"git": map[string]any{"url": url, "ref": map[string]any{"branch": "main"}}, "interval": "1m"},
	}
	app := map[string]any{
		"apiVersion": "tend.dev/v1alpha1", "kind": "App",
		"metadata": map[string]any{"name": "tend", "namespace": e.Namespace},
		"spec": map[string]any{
			"sourceRef": map[string]any{"name": "tend"}, "path": path, "recursive": true,
			"destination": map[string]any{"namespace": e.Namespace},
			"sync":        map[string]any{"prune": true, "selfHeal": true},
		},
	}
	for _, obj := range []map[string]any{src, app} {
		u := &unstructured.Unstructured{Object: obj}
		gvr := tendv1.GroupVersion.WithResource(strings.ToLower(u.GetKind()) + "s")
		if _, err := e.dyn.Resource(gvr).Namespace(e.Namespace).Apply(context.Background(), u.GetName(), u, metav1.ApplyOptions{FieldManager: "tend", Force: true}); err != nil {
			t.Fatalf("bootstrap %s: %v", u.GetKind(), err)
		}
	}
}

// releaseStaleCRDs deletes the example's CRDs when a run that did not
// clean up left them behind: tend refuses objects another App owns, and
// their App is gone. CRDs an existing App owns are another test's; CRDs
// without an owner, tend adopts.
func (e *env) releaseStaleCRDs(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	crds := e.dyn.Resource(apiextv1.SchemeGroupVersion.WithResource("customresourcedefinitions"))
	for _, name := range exampleCRDs {
		crd, err := crds.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		owner := crd.GetAnnotations()["tend.dev/owner"]
		ns, app, ok := strings.Cut(owner, "/")
		if !ok {
			continue
		}
		err = e.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: app}, &tendv1.App{})
		if err == nil {
			t.Fatalf("CRD %s belongs to App %s of another test run; wait for it to end (or delete that App)", name, owner)
		}
		if !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		t.Logf("deleting CRD %s left behind by App %s", name, owner)
		if err := crds.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		e.waitFor(t, "stale CRD "+name+" deleted", func() bool {
			_, err := crds.Get(ctx, name, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		})
	}
}

// deleteApps deletes the Apps, the root first, and waits until their
// finalizers have pruned everything.
func (e *env) deleteApps(t *testing.T) {
	ctx := context.Background()
	for _, name := range apps {
		a := &tendv1.App{ObjectMeta: metav1.ObjectMeta{Namespace: e.Namespace, Name: name}}
		if err := e.c.Delete(ctx, a); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete App %s: %v", name, err)
		}
		if name == "tend" {
			// Let the root App's finalizer prune the others first, so it
			// does not re-create one deleted under it.
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) && !apierrors.IsNotFound(e.c.Get(ctx, client.ObjectKeyFromObject(a), &tendv1.App{})) {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var list tendv1.AppList
		if err := e.c.List(ctx, &list, client.InNamespace(e.Namespace)); err == nil && len(list.Items) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("Apps still there a minute after deletion: %d", len(list.Items))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (e *env) create(t *testing.T, o client.Object) {
	t.Helper()
	if err := e.c.Create(context.Background(), o); err != nil {
		t.Fatalf("create %s: %v", o.GetName(), err)
	}
}

func (e *env) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (e *env) app(t *testing.T, name string) *tendv1.App {
	t.Helper()
	var a tendv1.App
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: e.Namespace, Name: name}, &a); err != nil {
		t.Fatalf("App %s: %v", name, err)
	}
	return &a
}

// waitApp waits until cond holds for the App and returns it.
func (e *env) waitApp(t *testing.T, name, what string, cond func(*tendv1.App) bool) *tendv1.App {
	t.Helper()
	var a tendv1.App
	e.waitFor(t, "App "+name+": "+what, func() bool {
		return e.c.Get(context.Background(), types.NamespacedName{Namespace: e.Namespace, Name: name}, &a) == nil && cond(&a)
	})
	return &a
}

// waitAppsHealthy waits until every App is Synced and Healthy.
func (e *env) waitAppsHealthy(t *testing.T) {
	t.Helper()
	for _, name := range apps {
		e.waitApp(t, name, "Synced and Healthy", func(a *tendv1.App) bool {
			return a.Status.Sync == tendv1.SyncSynced && a.Status.Health == "Healthy" && a.Status.ObservedGeneration == a.Generation
		})
	}
}

// requestSync asks the controller to sync an App as `tend sync APP
// [--force]` does, and returns the sync's record.
func (e *env) requestSync(t *testing.T, name, opts string) tendv1.SyncRecord {
	t.Helper()
	requested := time.Now().UTC().Format(time.RFC3339Nano)
	var syncOpts any // null removes the annotation
	if opts != "" {
		syncOpts = opts
	}
	e.annotate(t, &tendv1.App{}, name, map[string]any{controller.AnnotationRequestedAt: requested, controller.AnnotationSyncOptions: syncOpts})
	a := e.waitApp(t, name, "sync request handled", func(a *tendv1.App) bool { return a.Status.LastHandledRequest == requested })
	if len(a.Status.History) == 0 {
		t.Fatalf("App %s handled the sync request but has no history", name)
	}
	return a.Status.History[0]
}

// requestFetch asks for a fetch as a push webhook does.
func (e *env) requestFetch(t *testing.T, source string) {
	t.Helper()
	e.annotate(t, &tendv1.Source{}, source, map[string]any{controller.AnnotationRequestedAt: time.Now().UTC().Format(time.RFC3339Nano)})
}

func (e *env) annotate(t *testing.T, o client.Object, name string, ann map[string]any) {
	t.Helper()
	o.SetNamespace(e.Namespace)
	o.SetName(name)
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.c.Patch(context.Background(), o, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatalf("annotate %s: %v", name, err)
	}
}

func (e *env) scaledObject(name string) (*unstructured.Unstructured, error) {
	return e.dyn.Resource(scaledObjects).Namespace(e.Namespace).Get(context.Background(), name, metav1.GetOptions{})
}

// setScaledObjectReady writes the status KEDA's operator writes.
func (e *env) setScaledObjectReady(t *testing.T, name string, status metav1.ConditionStatus, reason, msg string) {
	t.Helper()
	so, err := e.scaledObject(name)
	if err != nil {
		t.Fatal(err)
	}
	active := "True"
	if status != metav1.ConditionTrue {
		active = "False"
	}
	so.Object["status"] = map[string]any{
		"scaleTargetKind": "apps/v1.Deployment",
		"hpaName":         "keda-hpa-" + name,
		"conditions": []any{
			map[string]any{"type": "Ready", "status": string(status), "reason": reason, "message": msg},
			map[string]any{"type": "Active", "status": active, "reason": "ScalerActive", "message": "Scaling is performed because triggers are active"},
			map[string]any{"type": "Fallback", "status": "False", "reason": "NoFallbackFound", "message": "No fallbacks are active on this scaled object"},
		},
	}
	if _, err := e.dyn.Resource(scaledObjects).Namespace(e.Namespace).UpdateStatus(context.Background(), so, metav1.UpdateOptions{FieldManager: kedaManager}); err != nil {
		t.Fatalf("ScaledObject %s status: %v", name, err)
	}
}

// scale sets a Deployment's replicas through the scale subresource, as
// KEDA's operator and the HPA it creates do.
func (e *env) scale(t *testing.T, name string, replicas int32) {
	t.Helper()
	ctx := context.Background()
	s := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.Namespace}, Spec: autoscalingv1.ScaleSpec{Replicas: replicas}}
	if _, err := e.Clientset.AppsV1().Deployments(e.Namespace).UpdateScale(ctx, name, s, metav1.UpdateOptions{FieldManager: kedaManager}); err != nil {
		t.Fatalf("scale %s to %d: %v", name, replicas, err)
	}
}

// checkReplicas checks each autoscaled Deployment has the replicas KEDA
// set and that tend does not claim the field, and that the scheduler, which
// is not autoscaled, has the chart's one replica, set by tend. It does not
// look for KEDA as the field's owner: when nobody owned replicas before, the
// apiserver records no owner for a change made through the scale
// subresource.
func (e *env) checkReplicas(t *testing.T, want map[string]int32) {
	t.Helper()
	for _, name := range autoscaled {
		d := e.deployment(t, name)
		if d.Spec.Replicas == nil || *d.Spec.Replicas != want[name] {
			t.Errorf("Deployment %s has %v replicas, want the %d KEDA set", name, ptrString(d.Spec.Replicas), want[name])
		}
		if ownsReplicas(d, "tend") {
			t.Errorf("Deployment %s: tend owns spec.replicas; managers: %v", name, managers(d))
		}
	}
	if d := e.deployment(t, "mastodon-sidekiq-scheduler"); d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || !ownsReplicas(d, "tend") {
		t.Errorf("Deployment mastodon-sidekiq-scheduler: replicas %v, managers %v; want 1, set by tend", ptrString(d.Spec.Replicas), managers(d))
	}
}

// checkObjects checks the rest of what the example deploys exists.
func (e *env) checkObjects(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for kind, names := range map[string][]string{
		"Ingress.networking.k8s.io/v1":            {"mastodon"},
		"Service.v1":                              {"mastodon-web", "mastodon-streaming", "mastodon-sidekiq"},
		"ConfigMap.v1":                            {"mastodon-dashboard-mastodon-web", "mastodon-dashboard-mastodon-sidekiq"},
		"ServiceMonitor.monitoring.coreos.com/v1": {"mastodon-web", "mastodon-streaming", "mastodon-sidekiq"},
		"TriggerAuthentication.keda.sh/v1alpha1":  {"mastodon-redis"},
	} {
		k, gv, _ := strings.Cut(kind, ".")
		var u unstructured.UnstructuredList
		u.SetAPIVersion(gv)
		u.SetKind(k + "List")
		if err := e.c.List(ctx, &u, client.InNamespace(e.Namespace)); err != nil {
			t.Errorf("list %s: %v", kind, err)
			continue
		}
		have := map[string]unstructured.Unstructured{}
		for _, o := range u.Items {
			have[o.GetName()] = o
		}
		for _, n := range names {
			o, ok := have[n]
			switch {
			case !ok:
				t.Errorf("%s %s missing", k, n)
			case o.GetAnnotations()["tend.dev/owner"] != e.Namespace+"/mastodon":
				t.Errorf("%s %s is not owned by App mastodon: %v", k, n, o.GetAnnotations())
			case k == "ConfigMap" && o.GetLabels()["grafana_dashboard"] != "1":
				t.Errorf("dashboard %s lacks the label Grafana's sidecar looks for", n)
			}
		}
	}
}

func (e *env) deployment(t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	d, err := e.Clientset.AppsV1().Deployments(e.Namespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Deployment %s: %v", name, err)
	}
	return d
}

func (e *env) waitDeployment(t *testing.T, name, what string, cond func(*appsv1.Deployment) bool) {
	t.Helper()
	e.waitFor(t, "Deployment "+name+" "+what, func() bool {
		d, err := e.Clientset.AppsV1().Deployments(e.Namespace).Get(context.Background(), name, metav1.GetOptions{})
		return err == nil && cond(d)
	})
}

// newReplicaSet returns the ReplicaSet of d's current template.
func (e *env) newReplicaSet(t *testing.T, d *appsv1.Deployment) *appsv1.ReplicaSet {
	t.Helper()
	list, err := e.Clientset.AppsV1().ReplicaSets(e.Namespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		rs := &list.Items[i]
		if metav1.IsControlledBy(rs, d) && rs.Annotations["deployment.kubernetes.io/revision"] == d.Annotations["deployment.kubernetes.io/revision"] {
			return rs
		}
	}
	t.Fatalf("no ReplicaSet of revision %s of %s", d.Annotations["deployment.kubernetes.io/revision"], d.Name)
	return nil
}

func (e *env) job(t *testing.T, name string) *batchv1.Job {
	t.Helper()
	j, err := e.Clientset.BatchV1().Jobs(e.Namespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Job %s: %v", name, err)
	}
	return j
}

func (e *env) waitJob(t *testing.T, name string, cond func(*batchv1.Job) bool) *batchv1.Job {
	t.Helper()
	var j *batchv1.Job
	e.waitFor(t, "Job "+name, func() bool {
		var err error
		j, err = e.Clientset.BatchV1().Jobs(e.Namespace).Get(context.Background(), name, metav1.GetOptions{})
		return err == nil && cond(j)
	})
	return j
}

// eventLog records the changes to Jobs, ReplicaSets and Deployments in the
// namespace, each with its resourceVersion and when the test saw it. The
// resourceVersions order changes across kinds: on this cluster (one etcd)
// they are etcd revisions, so unlike the wall-clock time of a watch event
// or the whole seconds of the API's timestamps, they order changes that
// happen milliseconds apart, exactly.
type eventLog struct {
	mu     sync.Mutex
	events []seen
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type seen struct {
	at  time.Time
	rv  uint64
	obj runtime.Object
}

// before reports whether s happened before o in the cluster.
func (s seen) before(o seen) bool { return s.rv < o.rv }

func (e *env) record(t *testing.T) *eventLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &eventLog{cancel: cancel}
	t.Cleanup(l.stop)
	opts := metav1.ListOptions{}
	appsv, batch := e.Clientset.AppsV1(), e.Clientset.BatchV1()
	for _, w := range []func() (watch.Interface, error){
		func() (watch.Interface, error) { return batch.Jobs(e.Namespace).Watch(ctx, opts) },
		func() (watch.Interface, error) { return appsv.ReplicaSets(e.Namespace).Watch(ctx, opts) },
		func() (watch.Interface, error) { return appsv.Deployments(e.Namespace).Watch(ctx, opts) },
	} {
		wi, err := w()
		if err != nil {
			t.Fatal(err)
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer wi.Stop()
			for ev := range wi.ResultChan() {
				if ev.Type == watch.Error || ev.Type == watch.Deleted {
					continue
				}
				m, err := meta.Accessor(ev.Object)
				if err != nil {
					continue
				}
				rv, err := strconv.ParseUint(m.GetResourceVersion(), 10, 64)
				if err != nil {
					continue
				}
				l.mu.Lock()
				l.events = append(l.events, seen{at: time.Now(), rv: rv, obj: ev.Object})
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *eventLog) stop() {
	l.cancel()
	l.wg.Wait()
}

// first returns the first change after which match held.
func (l *eventLog) first(t *testing.T, what string, match func(runtime.Object) bool) seen {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.events {
		if match(s.obj) {
			return s
		}
	}
	t.Fatalf("never saw %s during the upgrade", what)
	return seen{}
}

func (l *eventLog) objects() []runtime.Object {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]runtime.Object, len(l.events))
	for i, s := range l.events {
		out[i] = s.obj
	}
	return out
}

func newVersion(pt corev1.PodTemplateSpec) bool {
	return len(pt.Spec.Containers) > 0 && strings.HasSuffix(pt.Spec.Containers[0].Image, ":v4.3.3")
}

// rolloutDone: every replica runs the current template and is available,
// and no old one is left.
func rolloutDone(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.AvailableReplicas == want && s.Replicas == want
}

// rolloutTime is when the Deployment controller last finished a rollout.
func rolloutTime(d *appsv1.Deployment) metav1.Time {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "NewReplicaSetAvailable" {
			return c.LastUpdateTime
		}
	}
	return metav1.Time{}
}

func jobComplete(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
			return j.Status.CompletionTime != nil
		}
	}
	return false
}

func ownsReplicas(d *appsv1.Deployment, manager string) bool {
	for _, mf := range d.ManagedFields {
		if mf.Manager == manager && mf.FieldsV1 != nil && strings.Contains(mf.FieldsV1.GetRawString(), `"f:replicas"`) {
			return true
		}
	}
	return false
}

// managers lists who manages d, and how.
func managers(d *appsv1.Deployment) []string {
	var out []string
	for _, mf := range d.ManagedFields {
		out = append(out, fmt.Sprintf("%s (%s %s)", mf.Manager, mf.Operation, mf.Subresource))
	}
	return out
}

func readyMessage(a *tendv1.App) string {
	for _, c := range a.Status.Conditions {
		if c.Type == tendv1.ConditionReady {
			return c.Message
		}
	}
	return ""
}

func ptrString(p *int32) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}

// replaceAll replaces each old with its new in s, failing the test when an
// old string is not there (the example changed under the test).
func replaceAll(t *testing.T, s string, oldNew ...string) string {
	t.Helper()
	for i := 0; i < len(oldNew); i += 2 {
		if !strings.Contains(s, oldNew[i]) {
			t.Fatalf("the example no longer contains %q; update the test", oldNew[i])
		}
		s = strings.ReplaceAll(s, oldNew[i], oldNew[i+1])
	}
	return s
}

// syncBuffer collects the controller's log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	lines := strings.Split(strings.TrimRight(s.b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
