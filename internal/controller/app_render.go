package controller

import (
	"context"
	"errors"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/appspec"
	"github.com/tend-gitops/tend/internal/artifact"
	"github.com/tend-gitops/tend/internal/render"
	"k8s.io/apimachinery/pkg/types"
)

// renderOptions builds the render options of an App. The Secrets and
// ConfigMaps it references are read from their watches (refs.go), so a
// periodic reconcile sends no request for them, and a change to one
// reconciles the App. Values files of other Sources are read from their
// artifacts; a new revision of such a Source reconciles the App (the
// Source index names them). extra are the App's spec.sources, whose
// options are set too.
func (r *AppReconciler) renderOptions(ctx context.Context, app *tendv1.App, src *tendv1.Source, extra []extraSource) (render.Options, error) {
	rd := readerFor(r.Client, appOwner(app))
	defer rd.done()
	if app.Spec.TargetRevision != "" && src.Spec.Git != nil && src.Spec.Git.SecretRef != nil {
		// A pinned App fetches its revision with the Source's
		// credentials (pinnedCheckout): they are among what it
		// references, so their watch lasts as long as the pin. A
		// missing or bad Secret is reported by the checkout.
		_, _ = GitAuth(ctx, rd, src)
	}
	opts, err := appspec.RenderOptions(ctx, rd, storeFiles{r.Artifacts}, app, src)
	if err != nil {
		return opts, err
	}
	// spec.sources read through the same reader: what the App
	// references is everything all its Sources' options read.
	for i := range extra {
		if extra[i].opts, err = appspec.RenderOptions(ctx, rd, storeFiles{r.Artifacts}, appspec.SourceView(app, i), &extra[i].src); err != nil {
			return opts, appspec.SourceError(app, i, err)
		}
	}
	return opts, nil
}

// storeFiles reads other Sources' files from the artifact store.
type storeFiles struct{ store *artifact.Store }

func (f storeFiles) ReadFile(_ context.Context, src *tendv1.Source, name string) ([]byte, string, error) {
	data, rev, err := f.store.ReadFile(types.NamespacedName{Namespace: src.Namespace, Name: src.Name}, name)
	if errors.Is(err, artifact.ErrNoArtifact) {
		return nil, "", appspec.ErrSourceNotReady
	}
	return data, rev, err
}
