package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
)

// How the Source, AppSet, Cluster and Notifier reconcilers sort errors
// (status.go): transient ones back off, permanent ones stall with one
// event, waits requeue.

// TestSecretReadFailureBacksOff: while the apiserver answers 503 to reads
// of a Secret, a Source needing it and a Cluster whose kubeconfig it is
// are not Ready (and not Stalled), and are tried again with backoff: once
// the apiserver answers they become Ready, though their intervals are
// long and neither they nor their Secrets changed.
func TestSecretReadFailureBacksOff(t *testing.T) {
	var api *flakyAPI
	e := startControllerWith(t, func(o *Options) {
		api = newFlakyAPI(t, o.Config)
		o.Config = api.Config()
	})
	ctx := context.Background()
	repo := testenv.NewGitRepo(t, map[string]string{"app/cm.yaml": configMapYAML("cfg", "v1")}, testenv.GitBasicAuth("tend", "s3cret"))
	api.refuseSecret(e.Namespace, "git-creds")
	api.refuseSecret(e.Namespace, "edge-kubeconfig")

	src := gitSource("repo", repo.URL)
	src.Spec.Git.SecretRef = &tendv1.LocalObjectReference{Name: "git-creds"}
	src.Spec.Interval = metav1.Duration{Duration: time.Hour}
	e.create(t,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "git-creds"}, StringData: map[string]string{"username": "tend", "password": "s3cret"}},
		src,
		// The "remote" cluster is this one, through the proxy.
		kubeconfigSecret("edge-kubeconfig", "kubeconfig", []byte(api.Kubeconfig())),
		remoteCluster("edge", "edge-kubeconfig"),
	)

	// Each read is refused more than once: the retries come from the
	// queue's backoff, not the hour-long interval (nothing else changes).
	eventually(t, "reads of both Secrets retried", 60*time.Second, func() bool {
		return api.refused(e.Namespace, "git-creds") >= 2 && api.refused(e.Namespace, "edge-kubeconfig") >= 2
	})
	s := waitSource(t, e, "repo", "Ready False, ReconcileFailed", func(s *tendv1.Source) bool {
		c := meta.FindStatusCondition(s.Status.Conditions, tendv1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == ReasonReconcileFailed
	})
	if msg := meta.FindStatusCondition(s.Status.Conditions, tendv1.ConditionReady).Message; !strings.Contains(msg, "git-creds") {
		t.Errorf("Ready message %q does not name the Secret", msg)
	}
	if c := meta.FindStatusCondition(s.Status.Conditions, tendv1.ConditionStalled); c != nil {
		t.Errorf("Source Stalled by a failed read: %+v", c)
	}
	cl := e.waitCluster(t, "edge", "Ready False, ReconcileFailed", 30*time.Second, func(cl *tendv1.Cluster) bool {
		c := meta.FindStatusCondition(cl.Status.Conditions, tendv1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == ReasonReconcileFailed
	})
	if c := meta.FindStatusCondition(cl.Status.Conditions, tendv1.ConditionStalled); c != nil {
		t.Errorf("Cluster Stalled by a failed read: %+v", c)
	}

	api.recover()
	s = waitSource(t, e, "repo", "Ready once the Secret can be read", func(s *tendv1.Source) bool {
		return meta.IsStatusConditionTrue(s.Status.Conditions, tendv1.ConditionReady)
	})
	if s.Status.Artifact == nil || s.Status.Artifact.Revision != repo.Head() {
		t.Errorf("artifact = %+v, want revision %s", s.Status.Artifact, repo.Head())
	}
	e.waitCluster(t, "edge", "Ready once the Secret can be read", 2*time.Minute, clusterReady)
	if evs := warnings(t, e, "Source", "repo"); len(evs) != 0 {
		t.Errorf("Warning events for a Source that only waited for the apiserver: %v", evs)
	}
	_ = ctx
}

// TestMissingKubeconfigSecretStallsOnce: a Cluster whose kubeconfig
// Secret does not exist is Stalled, with one event naming the Secret and
// saying to create it, however often it is reconciled; creating the
// Secret (watched) makes it Ready.
func TestMissingKubeconfigSecretStallsOnce(t *testing.T) {
	var api *flakyAPI
	e := startControllerWith(t, func(o *Options) {
		api = newFlakyAPI(t, o.Config)
		o.Config = api.Config()
	})
	ctx := context.Background()
	e.create(t, remoteCluster("edge", "edge-kubeconfig"))
	cl := e.waitCluster(t, "edge", "Stalled, SecretNotFound", 30*time.Second, func(cl *tendv1.Cluster) bool {
		c := meta.FindStatusCondition(cl.Status.Conditions, tendv1.ConditionStalled)
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == ClusterReasonSecretNotFound
	})
	if r := meta.FindStatusCondition(cl.Status.Conditions, tendv1.ConditionReady); r == nil || r.Status != metav1.ConditionFalse || r.Reason != ClusterReasonSecretNotFound {
		t.Errorf("Ready = %+v, want False, SecretNotFound", r)
	}

	// Reconcile it again: spec changes that leave the problem as it is
	// (the key "kubeconfig" is the default).
	for _, key := range []string{"kubeconfig", "", "kubeconfig"} {
		cl = reconcileAgain(t, e, cl, func(cl *tendv1.Cluster) { cl.Spec.KubeconfigSecretRef.Key = key })
		if !meta.IsStatusConditionTrue(cl.Status.Conditions, tendv1.ConditionStalled) {
			t.Fatalf("not Stalled after a reconcile: %+v", cl.Status.Conditions)
		}
	}

	e.create(t, kubeconfigSecret("edge-kubeconfig", "kubeconfig", []byte(api.Kubeconfig())))
	e.waitCluster(t, "edge", "Ready once the Secret exists", 30*time.Second, clusterReady)
	// The Connected event is recorded after the Stalled one.
	eventually(t, "the Connected event", 20*time.Second, func() bool {
		return len(events(t, e, "Cluster", "edge", corev1.EventTypeNormal)) > 0
	})
	evs := warnings(t, e, "Cluster", "edge")
	if len(evs) != 1 {
		t.Fatalf("%d Warning events for the Cluster, want exactly 1: %v", len(evs), evs)
	}
	for _, want := range []string{ClusterReasonSecretNotFound, "Secret " + e.Namespace + "/edge-kubeconfig", "create it"} {
		if !strings.Contains(evs[0], want) {
			t.Errorf("event %q does not say %q", evs[0], want)
		}
	}
	_ = ctx
}

// TestPermanentProblemsStallOnce: a Source whose credentials Secret is
// missing, a Notifier whose Secret is missing and an AppSet whose template
// uses an unknown parameter are Stalled with one event each, however often
// they are reconciled, and recover when fixed.
func TestPermanentProblemsStallOnce(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	repo := testenv.NewGitRepo(t, map[string]string{"apps/web/cm.yaml": configMapYAML("web", "v1")}, testenv.GitBasicAuth("tend", "s3cret"))
	src := gitSource("repo", repo.URL)
	src.Spec.Git.SecretRef = &tendv1.LocalObjectReference{Name: "git-creds"}
	src.Spec.Interval = metav1.Duration{Duration: time.Hour}
	notifier := &tendv1.Notifier{ObjectMeta: metav1.ObjectMeta{Name: "chat"}, Spec: tendv1.NotifierSpec{
		Provider: "discord", SecretRef: &tendv1.LocalObjectReference{Name: "discord-url"},
		// Nothing to deliver here: Ready is the reconciler's alone.
		Events: []tendv1.NotifierEvent{"RolledBack"},
	}}
	set := &tendv1.AppSet{ObjectMeta: metav1.ObjectMeta{Name: "list"}, Spec: tendv1.AppSetSpec{
		Generators: []tendv1.Generator{{List: &tendv1.ListGenerator{Elements: []map[string]string{{"name": "one"}}}}},
		Template: tendv1.AppTemplate{
			Metadata: tendv1.AppTemplateMeta{Name: "{{name}}"},
			Spec: tendv1.AppSpec{
				SourceRef: tendv1.NamespacedObjectReference{Name: "repo"}, Path: "apps/{{cluster}}",
				Destination: tendv1.Destination{Namespace: e.Namespace},
			},
		},
	}}
	e.create(t, src, notifier, set)

	type stalledObj struct {
		obj    client.Object
		kind   string
		reason string
		says   []string
		again  func(client.Object) // a spec change that leaves the problem
		fix    func()
	}
	for _, tc := range []stalledObj{
		{&tendv1.Source{}, "Source", ReasonSecretInvalid, []string{"git-creds", "not found", "create it"},
			func(o client.Object) { o.(*tendv1.Source).Spec.Interval.Duration += time.Hour },
			func() {
				// The Source watches its Secret.
				e.create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "git-creds"}, StringData: map[string]string{"username": "tend", "password": "s3cret"}})
			}},
		{&tendv1.Notifier{}, "Notifier", "InvalidConfig", []string{`"discord-url"`, "not found", "create it"},
			func(o client.Object) { o.(*tendv1.Notifier).Spec.Username += "x" },
			func() {
				// The Notifier watches its Secret.
				e.create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "discord-url"}, StringData: map[string]string{"address": "http://127.0.0.1:9/hook"}})
			}},
		{&tendv1.AppSet{}, "AppSet", AppSetReasonInvalidTemplate, []string{"{{cluster}}", "list element 0"},
			func(o client.Object) { o.(*tendv1.AppSet).Spec.PruneApps = !o.(*tendv1.AppSet).Spec.PruneApps },
			func() {
				var s tendv1.AppSet
				update(t, e, "list", &s, func(o client.Object) { o.(*tendv1.AppSet).Spec.Template.Spec.Path = "apps/web" })
			}},
	} {
		name := map[string]string{"Source": "repo", "Notifier": "chat", "AppSet": "list"}[tc.kind]
		t.Run(tc.kind, func(t *testing.T) {
			obj := tc.obj
			waitObj(t, e, name, obj, "Stalled, "+tc.reason, func() bool {
				c := meta.FindStatusCondition(*conditionsOf(obj), tendv1.ConditionStalled)
				return c != nil && c.Status == metav1.ConditionTrue && c.Reason == tc.reason
			})
			for range 2 {
				gen := update(t, e, name, obj, tc.again)
				waitObj(t, e, name, obj, "reconciled at its new generation", func() bool {
					return observedGeneration(obj) >= gen
				})
				if !meta.IsStatusConditionTrue(*conditionsOf(obj), tendv1.ConditionStalled) {
					t.Fatalf("not Stalled after a reconcile: %+v", *conditionsOf(obj))
				}
			}
			tc.fix()
			waitObj(t, e, name, obj, "Ready once fixed", func() bool {
				return meta.IsStatusConditionTrue(*conditionsOf(obj), tendv1.ConditionReady) &&
					meta.FindStatusCondition(*conditionsOf(obj), tendv1.ConditionStalled) == nil
			})
			evs := warnings(t, e, tc.kind, name)
			if len(evs) != 1 {
				t.Fatalf("%d Warning events for the %s, want exactly 1: %v", len(evs), tc.kind, evs)
			}
			for _, want := range append([]string{tc.reason}, tc.says...) {
				if !strings.Contains(evs[0], want) {
					t.Errorf("event %q does not say %q", evs[0], want)
				}
			}
		})
	}
	_ = ctx
}

// TestAppSetWaitsForItsSource: an AppSet reading a Source that does not
// exist yet waits (Ready False, ArtifactNotReady; not Stalled, no event)
// and generates its Apps once the Source has fetched.
func TestAppSetWaitsForItsSource(t *testing.T) {
	e := startController(t)
	repo := newCtlRepo(t)
	repo.commit("apps", map[string]string{"apps/web/cm.yaml": configMapYAML("web", "v1")})
	e.create(t, &tendv1.AppSet{ObjectMeta: metav1.ObjectMeta{Name: "dirs"}, Spec: tendv1.AppSetSpec{
		Generators: []tendv1.Generator{{Directories: &tendv1.DirectoriesGenerator{
			SourceRef: tendv1.NamespacedObjectReference{Name: "later"}, Include: []string{"apps/*"},
		}}},
		Template: tendv1.AppTemplate{
			Metadata: tendv1.AppTemplateMeta{Name: "{{path.basename}}"},
			Spec: tendv1.AppSpec{
				SourceRef: tendv1.NamespacedObjectReference{Name: "later"}, Path: "{{path}}",
				Destination: tendv1.Destination{Namespace: e.Namespace},
			},
		},
	}})
	var set tendv1.AppSet
	waitObj(t, e, "dirs", &set, "Ready False, ArtifactNotReady", func() bool {
		c := meta.FindStatusCondition(set.Status.Conditions, tendv1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == AppSetReasonArtifactNotReady
	})
	if c := meta.FindStatusCondition(set.Status.Conditions, tendv1.ConditionStalled); c != nil {
		t.Errorf("Stalled while waiting: %+v", c)
	}
	if msg := meta.FindStatusCondition(set.Status.Conditions, tendv1.ConditionReady).Message; !strings.Contains(msg, e.Namespace+"/later") {
		t.Errorf("Ready message %q does not name the Source", msg)
	}

	e.create(t, gitSource("later", repo.URL))
	waitObj(t, e, "dirs", &set, "Ready once the Source fetched", func() bool {
		return meta.IsStatusConditionTrue(set.Status.Conditions, tendv1.ConditionReady) && len(set.Status.Apps) == 1
	})
	if evs := warnings(t, e, "AppSet", "dirs"); len(evs) != 0 {
		t.Errorf("Warning events for an AppSet that waited: %v", evs)
	}
}

// reconcileAgain changes the Cluster's spec with edit and waits until it
// was reconciled at the new generation.
func reconcileAgain(t *testing.T, e *ctlEnv, cl *tendv1.Cluster, edit func(*tendv1.Cluster)) *tendv1.Cluster {
	t.Helper()
	gen := update(t, e, cl.Name, &tendv1.Cluster{}, func(o client.Object) { edit(o.(*tendv1.Cluster)) })
	return e.waitCluster(t, cl.Name, "reconciled at its new generation", 30*time.Second, func(cl *tendv1.Cluster) bool {
		return cl.Status.ObservedGeneration >= gen
	})
}

// update reads object name into obj, changes it with edit and writes it,
// retrying on conflicts; it returns the new generation.
func update(t *testing.T, e *ctlEnv, name string, obj client.Object, edit func(client.Object)) int64 {
	t.Helper()
	ctx := context.Background()
	for range 10 {
		if err := e.c.Get(ctx, types.NamespacedName{Namespace: e.Namespace, Name: name}, obj); err != nil {
			t.Fatal(err)
		}
		gen := obj.GetGeneration()
		edit(obj)
		err := e.c.Update(ctx, obj)
		if err == nil {
			if obj.GetGeneration() == gen {
				t.Fatalf("the edit of %s did not change its spec", name)
			}
			return obj.GetGeneration()
		}
		if !apierrors.IsConflict(err) {
			t.Fatal(err)
		}
	}
	t.Fatalf("update %s: conflicts", name)
	return 0
}

// waitObj reads object name into obj until cond holds.
func waitObj(t *testing.T, e *ctlEnv, name string, obj client.Object, what string, cond func() bool) {
	t.Helper()
	var err error
	defer func() {
		if t.Failed() {
			b, _ := json.Marshal(obj)
			t.Logf("%s as last read (error %v):\n%s", name, err, b)
		}
	}()
	eventually(t, name+": "+what, 60*time.Second, func() bool {
		err = e.c.Get(context.Background(), types.NamespacedName{Namespace: e.Namespace, Name: name}, obj)
		return err == nil && cond()
	})
}

func conditionsOf(obj client.Object) *[]metav1.Condition {
	switch o := obj.(type) {
	case *tendv1.Source:
		return &o.Status.Conditions
	case *tendv1.Notifier:
		return &o.Status.Conditions
	case *tendv1.AppSet:
		return &o.Status.Conditions
	case *tendv1.Cluster:
		return &o.Status.Conditions
	}
	panic(fmt.Sprintf("no conditions in %T", obj))
}

func observedGeneration(obj client.Object) int64 {
	switch o := obj.(type) {
	case *tendv1.Source:
		return o.Status.ObservedGeneration
	case *tendv1.Notifier:
		return o.Status.ObservedGeneration
	case *tendv1.AppSet:
		return o.Status.ObservedGeneration
	case *tendv1.Cluster:
		return o.Status.ObservedGeneration
	}
	panic(fmt.Sprintf("no observedGeneration in %T", obj))
}

// warnings lists the Warning events about an object as "reason: note",
// an event recorded n times (a series) n times.
func warnings(t *testing.T, e *ctlEnv, kind, name string) []string {
	return events(t, e, kind, name, corev1.EventTypeWarning)
}

func events(t *testing.T, e *ctlEnv, kind, name, typ string) []string {
	t.Helper()
	list, err := e.Clientset.EventsV1().Events(e.Namespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range list.Items {
		if ev.Regarding.Kind != kind || ev.Regarding.Name != name || ev.Type != typ {
			continue
		}
		n := 1
		if ev.Series != nil && ev.Series.Count > 1 {
			n = int(ev.Series.Count)
		}
		for range n {
			out = append(out, ev.Reason+": "+ev.Note)
		}
	}
	return out
}

// flakyAPI is a proxy in front of the apiserver that can answer 503 to
// GETs of chosen Secrets, as an overloaded or restarting apiserver does.
// Its kubeconfig, with no credentials (the proxy adds them), makes a
// Cluster that is the test's own cluster.
type flakyAPI struct {
	*testenv.APIProxy

	mu      sync.Mutex
	refuse  map[string]bool // namespace/name
	counts  map[string]*atomic.Int64
	healthy bool
}

func newFlakyAPI(t *testing.T, cfg *rest.Config) *flakyAPI {
	t.Helper()
	p := &flakyAPI{refuse: map[string]bool{}, counts: map[string]*atomic.Int64{}}
	p.APIProxy = testenv.NewAPIProxy(t, cfg, testenv.ProxyOptions{Handle: func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if p.refused1(r) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(metav1.Status{
				TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
				Status:   metav1.StatusFailure, Code: http.StatusServiceUnavailable,
				Reason: metav1.StatusReasonServiceUnavailable, Message: "the apiserver is unavailable (test proxy)",
			})
			return
		}
		next.ServeHTTP(w, r)
	}})
	return p
}

// refused1 reports whether a read of a Secret is to be refused, counting
// it.
func (p *flakyAPI) refused1(r *http.Request) bool {
	ns, name, ok := testenv.SecretRead(r)
	if !ok {
		return false
	}
	key := ns + "/" + name
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.healthy || !p.refuse[key] {
		return false
	}
	p.counter(key).Add(1)
	return true
}

func (p *flakyAPI) counter(key string) *atomic.Int64 {
	c, ok := p.counts[key]
	if !ok {
		c = &atomic.Int64{}
		p.counts[key] = c
	}
	return c
}

func (p *flakyAPI) refuseSecret(ns, name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse[ns+"/"+name] = true
}

// refused returns how many GETs of the Secret were refused.
func (p *flakyAPI) refused(ns, name string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counter(ns + "/" + name).Load()
}

// recover makes the proxy pass every request on.
func (p *flakyAPI) recover() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.healthy = true
}
