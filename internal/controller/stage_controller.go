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
	ctrlopts "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	crmanager "sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/freight"
	"github.com/tend-gitops/tend/internal/objstatus"
	"github.com/tend-gitops/tend/internal/promote"
	"github.com/tend-gitops/tend/internal/source/git"
)

// Reasons of a Stage's conditions and events.
const (
	ReasonPromoted           = "Promoted"
	ReasonNoFreight          = "NoFreight"
	ReasonPromotionFailed    = "PromotionFailed"
	ReasonWarehouseNotFound  = "WarehouseNotFound"
	ReasonWaitingForApproval = "WaitingForApproval"
)

// waitingMessage says that freight f waits for approval, and how to give it.
func waitingMessage(s *tendv1.Stage, f *tendv1.Freight) string {
	return fmt.Sprintf("freight %s (%s) waits for approval: tend promote approve %s %s -n %s", f.Name, freight.Describe(f), s.Name, f.Name, s.Namespace)
}

// freightNamed is the Warehouse's freight called name, nil if it keeps
// none of that name.
func freightNamed(wh *tendv1.Warehouse, name string) *tendv1.Freight {
	for i := range wh.Status.Freight {
		if wh.Status.Freight[i].Name == name {
			return &wh.Status.Freight[i]
		}
	}
	return nil
}

// stageHistory is how many promotions a Stage's status keeps.
const stageHistory = 20

// indexStageWarehouse indexes Stages by their Warehouse
// ("namespace/name").
const indexStageWarehouse = "spec.warehouse.name"

// StageReconciler promotes each new piece of freight of a Stage's
// Warehouse: it commits the Stage's updates to its git Source's branch
// (retried on a fresh head when the branch moved) and records the
// promotion in the Stage's status.
type StageReconciler struct {
	Client   client.Client
	Git      *git.Fetcher
	Recorder objstatus.EventRecorder
	Log      *slog.Logger
}

// SetupWithManager registers the reconciler.
func (r *StageReconciler) SetupWithManager(mgr crmanager.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &tendv1.Stage{}, indexStageWarehouse, func(o client.Object) []string {
		return []string{o.GetNamespace() + "/" + o.(*tendv1.Stage).Spec.Warehouse.Name}
	}); err != nil {
		return err
	}
	return builder.ControllerManagedBy(mgr).
		Named("stage").
		For(&tendv1.Stage{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&tendv1.Warehouse{}, handler.EnqueueRequestsFromMapFunc(r.stagesOfWarehouse), builder.WithPredicates(newestFreightChanged{})).
		WithOptions(ctrlopts.Options{RateLimiter: remoteRetryLimiter()}).
		Complete(r)
}

// newestFreightChanged passes Warehouse events that change its newest
// freight (and its creation and deletion).
type newestFreightChanged struct{ predicate.Funcs }

func (newestFreightChanged) Create(event.CreateEvent) bool { return true }
func (newestFreightChanged) Delete(event.DeleteEvent) bool { return true }
func (newestFreightChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*tendv1.Warehouse)
	n, ok2 := e.ObjectNew.(*tendv1.Warehouse)
	return ok1 && ok2 && newestFreight(o) != newestFreight(n)
}

func newestFreight(w *tendv1.Warehouse) string {
	if len(w.Status.Freight) == 0 {
		return ""
	}
	return w.Status.Freight[0].Name
}

func (r *StageReconciler) stagesOfWarehouse(ctx context.Context, o client.Object) []reconcile.Request {
	return requestsByIndex(ctx, r.Client, &tendv1.StageList{}, indexStageWarehouse, o)
}

// Reconcile promotes one Stage.
func (r *StageReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var s tendv1.Stage
	if err := r.Client.Get(ctx, req.NamespacedName, &s); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	before := s.DeepCopy()
	res, err := r.reconcile(ctx, &s)
	s.Status.ObservedGeneration = s.Generation
	return finish(ctx, objstatus.Writer{Client: r.Client, Recorder: r.Recorder, Action: "Promote"}, &s, before, res, err)
}

func (r *StageReconciler) reconcile(ctx context.Context, s *tendv1.Stage) (reconcile.Result, error) {
	if s.Spec.Suspend {
		setNotReady(&s.Status.Conditions, s.Generation, ReasonSuspended, "promoting is suspended (spec.suspend); what was promoted stays")
		return reconcile.Result{}, nil
	}
	var wh tendv1.Warehouse
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: s.Spec.Warehouse.Name}, &wh); err != nil {
		if apierrors.IsNotFound(err) {
			// Its creation reconciles the Stage (the Warehouse watch).
			setNotReady(&s.Status.Conditions, s.Generation, ReasonWarehouseNotFound, fmt.Sprintf("the Warehouse %s/%s not found; create it or fix spec.warehouse", s.Namespace, s.Spec.Warehouse.Name))
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if len(wh.Status.Freight) == 0 {
		setNotReady(&s.Status.Conditions, s.Generation, ReasonNoFreight, fmt.Sprintf("waiting for the Warehouse %s to find freight", wh.Name))
		return reconcile.Result{}, nil
	}
	newest := &wh.Status.Freight[0]
	f := newest
	if s.Spec.Approval {
		approved := s.Annotations[tendv1.AnnotationApprovedFreight]
		if approved == "" {
			if p := s.Status.Freight; p != nil && p.Name == newest.Name {
				meta.RemoveStatusCondition(&s.Status.Conditions, tendv1.ConditionStalled)
				setCondition(&s.Status.Conditions, s.Generation, tendv1.ConditionReady, metav1.ConditionTrue, ReasonPromoted, fmt.Sprintf("runs freight %s (%s), the newest", p.Name, p.Versions))
			} else {
				setNotReady(&s.Status.Conditions, s.Generation, ReasonWaitingForApproval, waitingMessage(s, newest))
			}
			return reconcile.Result{}, nil
		}
		if f = freightNamed(&wh, approved); f == nil {
			setNotReady(&s.Status.Conditions, s.Generation, ReasonWaitingForApproval, fmt.Sprintf("the approved freight %s (annotation %s) is not among the %d the Warehouse %s keeps; approve one of them", approved, tendv1.AnnotationApprovedFreight, len(wh.Status.Freight), wh.Name))
			return reconcile.Result{}, nil
		}
	}
	if p := s.Status.Freight; p != nil && p.Name == f.Name && s.Status.ObservedGeneration == s.Generation && meta.IsStatusConditionTrue(s.Status.Conditions, tendv1.ConditionReady) {
		if f != newest {
			setCondition(&s.Status.Conditions, s.Generation, tendv1.ConditionReady, metav1.ConditionTrue, ReasonPromoted, fmt.Sprintf("runs freight %s (%s); newer %s", f.Name, p.Versions, waitingMessage(s, newest)))
		}
		return reconcile.Result{}, nil // promoted already
	}
	var src tendv1.Source
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: s.Spec.Git.SourceRef.Name}, &src); err != nil {
		if apierrors.IsNotFound(err) {
			stall(&s.Status.Conditions, s.Generation, ReasonSourceNotFound, fmt.Sprintf("spec.git.sourceRef: the Source %s/%s not found; create it or fix spec.git.sourceRef", s.Namespace, s.Spec.Git.SourceRef.Name))
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if src.Spec.Git == nil {
		stall(&s.Status.Conditions, s.Generation, ReasonInvalidSpec, fmt.Sprintf("spec.git.sourceRef: the Source %s/%s is not a git Source", s.Namespace, src.Name))
		return reconcile.Result{}, nil
	}
	// The Source's credentials (a Source reads them from their watch;
	// a promotion is rare enough to read them directly).
	auth, err := GitAuth(ctx, r.Client, &src)
	if err != nil {
		if objstatus.IsPermanent(err) {
			stall(&s.Status.Conditions, s.Generation, ReasonSecretInvalid, "spec.git.sourceRef: "+err.Error())
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	branch := s.Spec.Git.Branch
	if branch == "" {
		branch = src.Spec.Git.Ref.Branch
	}
	if branch == "" {
		branch = "main"
	}
	author := git.Signature{Name: "tend", Email: "tend@localhost"}
	if a := s.Spec.Git.Author; a != nil {
		author = git.Signature{Name: a.Name, Email: a.Email}
	}
	versions := freight.Describe(f)
	var updateErr error
	res, err := r.Git.Push(ctx, git.PushOptions{
		Options: git.Options{URL: src.Spec.Git.URL, Auth: auth, Timeout: src.Spec.Timeout.Duration},
		Branch:  branch,
		Author:  author,
		Message: fmt.Sprintf("promote %s to %s\n\nfreight %s of Warehouse %s, by tend Stage %s/%s", s.Name, versions, f.Name, wh.Name, s.Namespace, s.Name),
		Change: func(dir string) error {
			_, updateErr = promote.Apply(dir, f, s.Spec.Updates)
			return updateErr
		},
	})
	switch {
	case updateErr != nil:
		// The repository does not hold what the updates name: nothing
		// is pushed. A change of the Stage or new freight tries again,
		// and so does the next try in 5 minutes (a commit may fix it).
		stall(&s.Status.Conditions, s.Generation, ReasonInvalidSpec, fmt.Sprintf("freight %s (%s): %v; nothing was pushed", f.Name, versions, updateErr))
		return reconcile.Result{RequeueAfter: 5 * time.Minute}, nil
	case errors.Is(err, git.ErrAuth), errors.Is(err, git.ErrHostKey), errors.Is(err, git.ErrRepoNotFound), errors.Is(err, git.ErrRefNotFound), errors.Is(err, git.ErrInvalid):
		stall(&s.Status.Conditions, s.Generation, ReasonPromotionFailed, fmt.Sprintf("freight %s (%s): %v", f.Name, versions, err))
		return reconcile.Result{}, nil
	case err != nil:
		setNotReady(&s.Status.Conditions, s.Generation, ReasonPromotionFailed, fmt.Sprintf("freight %s (%s): %v; retrying", f.Name, versions, err))
		return reconcile.Result{}, fmt.Errorf("promote Stage %s/%s: %w", s.Namespace, s.Name, err)
	}
	p := tendv1.Promotion{Name: f.Name, Versions: versions, Revision: res.Revision, PromotedAt: metav1.NewTime(time.Now())}
	s.Status.Freight = &p
	s.Status.History = append([]tendv1.Promotion{p}, s.Status.History...)
	if len(s.Status.History) > stageHistory {
		s.Status.History = s.Status.History[:stageHistory]
	}
	how := "committed " + shortRev(res.Revision)
	if !res.Pushed {
		how = "already in git at " + shortRev(res.Revision)
	}
	meta.RemoveStatusCondition(&s.Status.Conditions, tendv1.ConditionStalled)
	msg := fmt.Sprintf("promoted freight %s (%s): %s", f.Name, versions, how)
	if f != newest {
		msg += "; newer " + waitingMessage(s, newest)
	}
	setCondition(&s.Status.Conditions, s.Generation, tendv1.ConditionReady, metav1.ConditionTrue, ReasonPromoted, msg)
	r.Recorder.Eventf(s, nil, corev1.EventTypeNormal, ReasonPromoted, "Promote", "promoted freight %s (%s): %s to branch %s", f.Name, versions, how, branch)
	r.Log.Info("promoted", "stage", s.Namespace+"/"+s.Name, "freight", f.Name, "versions", versions, "revision", res.Revision, "pushed", res.Pushed)
	return reconcile.Result{}, nil
}
