package controller

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/appspec"
	"github.com/tend-gitops/tend/internal/cluster"
	"github.com/tend-gitops/tend/internal/project"
	"github.com/tend-gitops/tend/internal/render"
)

// extraSource is one entry of an App's spec.sources as a reconcile reads
// it: the Source, and the options the entry renders with.
type extraSource struct {
	key  types.NamespacedName
	src  tendv1.Source
	opts render.Options
}

// mergedRender is the last merge of an App's renders from several
// Sources: the same parts give the same merged Result, so that a periodic
// reconcile of an unchanged App finds its desired state unchanged.
type mergedRender struct {
	parts []*render.Result
	res   *render.Result
}

// loadSources reads the Sources of app's spec.sources, checked as its own
// Source is: watched by this controller, existing, allowed by its
// Project. A problem only the user fixes is a halt.
func (r *AppReconciler) loadSources(ctx context.Context, app *tendv1.App, rules *project.Rules) ([]extraSource, *halt, error) {
	if len(app.Spec.Sources) == 0 {
		return nil, nil, nil
	}
	if err := appspec.CheckSources(app); err != nil {
		return nil, stalledBy(ReasonInvalidSpec, err), nil
	}
	out := make([]extraSource, len(app.Spec.Sources))
	for i, s := range app.Spec.Sources {
		field := appspec.SourceField(app, i)
		e := &out[i]
		e.key = types.NamespacedName{Namespace: app.Namespace, Name: s.SourceRef.Name}
		if s.SourceRef.Namespace != "" {
			e.key.Namespace = s.SourceRef.Namespace
		}
		if !r.manages(e.key.Namespace) {
			return nil, stalledBy(ReasonSourceNotFound, fmt.Errorf("%s: the Source %s is in a namespace this controller does not watch (its --namespaces); move the Source or fix spec.sources[%d].sourceRef", field, e.key, i)), nil
		}
		if err := r.Client.Get(ctx, e.key, &e.src); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, stalledBy(ReasonSourceNotFound, fmt.Errorf("%s: the Source %s not found; create it or fix spec.sources[%d].sourceRef", field, e.key, i)), nil
			}
			return nil, nil, err
		}
		if err := rules.CheckApp(ctx, r.Client, app, &e.src); err != nil {
			if errors.Is(err, project.ErrDenied) {
				return nil, stalledBy(ReasonProjectDenied, fmt.Errorf("%s: %w", field, err)), nil
			}
			return nil, nil, err
		}
	}
	return out, nil, nil
}

// renderSources renders app's spec.sources, each from its Source's current
// artifact (a chart Source: the version its range selects now), and
// merges them after what spec.sourceRef rendered (rev, res). It returns
// the App's revision (every Source's, joined) and the merged render; when
// one does not render, the revisions known and the error, naming the
// entry. A Source without an artifact yet is errNoArtifact.
func (r *AppReconciler) renderSources(ctx context.Context, app *tendv1.App, conn *cluster.Conn, rev string, res *render.Result, extra []extraSource, st *appState) (string, *render.Result, error) {
	revs := []string{rev}
	parts := []*render.Result{res}
	rnd := r.renderer(app, conn)
	var failed error
	for i := range extra {
		e := &extra[i]
		erev, eres, err := r.renderSource(ctx, rnd, app, e)
		revs = append(revs, erev)
		if err != nil {
			if errors.Is(err, errNoArtifact) {
				return appspec.JoinRevisions(revs), nil, fmt.Errorf("%s: waiting for Source %s to fetch its first revision: %w", appspec.SourceField(app, i), e.key, errNoArtifact)
			}
			if failed == nil {
				failed = appspec.SourceError(app, i, err)
			}
			continue
		}
		parts = append(parts, eres)
	}
	joined := appspec.JoinRevisions(revs)
	if failed != nil {
		return joined, nil, failed
	}
	if m := st.merged; m != nil && samePointers(m.parts, parts) {
		return joined, m.res, nil
	}
	merged, err := appspec.MergeRenders(app, parts)
	if err != nil {
		return joined, nil, err
	}
	st.merged = &mergedRender{parts: parts, res: merged}
	return joined, merged, nil
}

// renderSource renders one entry of spec.sources.
func (r *AppReconciler) renderSource(ctx context.Context, rnd *render.Renderer, app *tendv1.App, e *extraSource) (string, *render.Result, error) {
	if e.src.Spec.ChartRegistry() {
		return r.renderChart(ctx, rnd, &e.src, e.opts)
	}
	art, release, ok := r.Artifacts.Open(e.key)
	if !ok {
		return "", nil, errNoArtifact
	}
	defer release()
	if repo := project.RepoOf(&e.src); app.Spec.Project != "" && art.URL != "" && !project.SameRepo(art.URL, repo) {
		return art.Revision, nil, fmt.Errorf("the Source %s still holds the files of %s; waiting for a fetch from %s: %w", e.key, art.URL, repo, errNoArtifact)
	}
	res, err := r.Cache.Render(ctx, rnd, art.Dir, art.Revision, e.opts)
	return art.Revision, res, err
}

func samePointers(a, b []*render.Result) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
