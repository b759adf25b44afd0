package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/artifact"
	"github.com/tend-gitops/tend/internal/objstatus"
)

// Defaults of AppSetReconciler.
const (
	// DefaultAppSetResync is how often an AppSet with a directories
	// generator is regenerated when nobody calls SourceChanged.
	DefaultAppSetResync = 30 * time.Second
	// appSetArtifactWait is how long an AppSet waits for a Source that has
	// no artifact yet before looking again.
	appSetArtifactWait = 5 * time.Second
	// appSetApplyConcurrency bounds the Apps applied at once.
	appSetApplyConcurrency = 16
)

// AppSetReconciler generates Apps from AppSets: one App per parameter set
// of the AppSet's generators, filled in from its template, applied with
// server-side apply (field manager AppSetFieldOwner) and controlled by the
// AppSet, so deleting the AppSet deletes its Apps through garbage
// collection.
//
// A reconcile that changes nothing writes nothing: generated Apps are
// applied only when they differ from the live ones, and status is patched
// only when it changed.
//
// Directories generators read the Source's checkout from Artifacts. The
// reconciler regenerates such AppSets every Resync; wire SourceChanged to
// the Source reconciler (SourceReconciler.OnNewRevision) to react to a new
// revision at once.
type AppSetReconciler struct {
	// Client reads AppSets and Apps (from the manager's cache) and writes
	// them.
	Client client.Client
	// Artifacts holds the checkouts of Sources.
	Artifacts *artifact.Store
	// Recorder, if set, records an event when an AppSet becomes Stalled.
	Recorder EventRecorder
	// Log defaults to slog.Default().
	Log *slog.Logger
	// NoCrossNamespaceRefs stalls AppSets whose generators read a Source
	// in another namespace (--no-cross-namespace-refs).
	NoCrossNamespaceRefs bool
	// Resync is how often AppSets with a directories generator are
	// regenerated; default DefaultAppSetResync.
	Resync time.Duration

	mu    sync.Mutex
	queue workqueue.TypedRateLimitingInterface[reconcile.Request]
	// servers are the API server URLs of Clusters, for clusters
	// generators.
	servers appSetServers
}

// SetupWithManager registers the reconciler: it watches AppSets, the Apps
// they control (changes to generation, labels or annotations, and
// deletions), Clusters (created, deleted, or a change to their spec,
// labels or annotations: the AppSets of their namespace with a clusters
// generator are generated again) and SourceChanged calls.
func (r *AppSetReconciler) SetupWithManager(mgr ctrl.Manager) error {
	changed := predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{})
	return ctrl.NewControllerManagedBy(mgr).
		Named("appset").
		For(&v1alpha1.AppSet{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&v1alpha1.App{}, builder.WithPredicates(changed)).
		Watches(&v1alpha1.Cluster{}, handler.EnqueueRequestsFromMapFunc(r.appSetsForCluster), builder.WithPredicates(changed)).
		WatchesRawSource(source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			r.mu.Lock()
			r.queue = q
			r.mu.Unlock()
			return nil
		})).
		Complete(r)
}

// SourceChanged enqueues every AppSet with a directories or files
// generator that reads src. The Source reconciler calls it after a new revision is in
// Artifacts (it fits SourceReconciler.OnNewRevision). It does not block;
// before the controller started it does nothing, as every AppSet is
// reconciled when it starts.
func (r *AppSetReconciler) SourceChanged(src types.NamespacedName) {
	r.mu.Lock()
	q := r.queue
	r.mu.Unlock()
	if q == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var sets v1alpha1.AppSetList
	if err := r.Client.List(ctx, &sets); err != nil {
		r.log().Error("list AppSets for a changed Source", "source", src.String(), "error", err)
		return
	}
	for _, set := range sets.Items {
		if appSetReads(&set, src) {
			q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: set.Namespace, Name: set.Name}})
		}
	}
}

// appSetReads reports whether a generator of set reads src.
func appSetReads(set *v1alpha1.AppSet, src types.NamespacedName) bool {
	return slices.Contains(appSetSources(set), src)
}

func (r *AppSetReconciler) log() *slog.Logger {
	if r.Log == nil {
		return slog.Default()
	}
	return r.Log
}

func (r *AppSetReconciler) resync() time.Duration {
	if r.Resync > 0 {
		return r.Resync
	}
	return DefaultAppSetResync
}

// Reconcile generates the Apps of one AppSet and reports them in its
// status. Problems in the spec (a bad template, two parameter sets naming
// the same App, a generated App the apiserver rejects, a name taken by
// another App) set Stalled, with one event; a Source without artifact is
// waited for; API errors are returned and retried with backoff.
func (r *AppSetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	set := &v1alpha1.AppSet{}
	if err := r.Client.Get(ctx, req.NamespacedName, set); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil // its Apps go by garbage collection
		}
		return ctrl.Result{}, fmt.Errorf("get AppSet %s: %w", req.NamespacedName, err)
	}
	if !set.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	before := set.DeepCopy()
	res, err := r.reconcile(ctx, set)
	return finish(ctx, objstatus.Writer{Client: r.Client, Recorder: r.Recorder, Action: "Generate"}, set, before, res, err)
}

// reconcile does the work of Reconcile and sets set.Status.
func (r *AppSetReconciler) reconcile(ctx context.Context, set *v1alpha1.AppSet) (ctrl.Result, error) {
	log := r.log().With("appset", set.Namespace+"/"+set.Name)
	set.Status.ObservedGeneration = set.Generation
	var again ctrl.Result
	if len(appSetSources(set)) > 0 {
		again.RequeueAfter = r.resync()
	}

	desired, err := r.desired(ctx, set)
	var stalled *appSetStalled
	var waiting *appSetWaiting
	switch {
	case errors.As(err, &waiting):
		appSetCondition(set, v1alpha1.ConditionReady, metav1.ConditionFalse, waiting.reason, waiting.message)
		meta.RemoveStatusCondition(&set.Status.Conditions, v1alpha1.ConditionStalled)
		return ctrl.Result{RequeueAfter: appSetArtifactWait}, nil
	case errors.As(err, &stalled):
		log.Info("AppSet stalled", "reason", stalled.reason, "message", stalled.message)
		stall(&set.Status.Conditions, set.Generation, stalled.reason, stalled.message)
		// A directories generator may be unstalled by a new revision.
		return again, nil
	case err != nil:
		setNotReady(&set.Status.Conditions, set.Generation, AppSetReasonFailed, err.Error())
		return ctrl.Result{}, err
	}
	meta.RemoveStatusCondition(&set.Status.Conditions, v1alpha1.ConditionStalled)

	var apps v1alpha1.AppList
	if err := r.Client.List(ctx, &apps, client.InNamespace(set.Namespace)); err != nil {
		err = fmt.Errorf("list Apps in namespace %s: %w", set.Namespace, err)
		setNotReady(&set.Status.Conditions, set.Generation, AppSetReasonFailed, err.Error())
		return ctrl.Result{}, err
	}
	live := make(map[string]*v1alpha1.App, len(apps.Items))
	for i := range apps.Items {
		live[apps.Items[i].Name] = &apps.Items[i]
	}

	var generated, conflicts []string
	var toApply []*v1alpha1.App
	for _, app := range desired {
		cur := live[app.Name]
		if cur != nil && !appSetManages(set, cur) {
			conflicts = append(conflicts, appSetConflict(cur))
			continue
		}
		generated = append(generated, app.Name)
		if cur != nil && !cur.DeletionTimestamp.IsZero() {
			// Being deleted (its objects pruned): applied again, as a new
			// App, once it is gone.
			continue
		}
		toApply = append(toApply, app)
	}
	// Apps are applied concurrently: an AppSet over a monorepo creates
	// hundreds at once, and one at a time is bound by round trips.
	errs := make([]error, len(toApply))
	var wg sync.WaitGroup
	sem := make(chan struct{}, appSetApplyConcurrency)
	for i, app := range toApply {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			changed, err := r.apply(ctx, app, live[app.Name])
			if err != nil {
				errs[i] = err
			} else if changed {
				log.Info("applied App", "app", app.Name)
			}
		}()
	}
	wg.Wait()

	want := make(map[string]bool, len(desired))
	for _, app := range desired {
		want[app.Name] = true
	}
	var orphaned []string
	for _, cur := range apps.Items {
		if want[cur.Name] || !cur.DeletionTimestamp.IsZero() {
			continue
		}
		if ref := metav1.GetControllerOf(&cur); ref == nil || ref.UID != set.UID {
			continue
		}
		if !set.Spec.PruneApps {
			orphaned = append(orphaned, cur.Name)
			continue
		}
		err := r.Client.Delete(ctx, &cur, client.Preconditions{UID: &cur.UID})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete App %s/%s (its parameter set is gone): %w", cur.Namespace, cur.Name, err))
			continue
		}
		log.Info("deleted App whose parameter set is gone", "app", cur.Name)
	}
	sort.Strings(generated)
	sort.Strings(orphaned)
	set.Status.Apps, set.Status.Orphaned = generated, orphaned

	var failed, rejected []error
	for _, err := range errs {
		switch {
		case err == nil:
		case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err):
			rejected = append(rejected, err)
		default:
			failed = append(failed, err)
		}
	}
	if err := errors.Join(failed...); err != nil {
		setNotReady(&set.Status.Conditions, set.Generation, AppSetReasonFailed, err.Error())
		return ctrl.Result{}, err
	}
	if len(rejected) > 0 {
		// The template makes an App the App CRD refuses: only a change
		// of the template (or of the directories) helps.
		stall(&set.Status.Conditions, set.Generation, AppSetReasonInvalidTemplate, errors.Join(rejected...).Error()+"; fix spec.template")
		return again, nil
	}
	if len(conflicts) > 0 {
		// The other App is not watched: look again later.
		stall(&set.Status.Conditions, set.Generation, AppSetReasonAppConflict, strings.Join(conflicts, "; "))
		if again.RequeueAfter == 0 {
			again.RequeueAfter = r.resync()
		}
		return again, nil
	}
	appSetCondition(set, v1alpha1.ConditionReady, metav1.ConditionTrue, AppSetReasonGenerated, appSetReadyMessage(len(generated), orphaned))
	return again, nil
}

// desired returns the Apps set generates, sorted by name. Errors are as
// for appSetGenerator.params, plus *appSetStalled for template problems
// and for two parameter sets generating the same App.
func (r *AppSetReconciler) desired(ctx context.Context, set *v1alpha1.AppSet) ([]*v1alpha1.App, error) {
	// Clusters are listed once per reconcile, however many clusters
	// generators there are.
	var (
		clusters []appSetCluster
		listed   bool
	)
	list := func(namespace string) ([]appSetCluster, error) {
		if listed {
			return clusters, nil
		}
		var err error
		clusters, err = r.listClusters(ctx, namespace)
		listed = err == nil
		return clusters, err
	}
	params, err := appSetGenerator{artifacts: r.Artifacts, clusters: list, noCrossNamespace: r.NoCrossNamespaceRefs}.params(set)
	if err != nil {
		return nil, err
	}
	owner := metav1.NewControllerRef(set, v1alpha1.GroupVersion.WithKind("AppSet"))
	origin := make(map[string]appSetParams, len(params))
	out := make([]*v1alpha1.App, 0, len(params))
	for _, p := range params {
		app, err := appSetRenderApp(set, p)
		if err != nil {
			return nil, err
		}
		if first, dup := origin[app.Name]; dup {
			return nil, appSetStalledf(AppSetReasonDuplicateName, "%s and %s both generate App %q: make the template's name differ between them",
				first, p, app.Name)
		}
		origin[app.Name] = p
		app.OwnerReferences = []metav1.OwnerReference{*owner}
		out = append(out, app)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// apply makes the live App (nil if there is none) match app, writing only
// if something differs. It reports whether it wrote.
func (r *AppSetReconciler) apply(ctx context.Context, app, live *v1alpha1.App) (bool, error) {
	cfg, err := appSetApplyConfig(app)
	if err != nil {
		return false, err
	}
	if live != nil {
		same, err := appSetUpToDate(cfg, live)
		if err != nil {
			return false, err
		}
		if same {
			return false, nil
		}
	}
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(cfg), client.FieldOwner(AppSetFieldOwner), client.ForceOwnership); err != nil {
		return false, fmt.Errorf("apply App %s/%s: %w", app.Namespace, app.Name, err)
	}
	return true, nil
}

// appSetManages reports whether set manages app: set is its controller,
// or app has no controller and carries set's label (it was orphaned, e.g.
// by `kubectl delete --cascade=orphan` of an earlier AppSet of that name,
// and is adopted).
func appSetManages(set *v1alpha1.AppSet, app *v1alpha1.App) bool {
	ref := metav1.GetControllerOf(app)
	if ref == nil {
		return app.Labels[AppSetLabel] == set.Name
	}
	return ref.UID == set.UID
}

// appSetConflict describes an App whose name a generated App would take.
func appSetConflict(app *v1alpha1.App) string {
	by := "not generated by this AppSet"
	if ref := metav1.GetControllerOf(app); ref != nil {
		by = fmt.Sprintf("controlled by %s %s", ref.Kind, ref.Name)
	}
	return fmt.Sprintf("App %s already exists and is %s: rename the generated App in the template or delete the existing one", app.Name, by)
}

func appSetReadyMessage(n int, orphaned []string) string {
	msg := fmt.Sprintf("%d Apps generated", n)
	if n == 1 {
		msg = "1 App generated"
	}
	if len(orphaned) > 0 {
		msg += fmt.Sprintf("; %d kept whose parameter set is gone (%s): set spec.pruneApps to delete them",
			len(orphaned), strings.Join(orphaned, ", "))
	}
	return msg
}

// appSetCondition sets a condition of set, keeping its transition time when
// the status does not change.
func appSetCondition(set *v1alpha1.AppSet, typ string, status metav1.ConditionStatus, reason, msg string) {
	if len(msg) > 32000 {
		msg = msg[:32000]
	}
	meta.SetStatusCondition(&set.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: set.Generation,
	})
}
