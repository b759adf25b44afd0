package controller

import (
	"context"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/appspec"
	"github.com/tend-gitops/tend/internal/render"
)

// renderOptions builds the render options of an App. The Secrets and
// ConfigMaps it references are read from their watches (refs.go), so a
// periodic reconcile sends no request for them, and a change to one
// reconciles the App.
func (r *AppReconciler) renderOptions(ctx context.Context, app *tendv1.App, src *tendv1.Source) (render.Options, error) {
	rd := readerFor(r.Client, appOwner(app))
	defer rd.done()
	if app.Spec.TargetRevision != "" && src.Spec.Git != nil && src.Spec.Git.SecretRef != nil {
		// A pinned App fetches its revision with the Source's
		// credentials (pinnedCheckout): they are among what it
		// references, so their watch lasts as long as the pin. A
		// missing or bad Secret is reported by the checkout.
		_, _ = GitAuth(ctx, rd, src)
	}
	return appspec.RenderOptions(ctx, rd, app, src)
}
