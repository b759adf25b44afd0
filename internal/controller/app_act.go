package controller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/appspec"
	"github.com/tend-gitops/tend/internal/notify"
	"github.com/tend-gitops/tend/internal/render"
)

// halt writes into app's status why its reconcile ended early and when to
// look again. A stalled App gets its one event from the status writer
// (objstatus), when it becomes Stalled or the reason changes.
func (r *AppReconciler) halt(app *tendv1.App, st *appState, h *halt) ctrl.Result {
	interval := app.Spec.Sync.Interval.Duration
	if interval <= 0 {
		interval = 10 * time.Minute
	}
	msg := h.err.Error()
	meta.RemoveStatusCondition(&app.Status.Conditions, tendv1.ConditionReconciling)
	setCondition(&app.Status.Conditions, app.Generation, tendv1.ConditionReady, metav1.ConditionFalse, h.reason, msg)
	switch h.kind {
	case haltStalled:
		setCondition(&app.Status.Conditions, app.Generation, tendv1.ConditionStalled, metav1.ConditionTrue, h.reason, msg)
		return ctrl.Result{RequeueAfter: interval}
	case haltWaiting:
		meta.RemoveStatusCondition(&app.Status.Conditions, tendv1.ConditionStalled)
		return ctrl.Result{RequeueAfter: h.after}
	default: // haltRenderFailed
		meta.RemoveStatusCondition(&app.Status.Conditions, tendv1.ConditionStalled)
		r.event(app, corev1.EventTypeWarning, ReasonRenderFailed, msg)
		r.notifyRenderFailure(app, st, h.rev, h.err)
		app.Status.LastAttemptedRevision = h.rev
		// status.revision still names the last good revision, which stays
		// applied; the state to act on is this one's failure.
		app.Status.Sync = tendv1.SyncFailed
		return ctrl.Result{RequeueAfter: interval}
	}
}

// act does what decide chose and writes it into app's status.
func (r *AppReconciler) act(ctx context.Context, app *tendv1.App, st *appState, obs *observed, d decision) (ctrl.Result, error) {
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	if d.action == actRollback {
		return r.rollback(ctx, key, app, obs, st, d.rollbackTo, d.rollbackFrom), nil
	}
	if d.adopt {
		st.syncedResult, st.syncedRev, st.syncedGen = obs.result, obs.rev, app.Generation
	}
	if err := r.keepPostDeleteFinalizer(ctx, app, st, obs.result, d.action == actInSync); err != nil {
		return ctrl.Result{}, err
	}
	app.Status.OutOfSync = refsOf(append(obs.toApply, obs.toPrune...))
	if d.action == actInSync {
		// Nothing to apply: record that the desired state is in place.
		st.syncedResult, st.syncedRev, st.syncedGen = obs.result, obs.rev, app.Generation
		app.Status.Sync = tendv1.SyncSynced
		r.notifyInSync(app, st, obs.rev)
		if app.Status.Revision == "" || app.Status.Revision != obs.rev && len(st.inv.Entries) > 0 {
			app.Status.Revision = obs.rev
		}
		return r.settle(app, st, obs.interval)
	}
	app.Status.Sync = d.sync
	switch d.action {
	case actReport:
		return r.settleWith(app, st, obs.interval, d.reason, d.message)
	case actBlocked:
		if !d.nextAllowed.IsZero() {
			t := metav1.NewTime(d.nextAllowed)
			app.Status.NextSyncAllowedAt = &t
		}
		setCondition(&app.Status.Conditions, app.Generation, tendv1.ConditionReady, metav1.ConditionFalse, d.reason, d.message)
		meta.RemoveStatusCondition(&app.Status.Conditions, tendv1.ConditionReconciling)
		return ctrl.Result{RequeueAfter: d.after}, nil
	}
	app.Status.NextSyncAllowedAt = nil
	switch d.action {
	case actRetryLimit:
		setCondition(&app.Status.Conditions, app.Generation, tendv1.ConditionReady, metav1.ConditionFalse, d.reason, d.message)
		return ctrl.Result{}, nil
	case actBackoff:
		return ctrl.Result{RequeueAfter: d.after}, nil
	}
	req := obs.req
	req.Prune = req.Prune || d.prune
	req.Force = req.Force || d.force
	var prune []apply.ObjectRef
	if req.Prune {
		prune = obs.toPrune
	}
	result := obs.result
	eng, h, err := r.engineFor(ctx, app, obs.conn, func() []*unstructured.Unstructured { return desiredObjects(result) }, prune)
	if err != nil {
		return ctrl.Result{}, err
	}
	if h != nil {
		return r.halt(app, st, h), nil
	}
	r.startSync(key, app, st, obs.conn, eng, req, obs.result, d.request, d.syncMessage, "")
	setCondition(&app.Status.Conditions, app.Generation, tendv1.ConditionReconciling, metav1.ConditionTrue, ReasonProgressing, "syncing revision "+shortRev(obs.rev))
	return ctrl.Result{}, nil
}

// rollback re-applies revision to (auto-rollback), rendering it from the
// App's own checkout, and reports both revisions.
func (r *AppReconciler) rollback(ctx context.Context, key types.NamespacedName, app *tendv1.App, obs *observed, st *appState, to, from string) ctrl.Result {
	rev, dir, err := r.pinnedCheckout(ctx, app, &obs.src, to)
	if err == nil {
		var res *render.Result
		if res, err = r.Cache.Render(ctx, r.renderer(app, obs.conn), dir, rev, obs.opts); err == nil && obs.project != nil {
			// The revision rolled back to keeps today's Project too.
			err = obs.project.CheckObjects(app, res.Objects(), obs.conn.Scope)
		}
		var eng *apply.Engine
		if err == nil {
			var h *halt
			if eng, h, err = r.engineFor(ctx, app, obs.conn, res.Objects, nil); err == nil && h != nil {
				err = h.err
			}
		}
		if err == nil {
			msg := fmt.Sprintf("auto-rollback: %s degraded after its sync; re-applying %s", shortRev(from), shortRev(rev))
			r.event(app, corev1.EventTypeWarning, ReasonRolledBack, msg)
			r.notify(app, st, notify.RolledBack, rev, msg, "", nil)
			req := appspec.Request(app, st.rules)
			req.Revision, req.Inventory = rev, st.inv
			r.startSync(key, app, st, obs.conn, eng, req, res, "", msg, from)
			setCondition(&app.Status.Conditions, app.Generation, tendv1.ConditionReady, metav1.ConditionFalse, ReasonRolledBack, msg)
			return ctrl.Result{}
		}
	}
	r.event(app, corev1.EventTypeWarning, ReasonRolledBack, fmt.Sprintf("auto-rollback from %s to %s failed: %v", shortRev(from), shortRev(to), err))
	return ctrl.Result{RequeueAfter: time.Minute}
}
