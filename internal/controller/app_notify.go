package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/notify"
)

// notify publishes an event about app, when a notifier is attached. It
// never blocks (the dispatcher queues).
func (r *AppReconciler) notify(app *tendv1.App, st *appState, kind notify.Kind, rev, msg, errText string, changes []string) {
	if r.Notify == nil {
		return
	}
	e := notify.Event{
		Kind:         kind,
		Severity:     notify.SeverityOf(kind),
		Time:         time.Now(),
		AppNamespace: app.Namespace,
		AppName:      app.Name,
		Labels:       app.Labels,
		Revision:     rev,
		RepoURL:      st.repoURL,
		Message:      msg,
		Changes:      changes,
		Error:        errText,
	}
	if rev != "" && rev == st.subjectRev {
		e.Subject = st.subject
	}
	r.Notify(e)
}

// rememberSource keeps what events need to know of the App's Source (the
// commit subject comes with the artifact, in renderApp).
func (st *appState) rememberSource(src *tendv1.Source) {
	st.repoURL = ""
	if src.Spec.Git != nil {
		st.repoURL = src.Spec.Git.URL
	}
}

// notifySync publishes what a finished sync did.
func (r *AppReconciler) notifySync(app *tendv1.App, st *appState, job *syncJob) {
	changes := changesOf(job.res, apply.Created, apply.Configured, apply.Recreated, apply.Pruned)
	if job.err != nil {
		kind := notify.SyncFailed
		var se *apply.SyncError
		if (errors.As(job.err, &se) && strings.Contains(se.Step, "hook")) || len(changesOf(job.res, apply.HookFailed)) > 0 {
			kind = notify.HookFailed
		}
		n := notified(app)
		if n.Failure == job.rev {
			return // told already, maybe by the controller before a restart; retries fail quietly
		}
		n.Failure = job.rev
		r.notify(app, st, kind, job.rev, fmt.Sprintf("sync of %s failed (%s)", shortRev(job.rev), job.message), job.err.Error(), changes)
		return
	}
	recovered := notified(app).Failure != ""
	notified(app).Failure = ""
	if pruned := changesOf(job.res, apply.Pruned); len(pruned) > 0 {
		r.notify(app, st, notify.Pruned, job.rev, fmt.Sprintf("%d objects that left git were deleted", len(pruned)), "", pruned)
	}
	switch {
	case strings.HasPrefix(job.message, "self-heal"):
		notified(app).Drift = ""
		r.notify(app, st, notify.DriftCorrected, job.rev, fmt.Sprintf("changes made in the cluster were undone: %d objects re-applied", len(changes)), "", changes)
	case recovered:
		r.notify(app, st, notify.SyncSucceeded, job.rev, fmt.Sprintf("recovered: %s synced (%s), %d objects changed", shortRev(job.rev), job.message, len(changes)), "", changes)
	case len(changes) > 0 || job.request != "" || job.rollback != "":
		r.notify(app, st, notify.SyncSucceeded, job.rev, fmt.Sprintf("%s synced (%s), %d objects changed", shortRev(job.rev), job.message, len(changes)), "", changes)
	}
}

// notifyRenderFailure publishes a render failure once per revision and
// error (the App is re-rendered every interval).
func (r *AppReconciler) notifyRenderFailure(app *tendv1.App, st *appState, rev string, err error) {
	n := notified(app)
	key := digest(rev + "\x00" + err.Error())
	if n.RenderFailure == key {
		return
	}
	n.RenderFailure, n.Failure = key, rev
	r.notify(app, st, notify.SyncFailed, rev, fmt.Sprintf("revision %s cannot be rendered; the last good state stays applied", shortRev(rev)), err.Error(), nil)
}

// notifyInSync is told that the desired state is in place without a sync
// (e.g. a fix restored what is applied): a failure before is a recovery.
func (r *AppReconciler) notifyInSync(app *tendv1.App, st *appState, rev string) {
	n := notified(app)
	n.RenderFailure = ""
	n.Drift = "" // any drift was undone by someone else
	if n.Failure == "" {
		return
	}
	n.Failure = ""
	r.notify(app, st, notify.SyncSucceeded, rev, fmt.Sprintf("recovered: revision %s renders and is in sync", shortRev(rev)), "", nil)
}

// notifyDrift publishes drift once per set of drifted objects.
func (r *AppReconciler) notifyDrift(app *tendv1.App, st *appState, rev string, drift []apply.ObjectRef) {
	if len(drift) == 0 {
		return
	}
	names := make([]string, 0, len(drift))
	for _, d := range drift {
		names = append(names, d.String())
	}
	sort.Strings(names)
	key := digest(strings.Join(names, "\n"))
	n := notified(app)
	if key == n.Drift {
		return
	}
	n.Drift = key
	msg := fmt.Sprintf("%d objects were changed in the cluster", len(drift))
	if app.Spec.Sync.SelfHeal {
		msg += "; tend undoes the changes (selfHeal)"
	} else {
		msg += "; set spec.sync.selfHeal to undo such changes, or `tend sync " + app.Name + "`"
	}
	r.notify(app, st, notify.DriftDetected, rev, msg, "", names)
}

// notifyHealth publishes health going Degraded, and its recovery when it
// is next Healthy (usually through Progressing, as a fix rolls out).
func (r *AppReconciler) notifyHealth(app *tendv1.App, st *appState, prev, cur string, objs []apply.ObjectHealth) {
	recorded := app.Status.Notified != nil
	n := notified(app)
	switch {
	case cur == "Degraded" && !n.Degraded:
		n.Degraded = true
		if prev == "Degraded" && !recorded {
			return // an App whose status predates status.notified: told before
		}
		var bad []string
		for _, o := range objs {
			bad = append(bad, fmt.Sprintf("%s: %s", o.Ref, o.Result.Message))
		}
		errText := ""
		if len(bad) > 0 {
			errText = bad[0]
		}
		r.notify(app, st, notify.HealthDegraded, app.Status.Revision, fmt.Sprintf("health %s -> Degraded", prev), errText, bad)
	case cur == "Healthy" && n.Degraded:
		n.Degraded = false
		r.notify(app, st, notify.HealthRecovered, app.Status.Revision, fmt.Sprintf("health %s -> Healthy after it was Degraded", prev), "", nil)
	}
}

// tidyNotified drops an empty record, so that status does not change for it.
func tidyNotified(app *tendv1.App) {
	if n := app.Status.Notified; n != nil && *n == (tendv1.NotifiedStatus{}) {
		app.Status.Notified = nil
	}
}

// notified returns app's record of what was told, creating it.
func notified(app *tendv1.App) *tendv1.NotifiedStatus {
	if app.Status.Notified == nil {
		app.Status.Notified = &tendv1.NotifiedStatus{}
	}
	return app.Status.Notified
}

// digest identifies a told message in status without repeating its text.
func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// changesOf names the objects of res with one of the actions.
func changesOf(res *apply.Result, actions ...apply.Action) []string {
	if res == nil {
		return nil
	}
	var out []string
	for _, o := range res.Objects {
		for _, a := range actions {
			if o.Action == a {
				out = append(out, o.Ref.String()+" "+string(o.Action))
				break
			}
		}
	}
	return out
}
