package apply

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// Annotations that ask for an object to be recreated when a change to it
// is refused: tend's own, Flux's (kustomize.toolkit.fluxcd.io/force:
// enabled) and Argo CD's (sync-options Force=true together with
// Replace=true, which Argo CD runs as a delete and a create).
const (
	AnnotationRecreate = tendv1.AnnotationRecreate
	fluxForce          = "kustomize.toolkit.fluxcd.io/force"
)

// recreateWait bounds the wait for a deleted object to be gone (its
// finalizers done) before it is created again.
const recreateWait = 2 * time.Minute

// recreates reports whether o is to be deleted and created again when the
// API server refuses a change to it: the App's spec.sync.recreate, or an
// annotation on o.
func (s *syncRun) recreates(o *unstructured.Unstructured) bool {
	if s.req.Recreate {
		return true
	}
	ann := o.GetAnnotations()
	if ann[AnnotationRecreate] == "true" || strings.EqualFold(ann[fluxForce], "enabled") {
		return true
	}
	opts := splitList(ann[argoOptions])
	return slices.Contains(opts, "Force=true") && slices.Contains(opts, "Replace=true")
}

// refusedChange reports whether err is the API server refusing a change
// to an existing object as invalid: the case a recreate may mend, when
// the object is valid as a new one (see validAsNew).
func refusedChange(err error) bool {
	return apierrors.IsInvalid(err)
}

// validAsNew asks the API server, in a dry run, whether it would create o
// if it did not exist. Validation and admission run before the store
// finds the name taken, so "already exists" is the answer that means yes;
// any other refusal is o's own fault, and deleting the live object for it
// would lose it.
func (e *Engine) validAsNew(ctx context.Context, o *unstructured.Unstructured) error {
	ri, _, err := e.resourceFor(o)
	if err != nil {
		return err
	}
	fresh := o.DeepCopy()
	fresh.SetResourceVersion("")
	fresh.SetUID("")
	fresh.SetManagedFields(nil)
	release, err := e.acquire(ctx)
	if err != nil {
		return err
	}
	_, err = ri.Create(ctx, fresh, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldManager: FieldManager})
	release()
	switch {
	case apierrors.IsAlreadyExists(err):
		return nil
	case err == nil:
		// Gone meanwhile: created as new by the apply that follows.
		return nil
	}
	return fmt.Errorf("%s: not recreated, the API server refuses it as a new object too: %s", describe(o), serverMessage(err))
}

// recreate deletes the live object uid, when the API server would take o
// as a new object, and waits until it is gone, so that the apply that
// follows creates o anew.
func (e *Engine) recreate(ctx context.Context, o *unstructured.Unstructured, uid types.UID) error {
	if err := e.validAsNew(ctx, o); err != nil {
		return err
	}
	ri, _, err := e.resourceFor(o)
	if err != nil {
		return err
	}
	background := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &background}
	if uid != "" {
		// Only the object tend saw: one someone created meanwhile stays.
		opts.Preconditions = &metav1.Preconditions{UID: &uid}
	}
	release, err := e.acquire(ctx)
	if err != nil {
		return err
	}
	err = ri.Delete(ctx, o.GetName(), opts)
	release()
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("%s: deleting it to recreate it: %w", describe(o), serverError{err})
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, recreateWait, true, func(ctx context.Context) (bool, error) {
		live, err := ri.Get(ctx, o.GetName(), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return true, nil
		case err != nil:
			return false, nil // the next poll tries again
		}
		return uid != "" && live.GetUID() != uid, nil
	})
	if err != nil {
		return fmt.Errorf("%s: deleted to recreate it, still there after %s (finalizers %v?): %w", describe(o), recreateWait, finalizersOf(ctx, e, o), err)
	}
	return nil
}

// finalizersOf names what holds a deleted object, for the error that says
// it did not go.
func finalizersOf(ctx context.Context, e *Engine, o *unstructured.Unstructured) []string {
	ri, _, err := e.resourceFor(o)
	if err != nil {
		return nil
	}
	live, err := ri.Get(ctx, o.GetName(), metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return live.GetFinalizers()
}
