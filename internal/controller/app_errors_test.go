package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// TestOwnershipConflictStalls: an App declaring an object another App owns
// is a permanent error: a Stalled condition naming the object, the owner
// and what to do, and one event, not one per reconcile.
func TestOwnershipConflictStalls(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	repo := newCtlRepo(t)
	repo.commit("two apps, one object", map[string]string{
		"apps/a/shared.yaml": configMapYAML("shared", "a"),
		"apps/b/shared.yaml": configMapYAML("shared", "b"),
		"apps/b/own.yaml":    configMapYAML("own", "b"),
	})
	e.create(t, gitSource("repo", repo.URL), newApp("a", "repo", "apps/a", e.Namespace))
	e.waitApp(t, "a", "Synced", 90*time.Second, func(a *tendv1.App) bool { return a.Status.Sync == tendv1.SyncSynced })
	e.create(t, newApp("b", "repo", "apps/b", e.Namespace))
	b := e.waitApp(t, "b", "Stalled by the ownership conflict", time.Minute, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionStalled)
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == ReasonOwnershipConflict
	})
	msg := condition(b, tendv1.ConditionStalled).Message
	for _, want := range []string{"ConfigMap " + e.Namespace + "/shared", "App " + e.Namespace + "/a", "remove it from one of them"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Stalled message %q lacks %q", msg, want)
		}
	}
	if r := condition(b, tendv1.ConditionReady); r == nil || r.Status != metav1.ConditionFalse || r.Reason != ReasonOwnershipConflict {
		t.Errorf("Ready = %+v, want False with reason %s", r, ReasonOwnershipConflict)
	}

	// Reconcile b again (a spec change): still stalled, and no second event.
	b.Spec.Sync.Interval = metav1.Duration{Duration: 11 * time.Minute}
	if err := e.c.Update(ctx, b); err != nil {
		t.Fatal(err)
	}
	gen := b.Generation // Update stored the new one in b
	e.waitApp(t, "b", "reconciled at its new generation", time.Minute, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionStalled)
		return c != nil && c.Reason == ReasonOwnershipConflict && c.ObservedGeneration >= gen
	})
	evs, err := e.Clientset.EventsV1().Events(e.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs.Items {
		if ev.Regarding.Kind == "App" && ev.Regarding.Name == "b" && ev.Reason == ReasonOwnershipConflict {
			n++
			if ev.Series != nil && ev.Series.Count > 1 {
				n += int(ev.Series.Count) - 1
			}
			if !strings.Contains(ev.Note, "shared") {
				t.Errorf("event %q does not name the object", ev.Note)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d OwnershipConflict events for App b, want exactly 1", n)
	}
	// Nothing of b was applied while it is stalled.
	if _, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "own", metav1.GetOptions{}); err == nil {
		t.Error("b's other object was applied although b is stalled")
	}
}
