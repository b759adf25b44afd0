package controller

import (
	"context"
	"testing"
	"time"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestInventoryChangedByAnotherWriter: the controller keeps each App's
// inventory in memory. When someone else (`tend sync`) saved it meanwhile
// with an object git does not have, the controller's next sync merges the
// two, and the App syncs again to prune that object.
func TestInventoryChangedByAnotherWriter(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	repo := newCtlRepo(t)
	repo.commit("cm", map[string]string{"app/cm.yaml": configMapYAML("from-git", "v1")})
	e.create(t, gitSource("repo", repo.URL), newApp("app", "repo", "app", e.Namespace, func(a *tendv1.App) {
		a.Spec.Sync.Prune = true
	}))
	e.waitApp(t, "app", "Synced", 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncSynced && a.Status.Objects == 1
	})

	// Another writer applies an object for the App and records it.
	extra := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "from-elsewhere", Namespace: e.Namespace,
		Annotations: map[string]string{apply.AnnotationOwner: e.Namespace + "/app"}}}
	if _, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Create(ctx, extra, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	store := &apply.SecretStore{Client: e.Clientset}
	app := apply.AppRef{Namespace: e.Namespace, Name: "app"}
	inv, err := store.Load(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	inv.Entries[apply.ObjectRef{Kind: "ConfigMap", Namespace: e.Namespace, Name: "from-elsewhere"}] = apply.Entry{Version: "v1", Desired: "elsewhere"}
	if err := store.Save(ctx, app, inv); err != nil {
		t.Fatal(err)
	}

	// A commit: the controller syncs with the inventory it held.
	rev := repo.commit("cm v2", map[string]string{"app/cm.yaml": configMapYAML("from-git", "v2")})
	eventually(t, "the other writer's object pruned", 60*time.Second, func() bool {
		_, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "from-elsewhere", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	a := e.waitApp(t, "app", "Synced at "+rev[:12], 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncSynced && a.Status.Revision == rev && a.Status.Objects == 1
	})
	if got, want := a.Status.History[0].Message, "another writer changed the inventory"; got != want {
		t.Errorf("last sync: %q, want %q", got, want)
	}
	cm, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "from-git", metav1.GetOptions{})
	if err != nil || cm.Data["value"] != "v2" {
		t.Errorf("from-git: %v %v, want value v2", cm.Data, err)
	}
}
