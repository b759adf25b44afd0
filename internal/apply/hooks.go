package apply

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// runHooks runs hooks one after another in weight order: delete the old
// object first if asked, apply, wait until it succeeds (a Job completes,
// anything else is healthy), then delete it if its policy says so. The first
// failure stops the phase.
func (s *syncRun) runHooks(ctx context.Context, phase Phase, hooks []Hook) error {
	step := string(phase) + " hooks"
	for _, h := range hooks {
		o := h.Object
		ref := RefOf(o)
		if err := s.watchKinds(ctx, []*unstructured.Unstructured{o}, false); err != nil {
			return err
		}
		// A hook of this very sync attempt, cut off by a restart, is
		// waited for: it is not created a second time.
		ours := false
		if s.req.HookRun != "" {
			run := s.req.HookRun + "/" + string(phase)
			setAnnotation(o, AnnotationHookRun, run)
			live, ok := s.e.Live.Get(o.GroupVersionKind(), o.GetNamespace(), o.GetName())
			ours = ok && live.GetDeletionTimestamp() == nil && live.GetAnnotations()[AnnotationHookRun] == run
		}
		if h.Delete[BeforeCreate] && !ours {
			if err := s.deleteAndWait(ctx, o); err != nil {
				s.progress(step, ref, HookFailed, err.Error())
				return fmt.Errorf("hook %s: %w", ref, err)
			}
		}
		out, _, err := s.e.applyObject(ctx, o, true, nil, false)
		if err != nil {
			s.progress(step, ref, HookFailed, err.Error())
			return fmt.Errorf("hook %w", err)
		}
		s.e.Live.Observe(out)
		if err := s.waitHealthy(ctx, step, []*unstructured.Unstructured{o}); err != nil {
			s.progress(step, ref, HookFailed, err.Error())
			if h.Delete[OnFailure] {
				_ = s.deleteAndWait(ctx, o)
			}
			return fmt.Errorf("hook %w", err)
		}
		s.progress(step, ref, HookRun, "")
		if h.Delete[OnSuccess] {
			if err := s.deleteAndWait(ctx, o); err != nil {
				s.res.Warnings = append(s.res.Warnings, fmt.Sprintf("hook %s succeeded but could not be deleted: %v", ref, err))
			}
		}
	}
	return nil
}

// runFailHooks runs the sync-fail hooks after a failed sync; their own
// failures become warnings.
func (s *syncRun) runFailHooks(ctx context.Context) {
	if s.req.DryRun || len(s.plan.SyncFail) == 0 {
		return
	}
	if err := s.runHooks(ctx, SyncFail, s.plan.SyncFail); err != nil {
		s.res.Warnings = append(s.res.Warnings, "sync-fail hooks: "+err.Error())
	}
}

// deleteAndWait deletes o if it exists and waits until the watch cache no
// longer has it.
func (s *syncRun) deleteAndWait(ctx context.Context, o *unstructured.Unstructured) error {
	ri, _, err := s.e.resourceFor(o)
	if err != nil {
		return err
	}
	if _, ok := s.e.Live.Get(o.GroupVersionKind(), o.GetNamespace(), o.GetName()); !ok {
		return nil
	}
	bg := metav1.DeletePropagationBackground
	if err := ri.Delete(ctx, o.GetName(), metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete: %s", serverMessage(err))
	}
	deadline := time.Now().Add(s.req.HealthTimeout)
	for {
		if _, ok := s.e.Live.Get(o.GroupVersionKind(), o.GetNamespace(), o.GetName()); !ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still present %s after deletion", s.req.HealthTimeout)
		}
		if err := s.pause(ctx); err != nil {
			return err
		}
	}
}
