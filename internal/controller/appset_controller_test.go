package controller

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/artifact"
	"github.com/tend-gitops/tend/internal/testenv"
)

// appSetScheme knows client-go's types and tend's.
var appSetScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()

// appSetWrites counts write requests (anything but GET) at the transport.
type appSetWrites struct {
	n   atomic.Int64
	mu  sync.Mutex
	log []string
}

func (w *appSetWrites) wrap(rt http.RoundTripper) http.RoundTripper {
	return appSetRoundTrip(func(r *http.Request) (*http.Response, error) {
		if r.Method != http.MethodGet {
			w.n.Add(1)
			w.mu.Lock()
			w.log = append(w.log, r.Method+" "+r.URL.Path)
			w.mu.Unlock()
		}
		return rt.RoundTrip(r)
	})
}

func (w *appSetWrites) reset() {
	w.n.Store(0)
	w.mu.Lock()
	w.log = nil
	w.mu.Unlock()
}

func (w *appSetWrites) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.log, ", ")
}

type appSetRoundTrip func(*http.Request) (*http.Response, error)

func (f appSetRoundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// appSetFixture runs an AppSetReconciler against the test cluster with a
// temp directory as the checkout of Source "repo".
type appSetFixture struct {
	env    *testenv.Env
	cl     client.Client
	writes *appSetWrites
	arts   *artifact.Store
	r      *AppSetReconciler
	src    types.NamespacedName
	dir    string
	rev    int
}

func newAppSetFixture(t *testing.T) *appSetFixture {
	t.Helper()
	env := testenv.New(t)
	testenv.InstallCRDs(t, env.Config)
	writes := &appSetWrites{}
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(writes.wrap)
	cl, err := client.New(cfg, client.Options{Scheme: appSetScheme})
	if err != nil {
		t.Fatal(err)
	}
	f := &appSetFixture{
		env: env, cl: cl, writes: writes, arts: artifact.NewStore(t.TempDir(), nil),
		src: types.NamespacedName{Namespace: env.Namespace, Name: "repo"},
		dir: t.TempDir(),
	}
	f.r = &AppSetReconciler{Client: cl, Artifacts: f.arts, Log: slog.New(slog.NewTextHandler(t.Output(), nil))}
	f.publish(t)
	return f
}

// tree creates directories (ending in /) and files in the checkout.
func (f *appSetFixture) tree(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		full := filepath.Join(f.dir, filepath.FromSlash(p))
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("kind: ConfigMap\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f.publish(t)
}

// publish records a new revision of the checkout, as a fetch does.
func (f *appSetFixture) publish(t *testing.T) {
	t.Helper()
	f.rev++
	f.arts.Set(f.src, artifact.Artifact{Dir: f.dir, Revision: fmt.Sprintf("rev%d", f.rev)}, nil)
}

func (f *appSetFixture) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// dirSet returns an AppSet generating one App per directory apps/*.
func (f *appSetFixture) dirSet(name string) *v1alpha1.AppSet {
	return &v1alpha1.AppSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.env.Namespace, Name: name},
		Spec: v1alpha1.AppSetSpec{
			Generators: []v1alpha1.Generator{{Directories: &v1alpha1.DirectoriesGenerator{
				SourceRef: v1alpha1.NamespacedObjectReference{Name: f.src.Name},
				Include:   []string{"apps/*"},
			}}},
			Template: v1alpha1.AppTemplate{
				Metadata: v1alpha1.AppTemplateMeta{
					Name:   "{{path.basename}}",
					Labels: map[string]string{"team": "team-{{name}}"},
				},
				Spec: v1alpha1.AppSpec{
					SourceRef:   v1alpha1.NamespacedObjectReference{Name: f.src.Name},
					Path:        "{{path}}",
					Destination: v1alpha1.Destination{Namespace: "{{name}}", CreateNamespace: true},
					Sync:        v1alpha1.SyncPolicy{Prune: true},
				},
			},
		},
	}
}

func (f *appSetFixture) create(t *testing.T, set *v1alpha1.AppSet) {
	t.Helper()
	if err := f.cl.Create(f.ctx(t), set); err != nil {
		t.Fatalf("create AppSet: %v", err)
	}
}

// reconcile runs one reconcile of AppSet name.
func (f *appSetFixture) reconcile(t *testing.T, name string) ctrl.Result {
	t.Helper()
	res, err := f.r.Reconcile(f.ctx(t), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: f.env.Namespace, Name: name}})
	if err != nil {
		t.Fatalf("reconcile AppSet %s: %v", name, err)
	}
	return res
}

func (f *appSetFixture) get(t *testing.T, name string) *v1alpha1.AppSet {
	t.Helper()
	set := &v1alpha1.AppSet{}
	if err := f.cl.Get(f.ctx(t), types.NamespacedName{Namespace: f.env.Namespace, Name: name}, set); err != nil {
		t.Fatal(err)
	}
	return set
}

// update changes AppSet name with edit, retrying on conflicts.
func (f *appSetFixture) update(t *testing.T, name string, edit func(*v1alpha1.AppSet)) {
	t.Helper()
	for range 5 {
		set := f.get(t, name)
		edit(set)
		err := f.cl.Update(f.ctx(t), set)
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			t.Fatal(err)
		}
	}
	t.Fatalf("update AppSet %s: conflicts", name)
}

// apps returns the Apps in the namespace by name.
// apps returns the Apps in the namespace. No App controller runs in these
// tests, so apps plays its part for deleted Apps: it removes the
// finalizer (after pruning, the controller would) and leaves them out.
func (f *appSetFixture) apps(t *testing.T) map[string]v1alpha1.App {
	t.Helper()
	var list v1alpha1.AppList
	if err := f.cl.List(f.ctx(t), &list, client.InNamespace(f.env.Namespace)); err != nil {
		t.Fatal(err)
	}
	out := map[string]v1alpha1.App{}
	for _, a := range list.Items {
		if !a.DeletionTimestamp.IsZero() {
			orig := a.DeepCopy()
			controllerutil.RemoveFinalizer(&a, Finalizer)
			if err := f.cl.Patch(f.ctx(t), &a, client.MergeFrom(orig)); client.IgnoreNotFound(err) != nil {
				t.Fatalf("release deleted App %s: %v", a.Name, err)
			}
			continue
		}
		out[a.Name] = a
	}
	return out
}

func appSetNames(apps map[string]v1alpha1.App) []string {
	out := []string{}
	for n := range apps {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func appSetCond(t *testing.T, set *v1alpha1.AppSet, typ string) *metav1.Condition {
	t.Helper()
	c := meta.FindStatusCondition(set.Status.Conditions, typ)
	if c == nil {
		t.Fatalf("AppSet %s has no %s condition; conditions: %+v", set.Name, typ, set.Status.Conditions)
	}
	return c
}

func TestAppSetDirectoriesGenerateApps(t *testing.T) {
	f := newAppSetFixture(t)
	f.tree(t, "apps/a/", "apps/b/", "apps/.hidden/", "apps/file.yaml", "other/x/")
	f.create(t, f.dirSet("platform"))
	res := f.reconcile(t, "platform")
	if res.RequeueAfter <= 0 {
		t.Errorf("RequeueAfter = %v: a directories AppSet must be looked at again", res.RequeueAfter)
	}

	set := f.get(t, "platform")
	apps := f.apps(t)
	if got, want := strings.Join(appSetNames(apps), ","), "a,b"; got != want {
		t.Fatalf("Apps = %s, want %s (hidden directories and files are not Apps)", got, want)
	}
	for _, name := range []string{"a", "b"} {
		app := apps[name]
		if got, want := app.Spec.Path, "apps/"+name; got != want {
			t.Errorf("App %s: path = %q, want %q", name, got, want)
		}
		if got, want := app.Spec.Destination.Namespace, name; got != want {
			t.Errorf("App %s: destination namespace = %q, want %q", name, got, want)
		}
		if got, want := app.Labels[AppSetLabel], "platform"; got != want {
			t.Errorf("App %s: label %s = %q, want %q", name, AppSetLabel, got, want)
		}
		if got, want := app.Labels["team"], "team-"+name; got != want {
			t.Errorf("App %s: label team = %q, want %q", name, got, want)
		}
		ref := metav1.GetControllerOf(&app)
		if ref == nil || ref.UID != set.UID || ref.Kind != "AppSet" || ref.Name != "platform" {
			t.Errorf("App %s: controller = %+v, want AppSet platform (uid %s)", name, ref, set.UID)
		}
		// The template leaves the interval unset: the App gets the CRD
		// default like a hand-written App, not an explicit 0s.
		if got, want := app.Spec.Sync.Interval.Duration, 10*time.Minute; got != want {
			t.Errorf("App %s: sync.interval = %v, want the CRD default %v", name, got, want)
		}
		if !app.Spec.Sync.Prune {
			t.Errorf("App %s: sync.prune not set", name)
		}
		// Created with the App controller's finalizer: no patch of its
		// own needed to add it.
		if !slices.Contains(app.Finalizers, Finalizer) {
			t.Errorf("App %s: finalizers %v, want %s from the AppSet", name, app.Finalizers, Finalizer)
		}
	}
	if got, want := strings.Join(set.Status.Apps, ","), "a,b"; got != want {
		t.Errorf("status.apps = %s, want %s", got, want)
	}
	if got, want := set.Status.ObservedGeneration, set.Generation; got != want {
		t.Errorf("observedGeneration = %d, want %d", got, want)
	}
	ready := appSetCond(t, set, v1alpha1.ConditionReady)
	if ready.Status != metav1.ConditionTrue || ready.Message != "2 Apps generated" {
		t.Errorf("Ready = %s %q, want True %q", ready.Status, ready.Message, "2 Apps generated")
	}
	if meta.FindStatusCondition(set.Status.Conditions, v1alpha1.ConditionStalled) != nil {
		t.Errorf("Stalled condition set: %+v", set.Status.Conditions)
	}
}

func TestAppSetNewDirectoryThenSteadyState(t *testing.T) {
	f := newAppSetFixture(t)
	f.tree(t, "apps/a/", "apps/b/")
	f.create(t, f.dirSet("platform"))
	f.reconcile(t, "platform")

	f.tree(t, "apps/c/")
	f.reconcile(t, "platform")
	apps := f.apps(t)
	if got, want := strings.Join(appSetNames(apps), ","), "a,b,c"; got != want {
		t.Fatalf("Apps after adding apps/c = %s, want %s", got, want)
	}
	if got, want := apps["c"].Spec.Path, "apps/c"; got != want {
		t.Errorf("App c: path = %q, want %q", got, want)
	}
	if got, want := strings.Join(f.get(t, "platform").Status.Apps, ","), "a,b,c"; got != want {
		t.Errorf("status.apps = %s, want %s", got, want)
	}

	// Nothing changed: no write at all, however often it runs.
	versions := map[string]string{}
	for n, a := range apps {
		versions[n] = a.ResourceVersion
	}
	setVersion := f.get(t, "platform").ResourceVersion
	f.writes.reset()
	for range 3 {
		f.reconcile(t, "platform")
	}
	if n := f.writes.n.Load(); n != 0 {
		t.Errorf("steady state: %d writes (%s), want 0", n, f.writes)
	}
	for n, a := range f.apps(t) {
		if a.ResourceVersion != versions[n] {
			t.Errorf("App %s changed in steady state: resourceVersion %s -> %s", n, versions[n], a.ResourceVersion)
		}
	}
	if got := f.get(t, "platform").ResourceVersion; got != setVersion {
		t.Errorf("AppSet changed in steady state: resourceVersion %s -> %s", setVersion, got)
	}

	// Someone else sets a field the template does not (tend rollback pins
	// a revision): the AppSet leaves it alone and still writes nothing.
	a := apps["a"]
	a.Spec.TargetRevision = "abc1234"
	if err := f.cl.Update(f.ctx(t), &a, client.FieldOwner("tend-rollback")); err != nil {
		t.Fatal(err)
	}
	f.writes.reset()
	f.reconcile(t, "platform")
	if n := f.writes.n.Load(); n != 0 {
		t.Errorf("after a foreign field change: %d writes (%s), want 0", n, f.writes)
	}
	if got := f.apps(t)["a"].Spec.TargetRevision; got != "abc1234" {
		t.Errorf("targetRevision = %q, want the rollback's abc1234 kept", got)
	}

	// Someone changes a field the template sets: the AppSet puts it back.
	a = f.apps(t)["a"]
	a.Spec.Path = "elsewhere"
	if err := f.cl.Update(f.ctx(t), &a); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t, "platform")
	if got := f.apps(t)["a"].Spec.Path; got != "apps/a" {
		t.Errorf("path after drift = %q, want apps/a restored", got)
	}

	// Removing fields from the template removes them from every App.
	f.update(t, "platform", func(s *v1alpha1.AppSet) {
		s.Spec.Template.Metadata.Labels = nil
		s.Spec.Template.Spec.Destination.CreateNamespace = false
	})
	f.reconcile(t, "platform")
	for n, app := range f.apps(t) {
		if _, ok := app.Labels["team"]; ok || app.Labels[AppSetLabel] != "platform" {
			t.Errorf("App %s: labels %v, want only %s", n, app.Labels, AppSetLabel)
		}
		if app.Spec.Destination.CreateNamespace {
			t.Errorf("App %s: createNamespace still set after the template dropped it", n)
		}
	}
	f.writes.reset()
	f.reconcile(t, "platform")
	if n := f.writes.n.Load(); n != 0 {
		t.Errorf("steady state after template change: %d writes (%s), want 0", n, f.writes)
	}
}

func TestAppSetRemovedDirectory(t *testing.T) {
	f := newAppSetFixture(t)
	f.tree(t, "apps/a/", "apps/b/")
	f.create(t, f.dirSet("platform"))
	f.reconcile(t, "platform")

	if err := os.RemoveAll(filepath.Join(f.dir, "apps", "b")); err != nil {
		t.Fatal(err)
	}
	f.publish(t)
	f.reconcile(t, "platform")
	if got, want := strings.Join(appSetNames(f.apps(t)), ","), "a,b"; got != want {
		t.Fatalf("Apps without pruneApps = %s, want %s (b kept)", got, want)
	}
	set := f.get(t, "platform")
	if got, want := strings.Join(set.Status.Orphaned, ","), "b"; got != want {
		t.Errorf("status.orphaned = %q, want %q", got, want)
	}
	if got, want := strings.Join(set.Status.Apps, ","), "a"; got != want {
		t.Errorf("status.apps = %q, want %q", got, want)
	}
	ready := appSetCond(t, set, v1alpha1.ConditionReady)
	if ready.Status != metav1.ConditionTrue || !strings.HasPrefix(ready.Message, "1 App generated") || !strings.Contains(ready.Message, "pruneApps") {
		t.Errorf("Ready = %s %q, want True mentioning the kept App and pruneApps", ready.Status, ready.Message)
	}

	f.update(t, "platform", func(s *v1alpha1.AppSet) { s.Spec.PruneApps = true })
	f.reconcile(t, "platform")
	if got, want := strings.Join(appSetNames(f.apps(t)), ","), "a"; got != want {
		t.Fatalf("Apps with pruneApps = %s, want %s (b deleted)", got, want)
	}
	set = f.get(t, "platform")
	if len(set.Status.Orphaned) != 0 {
		t.Errorf("status.orphaned = %v, want none", set.Status.Orphaned)
	}
	if got, want := appSetCond(t, set, v1alpha1.ConditionReady).Message, "1 App generated"; got != want {
		t.Errorf("Ready message = %q, want %q", got, want)
	}
}

func TestAppSetListGenerator(t *testing.T) {
	f := newAppSetFixture(t)
	set := &v1alpha1.AppSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.env.Namespace, Name: "envs"},
		Spec: v1alpha1.AppSetSpec{
			Generators: []v1alpha1.Generator{{List: &v1alpha1.ListGenerator{Elements: []map[string]string{
				{"name": "dev", "replicas": "1"},
				{"name": "prod", "replicas": "3"},
			}}}},
			Template: v1alpha1.AppTemplate{
				Metadata: v1alpha1.AppTemplateMeta{Name: "web-{{name}}", Annotations: map[string]string{"example.com/env": "{{ name }}"}},
				Spec: v1alpha1.AppSpec{
					SourceRef: v1alpha1.NamespacedObjectReference{Name: "charts"},
					Chart:     &v1alpha1.ChartSpec{Name: "web"},
					Helm: &v1alpha1.HelmSpec{Values: &apiextensionsv1.JSON{
						Raw: []byte(`{"replicas":"{{replicas}}","env":{"name":"{{name}}"}}`),
					}},
					Destination: v1alpha1.Destination{Namespace: "web-{{name}}"},
				},
			},
		},
	}
	f.create(t, set)
	res := f.reconcile(t, "envs")
	if res.RequeueAfter != 0 {
		t.Errorf("RequeueAfter = %v: a list AppSet changes only with its spec", res.RequeueAfter)
	}
	apps := f.apps(t)
	if got, want := strings.Join(appSetNames(apps), ","), "web-dev,web-prod"; got != want {
		t.Fatalf("Apps = %s, want %s", got, want)
	}
	for env, replicas := range map[string]string{"dev": "1", "prod": "3"} {
		app := apps["web-"+env]
		if got, want := string(app.Spec.Helm.Values.Raw), fmt.Sprintf(`{"env":{"name":%q},"replicas":%q}`, env, replicas); got != want {
			t.Errorf("App web-%s: values = %s, want %s", env, got, want)
		}
		if got, want := app.Annotations["example.com/env"], env; got != want {
			t.Errorf("App web-%s: annotation = %q, want %q", env, got, want)
		}
		if got, want := app.Spec.Destination.Namespace, "web-"+env; got != want {
			t.Errorf("App web-%s: destination = %q, want %q", env, got, want)
		}
	}
	f.writes.reset()
	f.reconcile(t, "envs")
	if n := f.writes.n.Load(); n != 0 {
		t.Errorf("steady state: %d writes (%s), want 0", n, f.writes)
	}
}

func TestAppSetStalled(t *testing.T) {
	f := newAppSetFixture(t)
	f.tree(t, "apps/web/", "apps/Bad_Dir/")
	list := func(names ...string) []v1alpha1.Generator {
		var els []map[string]string
		for _, n := range names {
			els = append(els, map[string]string{"name": n})
		}
		return []v1alpha1.Generator{{List: &v1alpha1.ListGenerator{Elements: els}}}
	}
	for _, tc := range []struct {
		name   string
		edit   func(*v1alpha1.AppSet)
		reason string
		want   []string
	}{
		{"unknown-placeholder", func(s *v1alpha1.AppSet) { s.Spec.Template.Spec.Path = "{{path}}/{{cluster}}" },
			AppSetReasonInvalidTemplate, []string{"{{cluster}}"}},
		{"invalid-name", func(s *v1alpha1.AppSet) {}, // apps/Bad_Dir makes App "Bad_Dir"
			AppSetReasonInvalidTemplate, []string{`"Bad_Dir"`, "directory apps/Bad_Dir", "DNS-1123"}},
		{"duplicate-name", func(s *v1alpha1.AppSet) {
			s.Spec.Generators = list("x", "y")
			s.Spec.Template.Metadata.Name = "same"
			s.Spec.Template.Metadata.Labels = nil
			s.Spec.Template.Spec.Path = "{{name}}"
			s.Spec.Template.Spec.Destination.Namespace = ""
		}, AppSetReasonDuplicateName, []string{"list element 0 {name=x}", "list element 1 {name=y}", `"same"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := f.dirSet(tc.name)
			tc.edit(set)
			f.create(t, set)
			f.reconcile(t, tc.name)
			got := f.get(t, tc.name)
			stalled := appSetCond(t, got, v1alpha1.ConditionStalled)
			if stalled.Status != metav1.ConditionTrue || stalled.Reason != tc.reason {
				t.Errorf("Stalled = %s %s, want True %s", stalled.Status, stalled.Reason, tc.reason)
			}
			for _, w := range tc.want {
				if !strings.Contains(stalled.Message, w) {
					t.Errorf("Stalled message %q does not mention %q", stalled.Message, w)
				}
			}
			if ready := appSetCond(t, got, v1alpha1.ConditionReady); ready.Status != metav1.ConditionFalse {
				t.Errorf("Ready = %s, want False", ready.Status)
			}
			for n, app := range f.apps(t) {
				if app.Labels[AppSetLabel] == tc.name {
					t.Errorf("App %s created by a stalled AppSet", n)
				}
			}
			f.writes.reset()
			f.reconcile(t, tc.name)
			if n := f.writes.n.Load(); n != 0 {
				t.Errorf("stalled steady state: %d writes (%s), want 0", n, f.writes)
			}
		})
	}

	// Fixing the spec clears Stalled.
	f.update(t, "unknown-placeholder", func(s *v1alpha1.AppSet) {
		s.Spec.Template.Spec.Path = "{{path}}"
		s.Spec.Generators[0].Directories.Exclude = []string{"apps/Bad_Dir"}
	})
	f.reconcile(t, "unknown-placeholder")
	got := f.get(t, "unknown-placeholder")
	if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionStalled); c != nil {
		t.Errorf("Stalled still set after the fix: %+v", c)
	}
	if ready := appSetCond(t, got, v1alpha1.ConditionReady); ready.Status != metav1.ConditionTrue {
		t.Errorf("Ready after the fix = %s %q, want True", ready.Status, ready.Message)
	}
}

func TestAppSetWaitsForArtifact(t *testing.T) {
	f := newAppSetFixture(t)
	set := f.dirSet("early")
	set.Spec.Generators[0].Directories.SourceRef.Name = "not-fetched"
	f.create(t, set)
	res := f.reconcile(t, "early")
	if res.RequeueAfter <= 0 || res.RequeueAfter > 30*time.Second {
		t.Errorf("RequeueAfter = %v, want a few seconds", res.RequeueAfter)
	}
	ready := appSetCond(t, f.get(t, "early"), v1alpha1.ConditionReady)
	if ready.Status != metav1.ConditionFalse || ready.Reason != AppSetReasonArtifactNotReady || !strings.Contains(ready.Message, f.env.Namespace+"/not-fetched") {
		t.Errorf("Ready = %s %s %q, want False ArtifactNotReady naming the Source", ready.Status, ready.Reason, ready.Message)
	}
	if c := meta.FindStatusCondition(f.get(t, "early").Status.Conditions, v1alpha1.ConditionStalled); c != nil {
		t.Errorf("Stalled set while waiting: %+v", c)
	}
}

func TestAppSetLeavesForeignApps(t *testing.T) {
	f := newAppSetFixture(t)
	f.tree(t, "apps/a/", "apps/b/")
	handmade := &v1alpha1.App{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.env.Namespace, Name: "b"},
		Spec:       v1alpha1.AppSpec{SourceRef: v1alpha1.NamespacedObjectReference{Name: "other"}, Path: "mine"},
	}
	if err := f.cl.Create(f.ctx(t), handmade); err != nil {
		t.Fatal(err)
	}
	f.create(t, f.dirSet("platform"))
	f.reconcile(t, "platform")
	apps := f.apps(t)
	if got := apps["b"].Spec.Path; got != "mine" {
		t.Errorf("hand-made App b: path = %q, want it left alone", got)
	}
	if got := apps["a"].Spec.Path; got != "apps/a" {
		t.Errorf("App a: path = %q, want apps/a", got)
	}
	set := f.get(t, "platform")
	ready := appSetCond(t, set, v1alpha1.ConditionReady)
	if ready.Status != metav1.ConditionFalse || ready.Reason != AppSetReasonAppConflict || !strings.Contains(ready.Message, "App b") {
		t.Errorf("Ready = %s %s %q, want False AppConflict naming App b", ready.Status, ready.Reason, ready.Message)
	}
	if got, want := strings.Join(set.Status.Apps, ","), "a"; got != want {
		t.Errorf("status.apps = %q, want %q", got, want)
	}
}

// TestAppSetManager runs the reconciler in a manager: Apps appear, come
// back when deleted, follow SourceChanged, and go with their AppSet.
func TestAppSetManager(t *testing.T) {
	f := newAppSetFixture(t)
	f.tree(t, "apps/a/")
	mgr, err := ctrl.NewManager(f.env.Config, ctrl.Options{
		Scheme:     appSetScheme,
		Logger:     logr.FromSlogHandler(slog.NewTextHandler(io.Discard, nil)),
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Cache:      cache.Options{DefaultNamespaces: map[string]cache.Config{f.env.Namespace: {}}},
		Controller: config.Controller{SkipNameValidation: new(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &AppSetReconciler{Client: mgr.GetClient(), Artifacts: f.arts, Resync: time.Hour, Log: f.r.Log}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})

	f.create(t, f.dirSet("platform"))
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; Apps: %v", what, appSetNames(f.apps(t)))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor("App a", func() bool { _, ok := f.apps(t)["a"]; return ok })

	// A deleted App comes back (the AppSet watches the Apps it owns).
	a := f.apps(t)["a"]
	if err := f.cl.Delete(f.ctx(t), &a); err != nil {
		t.Fatal(err)
	}
	waitFor("App a recreated", func() bool { b, ok := f.apps(t)["a"]; return ok && b.UID != a.UID })

	// A new revision reaches the AppSet through SourceChanged (Resync is
	// an hour).
	f.tree(t, "apps/b/")
	waitFor("App b after SourceChanged", func() bool {
		r.SourceChanged(f.src)
		_, ok := f.apps(t)["b"]
		return ok
	})

	// Deleting the AppSet deletes its Apps (garbage collection).
	if err := f.cl.Delete(f.ctx(t), f.get(t, "platform"), client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		t.Fatal(err)
	}
	waitFor("Apps garbage-collected", func() bool { return len(f.apps(t)) == 0 })
}

// file writes content at p in the checkout and publishes a new revision.
func (f *appSetFixture) file(t *testing.T, p, content string) {
	t.Helper()
	full := filepath.Join(f.dir, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	f.publish(t)
}

// A matrix of a files generator (one JSON file per cluster) and a list
// generates one App per pair; a changed file changes its Apps and a
// removed one prunes them. A merge overrides list sets with the values of
// a YAML file.
func TestAppSetFilesMatrixMerge(t *testing.T) {
	f := newAppSetFixture(t)
	f.file(t, "clusters/dev/config.json", `{"cluster": {"name": "dev", "replicas": 1}}`)
	f.file(t, "clusters/prod/config.json", `{"cluster": {"name": "prod", "replicas": 3}}`)
	f.file(t, "clusters/retired/config.json", `{"cluster": {"name": "retired", "replicas": 0}}`)
	files := &v1alpha1.FilesGenerator{SourceRef: v1alpha1.NamespacedObjectReference{Name: f.src.Name}, Include: []string{"clusters/*/config.json"}, Exclude: []string{"clusters/retired"}}
	tiers := &v1alpha1.ListGenerator{Elements: []map[string]string{{"tier": "web"}, {"tier": "db"}}}
	set := &v1alpha1.AppSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.env.Namespace, Name: "fleet"},
		Spec: v1alpha1.AppSetSpec{
			PruneApps:  true,
			Generators: []v1alpha1.Generator{{Matrix: &v1alpha1.MatrixGenerator{Generators: []v1alpha1.NestedGenerator{{Files: files}, {List: tiers}}}}},
			Template: v1alpha1.AppTemplate{
				Metadata: v1alpha1.AppTemplateMeta{Name: "{{cluster.name}}-{{tier}}", Annotations: map[string]string{"example.com/replicas": "{{cluster.replicas}}"}},
				Spec: v1alpha1.AppSpec{
					SourceRef:   v1alpha1.NamespacedObjectReference{Name: f.src.Name},
					Path:        "{{path}}/{{tier}}",
					Destination: v1alpha1.Destination{Namespace: "{{path.basename}}"},
				},
			},
		},
	}
	f.create(t, set)
	if res := f.reconcile(t, "fleet"); res.RequeueAfter <= 0 {
		t.Errorf("RequeueAfter = %v: an AppSet reading files must be looked at again", res.RequeueAfter)
	}
	apps := f.apps(t)
	if got, want := strings.Join(appSetNames(apps), ","), "dev-db,dev-web,prod-db,prod-web"; got != want {
		t.Fatalf("Apps = %s, want %s", got, want)
	}
	if got := apps["prod-web"]; got.Spec.Path != "clusters/prod/web" || got.Spec.Destination.Namespace != "prod" || got.Annotations["example.com/replicas"] != "3" {
		t.Errorf("App prod-web: path %q, namespace %q, annotations %v", got.Spec.Path, got.Spec.Destination.Namespace, got.Annotations)
	}
	if !appSetReads(f.get(t, "fleet"), f.src) {
		t.Errorf("the AppSet is not found as a reader of Source %s: a new revision would not regenerate it", f.src)
	}

	f.file(t, "clusters/prod/config.json", `{"cluster": {"name": "prod", "replicas": 5}}`)
	if err := os.RemoveAll(filepath.Join(f.dir, "clusters", "dev")); err != nil {
		t.Fatal(err)
	}
	f.publish(t)
	f.reconcile(t, "fleet")
	apps = f.apps(t)
	if got, want := strings.Join(appSetNames(apps), ","), "prod-db,prod-web"; got != want {
		t.Fatalf("after removing clusters/dev: Apps = %s, want %s", got, want)
	}
	if got := apps["prod-db"].Annotations["example.com/replicas"]; got != "5" {
		t.Errorf("App prod-db: replicas annotation %q after the file changed, want 5", got)
	}

	// A broken file stalls the AppSet naming the file; its Apps stay.
	f.file(t, "clusters/prod/config.json", `{"cluster": [`)
	f.reconcile(t, "fleet")
	stalled := appSetCond(t, f.get(t, "fleet"), v1alpha1.ConditionStalled)
	if stalled.Reason != AppSetReasonInvalidGenerator || !strings.Contains(stalled.Message, "file clusters/prod/config.json of Source") {
		t.Errorf("Stalled = %s %q, want InvalidGenerator naming the file", stalled.Reason, stalled.Message)
	}
	if got, want := strings.Join(appSetNames(f.apps(t)), ","), "prod-db,prod-web"; got != want {
		t.Errorf("with a broken file: Apps = %s, want %s kept", got, want)
	}

	f.file(t, "overrides/web.yaml", "name: web\nreplicas: \"4\"\n")
	f.file(t, "overrides/api.yaml", "name: api\nreplicas: \"7\"\n") // excluded
	merged := &v1alpha1.AppSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.env.Namespace, Name: "merged"},
		Spec: v1alpha1.AppSetSpec{
			Generators: []v1alpha1.Generator{{Merge: &v1alpha1.MergeGenerator{MergeKeys: []string{"name"}, Generators: []v1alpha1.NestedGenerator{
				{List: &v1alpha1.ListGenerator{Elements: []map[string]string{{"name": "web", "replicas": "1"}, {"name": "api", "replicas": "1"}}}},
				{Files: &v1alpha1.FilesGenerator{SourceRef: v1alpha1.NamespacedObjectReference{Name: f.src.Name}, Include: []string{"overrides/*.yaml"}, Exclude: []string{"overrides/api.yaml"}}},
			}}}},
			Template: v1alpha1.AppTemplate{
				Metadata: v1alpha1.AppTemplateMeta{Name: "m-{{name}}", Annotations: map[string]string{"example.com/replicas": "{{replicas}}"}},
				Spec: v1alpha1.AppSpec{
					SourceRef:   v1alpha1.NamespacedObjectReference{Name: f.src.Name},
					Path:        "apps/{{name}}",
					Destination: v1alpha1.Destination{Namespace: "{{name}}"},
				},
			},
		},
	}
	f.create(t, merged)
	f.reconcile(t, "merged")
	apps = f.apps(t)
	if got, want := apps["m-web"].Annotations["example.com/replicas"], "4"; got != want {
		t.Errorf("merged App m-web: replicas %q, want %q from overrides/web.yaml", got, want)
	}
	if got, want := apps["m-api"].Annotations["example.com/replicas"], "1"; got != want {
		t.Errorf("merged App m-api: replicas %q, want %q from the list", got, want)
	}

	// The apiserver refuses a generator that is two at once, at the top
	// level and inside a matrix.
	two := merged.DeepCopy()
	two.ObjectMeta = metav1.ObjectMeta{Namespace: f.env.Namespace, Name: "two"}
	two.Spec.Generators = []v1alpha1.Generator{{List: tiers, Files: files}}
	if err := f.cl.Create(f.ctx(t), two); err == nil || !strings.Contains(err.Error(), "set exactly one of directories, files, list, clusters, matrix or merge") {
		t.Errorf("create an AppSet with list and files in one generator: %v, want refused", err)
	}
	two.Spec.Generators = []v1alpha1.Generator{{Matrix: &v1alpha1.MatrixGenerator{Generators: []v1alpha1.NestedGenerator{{List: tiers, Files: files}, {List: tiers}}}}}
	if err := f.cl.Create(f.ctx(t), two); err == nil || !strings.Contains(err.Error(), "set exactly one of directories, files, list, clusters, matrix or merge") {
		t.Errorf("create an AppSet with list and files in one matrix generator: %v, want refused", err)
	}
}
