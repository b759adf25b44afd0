package apply

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/health"
)

// AnnotationPostDeleteRun, on a post-delete hook, names the deletion it
// runs for: "<App UID>@<revision>".
const AnnotationPostDeleteRun = tendv1.AnnotationPostDeleteRun

// AnnotationHookRun, on a pre-sync, post-sync or sync-fail hook, names the
// sync attempt that created it (Request.HookRun).
const AnnotationHookRun = tendv1.AnnotationHookRun

// PostDeleteHooks returns the post-delete hooks among objs, in weight
// order: what Engine.PostDelete runs when their App is deleted.
func PostDeleteHooks(objs []*unstructured.Unstructured) ([]Hook, error) {
	p, err := NewPlan(objs, true)
	if err != nil {
		return nil, err
	}
	return p.PostDelete, nil
}

// PostDeleteRequest runs the post-delete hooks of one deleted App.
type PostDeleteRequest struct {
	App AppRef
	// Run identifies this deletion ("<App UID>@<revision>"); it is
	// recorded on every hook created for it (AnnotationPostDeleteRun).
	Run string
	// Hooks are the App's post-delete hooks (PostDeleteHooks); PostDelete
	// modifies their objects.
	Hooks []Hook
	// Retry deletes hooks of this run that failed, so that they run again.
	Retry bool
	// HealthTimeout bounds how long a hook may take from its creation
	// (default 5m).
	HealthTimeout time.Duration
	// Health, when set, assesses the hooks in place of the Engine's
	// checker.
	Health HealthChecker
}

// PostDeleteState says where a deleted App's post-delete hooks are.
type PostDeleteState string

const (
	// PostDeleteRunning: a hook was created, or is being deleted or waited
	// for; call PostDelete again when it changes.
	PostDeleteRunning PostDeleteState = "Running"
	// PostDeleteFailed: a hook failed; the hooks after it did not run.
	PostDeleteFailed PostDeleteState = "Failed"
	// PostDeleteDone: every hook succeeded.
	PostDeleteDone PostDeleteState = "Done"
)

// PostDeleteResult is what one PostDelete call found and did.
type PostDeleteResult struct {
	State PostDeleteState
	// Hook is the hook Running waits for or that Failed.
	Hook ObjectRef
	// Message says what Running waits for or why the hook Failed.
	Message string
	// Created lists the hooks this call created.
	Created []ObjectRef
	// Warnings: hooks a delete policy wanted deleted that could not be.
	Warnings []string

	// cleanUp are the hooks to delete once Done is acted on (on-success).
	cleanUp []*unstructured.Unstructured
}

// PostDelete advances the post-delete hooks of a deleted App by one step
// and returns at once: it never waits for a hook. The hooks run one after
// another in weight order, each created once the one before succeeded.
// Everything it decides on is in the cluster (the watch cache): a hook
// already carrying this run's AnnotationPostDeleteRun is waited for, not
// created again, so that a restarted controller picks the deletion up
// where it was. A hook left by an earlier run is deleted first when its
// policy has before-create, applied over otherwise. When every hook
// succeeded those with on-success are deleted; when one failed, those of
// this run with on-failure are.
func (e *Engine) PostDelete(ctx context.Context, req PostDeleteRequest) (*PostDeleteResult, error) {
	e.defaults()
	if req.HealthTimeout <= 0 {
		req.HealthTimeout = 5 * time.Minute
	}
	checker := req.Health
	if checker == nil {
		checker = e.Health
	}
	res := &PostDeleteResult{}
	for _, h := range req.Hooks {
		o := h.Object
		setAnnotation(o, AnnotationOwner, req.App.String())
		setAnnotation(o, AnnotationPostDeleteRun, req.Run)
		if err := e.Live.Watch(ctx, o.GroupVersionKind()); err != nil {
			if meta.IsNoMatchError(err) || isNotServed(err) {
				return e.postDeleteFailed(ctx, req, res, h, fmt.Sprintf("the cluster does not serve %s", o.GroupVersionKind()))
			}
			return nil, fmt.Errorf("watch %s: %w", o.GroupVersionKind(), err)
		}
		ref := RefOf(o)
		live, ok := e.Live.Get(o.GroupVersionKind(), o.GetNamespace(), o.GetName())
		if ok && live.GetDeletionTimestamp() != nil {
			return running(res, ref, "waiting for the earlier "+ref.String()+" to be deleted"), nil
		}
		if ok {
			if owner := live.GetAnnotations()[AnnotationOwner]; owner != "" && owner != req.App.String() {
				return e.postDeleteFailed(ctx, req, res, h, (&OwnershipError{Ref: ref, Owner: owner}).Error())
			}
		}
		ours := ok && live.GetAnnotations()[AnnotationPostDeleteRun] == req.Run
		if ok && !ours && h.Delete[BeforeCreate] {
			if err := e.deleteLive(ctx, o); err != nil {
				return e.postDeleteFailed(ctx, req, res, h, err.Error())
			}
			return running(res, ref, "waiting for the earlier "+ref.String()+" to be deleted"), nil
		}
		if !ours {
			out, _, err := e.applyObject(ctx, o, true, nil, false)
			if err != nil {
				return e.postDeleteFailed(ctx, req, res, h, err.Error())
			}
			e.Live.Observe(out)
			res.Created = append(res.Created, ref)
			live = out
		}
		r := checker.Check(live)
		failed := ""
		switch {
		case r.State == health.Healthy:
			continue
		case r.State == health.Degraded:
			failed = fmt.Sprintf("%s is Degraded: %s", ref, r.Message)
		case time.Since(live.GetCreationTimestamp().Time) > req.HealthTimeout:
			failed = fmt.Sprintf("%s is not healthy %s after its creation: %s", ref, req.HealthTimeout, r.Message)
		default:
			return running(res, ref, fmt.Sprintf("waiting for %s (%s: %s)", ref, r.State, r.Message)), nil
		}
		if req.Retry {
			if err := e.deleteLive(ctx, o); err != nil {
				return e.postDeleteFailed(ctx, req, res, h, err.Error())
			}
			return running(res, ref, "deleting the failed "+ref.String()+" to run it again"), nil
		}
		return e.postDeleteFailed(ctx, req, res, h, failed)
	}
	for _, h := range req.Hooks {
		if h.Delete[OnSuccess] {
			res.cleanUp = append(res.cleanUp, h.Object)
		}
	}
	res.State = PostDeleteDone
	return res, nil
}

// PostDeleteCleanUp deletes the hooks of a Done result whose policy has
// on-success, and returns what could not be deleted. The caller lets its
// App go first: a hook deleted while the App still waited for it would be
// created again by a restarted controller.
func (e *Engine) PostDeleteCleanUp(ctx context.Context, res *PostDeleteResult) []string {
	var warnings []string
	for _, o := range res.cleanUp {
		if err := e.deleteLive(ctx, o); err != nil {
			warnings = append(warnings, fmt.Sprintf("post-delete hook %s succeeded but could not be deleted: %v", RefOf(o), err))
		}
	}
	return warnings
}

func running(res *PostDeleteResult, ref ObjectRef, msg string) *PostDeleteResult {
	res.State, res.Hook, res.Message = PostDeleteRunning, ref, msg
	return res
}

// postDeleteFailed reports hook h failed and deletes the hooks of this run
// whose policy has on-failure.
func (e *Engine) postDeleteFailed(ctx context.Context, req PostDeleteRequest, res *PostDeleteResult, h Hook, msg string) (*PostDeleteResult, error) {
	res.State, res.Hook, res.Message = PostDeleteFailed, RefOf(h.Object), msg
	for _, o := range req.Hooks {
		if !o.Delete[OnFailure] {
			continue
		}
		live, ok := e.Live.Get(o.Object.GroupVersionKind(), o.Object.GetNamespace(), o.Object.GetName())
		if !ok || live.GetAnnotations()[AnnotationPostDeleteRun] != req.Run {
			continue
		}
		if err := e.deleteLive(ctx, o.Object); err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("post-delete hook %s failed and could not be deleted: %v", RefOf(o.Object), err))
		}
	}
	return res, nil
}

// deleteLive deletes o (its dependents in the background) if the watch
// cache has it; it does not wait.
func (e *Engine) deleteLive(ctx context.Context, o *unstructured.Unstructured) error {
	live, ok := e.Live.Get(o.GroupVersionKind(), o.GetNamespace(), o.GetName())
	if !ok || live.GetDeletionTimestamp() != nil {
		return nil
	}
	ri, _, err := e.resourceFor(o)
	if err != nil {
		return err
	}
	bg := metav1.DeletePropagationBackground
	uid := live.GetUID()
	err = ri.Delete(ctx, o.GetName(), metav1.DeleteOptions{PropagationPolicy: &bg, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete %s: %s", RefOf(o), serverMessage(err))
	}
	return nil
}
