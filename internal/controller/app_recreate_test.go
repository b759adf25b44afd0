package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// immutableConfigMapYAML is a ConfigMap whose data the API server refuses
// to change (immutable: true): a change needs a delete and a create.
func immutableConfigMapYAML(name, key, value, annotations string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  annotations: {%s}\nimmutable: true\ndata:\n  %q: %q\n", name, annotations, key, value)
}

// TestAppRecreatesObjectsWithImmutableChanges: a change to an immutable
// field is applied by deleting and creating the object again, for an App
// with spec.sync.recreate and for an object annotated as Flux's force does;
// an App without either fails the sync naming the field and leaves the
// object as it was; an object the API server would refuse as new too is
// not deleted.
func TestAppRecreatesObjectsWithImmutableChanges(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	repo := newCtlRepo(t)
	const fluxForce = "kustomize.toolkit.fluxcd.io/force: enabled"
	files := func(value, badKey string) map[string]string {
		return map[string]string{
			"recreated/cm.yaml": immutableConfigMapYAML("recreated", "value", value, ""),
			"annotated/cm.yaml": immutableConfigMapYAML("annotated", "value", value, fluxForce),
			"refused/cm.yaml":   immutableConfigMapYAML("refused", "value", value, ""),
			"invalid/cm.yaml":   immutableConfigMapYAML("invalid", badKey, value, ""),
		}
	}
	rev1 := repo.commit("v1", files("v1", "value"))
	recreate := func(a *tendv1.App) { a.Spec.Sync.Recreate = true }
	e.create(t, gitSource("repo", repo.URL),
		newApp("recreated", "repo", "recreated", e.Namespace, recreate),
		newApp("annotated", "repo", "annotated", e.Namespace),
		newApp("refused", "repo", "refused", e.Namespace),
		newApp("invalid", "repo", "invalid", e.Namespace, recreate))
	names := []string{"recreated", "annotated", "refused", "invalid"}
	uid := map[string]types.UID{}
	for _, name := range names {
		e.waitApp(t, name, "synced v1", time.Minute, func(a *tendv1.App) bool { return a.Status.Revision == rev1 && a.Status.Sync == tendv1.SyncSynced })
		cm, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		uid[name] = cm.UID
	}

	// v2 changes the data of all four; "invalid" also gets a key no
	// ConfigMap may have.
	rev2 := repo.commit("v2", files("v2", "not a key!"))
	for _, name := range []string{"recreated", "annotated"} {
		e.waitApp(t, name, "synced v2", time.Minute, func(a *tendv1.App) bool {
			return a.Status.Revision == rev2 && a.Status.Sync == tendv1.SyncSynced
		})
		cm, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cm.UID == uid[name] || cm.Data["value"] != "v2" || cm.Immutable == nil || !*cm.Immutable {
			t.Errorf("%s: uid %s (was %s), data %v, immutable %v; want a new immutable ConfigMap with v2", name, cm.UID, uid[name], cm.Data, cm.Immutable)
		}
	}
	refused := e.waitApp(t, "refused", "v2 failed", time.Minute, func(a *tendv1.App) bool {
		return len(a.Status.History) > 0 && a.Status.History[0].Revision == rev2 && a.Status.History[0].Result == "Failed"
	})
	if msg := refused.Status.History[0].Message; !strings.Contains(msg, "ConfigMap "+e.Namespace+"/refused") || !strings.Contains(msg, "immutable") {
		t.Errorf("refused: the failure does not name the object and the field: %s", msg)
	}
	invalid := e.waitApp(t, "invalid", "v2 failed", time.Minute, func(a *tendv1.App) bool {
		return len(a.Status.History) > 0 && a.Status.History[0].Revision == rev2 && a.Status.History[0].Result == "Failed"
	})
	if msg := invalid.Status.History[0].Message; !strings.Contains(msg, "refuses it as a new object too") {
		t.Errorf("invalid: the failure does not say why it was not recreated: %s", msg)
	}
	for _, name := range []string{"refused", "invalid"} {
		cm, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s: %v (it was deleted)", name, err)
		}
		if cm.UID != uid[name] || cm.Data["value"] != "v1" {
			t.Errorf("%s: uid %s (was %s), data %v; want the v1 object untouched", name, cm.UID, uid[name], cm.Data)
		}
	}
	// The recreate is said in the sync's event.
	eventually(t, "a Sync event names the recreated object", 30*time.Second, func() bool {
		evs, err := e.Clientset.CoreV1().Events(e.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=recreated,involvedObject.kind=App"})
		if err != nil {
			return false
		}
		for _, ev := range evs.Items {
			if ev.Type == corev1.EventTypeNormal && strings.Contains(ev.Message, "recreated") {
				return true
			}
		}
		return false
	})
}
