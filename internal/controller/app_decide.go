package controller

import (
	"fmt"
	"time"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/health"
	"github.com/tend-gitops/tend/internal/render"
)

// An App's reconcile runs in three steps: observe (app_observe.go) reads
// the App's Source, cluster, render and how the cluster differs from it;
// decide (this file) chooses what to do from those facts alone, with no
// reads, writes or clock of its own; act (app_act.go) does it and writes
// what the user sees.

// action is what a reconcile decided to do.
type action int

const (
	// actInSync: nothing differs; record the desired state as in place.
	actInSync action = iota
	// actReport: objects differ and no sync is due; say why.
	actReport
	// actBlocked: a sync window blocks the sync until nextAllowed.
	actBlocked
	// actRetryLimit: the revision failed too often; wait for a new one.
	actRetryLimit
	// actBackoff: the revision failed; retry after its backoff.
	actBackoff
	// actSync: sync now.
	actSync
	// actRollback: re-apply the last healthy revision.
	actRollback
)

// decision is what decide chose, with what acting on it needs.
type decision struct {
	action action
	// adopt: the status says this revision and spec were synced (the
	// first reconcile after a restart), so what differs now is drift.
	adopt bool
	// sync is status.sync to show for anything but actInSync and
	// actRollback.
	sync string
	// reason and message of the Ready condition (actReport, actBlocked,
	// actRetryLimit).
	reason, message string
	// after is when to reconcile again (actBackoff, actBlocked).
	after time.Duration
	// nextAllowed is when a window opens (actBlocked; zero: unknown).
	nextAllowed time.Time
	// actSync: why the sync runs, the request it answers, and the options
	// a requested sync asked for.
	syncMessage  string
	request      string
	prune, force bool
	// actRollback: the revisions rolled back to and from.
	rollbackTo, rollbackFrom string
}

// syncedMark is what the App controller remembers of the desired state it
// last put in place: the render, its revision and the App's generation.
type syncedMark struct {
	result *render.Result
	rev    string
	gen    int64
}

// decideInput is everything decide looks at.
type decideInput struct {
	app *tendv1.App
	obs *observed
	// mark is the desired state last put in place; merged says the last
	// sync merged its inventory with another writer's.
	mark   syncedMark
	merged bool
	now    time.Time
}

// decide chooses what a reconcile does with what observe found.
func decide(in decideInput) decision {
	app, obs := in.app, in.obs
	if to, from := rollbackTarget(app); to != "" {
		return decision{action: actRollback, rollbackTo: to, rollbackFrom: from}
	}
	var d decision
	mark := in.mark
	if mark.result == nil && app.Status.Sync == tendv1.SyncSynced && app.Status.Revision == obs.rev && app.Status.ObservedGeneration == app.Generation {
		d.adopt = true
		mark = syncedMark{result: obs.result, rev: obs.rev, gen: app.Generation}
	}
	requested := app.Annotations[AnnotationRequestedAt]
	manual := requested != "" && requested != app.Status.LastHandledRequest
	desiredChanged := mark.result != obs.result || mark.rev != obs.rev || mark.gen != app.Generation || in.merged
	outOfSync := len(obs.toApply) > 0 || (app.Spec.Sync.Prune && len(obs.toPrune) > 0)
	if !outOfSync && !manual {
		d.action = actInSync
		return d
	}
	d.sync = tendv1.SyncOutOfSync
	if lastSyncFailed(app, obs.rev) {
		// The newest revision failed to apply and is retried: that is
		// what the user must act on, not that objects differ.
		d.sync = tendv1.SyncFailed
	}
	differ := len(obs.toApply) + len(obs.toPrune)
	report := func(reason, msg string) decision {
		d.action, d.reason, d.message = actReport, reason, msg
		return d
	}
	needSync := manual || (desiredChanged && outOfSync) || (len(obs.drift) > 0 && app.Spec.Sync.SelfHeal)
	switch {
	case !needSync:
		msg := fmt.Sprintf("%d objects differ from git", min(differ, outOfSyncLimit))
		if len(obs.drift) > 0 {
			msg += " (changed in the cluster; set spec.sync.selfHeal to undo such changes)"
		}
		return report(ReasonOutOfSync, msg)
	case app.Spec.Sync.Manual && !manual:
		return report(ReasonOutOfSync, fmt.Sprintf("%d objects differ from git; run `tend sync %s` to apply", min(differ, outOfSyncLimit), app.Name))
	case obs.rev == app.Status.RolledBackRevision && !manual:
		return report(ReasonRolledBack, fmt.Sprintf("revision %s was rolled back after it degraded; push a fix or run `tend sync %s`", shortRev(obs.rev), app.Name))
	}
	if blocked, manualOK, why := syncBlocked(obs.windows, in.now); blocked && !(manual && manualOK) {
		d.action, d.reason, d.message, d.after = actBlocked, ReasonSyncWindow, "sync blocked by "+why, obs.interval
		if next := nextAllowed(obs.windows, in.now); !next.IsZero() {
			d.nextAllowed = next
			d.message += " until " + next.UTC().Format(time.RFC3339)
			d.after = next.Sub(in.now) + time.Second
		}
		return d
	}
	if failures, lastEnd := failuresOf(app, obs.rev); !manual && failures > 0 {
		if rp := app.Spec.Sync.Retry; rp != nil && rp.Limit > 0 && int32(failures) > rp.Limit {
			d.action, d.reason = actRetryLimit, ReasonRetryLimit
			d.message = fmt.Sprintf("sync of %s failed %d times; not retrying until a new revision or `tend sync`: %s", shortRev(obs.rev), failures, lastError(app))
			return d
		}
		if wait := lastEnd.Add(backoff(app, failures)).Sub(in.now); wait > 0 {
			d.action, d.after = actBackoff, wait
			return d
		}
	}
	d.action = actSync
	if manual {
		d.request = requested
		for _, o := range splitComma(app.Annotations[AnnotationSyncOptions]) {
			switch o {
			case "prune":
				d.prune = true
			case "force":
				d.force = true
			}
		}
	}
	switch {
	case manual:
		d.syncMessage = "requested sync"
	case !desiredChanged && len(obs.drift) > 0:
		d.syncMessage = fmt.Sprintf("self-heal: %d objects changed in the cluster", len(obs.drift))
	case in.merged && mark.rev == obs.rev:
		d.syncMessage = "another writer changed the inventory"
	case mark.rev == obs.rev:
		d.syncMessage = "spec changed"
	default:
		d.syncMessage = "new revision"
	}
	return d
}

// rollbackTarget returns the revision to roll back to, and the one rolled
// back from, when the App rolls back automatically and the revision it
// synced last degraded before it was ever healthy; "" otherwise.
func rollbackTarget(app *tendv1.App) (to, from string) {
	if !app.Spec.Sync.AutoRollback || app.Status.Health != string(health.Degraded) || len(app.Status.History) < 2 || app.Spec.TargetRevision != "" {
		return "", ""
	}
	last := app.Status.History[0]
	if last.Result != "Succeeded" || last.Healthy || last.Revision != app.Status.Revision || app.Status.RolledBackRevision == last.Revision {
		return "", ""
	}
	for _, h := range app.Status.History[1:] {
		if h.Healthy && h.Revision != last.Revision {
			return h.Revision, last.Revision
		}
	}
	return "", ""
}
