package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/appspec"
	"github.com/tend-gitops/tend/internal/notify"
	"github.com/tend-gitops/tend/internal/render"
	"github.com/tend-gitops/tend/internal/source/git"
)

// Reasons of App conditions and events.
const (
	ReasonSynced             = "Synced"
	ReasonSyncFailed         = "SyncFailed"
	ReasonRenderFailed       = "RenderFailed"
	ReasonSourceNotFound     = "SourceNotFound"
	ReasonDependencyNotReady = "DependencyNotReady"
	ReasonDependencyCycle    = "DependencyCycle"
	ReasonSyncWindow         = "SyncWindowBlocked"
	ReasonOutOfSync          = "OutOfSync"
	ReasonRolledBack         = "RolledBack"
	ReasonRetryLimit         = "RetryLimitReached"
	ReasonDegraded           = "Degraded"
	ReasonOwnershipConflict  = "OwnershipConflict"
	ReasonInvalidObjects     = "InvalidObjects"
)

// Finalizer makes tend prune an App's objects when the App is deleted
// (only Apps with spec.sync.prune carry it).
const Finalizer = tendv1.Finalizer

// AnnotationSyncOptions, with tend.dev/requested-at, passes options of a
// requested sync: a comma list of prune, force.
const AnnotationSyncOptions = tendv1.AnnotationSyncOptions

const historyLimit = 20

// AppReconciler renders, syncs and assesses Apps. Syncs run in their own
// goroutines, so an App waiting on health never holds a worker; when a sync
// ends the App is reconciled again to record the result.
type AppReconciler struct {
	Client    client.Client
	Artifacts *Artifacts
	Clusters  *Clusters
	Charts    render.ChartFetcher
	Cache     *render.Cache
	Fetcher   *git.Fetcher
	// DataDir holds checkouts of pinned revisions: DataDir/pins/<ns>/<app>.
	DataDir  string
	Recorder EventRecorder
	Log      *slog.Logger
	// Workers is the number of concurrent reconciles (default 8).
	Workers int
	// Namespaces, when set, are the only namespaces whose Apps this
	// reconciler manages.
	Namespaces []string
	// OnSync, when set, is told about every sync that ran (notifications).
	OnSync func(app *tendv1.App, rec tendv1.SyncRecord, res *apply.Result, err error)
	// Notify, when set, is given events for Notifiers (it must not block).
	Notify func(notify.Event)

	metrics *tendMetrics

	mu      sync.Mutex
	state   map[types.NamespacedName]*appState
	trigger chan event.GenericEvent
	ctx     context.Context
}

// appState is what the reconciler remembers of an App between reconciles.
type appState struct {
	inv          *apply.Inventory // as of the last sync; nil: not loaded
	result       *render.Result   // last render
	resultRev    string
	syncedResult *render.Result // what the last successful sync applied
	syncedRev    string
	syncedGen    int64
	lastSyncEnd  time.Time
	job          *syncJob
	lastHealth   []apply.ObjectHealth
	// written is the App's status as tend last wrote it: the informer
	// cache may not have it yet, and a status derived from an older copy
	// would lose a recorded sync.
	written *writtenStatus
	// inventoryMerged: the last sync merged its inventory with another
	// writer's; what differs from git now is to be synced, not reported.
	inventoryMerged bool
	healthSince     time.Time
	rollbackTo      string // set by assess: re-apply this revision
	rollbackFrom    string
	// What notifications need: the Source's URL and its last commit
	// subject (what was already told is in status.notified).
	repoURL, subjectRev, subject string
	// rendered is what the last render read (for the Source handler).
	rendered lastRender
	// The App's own health and ignore rules, compiled.
	rules appspec.Compiled
}

const (
	indexSource    = "tend.dev/sourceRef"
	indexDependsOn = "tend.dev/dependsOn"
)

// SetupWithManager registers the reconciler and the field indexes it uses.
func (r *AppReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	r.state = map[types.NamespacedName]*appState{}
	r.trigger = make(chan event.GenericEvent, 1024)
	r.ctx = ctx
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &tendv1.App{}, indexSource, func(o client.Object) []string {
		a := o.(*tendv1.App)
		return []string{refKey(a.Namespace, a.Spec.SourceRef)}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &tendv1.App{}, indexDependsOn, func(o client.Object) []string {
		a := o.(*tendv1.App)
		var keys []string
		for _, d := range a.Spec.DependsOn {
			keys = append(keys, refKey(a.Namespace, d))
		}
		return keys
	}); err != nil {
		return err
	}
	workers := r.Workers
	if workers <= 0 {
		workers = 8
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("app").
		For(&tendv1.App{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&tendv1.Source{}, sourceHandler{r}).
		Watches(&tendv1.App{}, handler.EnqueueRequestsFromMapFunc(r.dependents), builder.WithPredicates(healthChanged{})).
		WatchesRawSource(source.Channel(r.trigger, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Complete(r)
}

// healthChanged passes App updates whose health or revision changed (for
// dependents).
type healthChanged struct{ predicate.Funcs }

func (healthChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*tendv1.App)
	n, ok2 := e.ObjectNew.(*tendv1.App)
	return ok1 && ok2 && (o.Status.Health != n.Status.Health || o.Status.Revision != n.Status.Revision)
}

func refKey(ns string, ref tendv1.NamespacedObjectReference) string {
	if ref.Namespace != "" {
		ns = ref.Namespace
	}
	return ns + "/" + ref.Name
}

func (r *AppReconciler) appsOfSource(ctx context.Context, o client.Object) []reconcile.Request {
	var apps tendv1.AppList
	if err := r.Client.List(ctx, &apps, client.MatchingFields{indexSource: o.GetNamespace() + "/" + o.GetName()}); err != nil {
		return nil
	}
	return requestsFor(apps.Items)
}

func (r *AppReconciler) dependents(ctx context.Context, o client.Object) []reconcile.Request {
	var apps tendv1.AppList
	if err := r.Client.List(ctx, &apps, client.MatchingFields{indexDependsOn: o.GetNamespace() + "/" + o.GetName()}); err != nil {
		return nil
	}
	return requestsFor(apps.Items)
}

func requestsFor(apps []tendv1.App) []reconcile.Request {
	out := make([]reconcile.Request, 0, len(apps))
	for _, a := range apps {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: a.Namespace, Name: a.Name}})
	}
	return out
}

// OnChange is the live caches' handler: a change to an object an App owns
// reconciles that App (drift, health).
func (r *AppReconciler) OnChange(_ schema.GroupVersionKind, old, new *unstructured.Unstructured) {
	obj := new
	if obj == nil {
		obj = old
	}
	if obj == nil {
		return
	}
	owner, ok := apply.OwnerOf(obj)
	if !ok || !r.manages(owner.Namespace) {
		return
	}
	r.enqueue(types.NamespacedName{Namespace: owner.Namespace, Name: owner.Name})
}

// newerVersion reports whether resourceVersion a is newer than b (they
// are etcd revisions; unparsable ones are never newer).
func newerVersion(a, b string) bool {
	x, err1 := strconv.ParseUint(a, 10, 64)
	y, err2 := strconv.ParseUint(b, 10, 64)
	return err1 == nil && err2 == nil && x > y
}

func (r *AppReconciler) manages(ns string) bool {
	if len(r.Namespaces) == 0 {
		return true
	}
	for _, n := range r.Namespaces {
		if n == ns {
			return true
		}
	}
	return false
}

// Enqueue asks for an App to be reconciled now.
func (r *AppReconciler) enqueue(key types.NamespacedName) {
	if r.trigger == nil {
		return
	}
	ev := event.GenericEvent{Object: &tendv1.App{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}}
	select {
	case r.trigger <- ev:
	default:
		go func() { r.trigger <- ev }()
	}
}

func (r *AppReconciler) stateFor(key types.NamespacedName) *appState {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.state[key]
	if !ok {
		st = &appState{}
		r.state[key] = st
	}
	return st
}

func (r *AppReconciler) log() *slog.Logger {
	if r.Log == nil {
		return slog.Default()
	}
	return r.Log
}

// Reconcile brings one App towards its spec.
func (r *AppReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var app tendv1.App
	if err := r.Client.Get(ctx, req.NamespacedName, &app); err != nil {
		if apierrors.IsNotFound(err) {
			r.mu.Lock()
			delete(r.state, req.NamespacedName)
			r.mu.Unlock()
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	st := r.stateFor(req.NamespacedName)
	if !app.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, &app, st)
	}
	if app.Spec.Sync.Prune != controllerutil.ContainsFinalizer(&app, Finalizer) {
		// The finalizer follows spec.sync.prune: deleting an App prunes
		// its objects only when it prunes them anyway. (An AppSet sets it
		// in the Apps it generates.)
		orig := app.DeepCopy()
		if app.Spec.Sync.Prune {
			controllerutil.AddFinalizer(&app, Finalizer)
		} else {
			controllerutil.RemoveFinalizer(&app, Finalizer)
		}
		// A patch of the finalizers alone: an Update would send the whole
		// spec back, durations re-serialized ("15m" -> "15m0s"), and take
		// those fields from whoever applies the App (a parent App in git).
		if err := r.Client.Patch(ctx, &app, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
			return ctrl.Result{}, err
		}
		return ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	if w := st.written; w != nil && newerVersion(w.resourceVersion, app.ResourceVersion) && w.generation == app.Generation {
		app.Status = *w.status.DeepCopy()
		app.ResourceVersion = w.resourceVersion
	}
	old := app.Status.DeepCopy()
	res, err := r.reconcile(ctx, &app, st)
	app.Status.ObservedGeneration = app.Generation
	if job := st.job; job != nil && job.fresh {
		// A sync has just started: its status is written when it ends, or
		// after syncStatusDelay if it is still running then.
		job.fresh = false
		job.pending = app.Status.DeepCopy()
		return res, err
	}
	tidyNotified(&app)
	if !equality.Semantic.DeepEqual(old, &app.Status) {
		if uerr := r.Client.Status().Update(ctx, &app); uerr != nil {
			if apierrors.IsConflict(uerr) {
				// Keep what this reconcile recorded; retry on a fresh copy.
				var fresh tendv1.App
				if gerr := r.Client.Get(ctx, req.NamespacedName, &fresh); gerr == nil {
					fresh.Status = app.Status
					if uerr = r.Client.Status().Update(ctx, &fresh); uerr == nil {
						st.written = newWritten(&fresh)
						return res, err
					}
				}
				return ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
			}
			return ctrl.Result{}, errors.Join(err, uerr)
		}
		st.written = newWritten(&app)
	}
	return res, err
}

func (r *AppReconciler) reconcile(ctx context.Context, app *tendv1.App, st *appState) (ctrl.Result, error) {
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	interval := app.Spec.Sync.Interval.Duration
	if interval <= 0 {
		interval = 10 * time.Minute
	}
	if job := st.job; job != nil {
		select {
		case <-job.done:
			job.restorePending(app)
			st.job = nil
			r.recordSync(app, st, job)
		default:
			if job.pending != nil && job.working() < syncStatusDelay {
				// Waiting for its turn, or its own applies' watch events:
				// too early to say it is syncing (the job enqueues the App
				// once it has worked for syncStatusDelay).
				return ctrl.Result{}, nil
			}
			job.restorePending(app)
			setCondition(&app.Status.Conditions, app.Generation, tendv1.ConditionReconciling, metav1.ConditionTrue, ReasonProgressing, "syncing revision "+shortRev(job.rev))
			return ctrl.Result{}, nil // the job enqueues the App when it ends
		}
	}
	if app.Spec.Suspend {
		setCondition(&app.Status.Conditions, app.Generation, tendv1.ConditionReady, metav1.ConditionFalse, ReasonSuspended, "syncing is suspended (spec.suspend)")
		meta.RemoveStatusCondition(&app.Status.Conditions, tendv1.ConditionReconciling)
		return ctrl.Result{}, nil
	}
	var wasStalled metav1.Condition
	if c := meta.FindStatusCondition(app.Status.Conditions, tendv1.ConditionStalled); c != nil {
		wasStalled = *c
	}
	stalled := func(reason string, err error) (ctrl.Result, error) {
		if wasStalled.Reason != reason || wasStalled.Message != err.Error() {
			// One event per problem, not one per reconcile.
			r.event(app, corev1.EventTypeWarning, reason, err.Error())
		}
		setCondition(&app.Status.Conditions, app.Generation, tendv1.ConditionStalled, metav1.ConditionTrue, reason, err.Error())
		setCondition(&app.Status.Conditions, app.Generation, tendv1.ConditionReady, metav1.ConditionFalse, reason, err.Error())
		meta.RemoveStatusCondition(&app.Status.Conditions, tendv1.ConditionReconciling)
		return ctrl.Result{RequeueAfter: interval}, nil
	}
	waiting := func(reason, msg string, after time.Duration) (ctrl.Result, error) {
		meta.RemoveStatusCondition(&app.Status.Conditions, tendv1.ConditionStalled)
		setCondition(&app.Status.Conditions, app.Generation, tendv1.ConditionReady, metav1.ConditionFalse, reason, msg)
		meta.RemoveStatusCondition(&app.Status.Conditions, tendv1.ConditionReconciling)
		return ctrl.Result{RequeueAfter: after}, nil
	}

	windows, err := parseWindows(app.Spec.Sync.Windows)
	if err != nil {
		return stalled(ReasonInvalidSpec, err)
	}
	var src tendv1.Source
	srcKey := types.NamespacedName{Namespace: app.Namespace, Name: app.Spec.SourceRef.Name}
	if app.Spec.SourceRef.Namespace != "" {
		srcKey.Namespace = app.Spec.SourceRef.Namespace
	}
	if err := r.Client.Get(ctx, srcKey, &src); err != nil {
		if apierrors.IsNotFound(err) {
			return stalled(ReasonSourceNotFound, fmt.Errorf("the Source %s not found; create it or fix spec.sourceRef", srcKey))
		}
		return ctrl.Result{}, err
	}
	st.rememberSource(&src)
	if msg, cyc, err := r.checkDependencies(ctx, app); err != nil {
		return ctrl.Result{}, err
	} else if cyc {
		return stalled(ReasonDependencyCycle, errors.New(msg))
	} else if msg != "" {
		return waiting(ReasonDependencyNotReady, msg, 30*time.Second)
	}
	conn, err := r.Clusters.Get(ctx, app.Namespace, app.Spec.Destination.ClusterRef)
	if err != nil {
		if IsInputError(err) {
			return stalled(ReasonInvalidSpec, fmt.Errorf("spec.destination.clusterRef: %w", err))
		}
		return ctrl.Result{}, err // the apiserver or the cluster did not answer: back off
	}
	opts, err := r.renderOptions(ctx, app, &src)
	if err != nil {
		var ie *inputError
		if errors.As(err, &ie) {
			return stalled(ReasonInvalidSpec, err)
		}
		return ctrl.Result{}, err
	}
	rules, err := st.compiled(app)
	if err != nil {
		return stalled(ReasonInvalidSpec, err)
	}
	meta.RemoveStatusCondition(&app.Status.Conditions, tendv1.ConditionStalled)

	// What to render: the Source's artifact, or a pinned revision.
	rev, result, err := r.renderApp(ctx, app, &src, srcKey, conn, opts, st)
	if err != nil {
		if errors.Is(err, errNoArtifact) {
			return waiting(ReasonArtifactNotReady, fmt.Sprintf("waiting for Source %s to fetch its first revision", srcKey), 5*time.Second)
		}
		setCondition(&app.Status.Conditions, app.Generation, tendv1.ConditionReady, metav1.ConditionFalse, ReasonRenderFailed, err.Error())
		meta.RemoveStatusCondition(&app.Status.Conditions, tendv1.ConditionReconciling)
		r.event(app, corev1.EventTypeWarning, ReasonRenderFailed, err.Error())
		r.notifyRenderFailure(app, st, rev, err)
		app.Status.LastAttemptedRevision = rev
		// status.revision still names the last good revision, which stays
		// applied; the state to act on is this one's failure.
		app.Status.Sync = tendv1.SyncFailed
		return ctrl.Result{RequeueAfter: interval}, nil
	}
	if st.inv == nil {
		inv, err := conn.Engine.Inventory.Load(ctx, apply.AppRef{Namespace: app.Namespace, Name: app.Name})
		if err != nil {
			return ctrl.Result{}, err
		}
		st.inv = inv
	}
	ns := createdNamespace(app)
	areq := appspec.Request(app, rules)
	areq.Revision = rev
	areq.ObjectsFunc = func() []*unstructured.Unstructured { return desiredObjects(result, ns) }
	areq.Inventory = st.inv
	// Make sure the live cache watches every kind involved (no-op after the
	// first reconcile), then read drift and health from it.
	toApply, toPrune, err := conn.Engine.PreviewFrom(ctx, areq, st.inv)
	if err != nil {
		var (
			oe *apply.OwnershipError
			se *apply.SyncError
		)
		switch {
		case errors.As(err, &oe):
			// Another App declares the same object: only a change to
			// one of them helps (a new revision or spec reconciles).
			return stalled(ReasonOwnershipConflict, err)
		case errors.As(err, &se):
			// What git declares cannot be applied (a Secret tend must
			// not touch, a bad hook or wave annotation).
			return stalled(ReasonInvalidObjects, err)
		}
		return ctrl.Result{}, err // the cluster did not answer: back off
	}
	drift := conn.Engine.Drift(st.inv)
	r.notifyDrift(app, st, rev, drift)
	r.assess(app, st, conn)
	if to := st.rollbackTo; to != "" {
		st.rollbackTo = ""
		return r.rollback(ctx, key, app, &src, conn, opts, st, to)
	}

	if st.syncedResult == nil && app.Status.Sync == tendv1.SyncSynced && app.Status.Revision == rev && app.Status.ObservedGeneration == app.Generation {
		// First reconcile after a restart: status says this revision and
		// spec were synced, so differences now are drift, not a new desired
		// state (and without selfHeal they are reported, not undone).
		st.syncedResult, st.syncedRev, st.syncedGen = result, rev, app.Generation
	}
	requested := app.Annotations[AnnotationRequestedAt]
	manualReq := requested != "" && requested != app.Status.LastHandledRequest
	merged := st.inventoryMerged
	st.inventoryMerged = false
	desiredChanged := st.syncedResult != result || st.syncedRev != rev || st.syncedGen != app.Generation || merged
	outOfSync := len(toApply) > 0 || (app.Spec.Sync.Prune && len(toPrune) > 0)
	app.Status.OutOfSync = refsOf(append(toApply, toPrune...))
	needSync := manualReq || (desiredChanged && outOfSync) || (len(drift) > 0 && app.Spec.Sync.SelfHeal)
	if !outOfSync && !manualReq {
		// Nothing to apply: record that the desired state is in place.
		st.syncedResult, st.syncedRev, st.syncedGen = result, rev, app.Generation
		app.Status.Sync = tendv1.SyncSynced
		r.notifyInSync(app, st, rev)
		if app.Status.Revision == "" || app.Status.Revision != rev && len(st.inv.Entries) > 0 {
			app.Status.Revision = rev
		}
		return r.settle(app, st, interval)
	}
	app.Status.Sync = tendv1.SyncOutOfSync
	if lastSyncFailed(app, rev) {
		// The newest revision failed to apply and is retried: that is
		// what the user must act on, not that objects differ.
		app.Status.Sync = tendv1.SyncFailed
	}
	switch {
	case !needSync:
		msg := fmt.Sprintf("%d objects differ from git", len(app.Status.OutOfSync))
		if len(drift) > 0 {
			msg += " (changed in the cluster; set spec.sync.selfHeal to undo such changes)"
		}
		return r.settleWith(app, st, interval, ReasonOutOfSync, msg)
	case app.Spec.Sync.Manual && !manualReq:
		return r.settleWith(app, st, interval, ReasonOutOfSync, fmt.Sprintf("%d objects differ from git; run `tend sync %s` to apply", len(app.Status.OutOfSync), app.Name))
	case rev == app.Status.RolledBackRevision && !manualReq:
		return r.settleWith(app, st, interval, ReasonRolledBack, fmt.Sprintf("revision %s was rolled back after it degraded; push a fix or run `tend sync %s`", shortRev(rev), app.Name))
	}
	if blocked, manualOK, why := syncBlocked(windows, time.Now()); blocked && !(manualReq && manualOK) {
		next := nextAllowed(windows, time.Now())
		msg := "sync blocked by " + why
		after := interval
		if !next.IsZero() {
			t := metav1.NewTime(next)
			app.Status.NextSyncAllowedAt = &t
			msg += " until " + next.UTC().Format(time.RFC3339)
			after = time.Until(next) + time.Second
		}
		setCondition(&app.Status.Conditions, app.Generation, tendv1.ConditionReady, metav1.ConditionFalse, ReasonSyncWindow, msg)
		meta.RemoveStatusCondition(&app.Status.Conditions, tendv1.ConditionReconciling)
		return ctrl.Result{RequeueAfter: after}, nil
	}
	app.Status.NextSyncAllowedAt = nil
	if res, wait := r.retryWait(app, st, rev, manualReq); wait {
		return res, nil
	}
	if manualReq {
		for _, o := range splitComma(app.Annotations[AnnotationSyncOptions]) {
			switch o {
			case "prune":
				areq.Prune = true
			case "force":
				areq.Force = true
			}
		}
	}
	message := "new revision"
	switch {
	case manualReq:
		message = "requested sync"
	case !desiredChanged && len(drift) > 0:
		message = fmt.Sprintf("self-heal: %d objects changed in the cluster", len(drift))
	case merged && st.syncedRev == rev:
		message = "another writer changed the inventory"
	case st.syncedRev == rev:
		message = "spec changed"
	}
	r.startSync(key, app, st, conn, areq, result, requested, message, "")
	setCondition(&app.Status.Conditions, app.Generation, tendv1.ConditionReconciling, metav1.ConditionTrue, ReasonProgressing, "syncing revision "+shortRev(rev))
	return ctrl.Result{}, nil
}

var errNoArtifact = errors.New("no artifact yet")

// rollback re-applies revision to (auto-rollback), rendering it from the
// App's own checkout, and reports both revisions.
func (r *AppReconciler) rollback(ctx context.Context, key types.NamespacedName, app *tendv1.App, src *tendv1.Source, conn *Conn, opts render.Options, st *appState, to string) (ctrl.Result, error) {
	from := st.rollbackFrom
	rev, dir, err := r.pinnedCheckout(ctx, app, src, to)
	if err == nil {
		rnd := &render.Renderer{Charts: r.Charts, Scope: conn.Scope}
		var res *render.Result
		if res, err = r.Cache.Render(ctx, rnd, dir, rev, opts); err == nil {
			msg := fmt.Sprintf("auto-rollback: %s degraded after its sync; re-applying %s", shortRev(from), shortRev(rev))
			r.event(app, corev1.EventTypeWarning, ReasonRolledBack, msg)
			r.notify(app, st, notify.RolledBack, rev, msg, "", nil)
			req := appspec.Request(app, st.rules)
			req.Revision, req.Inventory = rev, st.inv
			r.startSync(key, app, st, conn, req, res, "", msg, from)
			setCondition(&app.Status.Conditions, app.Generation, tendv1.ConditionReady, metav1.ConditionFalse, ReasonRolledBack, msg)
			return ctrl.Result{}, nil
		}
	}
	r.event(app, corev1.EventTypeWarning, ReasonRolledBack, fmt.Sprintf("auto-rollback from %s to %s failed: %v", shortRev(from), shortRev(to), err))
	return ctrl.Result{RequeueAfter: time.Minute}, nil
}

// renderApp renders the App from its Source's current artifact, or from its
// pinned revision.
func (r *AppReconciler) renderApp(ctx context.Context, app *tendv1.App, src *tendv1.Source, srcKey types.NamespacedName, conn *Conn, opts render.Options, st *appState) (string, *render.Result, error) {
	rnd := &render.Renderer{Charts: r.Charts, Scope: conn.Scope}
	if hc, err := conn.HelmCluster(); err == nil {
		rnd.Cluster = hc
	}
	if src.Spec.Git == nil {
		// Chart sources: the version a range selects today is part of the
		// cache key, so a new chart version in the range is rendered (the
		// chart fetcher keeps the index and archive, so the render that
		// follows does not fetch again).
		key := "chart:" + chartURL(src)
		if ref := chartRefOf(opts); ref != nil && r.Charts != nil {
			var auth *url.Userinfo
			if ref.Username != "" || ref.Password != "" {
				auth = url.UserPassword(ref.Username, ref.Password)
			}
			_, version, err := r.Charts.FetchChart(ctx, ref.RepoURL, ref.Name, ref.Version, auth)
			if err != nil {
				return "chart", nil, fmt.Errorf("helm chart %q from %s: %w", ref.Name, chartURL(src), err)
			}
			key += "@" + ref.Name + "@" + version
		}
		res, err := r.Cache.Render(ctx, rnd, r.emptyDir(), key, opts)
		return "chart", res, err
	}
	art, ok := r.Artifacts.Get(srcKey)
	if !ok {
		return "", nil, errNoArtifact
	}
	rev, dir := art.Revision, art.Dir
	if pin := app.Spec.TargetRevision; pin != "" {
		var err error
		if rev, dir, err = r.pinnedCheckout(ctx, app, src, pin); err != nil {
			return pin, nil, err
		}
	}
	// onDisk is set when the checkout is at a commit the Source reconciler
	// has not recorded yet.
	var onDisk *git.Checkout
	if r.Fetcher != nil && dir == art.Dir {
		release := r.Fetcher.Hold(dir)
		defer release()
		// Render what is on disk, named by what is on disk: a fetch may
		// have finished since the artifact was read, and even before the
		// Source reconciler recorded it in r.Artifacts.
		if co := r.Fetcher.CheckedOut(dir); co.Revision != "" && co.Revision != rev {
			if cur, ok := r.Artifacts.Get(srcKey); ok && cur.Revision == co.Revision {
				art, rev = cur, cur.Revision
			} else {
				onDisk = &co
				art, rev = Artifact{Dir: dir, Revision: co.Revision, Subject: co.Subject}, co.Revision
			}
		} else if cur, ok := r.Artifacts.Get(srcKey); ok && cur.Revision != rev {
			art, rev = cur, cur.Revision
		}
	}
	if rev == art.Revision {
		// Events about this revision name its commit. The Source's status
		// names it too, but reaches the cache after the fetch reaches the
		// Artifacts, so it can still name the previous commit.
		st.subjectRev, st.subject = art.Revision, art.Subject
	}
	var changed []string
	if st.result != nil {
		changed = r.changedSince(srcKey, st.resultRev, rev, onDisk)
	}
	start := time.Now()
	res, err := r.Cache.RenderChange(ctx, rnd, dir, rev, opts, st.result, changed)
	if r.metrics != nil {
		r.metrics.render.WithLabelValues(resultLabel(err)).Observe(time.Since(start).Seconds())
	}
	if err != nil {
		return rev, nil, err
	}
	st.result, st.resultRev = res, rev
	st.rendered.Store(&rendered{rev: rev, files: res.Files})
	return rev, res, nil
}

// changedSince returns the files changed in src between revision from and
// revision to, or nil when unknown. onDisk, when set, is the fetch that
// brought the checkout to `to` before the Source reconciler recorded it:
// its changes are added to what the Artifacts know up to its previous
// commit, so an App that renders early still renders only if its files
// changed.
func (r *AppReconciler) changedSince(src types.NamespacedName, from, to string, onDisk *git.Checkout) []string {
	if onDisk == nil || onDisk.Previous == "" || onDisk.ChangedFiles == nil || from == to {
		return r.Artifacts.ChangedBetween(src, from, to)
	}
	before := r.Artifacts.ChangedBetween(src, from, onDisk.Previous)
	if before == nil {
		return nil
	}
	out := append(before, onDisk.ChangedFiles...)
	slices.Sort(out)
	return slices.Compact(out)
}

// chartRefOf is the chart an App renders from a chart Source, if any.
func chartRefOf(opts render.Options) *render.ChartRef {
	if opts.Helm == nil {
		return nil
	}
	return opts.Helm.Chart
}

func (r *AppReconciler) emptyDir() string {
	return r.DataDir + "/empty"
}

// pinnedCheckout fetches a revision into the App's own checkout.
func (r *AppReconciler) pinnedCheckout(ctx context.Context, app *tendv1.App, src *tendv1.Source, rev string) (string, string, error) {
	auth, err := gitAuth(ctx, r.Client, src)
	if err != nil {
		return rev, "", err
	}
	dir := fmt.Sprintf("%s/pins/%s/%s", r.DataDir, app.Namespace, app.Name)
	res, err := r.Fetcher.Fetch(ctx, dir, git.Options{URL: src.Spec.Git.URL, Ref: git.Ref{Commit: rev}, Auth: auth, Timeout: src.Spec.Timeout.Duration})
	if err != nil {
		return rev, "", fmt.Errorf("fetch pinned revision %s (spec.targetRevision): %w", rev, err)
	}
	return res.Revision, res.Dir, nil
}

// desiredObjects decodes what result rendered, with the Namespace ns when
// it is not "" (see createdNamespace).
func desiredObjects(result *render.Result, ns string) []*unstructured.Unstructured {
	objects := result.Objects()
	if ns != "" {
		objects = WithNamespace(objects, ns)
	}
	return objects
}

// lastSyncFailed reports whether the newest sync in app's history was of
// rev and failed (read from status, so it holds across restarts).
func lastSyncFailed(app *tendv1.App, rev string) bool {
	n, _ := failuresOf(app, rev)
	return n > 0
}

// createdNamespace is the destination Namespace app creates, or "".
func createdNamespace(app *tendv1.App) string {
	if app.Spec.Destination.CreateNamespace {
		return app.Spec.Destination.Namespace
	}
	return ""
}

// WithNamespace adds a Namespace object for ns unless objs have one (an
// App's destination.createNamespace).
func WithNamespace(objs []*unstructured.Unstructured, ns string) []*unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == "Namespace" && o.GroupVersionKind().Group == "" && o.GetName() == ns {
			return objs
		}
	}
	n := &unstructured.Unstructured{}
	n.SetAPIVersion("v1")
	n.SetKind("Namespace")
	n.SetName(ns)
	return append([]*unstructured.Unstructured{n}, objs...)
}

func refsOf(refs []apply.ObjectRef) []tendv1.ObjectReference {
	const limit = 50
	var out []tendv1.ObjectReference
	for i, r := range refs {
		if i == limit {
			break
		}
		out = append(out, tendv1.ObjectReference{Group: r.Group, Kind: r.Kind, Namespace: r.Namespace, Name: r.Name})
	}
	return out
}

func (r *AppReconciler) event(app *tendv1.App, typ, reason, note string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(app, nil, typ, reason, reason, "%s", note)
	}
}
