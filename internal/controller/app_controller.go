package controller

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

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
	"github.com/tend-gitops/tend/internal/artifact"
	"github.com/tend-gitops/tend/internal/cluster"
	"github.com/tend-gitops/tend/internal/notify"
	"github.com/tend-gitops/tend/internal/objstatus"
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
	ReasonProjectNotFound    = "ProjectNotFound"
	ReasonProjectDenied      = "ProjectDenied"
	ReasonInventoryFormat    = "InventoryFormatUnsupported"
	ReasonCrossNamespaceRef  = "CrossNamespaceRef"
	// ReasonServiceAccountNotFound: the App's ServiceAccount does not
	// exist (yet); nothing is applied until it does.
	ReasonServiceAccountNotFound = "ServiceAccountNotFound"
	// ReasonForbidden: the App's ServiceAccount may not do something the
	// sync needs; nothing of the revision was applied.
	ReasonForbidden = "Forbidden"
	// ReasonAdopted: the App's first inventory is what the Argo CD or
	// Flux object named by tend.dev/adopt-from recorded as applied.
	ReasonAdopted = "Adopted"
	// ReasonAdoptFromNotFound: that object is not in the cluster; the App
	// starts without an inventory.
	ReasonAdoptFromNotFound = "AdoptFromNotFound"
	// ReasonInvalidAnnotation: an annotation on the App cannot be read.
	ReasonInvalidAnnotation = "InvalidAnnotation"
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
	Artifacts *artifact.Store
	Clusters  *cluster.Clusters
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
	// NoCrossNamespaceRefs stalls Apps that reference a Source or App in
	// another namespace (--no-cross-namespace-refs).
	NoCrossNamespaceRefs bool
	// DefaultServiceAccount is the ServiceAccount Apps without
	// spec.serviceAccountName act as (--default-service-account); empty:
	// tend's own identity.
	DefaultServiceAccount string
	// OnSync, when set, is told about every sync that ran (notifications).
	OnSync func(app *tendv1.App, rec tendv1.SyncRecord, res *apply.Result, err error)
	// Notify, when set, is given events for Notifiers (it must not block).
	Notify func(notify.Event)

	metrics *tendMetrics

	mu      sync.Mutex
	state   map[types.NamespacedName]*appState
	trigger chan event.GenericEvent
	ctx     context.Context
	checks  checkIndex // spec.health.checks -> Apps
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
	// What notifications need: the Source's URL and its last commit
	// subject (what was already told is in status.notified).
	repoURL, subjectRev, subject string
	// rendered is what the last render read (for the Source handler).
	rendered lastRender
	// The App's own health and ignore rules, compiled.
	rules appspec.Compiled
	// allowed is the render its Project last allowed, and under which
	// Project and App: a periodic reconcile of an unchanged App does not
	// check (decode) its objects again.
	allowed projectCheck
	// postDelete says whether a render has post-delete hooks.
	postDelete postDeleteMark
	// postDeleteWaits is the post-delete hook last logged as waited for.
	postDeleteWaits apply.ObjectRef
	// checks are the spec.health.checks the App may count.
	checks checkAccess
	// merged is the last merge of the renders of spec.sourceRef and
	// spec.sources.
	merged *mergedRender
}

// projectCheck identifies a check of rendered objects against a Project.
type projectCheck struct {
	result    *render.Result
	projectRV string
	appGen    int64
}

const (
	indexSource    = "tend.dev/sourceRef"
	indexDependsOn = "tend.dev/dependsOn"
	indexProject   = "tend.dev/project"
)

// SetupWithManager registers the reconciler and the field indexes it uses.
func (r *AppReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	r.state = map[types.NamespacedName]*appState{}
	r.trigger = make(chan event.GenericEvent, 1024)
	r.ctx = ctx
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &tendv1.App{}, indexSource, func(o client.Object) []string {
		a := o.(*tendv1.App)
		return appSources(a)
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
	if err := idx.IndexField(ctx, &tendv1.App{}, indexProject, func(o client.Object) []string {
		if p := o.(*tendv1.App).Spec.Project; p != "" {
			return []string{p}
		}
		return nil
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
		Watches(&tendv1.Project{}, handler.EnqueueRequestsFromMapFunc(r.appsOfProject)).
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

// appSources are the keys of the Sources an App reads: its own, those of
// spec.sources and those it takes Helm values files from.
func appSources(a *tendv1.App) []string {
	keys := []string{refKey(a.Namespace, a.Spec.SourceRef)}
	for _, s := range a.Spec.Sources {
		if k := refKey(a.Namespace, s.SourceRef); !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	helms := []*tendv1.HelmSpec{a.Spec.Helm}
	for _, s := range a.Spec.Sources {
		helms = append(helms, s.Helm)
	}
	for _, h := range helms {
		if h == nil {
			continue
		}
		for _, v := range h.ValuesFrom {
			if k := a.Namespace + "/" + v.Name; v.Kind == "Source" && !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	return keys
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

// appsOfProject are the Apps naming a Project, reconciled when it changes.
func (r *AppReconciler) appsOfProject(ctx context.Context, o client.Object) []reconcile.Request {
	var apps tendv1.AppList
	if err := r.Client.List(ctx, &apps, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexProject: o.GetName()}); err != nil {
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
	for _, app := range r.checks.apps(apply.RefOf(obj)) {
		r.enqueue(app) // a health check of it
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
			r.checks.set(req.NamespacedName, nil)
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
	if app.Spec.DeletesObjects() != controllerutil.ContainsFinalizer(&app, Finalizer) {
		// The finalizer follows spec.deletionPolicy: by default deleting
		// an App prunes its objects only when it prunes them anyway. (An
		// AppSet sets it in the Apps it generates.)
		orig := app.DeepCopy()
		if app.Spec.DeletesObjects() {
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
	before := app.DeepCopy()
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
	w := objstatus.Writer{Client: r.Client, Recorder: r.Recorder, Action: "Sync"}
	wrote, werr := w.Write(ctx, &app, before)
	if wrote {
		st.written = newWritten(&app)
	}
	if werr != nil {
		return ctrl.Result{}, errors.Join(err, werr)
	}
	return res, err
}

func (r *AppReconciler) reconcile(ctx context.Context, app *tendv1.App, st *appState) (ctrl.Result, error) {
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
	obs, h, err := r.observe(ctx, app, st)
	if err != nil {
		return ctrl.Result{}, err // transient: the queue backs off
	}
	if h != nil {
		return r.halt(app, st, h), nil
	}
	meta.RemoveStatusCondition(&app.Status.Conditions, tendv1.ConditionStalled)
	r.notifyDrift(app, st, obs.rev, obs.drift)
	r.assess(app, st, obs.conn)
	merged := st.inventoryMerged
	st.inventoryMerged = false
	d := decide(decideInput{
		app: app, obs: obs, merged: merged, now: time.Now(),
		mark: syncedMark{result: st.syncedResult, rev: st.syncedRev, gen: st.syncedGen},
	})
	return r.act(ctx, app, st, obs, d)
}

// desiredObjects decodes what result rendered.
func desiredObjects(result *render.Result) []*unstructured.Unstructured {
	return result.Objects()
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

// outOfSyncLimit bounds the objects status.outOfSync lists.
const outOfSyncLimit = 50

func refsOf(refs []apply.ObjectRef) []tendv1.ObjectReference {
	var out []tendv1.ObjectReference
	for i, r := range refs {
		if i == outOfSyncLimit {
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
