package controller

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/render"
)

// TestDecide covers what an App's reconcile decides from what it observed,
// without a cluster: decide reads nothing and writes nothing.
func TestDecide(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	cur, old := &render.Result{}, &render.Result{}
	obj := []apply.ObjectRef{{Kind: "ConfigMap", Namespace: "ns", Name: "a"}}
	failed := func(rev string, ago time.Duration) tendv1.SyncRecord {
		return tendv1.SyncRecord{Revision: rev, Result: "Failed", Message: "boom", StartedAt: metav1.NewTime(now.Add(-ago))}
	}
	denyNow, err := parseWindows([]tendv1.SyncWindow{{Kind: "deny", Schedule: "0 11 * * *", Duration: metav1.Duration{Duration: 2 * time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	denyManualOK, err := parseWindows([]tendv1.SyncWindow{{Kind: "deny", Schedule: "0 11 * * *", Duration: metav1.Duration{Duration: 2 * time.Hour}, ManualSync: true}})
	if err != nil {
		t.Fatal(err)
	}

	type tc struct {
		name   string
		app    func(*tendv1.App)
		obs    func(*observed)
		mark   syncedMark
		merged bool
		// want
		action  action
		sync    string
		reason  string
		message string // substring
		syncMsg string
		after   time.Duration
		adopt   bool
		prune   bool
		force   bool
		to      string
	}
	synced := syncedMark{result: cur, rev: "r2", gen: 1}
	before := syncedMark{result: old, rev: "r1", gen: 1} // r2 not applied yet
	for _, c := range []tc{
		{name: "nothing differs", mark: synced, action: actInSync},
		{name: "new revision out of sync", obs: func(o *observed) { o.toApply = obj }, mark: syncedMark{result: old, rev: "r1", gen: 1},
			action: actSync, sync: tendv1.SyncOutOfSync, syncMsg: "new revision"},
		{name: "spec changed", obs: func(o *observed) { o.toApply = obj }, mark: syncedMark{result: old, rev: "r2", gen: 0},
			action: actSync, syncMsg: "spec changed", sync: tendv1.SyncOutOfSync},
		{name: "another writer merged the inventory", obs: func(o *observed) { o.toApply = obj }, mark: synced, merged: true,
			action: actSync, syncMsg: "another writer changed the inventory", sync: tendv1.SyncOutOfSync},
		{name: "drift without selfHeal is reported", obs: func(o *observed) { o.toApply, o.drift = obj, obj }, mark: synced,
			action: actReport, reason: ReasonOutOfSync, message: "set spec.sync.selfHeal", sync: tendv1.SyncOutOfSync},
		{name: "drift with selfHeal is undone", app: func(a *tendv1.App) { a.Spec.Sync.SelfHeal = true },
			obs: func(o *observed) { o.toApply, o.drift = obj, obj }, mark: synced,
			action: actSync, syncMsg: "self-heal: 1 objects changed", sync: tendv1.SyncOutOfSync},
		{name: "objects to prune without prune are not a reason to sync", obs: func(o *observed) { o.toPrune = obj }, mark: synced, action: actInSync},
		{name: "after a restart the status's revision is adopted", app: func(a *tendv1.App) {
			a.Status.Sync, a.Status.Revision, a.Status.ObservedGeneration = tendv1.SyncSynced, "r2", 1
		}, obs: func(o *observed) { o.toApply, o.drift = obj, obj },
			action: actReport, adopt: true, reason: ReasonOutOfSync, sync: tendv1.SyncOutOfSync},
		{name: "manual App waits", app: func(a *tendv1.App) { a.Spec.Sync.Manual = true }, obs: func(o *observed) { o.toApply = obj },
			action: actReport, reason: ReasonOutOfSync, message: "run `tend sync app`", sync: tendv1.SyncOutOfSync},
		{name: "requested sync with options", app: func(a *tendv1.App) {
			a.Spec.Sync.Manual = true
			a.Annotations = map[string]string{AnnotationRequestedAt: "t1", AnnotationSyncOptions: "prune, force"}
		}, mark: synced, action: actSync, syncMsg: "requested sync", prune: true, force: true, sync: tendv1.SyncOutOfSync},
		{name: "handled request is not requested again", app: func(a *tendv1.App) {
			a.Annotations = map[string]string{AnnotationRequestedAt: "t1"}
			a.Status.LastHandledRequest = "t1"
		}, mark: synced, action: actInSync},
		{name: "rolled back revision stays rolled back", app: func(a *tendv1.App) { a.Status.RolledBackRevision = "r2" },
			obs: func(o *observed) { o.toApply = obj }, action: actReport, reason: ReasonRolledBack, sync: tendv1.SyncOutOfSync},
		{name: "deny window blocks until it ends", obs: func(o *observed) { o.toApply, o.windows = obj, denyNow },
			action: actBlocked, reason: ReasonSyncWindow, message: "until 2026-12-05T13:00:00Z", after: time.Hour + time.Second, sync: tendv1.SyncOutOfSync},
		{name: "deny window with manualSync lets a request through", app: func(a *tendv1.App) { a.Annotations = map[string]string{AnnotationRequestedAt: "t1"} },
			obs: func(o *observed) { o.toApply, o.windows = obj, denyManualOK }, action: actSync, syncMsg: "requested sync", sync: tendv1.SyncOutOfSync},
		{name: "failed revision backs off", app: func(a *tendv1.App) {
			a.Status.History = []tendv1.SyncRecord{failed("r2", 3*time.Second), failed("r2", time.Minute)}
		}, obs: func(o *observed) { o.toApply = obj }, mark: before,
			action: actBackoff, after: 7 * time.Second, sync: tendv1.SyncFailed},
		{name: "failed revision retried once its backoff passed", app: func(a *tendv1.App) {
			a.Status.History = []tendv1.SyncRecord{failed("r2", 11*time.Second)}
		}, obs: func(o *observed) { o.toApply = obj }, mark: before, action: actSync, sync: tendv1.SyncFailed, syncMsg: "new revision"},
		{name: "retry limit", app: func(a *tendv1.App) {
			a.Spec.Sync.Retry = &tendv1.RetryPolicy{Limit: 1}
			a.Status.History = []tendv1.SyncRecord{failed("r2", time.Hour), failed("r2", 2*time.Hour)}
		}, obs: func(o *observed) { o.toApply = obj }, mark: before,
			action: actRetryLimit, reason: ReasonRetryLimit, message: "failed 2 times", sync: tendv1.SyncFailed},
		{name: "degraded revision rolls back to the last healthy one", app: func(a *tendv1.App) {
			a.Spec.Sync.AutoRollback = true
			a.Status.Health, a.Status.Revision = "Degraded", "r2"
			a.Status.History = []tendv1.SyncRecord{{Revision: "r2", Result: "Succeeded"}, {Revision: "r1", Result: "Succeeded", Healthy: true}}
		}, mark: synced, action: actRollback, to: "r1"},
		{name: "a revision healthy once is not rolled back", app: func(a *tendv1.App) {
			a.Spec.Sync.AutoRollback = true
			a.Status.Health, a.Status.Revision = "Degraded", "r2"
			a.Status.History = []tendv1.SyncRecord{{Revision: "r2", Result: "Succeeded", Healthy: true}, {Revision: "r1", Result: "Succeeded", Healthy: true}}
		}, mark: synced, action: actInSync},
	} {
		t.Run(c.name, func(t *testing.T) {
			app := &tendv1.App{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "ns", Generation: 1}}
			if c.app != nil {
				c.app(app)
			}
			obs := &observed{rev: "r2", result: cur, interval: 10 * time.Minute}
			if c.obs != nil {
				c.obs(obs)
			}
			d := decide(decideInput{app: app, obs: obs, mark: c.mark, merged: c.merged, now: now})
			if d.action != c.action {
				t.Fatalf("action = %d, want %d (%+v)", d.action, c.action, d)
			}
			if c.sync != "" && d.sync != c.sync {
				t.Errorf("sync = %q, want %q", d.sync, c.sync)
			}
			if d.reason != c.reason {
				t.Errorf("reason = %q, want %q", d.reason, c.reason)
			}
			if !strings.Contains(d.message, c.message) {
				t.Errorf("message = %q, want it to contain %q", d.message, c.message)
			}
			if !strings.HasPrefix(d.syncMessage, c.syncMsg) {
				t.Errorf("sync message = %q, want %q", d.syncMessage, c.syncMsg)
			}
			if c.after != 0 && d.after != c.after {
				t.Errorf("after = %v, want %v", d.after, c.after)
			}
			if d.adopt != c.adopt || d.prune != c.prune || d.force != c.force || d.rollbackTo != c.to {
				t.Errorf("adopt %v prune %v force %v rollbackTo %q; want %v %v %v %q", d.adopt, d.prune, d.force, d.rollbackTo, c.adopt, c.prune, c.force, c.to)
			}
		})
	}
}
