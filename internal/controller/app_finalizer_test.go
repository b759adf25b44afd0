package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestChildAppSpecFollowsGit: an App applied by a parent App from git
// keeps following git after the controller added its finalizer. Adding
// the finalizer must not take spec fields (durations re-serialized as
// "15m0s") from the parent's apply, or later commits to them are dropped
// as "fields left to the controllers that own them".
func TestChildAppSpecFollowsGit(t *testing.T) {
	e := startController(t)
	repo := newCtlRepo(t)
	child := func(timeout string) string {
		return fmt.Sprintf(`apiVersion: tend.dev/v1alpha1
kind: App
metadata:
  name: child
  namespace: %s
spec:
  sourceRef: {name: repo}
  path: child
  destination: {namespace: %s}
  sync: {prune: true}
  health: {timeout: %s}
`, e.Namespace, e.Namespace, timeout)
	}
	repo.commit("parent and child", map[string]string{
		"apps/child.yaml": child("15m"),
		"child/cm.yaml":   configMapYAML("child-config", "v1"),
	})
	e.create(t, gitSource("repo", repo.URL), newApp("parent", "repo", "apps", e.Namespace))
	e.waitApp(t, "child", "Synced with its finalizer", 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncSynced && len(a.Finalizers) > 0
	})

	rev := repo.commit("child: longer health timeout", map[string]string{"apps/child.yaml": child("20m")})
	e.waitApp(t, "parent", "synced "+rev[:12], 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Revision == rev && a.Status.Sync == tendv1.SyncSynced
	})
	if got := e.app(t, "child").Spec.Health.Timeout.Duration; got != 20*time.Minute {
		t.Errorf("child health.timeout = %s after the commit, want 20m", got)
	}
	for _, f := range e.app(t, "child").ManagedFields {
		if f.Operation == "Update" && f.FieldsV1 != nil && strings.Contains(f.FieldsV1.GetRawString(), `"f:spec"`) {
			t.Errorf("manager %s owns spec fields of the child App through an Update: %s", f.Manager, f.FieldsV1.GetRawString())
		}
	}
}

// TestFinalizerFollowsPrune: an App with prune carries the prune-on-delete
// finalizer; turning prune off drops it, and deleting the App then leaves
// its objects.
func TestFinalizerFollowsPrune(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	repo := newCtlRepo(t)
	repo.commit("cm", map[string]string{"app/cm.yaml": configMapYAML("kept", "v1")})
	e.create(t, gitSource("repo", repo.URL), newApp("app", "repo", "app", e.Namespace, func(a *tendv1.App) {
		a.Spec.Sync.Prune = true
	}))
	e.waitApp(t, "app", "Synced with the finalizer", 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncSynced && slices.Contains(a.Finalizers, Finalizer)
	})

	a := e.app(t, "app")
	a.Spec.Sync.Prune = false
	if err := e.c.Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	e.waitApp(t, "app", "finalizer gone with prune off", 60*time.Second, func(a *tendv1.App) bool {
		return !slices.Contains(a.Finalizers, Finalizer)
	})
	if err := e.c.Delete(ctx, e.app(t, "app")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "App deleted", 30*time.Second, func() bool {
		err := e.c.Get(ctx, client.ObjectKey{Namespace: e.Namespace, Name: "app"}, &tendv1.App{})
		return apierrors.IsNotFound(err)
	})
	if _, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "kept", metav1.GetOptions{}); err != nil {
		t.Errorf("ConfigMap of an App without prune after the App was deleted: %v, want it kept", err)
	}
}

// TestDeletionPolicy: Orphan keeps the objects of a pruning App when it is
// deleted, Delete removes those of an App that does not prune.
func TestDeletionPolicy(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	repo := newCtlRepo(t)
	repo.commit("cms", map[string]string{
		"orphan/cm.yaml": configMapYAML("orphaned", "v1"),
		"delete/cm.yaml": configMapYAML("deleted", "v1"),
	})
	e.create(t, gitSource("repo", repo.URL),
		newApp("orphan", "repo", "orphan", e.Namespace, func(a *tendv1.App) {
			a.Spec.Sync.Prune = true
			a.Spec.DeletionPolicy = tendv1.DeletionOrphan
		}),
		newApp("delete", "repo", "delete", e.Namespace, func(a *tendv1.App) {
			a.Spec.DeletionPolicy = tendv1.DeletionDelete
		}))
	for _, name := range []string{"orphan", "delete"} {
		e.waitApp(t, name, "Synced", 60*time.Second, func(a *tendv1.App) bool {
			return a.Status.Sync == tendv1.SyncSynced && slices.Contains(a.Finalizers, Finalizer) == (name == "delete")
		})
		if err := e.c.Delete(ctx, e.app(t, name)); err != nil {
			t.Fatal(err)
		}
		eventually(t, "App "+name+" deleted", 30*time.Second, func() bool {
			return apierrors.IsNotFound(e.c.Get(ctx, client.ObjectKey{Namespace: e.Namespace, Name: name}, &tendv1.App{}))
		})
	}
	if _, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "orphaned", metav1.GetOptions{}); err != nil {
		t.Errorf("ConfigMap of the App with deletionPolicy Orphan: %v, want it kept", err)
	}
	if _, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "deleted", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ConfigMap of the App with deletionPolicy Delete: err %v, want NotFound", err)
	}
}

// TestCreateNamespaceShared: two pruning Apps create the same namespace;
// neither owns it, both sync into it, and deleting one (its objects
// pruned) leaves the namespace and the other App's objects.
func TestCreateNamespaceShared(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	shared := e.Namespace + "-shared"
	t.Cleanup(func() {
		_ = e.Clientset.CoreV1().Namespaces().Delete(context.Background(), shared, metav1.DeleteOptions{})
	})
	repo := newCtlRepo(t)
	repo.commit("cms", map[string]string{
		"a/cm.yaml": configMapYAML("a", "v1"),
		"b/cm.yaml": configMapYAML("b", "v1"),
	})
	var apps []client.Object
	for _, name := range []string{"a", "b"} {
		apps = append(apps, newApp(name, "repo", name, shared, func(a *tendv1.App) {
			a.Spec.Sync.Prune = true
			a.Spec.Destination.CreateNamespace = true
		}))
	}
	e.create(t, append([]client.Object{gitSource("repo", repo.URL)}, apps...)...)
	for _, name := range []string{"a", "b"} {
		e.waitApp(t, name, "Synced", 60*time.Second, func(a *tendv1.App) bool { return a.Status.Sync == tendv1.SyncSynced })
	}
	ns, err := e.Clientset.CoreV1().Namespaces().Get(ctx, shared, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if owner := ns.Annotations[tendv1.AnnotationOwner]; owner != "" {
		t.Errorf("created Namespace owned by App %s, want no owner", owner)
	}
	if err := e.c.Delete(ctx, e.app(t, "a")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "App a deleted and its ConfigMap pruned", 30*time.Second, func() bool {
		_, err := e.Clientset.CoreV1().ConfigMaps(shared).Get(ctx, "a", metav1.GetOptions{})
		return apierrors.IsNotFound(e.c.Get(ctx, client.ObjectKey{Namespace: e.Namespace, Name: "a"}, &tendv1.App{})) && apierrors.IsNotFound(err)
	})
	if ns, err := e.Clientset.CoreV1().Namespaces().Get(ctx, shared, metav1.GetOptions{}); err != nil || ns.DeletionTimestamp != nil {
		t.Errorf("shared Namespace after App a was deleted: %v (deleting %v), want it kept", err, ns.DeletionTimestamp)
	}
	if _, err := e.Clientset.CoreV1().ConfigMaps(shared).Get(ctx, "b", metav1.GetOptions{}); err != nil {
		t.Errorf("App b's ConfigMap: %v", err)
	}
}

// TestCreateNamespaceMetadata: the Namespace an App creates carries the
// labels and annotations of spec.destination.namespaceMetadata; a
// changed or removed one is changed or removed on the Namespace, with no
// other change in git; deleting the App leaves the Namespace as it is.
// namespaceMetadata without createNamespace is refused by the apiserver.
func TestCreateNamespaceMetadata(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	target := e.Namespace + "-meta"
	t.Cleanup(func() {
		_ = e.Clientset.CoreV1().Namespaces().Delete(context.Background(), target, metav1.DeleteOptions{})
	})
	repo := newCtlRepo(t)
	repo.commit("cm", map[string]string{"web/cm.yaml": configMapYAML("web", "v1"), "api/cm.yaml": configMapYAML("api", "v1")})
	app := newApp("web", "repo", "web", target, func(a *tendv1.App) {
		a.Spec.Destination.CreateNamespace = true
		a.Spec.Destination.NamespaceMetadata = &tendv1.NamespaceMetadata{
			Labels:      map[string]string{"istio-injection": "enabled", "team": "web"},
			Annotations: map[string]string{"example.com/owner": "web-team"},
		}
	})
	// A second App in the same Namespace keeps its own label.
	api := newApp("api", "repo", "api", target, func(a *tendv1.App) {
		a.Spec.Destination.CreateNamespace = true
		a.Spec.Destination.NamespaceMetadata = &tendv1.NamespaceMetadata{Labels: map[string]string{"api": "yes"}}
	})
	e.create(t, gitSource("repo", repo.URL), app, api)
	for _, name := range []string{"web", "api"} {
		e.waitApp(t, name, "Synced", 60*time.Second, func(a *tendv1.App) bool { return a.Status.Sync == tendv1.SyncSynced })
	}
	ns, err := e.Clientset.CoreV1().Namespaces().Get(ctx, target, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ns.Labels["istio-injection"] != "enabled" || ns.Labels["team"] != "web" || ns.Annotations["example.com/owner"] != "web-team" || ns.Labels["api"] != "yes" {
		t.Errorf("Namespace labels %v annotations %v, want both Apps' namespaceMetadata", ns.Labels, ns.Annotations)
	}

	// Someone else's label on the Namespace is left alone.
	ns.Labels["other"] = "kept"
	if _, err := e.Clientset.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{FieldManager: "someone"}); err != nil {
		t.Fatal(err)
	}
	live := e.app(t, "web")
	live.Spec.Destination.NamespaceMetadata.Labels = map[string]string{"istio-injection": "disabled"}
	live.Spec.Destination.NamespaceMetadata.Annotations = nil
	if err := e.c.Update(ctx, live); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Namespace metadata follows the App's", 60*time.Second, func() bool {
		ns, err := e.Clientset.CoreV1().Namespaces().Get(ctx, target, metav1.GetOptions{})
		if err != nil {
			return false
		}
		_, team := ns.Labels["team"]
		_, owner := ns.Annotations["example.com/owner"]
		return ns.Labels["istio-injection"] == "disabled" && !team && !owner && ns.Labels["other"] == "kept" && ns.Labels["api"] == "yes"
	})

	if err := e.c.Delete(ctx, e.app(t, "web")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "App web deleted", 30*time.Second, func() bool {
		return apierrors.IsNotFound(e.c.Get(ctx, client.ObjectKey{Namespace: e.Namespace, Name: "web"}, &tendv1.App{}))
	})
	if ns, err := e.Clientset.CoreV1().Namespaces().Get(ctx, target, metav1.GetOptions{}); err != nil || ns.Labels["istio-injection"] != "disabled" {
		t.Errorf("Namespace after the App was deleted: %v, labels %v; want it kept with its labels", err, ns.Labels)
	}

	bad := newApp("bad", "repo", "web", target, func(a *tendv1.App) {
		a.Spec.Destination.NamespaceMetadata = &tendv1.NamespaceMetadata{Labels: map[string]string{"a": "b"}}
	})
	bad.SetNamespace(e.Namespace)
	if err := e.c.Create(ctx, bad); err == nil || !strings.Contains(err.Error(), "namespaceMetadata needs createNamespace") {
		t.Errorf("create an App with namespaceMetadata and no createNamespace: %v, want refused", err)
	}
}
