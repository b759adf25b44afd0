package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
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
	"github.com/tend-gitops/tend/internal/artifact"
	"github.com/tend-gitops/tend/internal/forge"
	"github.com/tend-gitops/tend/internal/freight"
	"github.com/tend-gitops/tend/internal/notify"
	"github.com/tend-gitops/tend/internal/objstatus"
	"github.com/tend-gitops/tend/internal/promote"
	"github.com/tend-gitops/tend/internal/render"
	"github.com/tend-gitops/tend/internal/source/git"
)

// Reasons of a Stage's conditions and events.
const (
	ReasonPromoted           = "Promoted"
	ReasonNoFreight          = "NoFreight"
	ReasonPromotionFailed    = "PromotionFailed"
	ReasonWarehouseNotFound  = "WarehouseNotFound"
	ReasonWaitingForApproval = "WaitingForApproval"
	ReasonWaitingForUpstream = "WaitingForUpstream"
	ReasonVerifying          = "Verifying"
	ReasonVerificationFailed = "VerificationFailed"
	ReasonWaitingForMerge    = "WaitingForMerge"
	ReasonPullRequestClosed  = "PullRequestClosed"
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

// Indexes of Stages ("namespace/name" of what they name): by Warehouse,
// by upstream Stage, by App.
const (
	indexStageWarehouse = "spec.warehouse.name"
	indexStageUpstream  = "spec.upstream.stage"
	indexStageApps      = "spec.apps"
)

// StageReconciler promotes each new piece of freight of a Stage's
// Warehouse: it commits the Stage's updates to its git Source's branch
// (retried on a fresh head when the branch moved) and records the
// promotion in the Stage's status.
type StageReconciler struct {
	Client client.Client
	// APIReader reads a Stage past the cache before it pushes: a
	// promotion is not made twice from a status the cache has not caught
	// up with.
	APIReader client.Reader
	Git       *git.Fetcher
	// Artifacts and Charts serve the render check before a push: other
	// Sources' values files, and charts a rendered chart depends on.
	Artifacts *artifact.Store
	Charts    render.ChartFetcher
	Recorder  objstatus.EventRecorder
	// Notify, when set, publishes Stage events to Notifiers.
	Notify func(notify.Event)
	Log    *slog.Logger

	// contains remembers which promotion commits App revisions hold
	// (commit+" "+tip): a commit's history does not change.
	mu       sync.Mutex
	contains map[string]bool
}

// SetupWithManager registers the reconciler.
func (r *StageReconciler) SetupWithManager(mgr crmanager.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(context.Background(), &tendv1.Stage{}, indexStageWarehouse, func(o client.Object) []string {
		return []string{o.GetNamespace() + "/" + o.(*tendv1.Stage).Spec.Warehouse.Name}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(context.Background(), &tendv1.Stage{}, indexStageUpstream, func(o client.Object) []string {
		if u := o.(*tendv1.Stage).Spec.Upstream; u != nil {
			return []string{o.GetNamespace() + "/" + u.Stage}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := idx.IndexField(context.Background(), &tendv1.Stage{}, indexStageApps, func(o client.Object) []string {
		var out []string
		for _, a := range o.(*tendv1.Stage).Spec.Apps {
			out = append(out, o.GetNamespace()+"/"+a.Name)
		}
		return out
	}); err != nil {
		return err
	}
	return builder.ControllerManagedBy(mgr).
		Named("stage").
		For(&tendv1.Stage{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&tendv1.Warehouse{}, handler.EnqueueRequestsFromMapFunc(r.stagesOfWarehouse), builder.WithPredicates(newestFreightChanged{})).
		// A Stage's downstream Stages wait for what it runs to pass.
		Watches(&tendv1.Stage{}, handler.EnqueueRequestsFromMapFunc(r.downstreamStages), builder.WithPredicates(stageFreightChanged{})).
		// A promotion is done when its Apps run it Healthy.
		Watches(&tendv1.App{}, handler.EnqueueRequestsFromMapFunc(r.stagesOfApp), builder.WithPredicates(appRolloutChanged{})).
		// Verification Jobs (the cache holds only Jobs labelled
		// tend.dev/stage, see NewController).
		Owns(&batchv1.Job{}).
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

func (r *StageReconciler) downstreamStages(ctx context.Context, o client.Object) []reconcile.Request {
	return requestsByIndex(ctx, r.Client, &tendv1.StageList{}, indexStageUpstream, o)
}

func (r *StageReconciler) stagesOfApp(ctx context.Context, o client.Object) []reconcile.Request {
	return requestsByIndex(ctx, r.Client, &tendv1.StageList{}, indexStageApps, o)
}

// stageFreightChanged passes Stage events that change what its
// downstream Stages read: its freight and how far it passed.
type stageFreightChanged struct{ predicate.Funcs }

func (stageFreightChanged) Create(event.CreateEvent) bool { return true }
func (stageFreightChanged) Delete(event.DeleteEvent) bool { return true }
func (stageFreightChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*tendv1.Stage)
	n, ok2 := e.ObjectNew.(*tendv1.Stage)
	return ok1 && ok2 && !equality.Semantic.DeepEqual(o.Status.Freight, n.Status.Freight)
}

// appRolloutChanged passes App events that change what it runs or its
// health.
type appRolloutChanged struct{ predicate.Funcs }

func (appRolloutChanged) Create(event.CreateEvent) bool { return true }
func (appRolloutChanged) Delete(event.DeleteEvent) bool { return true }
func (appRolloutChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*tendv1.App)
	n, ok2 := e.ObjectNew.(*tendv1.App)
	return ok1 && ok2 && (o.Status.Revision != n.Status.Revision || o.Status.Health != n.Status.Health || o.Status.Sync != n.Status.Sync)
}

// Reconcile promotes one Stage.
func (r *StageReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var s tendv1.Stage
	if err := r.Client.Get(ctx, req.NamespacedName, &s); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	before := s.DeepCopy()
	res, err := r.reconcile(ctx, &s, before)
	s.Status.ObservedGeneration = s.Generation
	// The history's newest entry is the promotion the Stage runs, as far
	// as it got.
	if p, h := s.Status.Freight, s.Status.History; p != nil && len(h) > 0 && h[0].Name == p.Name && h[0].Revision == p.Revision {
		h[0] = *p.DeepCopy()
	}
	return finish(ctx, objstatus.Writer{Client: r.Client, Recorder: r.Recorder, Action: "Promote"}, &s, before, res, err)
}

// wait is why a Stage promotes nothing now: a condition reason and
// message, and when to look again (0: an event will tell).
type wait struct {
	reason, msg string
	after       time.Duration
	// stalled: the Stage's spec is wrong (its Stalled condition says
	// how); nothing else is done.
	stalled bool
}

func (r *StageReconciler) reconcile(ctx context.Context, s, before *tendv1.Stage) (reconcile.Result, error) {
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
	f, candidate, by, w, err := r.wanted(ctx, s, &wh)
	if err != nil || w != nil && w.stalled {
		return reconcile.Result{}, err
	}
	if f != nil && !r.promoted(s, f) {
		if res, err, done := r.promote(ctx, s, &wh, f, by); !done {
			return res, err
		}
	}
	// What the Stage runs: do its Apps run it, Healthy, and did it pass
	// verification?
	res, settled, err := r.track(ctx, s)
	if w != nil && w.after > 0 && (res.RequeueAfter == 0 || w.after < res.RequeueAfter) {
		// A soak ends with no event: look again then, whatever the
		// current promotion does meanwhile.
		res.RequeueAfter = w.after
	}
	if err != nil || !settled {
		return res, err
	}
	p := s.Status.Freight
	switch {
	case w != nil:
		setNotReady(&s.Status.Conditions, s.Generation, w.reason, w.msg)
	case p != nil:
		msg := fmt.Sprintf("runs freight %s (%s) at %s, passed", p.Name, p.Versions, shortRev(p.Revision))
		if candidate != nil && candidate.Name != p.Name && s.Spec.Approval {
			msg += "; newer " + waitingMessage(s, candidate)
		}
		meta.RemoveStatusCondition(&s.Status.Conditions, tendv1.ConditionStalled)
		setCondition(&s.Status.Conditions, s.Generation, tendv1.ConditionReady, metav1.ConditionTrue, ReasonPromoted, msg)
	}
	if s.Spec.Approval && candidate != nil && (p == nil || p.Name != candidate.Name) {
		r.notifyWaiting(before, s, candidate)
	}
	return res, nil
}

// wanted is the freight the Stage should run now (nil: none yet, w says
// why), the candidate its Warehouse or upstream offers (what approval
// would promote), and what to record as having promoted it. A nil f and w
// with a nil error means the Stage stalled.
func (r *StageReconciler) wanted(ctx context.Context, s *tendv1.Stage, wh *tendv1.Warehouse) (f, candidate *tendv1.Freight, by string, w *wait, err error) {
	candidate, by, w, err = r.candidate(ctx, s, wh)
	if err != nil || w != nil && w.stalled {
		return nil, nil, "", w, err
	}
	if !s.Spec.Approval {
		return candidate, candidate, by, w, nil
	}
	approved := s.Annotations[tendv1.AnnotationApprovedFreight]
	if approved == "" {
		if p := s.Status.Freight; candidate != nil && (p == nil || p.Name != candidate.Name) {
			w = &wait{reason: ReasonWaitingForApproval, msg: waitingMessage(s, candidate)}
		}
		return nil, candidate, "", w, nil
	}
	if f = freightNamed(wh, approved); f == nil {
		return nil, candidate, "", &wait{reason: ReasonWaitingForApproval, msg: fmt.Sprintf("the approved freight %s (annotation %s) is not among the %d the Warehouse %s keeps; approve one of them", approved, tendv1.AnnotationApprovedFreight, len(wh.Status.Freight), wh.Name)}, nil
	}
	by = "approved"
	if who := s.Annotations[tendv1.AnnotationApprovedBy]; who != "" {
		by = "approved by " + who
	}
	return f, candidate, by, nil, nil
}

// candidate is the freight the Stage's Warehouse (its newest) or its
// upstream Stage (what passed there, soaked) offers.
func (r *StageReconciler) candidate(ctx context.Context, s *tendv1.Stage, wh *tendv1.Warehouse) (*tendv1.Freight, string, *wait, error) {
	if s.Spec.Upstream == nil {
		if len(wh.Status.Freight) == 0 {
			return nil, "", &wait{reason: ReasonNoFreight, msg: fmt.Sprintf("waiting for the Warehouse %s to find freight", wh.Name)}, nil
		}
		return &wh.Status.Freight[0], "warehouse " + wh.Name, nil, nil
	}
	up := s.Spec.Upstream
	var u tendv1.Stage
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: up.Stage}, &u); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, "", &wait{reason: ReasonWaitingForUpstream, msg: fmt.Sprintf("spec.upstream.stage: the Stage %s/%s not found; create it or fix spec.upstream", s.Namespace, up.Stage)}, nil
		}
		return nil, "", nil, err
	}
	if u.Name == s.Name || u.Spec.Warehouse.Name != s.Spec.Warehouse.Name {
		stall(&s.Status.Conditions, s.Generation, ReasonInvalidSpec, fmt.Sprintf("spec.upstream.stage: the Stage %s takes the freight of Warehouse %s, this one of %s; an upstream Stage must be another Stage of the same Warehouse", u.Name, u.Spec.Warehouse.Name, s.Spec.Warehouse.Name))
		return nil, "", &wait{stalled: true}, nil
	}
	p := u.Status.Freight
	switch {
	case p == nil:
		return nil, "", &wait{reason: ReasonWaitingForUpstream, msg: fmt.Sprintf("waiting for the upstream Stage %s to promote freight", u.Name)}, nil
	case p.VerifiedAt == nil:
		why := p.Message
		if why == "" {
			why = "not passed yet"
		}
		return nil, "", &wait{reason: ReasonWaitingForUpstream, msg: fmt.Sprintf("waiting for freight %s (%s) to pass in the upstream Stage %s: %s", p.Name, p.Versions, u.Name, why)}, nil
	case p.HealthySince == nil:
		return nil, "", &wait{reason: ReasonWaitingForUpstream, msg: fmt.Sprintf("waiting for the upstream Stage %s's Apps to run freight %s (%s) Healthy again", u.Name, p.Name, p.Versions)}, nil
	}
	if left := time.Until(p.HealthySince.Add(up.Soak.Duration)); left > 0 {
		return nil, "", &wait{reason: ReasonWaitingForUpstream, after: left, msg: fmt.Sprintf("freight %s (%s) soaks in the upstream Stage %s until %s (Healthy since %s, spec.upstream.soak %s)",
			p.Name, p.Versions, u.Name, p.HealthySince.Add(up.Soak.Duration).UTC().Format(time.RFC3339), p.HealthySince.UTC().Format(time.RFC3339), up.Soak.Duration)}, nil
	}
	f := freightNamed(wh, p.Name)
	if f == nil {
		return nil, "", &wait{reason: ReasonWaitingForUpstream, msg: fmt.Sprintf("freight %s that passed in the upstream Stage %s is no longer among the Warehouse %s's freight (spec.freightLimit)", p.Name, u.Name, wh.Name)}, nil
	}
	return f, "upstream Stage " + u.Name, nil, nil
}

// promoted says whether the Stage committed f already for its current
// spec, without a problem since.
func (r *StageReconciler) promoted(s *tendv1.Stage, f *tendv1.Freight) bool {
	p := s.Status.Freight
	return p != nil && p.Name == f.Name && s.Status.ObservedGeneration == s.Generation && !meta.IsStatusConditionTrue(s.Status.Conditions, tendv1.ConditionStalled)
}

// promote commits freight f's updates to the Stage's branch. done is false
// when the reconcile ends with res and err.
func (r *StageReconciler) promote(ctx context.Context, s *tendv1.Stage, wh *tendv1.Warehouse, f *tendv1.Freight, by string) (res reconcile.Result, err error, done bool) {
	var fresh tendv1.Stage
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(s), &fresh); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err), false
	}
	if fresh.ResourceVersion != s.ResourceVersion {
		// The cache is behind (a promotion's status was just written):
		// decide again once it caught up.
		return reconcile.Result{RequeueAfter: time.Second}, nil, false
	}
	var src tendv1.Source
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: s.Spec.Git.SourceRef.Name}, &src); err != nil {
		if apierrors.IsNotFound(err) {
			stall(&s.Status.Conditions, s.Generation, ReasonSourceNotFound, fmt.Sprintf("spec.git.sourceRef: the Source %s/%s not found; create it or fix spec.git.sourceRef", s.Namespace, s.Spec.Git.SourceRef.Name))
			return reconcile.Result{}, nil, false
		}
		return reconcile.Result{}, err, false
	}
	if src.Spec.Git == nil {
		stall(&s.Status.Conditions, s.Generation, ReasonInvalidSpec, fmt.Sprintf("spec.git.sourceRef: the Source %s/%s is not a git Source", s.Namespace, src.Name))
		return reconcile.Result{}, nil, false
	}
	// The Source's credentials (a Source reads them from their watch;
	// a promotion is rare enough to read them directly).
	auth, err := GitAuth(ctx, r.Client, &src)
	if err != nil {
		if objstatus.IsPermanent(err) {
			stall(&s.Status.Conditions, s.Generation, ReasonSecretInvalid, "spec.git.sourceRef: "+err.Error())
			return reconcile.Result{}, nil, false
		}
		return reconcile.Result{}, err, false
	}
	checks, err := r.renderChecks(ctx, s, &src)
	if err != nil {
		return reconcile.Result{}, err, false
	}
	branch := stageBranch(s, &src)
	author := git.Signature{Name: "tend", Email: "tend@localhost"}
	if a := s.Spec.Git.Author; a != nil {
		author = git.Signature{Name: a.Name, Email: a.Email}
	}
	versions := freight.Describe(f)
	title := fmt.Sprintf("promote %s to %s", s.Name, versions)
	body := fmt.Sprintf("freight %s of Warehouse %s, by tend Stage %s/%s", f.Name, wh.Name, s.Namespace, s.Name)
	var forgeClient *forge.Client
	pushBranch := ""
	if s.Spec.Git.PullRequest != nil {
		if forgeClient, err = r.forgeClient(ctx, s, &src); forgeClient == nil {
			return reconcile.Result{}, err, false
		}
		pushBranch = pullRequestBranch(s)
	}
	var signer git.Signer
	if s.Spec.Git.Signing != nil {
		if signer, err = r.signer(ctx, s); signer == nil {
			return reconcile.Result{}, err, false
		}
	}
	var updateErr error
	pushed, err := r.Git.Push(ctx, git.PushOptions{
		Signer:     signer,
		Options:    git.Options{URL: src.Spec.Git.URL, Auth: auth, Timeout: src.Spec.Timeout.Duration},
		Branch:     branch,
		PushBranch: pushBranch,
		Author:     author,
		Message:    title + "\n\n" + body,
		Change: func(dir string) error {
			if _, updateErr = promote.Apply(dir, f, s.Spec.Updates); updateErr != nil {
				return updateErr
			}
			updateErr = checks.run(ctx, dir)
			return updateErr
		},
	})
	switch {
	case updateErr != nil:
		// The repository does not hold what the updates name, or the
		// change would not render: nothing is pushed. A change of the
		// Stage or new freight tries again, and so does the next try in
		// 5 minutes (a commit may fix it).
		msg := fmt.Sprintf("freight %s (%s): %v; nothing was pushed", f.Name, versions, updateErr)
		stall(&s.Status.Conditions, s.Generation, ReasonInvalidSpec, msg)
		r.publish(s, notify.PromotionFailed, "", msg, updateErr.Error())
		return reconcile.Result{RequeueAfter: 5 * time.Minute}, nil, false
	case errors.Is(err, git.ErrAuth), errors.Is(err, git.ErrHostKey), errors.Is(err, git.ErrRepoNotFound), errors.Is(err, git.ErrRefNotFound), errors.Is(err, git.ErrInvalid):
		msg := fmt.Sprintf("freight %s (%s): %v", f.Name, versions, err)
		stall(&s.Status.Conditions, s.Generation, ReasonPromotionFailed, msg)
		r.publish(s, notify.PromotionFailed, "", msg, err.Error())
		return reconcile.Result{}, nil, false
	case err != nil:
		setNotReady(&s.Status.Conditions, s.Generation, ReasonPromotionFailed, fmt.Sprintf("freight %s (%s): %v; retrying", f.Name, versions, err))
		return reconcile.Result{}, fmt.Errorf("promote Stage %s/%s: %w", s.Namespace, s.Name, err), false
	}
	meta.RemoveStatusCondition(&s.Status.Conditions, tendv1.ConditionStalled)
	if p := s.Status.Freight; p != nil && p.Name == f.Name && !pushed.Pushed {
		return reconcile.Result{}, nil, true // the spec changed, what git holds of the freight did not
	}
	p := tendv1.Promotion{Name: f.Name, Versions: versions, Revision: pushed.Revision, PromotedAt: metav1.NewTime(time.Now()), By: by}
	if forgeClient != nil && pushed.Pushed {
		pr, err := forgeClient.Open(ctx, pushBranch, branch, title, body)
		if err != nil {
			msg := fmt.Sprintf("freight %s (%s): pushed to branch %s, but opening a pull request failed: %v", f.Name, versions, pushBranch, err)
			if forge.IsPermanent(err) {
				stall(&s.Status.Conditions, s.Generation, ReasonPromotionFailed, "spec.git.pullRequest: "+msg)
				r.publish(s, notify.PromotionFailed, "", msg, err.Error())
				return reconcile.Result{}, nil, false
			}
			setNotReady(&s.Status.Conditions, s.Generation, ReasonPromotionFailed, msg+"; retrying")
			return reconcile.Result{}, fmt.Errorf("promote Stage %s/%s: %w", s.Namespace, s.Name, err), false
		}
		p.PullRequest = &tendv1.PromotionPullRequest{Number: pr.Number, URL: pr.URL, State: pr.State}
	}
	s.Status.Freight = &p
	s.Status.History = append([]tendv1.Promotion{p}, s.Status.History...)
	if len(s.Status.History) > stageHistory {
		s.Status.History = s.Status.History[:stageHistory]
	}
	how := "committed " + shortRev(pushed.Revision)
	switch {
	case !pushed.Pushed:
		how = "already in git at " + shortRev(pushed.Revision)
	case p.PullRequest != nil:
		how = fmt.Sprintf("proposed %s in pull request #%d (%s)", shortRev(pushed.Revision), p.PullRequest.Number, p.PullRequest.URL)
	}
	if pushed.Pushed && pushBranch == "" && src.Spec.Git.Ref.Tag == "" && src.Spec.Git.Ref.SemVer == "" && src.Spec.Git.Ref.Commit == "" && stageBranch(s, &src) == sourceBranch(&src) {
		r.requestFetch(ctx, &src)
	}
	msg := fmt.Sprintf("promoted freight %s (%s) to branch %s: %s (%s)", f.Name, versions, branch, how, by)
	r.Recorder.Eventf(s, nil, corev1.EventTypeNormal, ReasonPromoted, "Promote", "%s", msg)
	r.publish(s, notify.Promoted, pushed.Revision, msg, "")
	r.Log.Info("promoted", "stage", s.Namespace+"/"+s.Name, "freight", f.Name, "versions", versions, "revision", pushed.Revision, "pushed", pushed.Pushed, "by", by)
	return reconcile.Result{}, nil, true
}

// stageBranch is the branch a Stage commits to.
func stageBranch(s *tendv1.Stage, src *tendv1.Source) string {
	switch {
	case s.Spec.Git.Branch != "":
		return s.Spec.Git.Branch
	case src.Spec.Git != nil && src.Spec.Git.Ref.Branch != "":
		return src.Spec.Git.Ref.Branch
	}
	return "main"
}

// publish sends a Stage event to the Notifiers that select the Stage.
func (r *StageReconciler) publish(s *tendv1.Stage, kind notify.Kind, rev, msg, errText string) {
	if r.Notify == nil {
		return
	}
	r.Notify(notify.Event{Kind: kind, Severity: notify.SeverityOf(kind), Time: time.Now(), AppNamespace: s.Namespace, StageName: s.Name, Labels: s.Labels, Revision: rev, Message: msg, Error: errText})
}

// notifyWaiting tells the Notifiers once that freight f waits for the
// Stage's approval: when the Stage's Ready condition did not say so
// before this reconcile.
func (r *StageReconciler) notifyWaiting(before, s *tendv1.Stage, f *tendv1.Freight) {
	msg := waitingMessage(s, f)
	if c := meta.FindStatusCondition(before.Status.Conditions, tendv1.ConditionReady); c != nil && strings.Contains(c.Message, msg) {
		return
	}
	r.publish(s, notify.WaitingForApproval, "", msg, "")
}

// sourceBranch is the branch a git Source follows.
func sourceBranch(src *tendv1.Source) string {
	if b := src.Spec.Git.Ref.Branch; b != "" {
		return b
	}
	return "main"
}

// requestFetch asks the Source that follows the branch a Stage just
// pushed to to fetch now, as a push webhook does, rather than at its next
// interval. Failing, the interval still catches up.
func (r *StageReconciler) requestFetch(ctx context.Context, src *tendv1.Source) {
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{tendv1.AnnotationRequestedAt: time.Now().UTC().Format(time.RFC3339Nano)}}})
	if err := r.Client.Patch(ctx, src.DeepCopy(), client.RawPatch(types.MergePatchType, patch)); err != nil {
		r.Log.Warn("asking the Source to fetch the promotion", "source", src.Namespace+"/"+src.Name, "error", err)
	}
}
