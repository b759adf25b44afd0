package controller

import (
	"context"
	"errors"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/objstatus"
)

// How the Source, AppSet and Cluster reconcilers (and notify's Notifier
// reconciler) sort what goes wrong, as Flux's controllers do:
//
//   - transient: the apiserver or the network failed (reading a Secret, a
//     ConfigMap, a Cluster, a kubeconfig's server; a fetch that timed out).
//     The reconcile returns the error, so the controller's queue retries
//     with backoff from a second or less; the Ready condition says what
//     failed (reason ReconcileFailed, or FetchFailed, Unreachable).
//   - permanent: the spec, or what it names, is wrong (a bad field, a
//     missing Secret the user must create, an unusable kubeconfig). stall
//     sets Stalled and Ready False saying what to do; the status write
//     records one event; the object is looked at again only when it (or a
//     Secret it watches) changes, or after its interval.
//   - waiting: something that will change by itself (a dependency not
//     ready, a Source not fetched yet). The reconcile returns RequeueAfter
//     and Ready False says what it waits for.
//
// Every reconcile writes its status once, at its end, through finish (an
// objstatus.Writer): conflict-safe, and joining a failed write with the
// reconcile's own error rather than dropping either.

// ReasonReconcileFailed: something tend reads did not answer (the
// apiserver, mostly); tend retries with backoff.
const ReasonReconcileFailed = "ReconcileFailed"

// stall records a permanent problem: Stalled and Ready False, both with
// reason and msg (which says what to do).
func stall(conds *[]metav1.Condition, gen int64, reason, msg string) {
	setCondition(conds, gen, tendv1.ConditionStalled, metav1.ConditionTrue, reason, msg)
	setCondition(conds, gen, tendv1.ConditionReady, metav1.ConditionFalse, reason, msg)
	meta.RemoveStatusCondition(conds, tendv1.ConditionReconciling)
}

// setNotReady records a transient failure or a wait: Ready False with
// reason and msg, and no Stalled.
func setNotReady(conds *[]metav1.Condition, gen int64, reason, msg string) {
	meta.RemoveStatusCondition(conds, tendv1.ConditionStalled)
	setCondition(conds, gen, tendv1.ConditionReady, metav1.ConditionFalse, reason, msg)
}

// finish writes obj's status when the reconcile changed it from before's
// (see objstatus.Writer.Write) and returns the reconcile's result and
// error. A failed write is joined to the reconcile's error, and as an
// error has the object reconciled again with backoff.
func finish(ctx context.Context, w objstatus.Writer, obj, before client.Object, res ctrl.Result, err error) (ctrl.Result, error) {
	if _, werr := w.Write(ctx, obj, before); werr != nil {
		return ctrl.Result{}, errors.Join(err, werr)
	}
	if err != nil {
		return ctrl.Result{}, err // the queue's backoff decides when
	}
	return res, nil
}

// remoteRetryLimiter is the backoff of reconcilers whose transient errors
// come from servers other than the apiserver (git servers, registries,
// remote clusters): from 1 s, doubling, up to a minute (a Source's default
// interval), rather than controller-runtime's default that starts at 5 ms.
func remoteRetryLimiter() workqueue.TypedRateLimiter[reconcile.Request] {
	return workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](time.Second, time.Minute)
}
