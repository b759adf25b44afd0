package example_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tend-gitops/tend/internal/testenv/platform"
)

// env is the platform test's environment (the cluster, the controller in
// this process, clients) with this example's checks.
type env struct {
	*platform.Env
	c   client.Client
	dyn dynamic.Interface
}

func setup(t *testing.T) *env {
	t.Helper()
	pe := platform.Start(t, platform.Options{Apps: apps, CRDs: exampleCRDs})
	return &env{Env: pe, c: pe.Client, dyn: pe.Dynamic}
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
	e.WaitFor(t, "Deployment "+name+" "+what, func() bool {
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
	e.WaitFor(t, "Job "+name, func() bool {
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

func ptrString(p *int32) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}
