// Package platform runs tend's controller in the test process against the
// local control plane, for tests that sync a whole platform repository:
// the examples under examples/. It does what `tend bootstrap` does (a root
// Source and App), waits on Apps, plays the user (sync and fetch
// requests), and cleans up so that cluster-scoped objects the platform
// owns (its CRDs) do not outlive the test.
package platform

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/testenv"
)

// Options says what a platform test runs.
type Options struct {
	// Apps names the platform's Apps, the root App ("tend") first. They are
	// deleted in this order when the test ends (the root's finalizer prunes
	// the others), and their status is logged when it fails.
	Apps []string
	// CRDs names the CustomResourceDefinitions the platform's Apps own. A
	// run that did not clean up may have left them owned by an App that is
	// gone; they are deleted first.
	CRDs []string
	// Controller, when set, adjusts the controller's options (e.g. Extra
	// for a webhook receiver).
	Controller func(*controller.Options)
	// Timeout bounds each wait (default 60 s).
	Timeout time.Duration
	// Compat names the foreign families (argo, flux) the controller
	// reconciles as they are; their CRDs are installed first.
	Compat []string
}

// Env is the cluster, the controller running in this process, and clients.
type Env struct {
	*testenv.Env
	Client  client.Client
	Dynamic dynamic.Interface
	// Controller is the running controller.
	Controller *controller.Controller
	// Log collects the controller's log.
	Log *LogBuffer

	opts Options
}

// Start starts a controller limited to a fresh namespace, with tend's CRDs
// installed, and stops it (after deleting the Apps) when the test ends.
func Start(t *testing.T, opts Options) *Env {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = time.Minute
	}
	te := testenv.New(t)
	testenv.InstallCRDs(t, te.Config)
	if len(opts.Compat) > 0 {
		testenv.InstallCompatCRDs(t, te.Config)
	}
	c, err := client.New(te.Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(te.Config)
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{Env: te, Client: c, Dynamic: dyn, Log: &LogBuffer{}, opts: opts}
	e.releaseStaleCRDs(t)

	ctx, cancel := context.WithCancel(context.Background())
	copts := controller.Options{
		Config: te.Config, DataDir: t.TempDir(), MetricsAddr: "0", ProbeAddr: "0",
		Namespaces: []string{te.Namespace},
		Log:        slog.New(slog.NewTextHandler(e.Log, nil)),
		Compat:     opts.Compat,
	}
	if opts.Controller != nil {
		opts.Controller(&copts)
	}
	ctl, err := controller.New(ctx, copts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	e.Controller = ctl
	done := make(chan error, 1)
	go func() { done <- ctl.Start(ctx) }()
	t.Cleanup(func() {
		if t.Failed() {
			e.dumpState(t)
		} else {
			e.SearchSecrets(t, map[string]string{"the controller's log": e.Log.String()})
		}
		// The root App first: deleting it prunes the other Apps, which
		// prune their objects (the CRDs too) while the controller runs.
		e.deleteApps(t)
		cancel()
		<-done
	})
	return e
}

// dumpState logs what helps to understand a failure: the controller's
// log, and the status of every App and Notifier.
func (e *Env) dumpState(t *testing.T) {
	t.Logf("controller log (last lines):\n%s", e.Log.Tail(60))
	ctx := context.Background()
	var apps tendv1.AppList
	if err := e.Client.List(ctx, &apps, client.InNamespace(e.Namespace)); err == nil {
		for _, a := range apps.Items {
			b, _ := yaml.Marshal(a.Status)
			t.Logf("App %s status:\n%s", a.Name, b)
		}
	}
	var notifiers tendv1.NotifierList
	if err := e.Client.List(ctx, &notifiers, client.InNamespace(e.Namespace)); err == nil {
		for _, n := range notifiers.Items {
			b, _ := yaml.Marshal(n.Status)
			t.Logf("Notifier %s status:\n%s", n.Name, b)
		}
	}
}

// Bootstrap creates what `tend bootstrap` would: the Source "tend" for the
// repository and the App "tend" that applies path (recursively) into the
// test's namespace. Both are applied as field manager tend, so the App
// adopts the Source that the repository declares too. extraSpec adds
// fields to the App's spec, e.g. "decryption" as `tend bootstrap
// --age-key` sets it.
func (e *Env) Bootstrap(t *testing.T, url, path string, extraSpec ...map[string]any) {
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
	for _, extra := range extraSpec {
		for k, v := range extra {
			app["spec"].(map[string]any)[k] = v
		}
	}
	for _, obj := range []map[string]any{src, app} {
		u := &unstructured.Unstructured{Object: obj}
		gvr := tendv1.GroupVersion.WithResource(strings.ToLower(u.GetKind()) + "s")
		if _, err := e.Dynamic.Resource(gvr).Namespace(e.Namespace).Apply(context.Background(), u.GetName(), u, metav1.ApplyOptions{FieldManager: "tend", Force: true}); err != nil {
			t.Fatalf("bootstrap %s: %v", u.GetKind(), err)
		}
	}
}

// releaseStaleCRDs deletes the platform's CRDs when a run that did not
// clean up left them behind: tend refuses objects another App owns, and
// their App is gone. CRDs an existing App owns are another test's; CRDs
// without an owner, tend adopts.
func (e *Env) releaseStaleCRDs(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	crds := e.Dynamic.Resource(apiextv1.SchemeGroupVersion.WithResource("customresourcedefinitions"))
	for _, name := range e.opts.CRDs {
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
		err = e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: app}, &tendv1.App{})
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
		e.WaitFor(t, "stale CRD "+name+" deleted", func() bool {
			_, err := crds.Get(ctx, name, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		})
	}
}

// deleteApps deletes the Apps of Options.Apps in order (the root first:
// its finalizer prunes the Apps and AppSets it applied), then any App left
// (an AppSet's), and waits until their finalizers have pruned everything.
func (e *Env) deleteApps(t *testing.T) {
	ctx := context.Background()
	for _, name := range e.opts.Apps {
		a := &tendv1.App{ObjectMeta: metav1.ObjectMeta{Namespace: e.Namespace, Name: name}}
		if err := e.Client.Delete(ctx, a); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete App %s: %v", name, err)
		}
		if name == "tend" {
			// Let the root App's finalizer prune the others first, so it
			// does not re-create one deleted under it.
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) && !apierrors.IsNotFound(e.Client.Get(ctx, client.ObjectKeyFromObject(a), &tendv1.App{})) {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var list tendv1.AppList
		err := e.Client.List(ctx, &list, client.InNamespace(e.Namespace))
		if err == nil && len(list.Items) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("Apps still there a minute after deletion: %d", len(list.Items))
			return
		}
		for i := range list.Items {
			if a := &list.Items[i]; a.DeletionTimestamp == nil {
				if err := e.Client.Delete(ctx, a); err != nil && !apierrors.IsNotFound(err) {
					t.Errorf("delete App %s: %v", a.Name, err)
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Create creates o, failing the test on error.
func (e *Env) Create(t *testing.T, o client.Object) {
	t.Helper()
	if err := e.Client.Create(context.Background(), o); err != nil {
		t.Fatalf("create %s: %v", o.GetName(), err)
	}
}

// WaitFor polls cond until it holds, failing the test after the timeout.
func (e *Env) WaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(e.opts.Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", e.opts.Timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// App returns the App name in the test's namespace.
func (e *Env) App(t *testing.T, name string) *tendv1.App {
	t.Helper()
	var a tendv1.App
	if err := e.Client.Get(context.Background(), types.NamespacedName{Namespace: e.Namespace, Name: name}, &a); err != nil {
		t.Fatalf("App %s: %v", name, err)
	}
	return &a
}

// WaitApp waits until cond holds for the App and returns it.
func (e *Env) WaitApp(t *testing.T, name, what string, cond func(*tendv1.App) bool) *tendv1.App {
	t.Helper()
	var a tendv1.App
	e.WaitFor(t, "App "+name+": "+what, func() bool {
		return e.Client.Get(context.Background(), types.NamespacedName{Namespace: e.Namespace, Name: name}, &a) == nil && cond(&a)
	})
	return &a
}

// Healthy reports whether the App is Synced and Healthy at its generation.
func Healthy(a *tendv1.App) bool {
	return a.Status.Sync == tendv1.SyncSynced && a.Status.Health == "Healthy" && a.Status.ObservedGeneration == a.Generation
}

// WaitAppsHealthy waits until every App of Options.Apps (or names, when
// given) is Synced and Healthy.
func (e *Env) WaitAppsHealthy(t *testing.T, names ...string) {
	t.Helper()
	if len(names) == 0 {
		names = e.opts.Apps
	}
	for _, name := range names {
		e.WaitApp(t, name, "Synced and Healthy", Healthy)
	}
}

// RequestSync asks the controller to sync an App as `tend sync APP
// [--force]` does, and returns the sync's record.
func (e *Env) RequestSync(t *testing.T, name, opts string) tendv1.SyncRecord {
	t.Helper()
	requested := time.Now().UTC().Format(time.RFC3339Nano)
	var syncOpts any // null removes the annotation
	if opts != "" {
		syncOpts = opts
	}
	e.Annotate(t, &tendv1.App{}, name, map[string]any{controller.AnnotationRequestedAt: requested, controller.AnnotationSyncOptions: syncOpts})
	a := e.WaitApp(t, name, "sync request handled", func(a *tendv1.App) bool { return a.Status.LastHandledRequest == requested })
	if len(a.Status.History) == 0 {
		t.Fatalf("App %s handled the sync request but has no history", name)
	}
	return a.Status.History[0]
}

// RequestFetch asks for a fetch of a Source as a push webhook does.
func (e *Env) RequestFetch(t *testing.T, source string) {
	t.Helper()
	e.Annotate(t, &tendv1.Source{}, source, map[string]any{controller.AnnotationRequestedAt: time.Now().UTC().Format(time.RFC3339Nano)})
}

// Annotate merges annotations (nil values remove) into the named object
// of o's kind in the test's namespace.
func (e *Env) Annotate(t *testing.T, o client.Object, name string, ann map[string]any) {
	t.Helper()
	o.SetNamespace(e.Namespace)
	o.SetName(name)
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Patch(context.Background(), o, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatalf("annotate %s: %v", name, err)
	}
}

// ReadyMessage is the message of the App's Ready condition.
func ReadyMessage(a *tendv1.App) string {
	for _, c := range a.Status.Conditions {
		if c.Type == tendv1.ConditionReady {
			return c.Message
		}
	}
	return ""
}

// ReplaceAll replaces each old with its new in s, failing the test when an
// old string is not there (the example changed under the test).
func ReplaceAll(t *testing.T, s string, oldNew ...string) string {
	t.Helper()
	for i := 0; i < len(oldNew); i += 2 {
		if !strings.Contains(s, oldNew[i]) {
			t.Fatalf("the example no longer contains %q; update the test", oldNew[i])
		}
		s = strings.ReplaceAll(s, oldNew[i], oldNew[i+1])
	}
	return s
}

// LogBuffer collects a log safely across goroutines.
type LogBuffer = testenv.LogBuffer
