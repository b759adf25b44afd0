package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrl "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	crmanager "sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/freight"
	"github.com/tend-gitops/tend/internal/objstatus"
	"github.com/tend-gitops/tend/internal/refwatch"
	"github.com/tend-gitops/tend/internal/source/chart"
)

// Reasons of a Warehouse's conditions.
const (
	ReasonFreightFound = "FreightFound"
	ReasonNoMatch      = "NoMatch"
	ReasonRateLimited  = "RateLimited"
	ReasonCheckFailed  = "CheckFailed"
)

const ownerWarehouse = "Warehouse"

func warehouseOwner(w *tendv1.Warehouse) refwatch.Owner {
	return refwatch.Owner{Kind: ownerWarehouse, Namespace: w.Namespace, Name: w.Name}
}

// indexWarehouseSource indexes Warehouses by the git Sources they
// subscribe to ("namespace/name").
const indexWarehouseSource = "spec.subscriptions.git.sourceRef"

// WarehouseReconciler checks a Warehouse's subscriptions at its interval
// (a git subscription when its Source fetches a new commit) and records
// each new combination of versions as freight in its status.
type WarehouseReconciler struct {
	Client   client.Client
	Images   *freight.Images
	Charts   freight.ChartFetcher
	Recorder objstatus.EventRecorder
	Log      *slog.Logger
	// refs reconciles a Warehouse whose credentials Secret changed.
	refs trigger
}

// SetupWithManager registers the reconciler.
func (r *WarehouseReconciler) SetupWithManager(mgr crmanager.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &tendv1.Warehouse{}, indexWarehouseSource, func(o client.Object) []string {
		var out []string
		for _, s := range o.(*tendv1.Warehouse).Spec.Subscriptions {
			if s.Git != nil {
				out = append(out, o.GetNamespace()+"/"+s.Git.SourceRef.Name)
			}
		}
		return out
	}); err != nil {
		return err
	}
	return builder.ControllerManagedBy(mgr).
		Named("warehouse").
		For(&tendv1.Warehouse{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&tendv1.Source{}, handler.EnqueueRequestsFromMapFunc(r.warehousesOfSource), builder.WithPredicates(revisionChanged{})).
		WatchesRawSource(r.refs.source()).
		WithOptions(ctrl.Options{RateLimiter: remoteRetryLimiter()}).
		Complete(r)
}

// revisionChanged passes Source events that change its fetched revision.
type revisionChanged struct{ predicate.Funcs }

func (revisionChanged) Create(event.CreateEvent) bool { return true }
func (revisionChanged) Delete(event.DeleteEvent) bool { return true }
func (revisionChanged) Update(e event.UpdateEvent) bool {
	return newRevision(e.ObjectOld, e.ObjectNew) != ""
}

func (r *WarehouseReconciler) warehousesOfSource(ctx context.Context, o client.Object) []reconcile.Request {
	return requestsByIndex(ctx, r.Client, &tendv1.WarehouseList{}, indexWarehouseSource, o)
}

// requestsByIndex lists the objects of list's kind in o's namespace whose
// index holds o ("namespace/name"), as reconcile requests.
func requestsByIndex(ctx context.Context, c client.Reader, list client.ObjectList, index string, o client.Object) []reconcile.Request {
	if err := c.List(ctx, list, client.InNamespace(o.GetNamespace()), client.MatchingFields{index: o.GetNamespace() + "/" + o.GetName()}); err != nil {
		return nil
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(items))
	for _, it := range items {
		if m, ok := it.(client.Object); ok {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: m.GetNamespace(), Name: m.GetName()}})
		}
	}
	return out
}

// Reconcile checks one Warehouse.
func (r *WarehouseReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var w tendv1.Warehouse
	if err := r.Client.Get(ctx, req.NamespacedName, &w); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	before := w.DeepCopy()
	res, err := r.reconcile(ctx, &w)
	w.Status.ObservedGeneration = w.Generation
	return finish(ctx, objstatus.Writer{Client: r.Client, Recorder: r.Recorder, Action: "Check"}, &w, before, res, err)
}

func (r *WarehouseReconciler) reconcile(ctx context.Context, w *tendv1.Warehouse) (reconcile.Result, error) {
	interval := w.Spec.Interval.Duration
	if interval <= 0 {
		interval = 5 * time.Minute
	}
	if w.Spec.Suspend {
		setNotReady(&w.Status.Conditions, w.Generation, ReasonSuspended, "checking is suspended (spec.suspend); the freight recorded stays")
		return reconcile.Result{}, nil
	}
	rd := readerFor(r.Client, warehouseOwner(w))
	defer rd.done()
	var found tendv1.Freight
	for i := range w.Spec.Subscriptions {
		sub := &w.Spec.Subscriptions[i]
		field := fmt.Sprintf("spec.subscriptions[%d]", i)
		if err := r.check(ctx, rd, w, sub, &found); err != nil {
			return r.failed(w, field, err, interval)
		}
	}
	meta.RemoveStatusCondition(&w.Status.Conditions, tendv1.ConditionStalled)
	found.Name = freight.Name(&found)
	if len(w.Status.Freight) == 0 || w.Status.Freight[0].Name != found.Name {
		found.DiscoveredAt = metav1.Now()
		w.Status.Freight = append([]tendv1.Freight{found}, w.Status.Freight...)
		r.Recorder.Eventf(w, nil, corev1.EventTypeNormal, ReasonFreightFound, "Check", "new freight %s: %s", found.Name, freight.Describe(&found))
		r.Log.Info("new freight", "warehouse", w.Namespace+"/"+w.Name, "freight", found.Name, "versions", freight.Describe(&found))
	}
	limit := int(w.Spec.FreightLimit)
	if limit <= 0 {
		limit = 20
	}
	if len(w.Status.Freight) > limit {
		w.Status.Freight = w.Status.Freight[:limit]
	}
	setCondition(&w.Status.Conditions, w.Generation, tendv1.ConditionReady, metav1.ConditionTrue, ReasonFreightFound,
		fmt.Sprintf("newest freight %s: %s", w.Status.Freight[0].Name, freight.Describe(&w.Status.Freight[0])))
	return reconcile.Result{RequeueAfter: interval}, nil
}

// check finds what sub picks now and adds it to f.
func (r *WarehouseReconciler) check(ctx context.Context, rd client.Reader, w *tendv1.Warehouse, sub *tendv1.Subscription, f *tendv1.Freight) error {
	switch {
	case sub.Image != nil:
		cred, err := r.credentials(ctx, rd, w.Namespace, sub.Image.SecretRef, freight.RegistryHost(sub.Image.Repository))
		if err != nil {
			return err
		}
		im, err := r.Images.Find(ctx, sub.Image, cred)
		if err != nil {
			return err
		}
		f.Images = append(f.Images, im)
	case sub.Chart != nil:
		cred, err := r.credentials(ctx, rd, w.Namespace, sub.Chart.SecretRef, chart.OCIHost(sub.Chart.RepoURL))
		if err != nil {
			return err
		}
		c, err := freight.FindChart(ctx, r.Charts, sub.Chart, cred)
		if err != nil {
			return err
		}
		f.Charts = append(f.Charts, c)
	case sub.Git != nil:
		var src tendv1.Source
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: w.Namespace, Name: sub.Git.SourceRef.Name}, &src); err != nil {
			if apierrors.IsNotFound(err) {
				return &freight.InvalidError{Err: fmt.Errorf("the Source %s/%s not found; create it or fix git.sourceRef", w.Namespace, sub.Git.SourceRef.Name)}
			}
			return err
		}
		if src.Spec.Git == nil {
			return &freight.InvalidError{Err: fmt.Errorf("the Source %s/%s is not a git Source", w.Namespace, src.Name)}
		}
		if src.Status.Artifact == nil || src.Status.Artifact.Revision == "" {
			return &freight.NoMatchError{Err: fmt.Errorf("the Source %s/%s has not fetched a commit yet", w.Namespace, src.Name)}
		}
		f.Commits = append(f.Commits, tendv1.FreightCommit{Source: src.Name, RepoURL: src.Spec.Git.URL, Revision: src.Status.Artifact.Revision})
	default:
		return &freight.InvalidError{Err: errors.New("set one of image, chart or git")}
	}
	return nil
}

// credentials reads a registry's credentials from the Secret ref names
// (from its watch: a change to it checks again at once).
func (r *WarehouseReconciler) credentials(ctx context.Context, rd client.Reader, ns string, ref *tendv1.LocalObjectReference, host string) (freight.Credentials, error) {
	if ref == nil {
		return freight.Credentials{}, nil
	}
	var sec corev1.Secret
	if err := rd.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, &sec); err != nil {
		if apierrors.IsNotFound(err) {
			return freight.Credentials{}, &secretError{fmt.Errorf("secretRef: the Secret %s/%s not found; create it or fix secretRef", ns, ref.Name)}
		}
		return freight.Credentials{}, err
	}
	user, pass, err := chart.SecretCredentials(sec.Data, host)
	if err != nil {
		return freight.Credentials{}, &secretError{fmt.Errorf("secretRef: the Secret %s/%s: %v", ns, ref.Name, err)}
	}
	return freight.Credentials{Username: user, Password: pass}, nil
}

// secretError is a credentials Secret that is missing or holds no
// credentials: its watch checks again once it is fixed.
type secretError struct{ err error }

func (e *secretError) Error() string { return e.err.Error() }

// failed sorts a subscription's error: a spec or Secret to fix stalls
// (one event says what to do), no match yet and a rate limit wait for the
// next check, anything else is returned for the queue's backoff. The
// freight recorded stays.
func (r *WarehouseReconciler) failed(w *tendv1.Warehouse, field string, err error, interval time.Duration) (reconcile.Result, error) {
	msg := field + ": " + err.Error()
	var (
		inv  *freight.InvalidError
		sec  *secretError
		none *freight.NoMatchError
		rl   *freight.RateLimitedError
	)
	switch {
	case errors.As(err, &inv):
		stall(&w.Status.Conditions, w.Generation, ReasonInvalidSpec, msg)
		return reconcile.Result{}, nil
	case errors.As(err, &sec):
		stall(&w.Status.Conditions, w.Generation, ReasonSecretInvalid, msg)
		return reconcile.Result{}, nil
	case errors.As(err, &none):
		setNotReady(&w.Status.Conditions, w.Generation, ReasonNoMatch, msg)
		return reconcile.Result{RequeueAfter: interval}, nil
	case errors.As(err, &rl):
		setNotReady(&w.Status.Conditions, w.Generation, ReasonRateLimited, msg)
		return reconcile.Result{RequeueAfter: max(interval, time.Minute)}, nil
	}
	setNotReady(&w.Status.Conditions, w.Generation, ReasonCheckFailed, msg)
	return reconcile.Result{}, fmt.Errorf("check of Warehouse %s/%s %s: %w", w.Namespace, w.Name, field, err)
}
