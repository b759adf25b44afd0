package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/appspec"
	"github.com/tend-gitops/tend/internal/cluster"
	"github.com/tend-gitops/tend/internal/objstatus"
	"github.com/tend-gitops/tend/internal/project"
	"github.com/tend-gitops/tend/internal/render"
)

// FinalizerPostDelete keeps a deleted App until the post-delete hooks of
// its last synced revision have run.
const FinalizerPostDelete = tendv1.FinalizerPostDelete

// Reasons of a deleted App's conditions and events.
const (
	// ReasonPostDeleteHooks: the App's objects are gone and its
	// post-delete hooks run (condition Reconciling).
	ReasonPostDeleteHooks = "PostDeleteHooks"
	// ReasonPostDeleteFailed: a post-delete hook failed, or could not be
	// rendered; the App stays (condition Stalled).
	ReasonPostDeleteFailed = "PostDeleteHookFailed"
)

// postDeleteMark caches whether a render has post-delete hooks.
type postDeleteMark struct {
	result *render.Result
	has    bool
}

// hasPostDelete reports whether result renders post-delete hooks (a hook
// annotation tend cannot read counts as none: the sync reports it).
func (st *appState) hasPostDelete(result *render.Result) bool {
	if result == nil {
		return false
	}
	if st.postDelete.result != result {
		hooks, _ := apply.PostDeleteHooks(result.Objects())
		st.postDelete = postDeleteMark{result: result, has: len(hooks) > 0}
	}
	return st.postDelete.has
}

// keepPostDeleteFinalizer adds FinalizerPostDelete to the App while what
// it is about to apply, or has applied, has post-delete hooks, whatever
// its prune setting; it removes it once the App is in sync with a render
// without them. Only the finalizers are patched, on a copy: app keeps the
// status this reconcile is writing.
func (r *AppReconciler) keepPostDeleteFinalizer(ctx context.Context, app *tendv1.App, st *appState, result *render.Result, inSync bool) error {
	want := st.hasPostDelete(result)
	has := controllerutil.ContainsFinalizer(app, FinalizerPostDelete)
	if want == has || (!want && !inSync) {
		return nil
	}
	orig := app.DeepCopy()
	patched := app.DeepCopy()
	verb := "add"
	if want {
		controllerutil.AddFinalizer(patched, FinalizerPostDelete)
	} else {
		verb = "remove"
		controllerutil.RemoveFinalizer(patched, FinalizerPostDelete)
	}
	if err := r.Client.Patch(ctx, patched, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("%s finalizer %s: %w", verb, FinalizerPostDelete, err)
	}
	app.Finalizers, app.ResourceVersion = patched.Finalizers, patched.ResourceVersion
	return nil
}

// finalize lets a deleted App go: under Finalizer it prunes the App's
// objects first; under FinalizerPostDelete it then runs the post-delete
// hooks of its last synced revision, one step per reconcile, and keeps the
// App while one runs or after one failed.
func (r *AppReconciler) finalize(ctx context.Context, app *tendv1.App, st *appState) (ctrl.Result, error) {
	prune := controllerutil.ContainsFinalizer(app, Finalizer)
	hooks := controllerutil.ContainsFinalizer(app, FinalizerPostDelete)
	if prune && !app.Spec.DeletesObjects() {
		// The spec came to keep the objects (deletionPolicy Orphan, or
		// prune off) and the App was deleted before its finalizer
		// followed: the spec decides, nothing is pruned.
		if err := r.dropFinalizers(ctx, app, Finalizer); err != nil {
			return ctrl.Result{}, err
		}
		prune = false
	}
	if !prune && !hooks {
		return ctrl.Result{}, nil
	}
	if st.job != nil {
		st.job.cancel() // a deleted App's sync (maybe waiting on health) stops
		select {
		case <-st.job.done:
		default:
			return ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
		}
	}
	conn, err := r.Clusters.Get(ctx, app.Namespace, app.Spec.Destination.ClusterRef)
	if err != nil {
		r.log().Warn("App deleted but its cluster is unreachable; its objects stay and its post-delete hooks do not run", "app", app.Namespace+"/"+app.Name, "error", err)
		return ctrl.Result{}, r.dropFinalizers(ctx, app, Finalizer, FinalizerPostDelete)
	}
	ref := apply.AppRef{Namespace: app.Namespace, Name: app.Name}
	eng, missing, err := r.deletingEngine(ctx, app, conn)
	if err != nil {
		return ctrl.Result{}, err
	}
	if eng == nil {
		// Acting as tend would let the App's spec or its inventory
		// Secret, the tenant's to write, choose what tend deletes or
		// creates.
		msg := fmt.Sprintf("App deleted but its ServiceAccount %s is gone: its objects stay and its post-delete hooks do not run (tend does not act as itself for an App with a ServiceAccount)", missing)
		r.event(app, corev1.EventTypeWarning, ReasonServiceAccountNotFound, msg)
		r.log().Warn(msg, "app", app.Namespace+"/"+app.Name)
		return ctrl.Result{}, r.dropFinalizers(ctx, app, Finalizer, FinalizerPostDelete)
	}
	if prune {
		if _, err := eng.Sync(ctx, apply.Request{App: ref, Prune: true, AllowEmpty: true, Deleting: true, HealthTimeout: time.Minute, CreateNamespace: createdNamespace(app)}); err != nil {
			r.event(app, corev1.EventTypeWarning, ReasonSyncFailed, "pruning the deleted App's objects: "+err.Error())
			return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
		}
		if err := conn.Engine.Inventory.Delete(ctx, ref); err != nil {
			return ctrl.Result{}, err
		}
		if !hooks {
			return ctrl.Result{}, r.dropFinalizers(ctx, app, Finalizer)
		}
		// Pruned: a restart goes on with the hooks, not the prune.
		if err := r.dropFinalizers(ctx, app, Finalizer); err != nil {
			return ctrl.Result{}, err
		}
	}
	if w := st.written; w != nil && newerVersion(w.resourceVersion, app.ResourceVersion) && w.generation == app.Generation {
		// The informer has not seen the last status written yet (a
		// failure recorded): decide on that one.
		app.Status = *w.status.DeepCopy()
		app.ResourceVersion = w.resourceVersion
	}
	before := app.DeepCopy()
	res, err := r.postDelete(ctx, app, st, conn)
	w := objstatus.Writer{Client: r.Client, Recorder: r.Recorder, Action: "Delete"}
	wrote, werr := w.Write(ctx, app, before)
	if wrote {
		st.written = newWritten(app)
	}
	return res, errors.Join(err, werr)
}

// postDelete advances the App's post-delete hooks and writes where they
// are into app's status; when they are done it lets the App go.
func (r *AppReconciler) postDelete(ctx context.Context, app *tendv1.App, st *appState, conn *cluster.Conn) (ctrl.Result, error) {
	requested := app.Annotations[tendv1.AnnotationRequestedAt]
	retry := false
	if c := meta.FindStatusCondition(app.Status.Conditions, tendv1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue && c.Reason == ReasonPostDeleteFailed {
		if requested == "" || requested == app.Status.LastHandledRequest {
			return ctrl.Result{}, nil // failed: a new request or the finalizer's removal goes on
		}
		retry = true
		app.Status.LastHandledRequest = requested
		meta.RemoveStatusCondition(&app.Status.Conditions, tendv1.ConditionStalled)
		r.event(app, corev1.EventTypeNormal, ReasonPostDeleteHooks, "running the post-delete hooks again, as requested")
	}
	fail := func(msg string) (ctrl.Result, error) {
		msg += fmt.Sprintf("; the App stays until they succeed: fix the cause and request a retry (kubectl annotate app -n %s %s %s=\"$(date +%%s)\" --overwrite), or give up by removing its finalizer (kubectl patch app -n %s %s --type merge -p '{\"metadata\":{\"finalizers\":null}}')",
			app.Namespace, app.Name, tendv1.AnnotationRequestedAt, app.Namespace, app.Name)
		app.Status.LastHandledRequest = requested
		meta.RemoveStatusCondition(&app.Status.Conditions, tendv1.ConditionReconciling)
		setCondition(&app.Status.Conditions, app.Generation, tendv1.ConditionReady, metav1.ConditionFalse, ReasonPostDeleteFailed, msg)
		setCondition(&app.Status.Conditions, app.Generation, tendv1.ConditionStalled, metav1.ConditionTrue, ReasonPostDeleteFailed, msg)
		return ctrl.Result{}, nil
	}
	rev := app.Status.Revision
	hooks, err := r.postDeleteHooks(ctx, app, st, conn, rev)
	if err != nil {
		if objstatus.IsPermanent(err) {
			return fail(fmt.Sprintf("post-delete hooks of revision %s: %v", shortRev(rev), err))
		}
		return ctrl.Result{}, err
	}
	rules, err := st.compiled(app)
	if err != nil {
		return fail(fmt.Sprintf("post-delete hooks: %v", err))
	}
	req := appspec.Request(app, rules)
	// Hooks are rendered from the App's spec of now: as its account, and
	// only when the account may create them all.
	eng, h, err := r.engineFor(ctx, app, conn, hookObjects(hooks), nil)
	if err != nil {
		return ctrl.Result{}, err
	}
	if h != nil {
		return fail("post-delete hooks: " + h.err.Error())
	}
	res, err := eng.PostDelete(ctx, apply.PostDeleteRequest{
		App: req.App, Run: string(app.UID) + "@" + rev, Hooks: hooks, Retry: retry,
		HealthTimeout: req.HealthTimeout, Health: req.Health,
	})
	if err != nil {
		return ctrl.Result{}, err
	}
	for _, w := range res.Warnings {
		r.event(app, corev1.EventTypeWarning, ReasonPostDeleteHooks, w)
	}
	for _, c := range res.Created {
		r.event(app, corev1.EventTypeNormal, ReasonPostDeleteHooks, "created post-delete hook "+c.String())
	}
	switch res.State {
	case apply.PostDeleteFailed:
		return fail("post-delete hook failed: " + res.Message)
	case apply.PostDeleteRunning:
		if st.postDeleteWaits != res.Hook {
			st.postDeleteWaits = res.Hook
			r.log().Info("waiting for a post-delete hook", "app", app.Namespace+"/"+app.Name, "hook", res.Hook.String(), "revision", rev)
		}
		msg := "objects deleted; post-delete hooks of revision " + shortRev(rev) + " running: " + res.Message
		setCondition(&app.Status.Conditions, app.Generation, tendv1.ConditionReconciling, metav1.ConditionTrue, ReasonPostDeleteHooks, msg)
		setCondition(&app.Status.Conditions, app.Generation, tendv1.ConditionReady, metav1.ConditionFalse, ReasonPostDeleteHooks, msg)
		// A change of the hook reconciles the App (its owner
		// annotation); the timer is a backstop.
		return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
	}
	if len(hooks) > 0 {
		r.event(app, corev1.EventTypeNormal, ReasonPostDeleteHooks, fmt.Sprintf("%d post-delete hooks of revision %s succeeded", len(hooks), shortRev(rev)))
	}
	if err := r.dropFinalizers(ctx, app, FinalizerPostDelete); err != nil {
		return ctrl.Result{}, err
	}
	for _, w := range eng.PostDeleteCleanUp(ctx, res) {
		r.log().Warn("post-delete hook not deleted", "app", app.Namespace+"/"+app.Name, "warning", w)
	}
	return ctrl.Result{}, nil
}

// postDeleteHooks renders the post-delete hooks of the App's revision rev,
// the last it synced: from what this controller last synced when that is
// rev, else from the Source's artifact when it is still at rev, else from
// a checkout of rev (as a rollback renders). The App's Project, if any,
// must allow them, as it allowed the sync. A problem only the user can
// solve is a permanent error.
func (r *AppReconciler) postDeleteHooks(ctx context.Context, app *tendv1.App, st *appState, conn *cluster.Conn, rev string) ([]apply.Hook, error) {
	if rev == "" {
		return nil, nil // nothing was ever synced: no hook to run
	}
	result := st.syncedResult
	if result == nil || st.syncedRev != rev || st.syncedGen != app.Generation {
		var err error
		if result, err = r.renderRevision(ctx, app, st, conn, rev); err != nil {
			return nil, err
		}
	}
	objs := result.Objects()
	hooks, err := apply.PostDeleteHooks(objs)
	if err != nil {
		return nil, objstatus.Permanentf("%v", err)
	}
	if len(hooks) == 0 {
		return nil, nil
	}
	rules, err := project.Load(ctx, r.Client, app)
	switch {
	case err != nil && (errors.Is(err, project.ErrNotFound) || objstatus.IsPermanent(err)):
		return nil, objstatus.Permanentf("%v", err)
	case err != nil:
		return nil, err
	case rules != nil:
		hookObjs := make([]*unstructured.Unstructured, 0, len(hooks))
		for _, h := range hooks {
			hookObjs = append(hookObjs, h.Object)
		}
		if err := rules.CheckObjects(app, hookObjs, conn.Scope); err != nil {
			return nil, objstatus.Permanentf("%v", err)
		}
	}
	return hooks, nil
}

// renderRevision renders the App at rev for its post-delete hooks.
func (r *AppReconciler) renderRevision(ctx context.Context, app *tendv1.App, st *appState, conn *cluster.Conn, rev string) (*render.Result, error) {
	srcKey := types.NamespacedName{Namespace: app.Namespace, Name: app.Spec.SourceRef.Name}
	if app.Spec.SourceRef.Namespace != "" {
		srcKey.Namespace = app.Spec.SourceRef.Namespace
	}
	var src tendv1.Source
	if err := r.Client.Get(ctx, srcKey, &src); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, objstatus.Permanentf("the Source %s is gone, so they cannot be rendered; recreate it", srcKey)
		}
		return nil, err
	}
	// An App with spec.sources renders them from their current
	// artifacts; its own Source at the first of its revisions.
	extra, h, err := r.loadSources(ctx, app, nil)
	if err != nil {
		return nil, err
	}
	if h != nil {
		return nil, objstatus.Permanentf("%v", h.err)
	}
	rev, _, _ = strings.Cut(rev, appspec.RevisionSeparator)
	opts, err := r.renderOptions(ctx, app, &src, extra)
	if err != nil {
		if objstatus.IsPermanent(err) {
			return nil, objstatus.Permanentf("%v", err)
		}
		return nil, err // a values Source not fetched yet, a read that failed: back off
	}
	var res *render.Result
	if src.Spec.ChartRegistry() {
		// A chart Source renders the version its range selects today.
		_, res, err = r.renderApp(ctx, app, &src, srcKey, conn, opts, st)
	} else if art, release, ok := r.Artifacts.Open(srcKey); ok && art.Revision == rev {
		res, err = r.Cache.Render(ctx, r.renderer(app, conn), art.Dir, rev, opts)
		release()
	} else {
		if ok {
			release()
		}
		var dir string
		if rev, dir, err = r.pinnedCheckout(ctx, app, &src, rev); err == nil {
			res, err = r.Cache.Render(ctx, r.renderer(app, conn), dir, rev, opts)
		}
	}
	if err == nil && len(extra) > 0 {
		_, res, err = r.renderSources(ctx, app, conn, rev, res, extra, st)
	}
	if err != nil {
		return nil, objstatus.Permanentf("render: %v", err)
	}
	return res, nil
}

// dropFinalizers removes finalizers from the App (a patch of its
// finalizers alone); app takes the patched metadata.
func (r *AppReconciler) dropFinalizers(ctx context.Context, app *tendv1.App, finalizers ...string) error {
	orig := app.DeepCopy()
	patched := app.DeepCopy()
	for _, f := range finalizers {
		controllerutil.RemoveFinalizer(patched, f)
	}
	if len(patched.Finalizers) == len(orig.Finalizers) {
		return nil
	}
	if err := r.Client.Patch(ctx, patched, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return client.IgnoreNotFound(err)
	}
	app.Finalizers, app.ResourceVersion = patched.Finalizers, patched.ResourceVersion
	return nil
}
