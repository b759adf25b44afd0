package controller

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/compat"
)

// adoptFrom gives an App that replaces an Argo CD Application or a Flux
// Kustomization or HelmRelease (tend.dev/adopt-from, written by tend
// migrate) the first inventory that object recorded, as the controller's
// --compat takeover does: its objects are taken over at the first sync,
// and those that left git since are pruned when the App prunes. It acts
// only on an App that has never synced and has no inventory yet; inv is
// filled and saved. A transient read failure is returned; an annotation
// that cannot be read stalls the App.
func (r *AppReconciler) adoptFrom(ctx context.Context, app *tendv1.App, store apply.InventoryStore, inv *apply.Inventory) (*halt, error) {
	from := app.Annotations[tendv1.AnnotationAdoptFrom]
	if from == "" || len(inv.Entries) > 0 || len(app.Status.History) > 0 {
		return nil, nil
	}
	refs, found, err := compat.AdoptedFrom(ctx, r.Client, from, app)
	var bad *compat.AdoptFromError
	switch {
	case errors.As(err, &bad):
		return stalledBy(ReasonInvalidAnnotation, fmt.Errorf("%w; fix or remove the annotation", err)), nil
	case err != nil:
		return nil, err
	case !found:
		r.event(app, corev1.EventTypeNormal, ReasonAdoptFromNotFound, fmt.Sprintf(
			"%s (annotation %s) is not in the cluster, or tend may not read it: the App starts without its inventory, so objects it applied that are no longer in git stay",
			from, tendv1.AnnotationAdoptFrom))
		return nil, nil
	case len(refs) == 0:
		return nil, nil
	}
	compat.Seed(inv, refs)
	if err := store.Save(ctx, apply.AppRef{Namespace: app.Namespace, Name: app.Name}, inv); err != nil {
		return nil, err
	}
	r.event(app, corev1.EventTypeNormal, ReasonAdopted, fmt.Sprintf("took over the inventory of %s: %d objects", from, len(refs)))
	return nil, nil
}
