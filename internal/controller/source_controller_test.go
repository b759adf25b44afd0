package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

func TestSourceKeepsLastGoodArtifact(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	repo := newCtlRepo(t)
	rev := repo.commit("cm", map[string]string{"app/cm.yaml": configMapYAML("cfg", "v1")})
	e.create(t, gitSource("repo", repo.URL), newApp("app", "repo", "app", e.Namespace))
	e.waitApp(t, "app", "synced", 60*time.Second, func(a *tendv1.App) bool { return a.Status.Revision == rev && a.Status.Health == "Healthy" })

	// The git server goes away: fetches fail, the artifact stays.
	repo.srv.Close()
	var src tendv1.Source
	eventually(t, "fetch failure reported", 30*time.Second, func() bool {
		if err := e.c.Get(ctx, types.NamespacedName{Namespace: e.Namespace, Name: "repo"}, &src); err != nil {
			return false
		}
		for _, c := range src.Status.Conditions {
			if c.Type == tendv1.ConditionReady && c.Status == metav1.ConditionFalse && c.Reason == ReasonFetchFailed {
				return true
			}
		}
		return false
	})
	ready := src.Status.Conditions[0]
	for _, c := range src.Status.Conditions {
		if c.Type == tendv1.ConditionReady {
			ready = c
		}
	}
	if !strings.Contains(ready.Message, "still serving revision "+rev) {
		t.Errorf("Ready message does not say the last revision is kept: %q", ready.Message)
	}
	if src.Status.Artifact == nil || src.Status.Artifact.Revision != rev {
		t.Fatalf("artifact lost after a failed fetch: %+v", src.Status.Artifact)
	}
	if a := e.app(t, "app"); a.Status.Sync != tendv1.SyncSynced || a.Status.Revision != rev {
		t.Errorf("App affected by the failed fetch: %s %s", a.Status.Sync, a.Status.Revision)
	}
}

func TestFailedSyncRetriesWithBackoffUpToTheLimit(t *testing.T) {
	e := startController(t)
	repo := newCtlRepo(t)
	repo.commit("bad", map[string]string{
		"app/svc.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\nspec:\n  ports: [{port: 99999}]\n",
	})
	e.create(t, gitSource("repo", repo.URL), newApp("app", "repo", "app", e.Namespace, func(a *tendv1.App) {
		a.Spec.Sync.Retry = &tendv1.RetryPolicy{Limit: 2, Backoff: metav1.Duration{Duration: 500 * time.Millisecond}, MaxBackoff: metav1.Duration{Duration: 5 * time.Second}}
	}))
	a := e.waitApp(t, "app", "retry limit reached", 60*time.Second, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionReady)
		return c != nil && c.Reason == ReasonRetryLimit
	})
	var failed []tendv1.SyncRecord
	for _, h := range a.Status.History {
		if h.Result == "Failed" {
			failed = append(failed, h)
		}
	}
	if len(failed) != 3 { // the first attempt and two retries
		t.Fatalf("failed syncs = %d, want 3: %+v", len(failed), a.Status.History)
	}
	if !strings.Contains(failed[0].Message, "99999") || !strings.Contains(readyMessage(a), "99999") {
		t.Errorf("the server's message is not reported: %q / %q", failed[0].Message, readyMessage(a))
	}
	// History is newest first; the gaps grow (0.5 s, then 1 s).
	gap1 := failed[1].StartedAt.Sub(failed[2].StartedAt.Time)
	gap2 := failed[0].StartedAt.Sub(failed[1].StartedAt.Time)
	if gap2 < gap1 {
		t.Errorf("backoff did not grow: %s then %s", gap1, gap2)
	}
	time.Sleep(3 * time.Second)
	if n := len(e.app(t, "app").Status.History); n != len(a.Status.History) {
		t.Errorf("still retrying after the limit: %d history entries, was %d", n, len(a.Status.History))
	}
}
