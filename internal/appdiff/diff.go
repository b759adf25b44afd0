package appdiff

import (
	"context"
	"errors"
	"fmt"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/appspec"
)

// Options of a Diff.
type Options struct {
	// Revision renders this branch, tag or commit of the App's Source (a
	// tag or digest of an OCI artifact Source) instead of the one it last
	// fetched.
	Revision string
	// Prune, when set, replaces the App's spec.sync.prune: whether objects
	// that left git show as deletions or as notes.
	Prune *bool
}

// Result is what a sync of an App would change.
type Result struct {
	*apply.Difference
	// Revision is the one rendered.
	Revision string
}

// OtherClusterError says the App deploys to another Cluster
// (spec.destination.clusterRef): a Differ compares with its own cluster
// only.
type OtherClusterError struct {
	Namespace, Name, Cluster string
}

func (e *OtherClusterError) Error() string {
	return fmt.Sprintf("the App %s/%s deploys to Cluster %s: a diff compares with the cluster the App is in only", e.Namespace, e.Name, e.Cluster)
}

// Diff renders app from its Source src (see Render) and reports what a
// sync would change, without changing anything: the engine's preparation
// and a server-side apply dry run, with the App's ignoreDifferences, prune
// and takeover settings. Errors of the App and of single objects a sync
// would refuse are InputErrors; an App of another Cluster is an
// OtherClusterError; failed requests to the cluster are ClusterErrors;
// anything else failed to fetch the Source.
func (d *Differ) Diff(ctx context.Context, app *tendv1.App, src *tendv1.Source, o Options) (*Result, error) {
	if ref := app.Spec.Destination.ClusterRef; ref != nil {
		return nil, &OtherClusterError{Namespace: app.Namespace, Name: app.Name, Cluster: ref.Name}
	}
	r, err := d.Render(ctx, app, src, o.Revision, Known{})
	if err != nil {
		return nil, err
	}
	rules, err := appspec.Compile(app)
	if err != nil {
		return nil, &InputError{fmt.Errorf("the App %s/%s: %w", app.Namespace, app.Name, err)}
	}
	req := appspec.Request(app, rules)
	req.Objects, req.Revision = r.Objects, r.Revision
	if o.Prune != nil {
		req.Prune = *o.Prune
	}
	eng := d.Engine
	if d.EngineFor != nil {
		if eng, err = d.EngineFor(ctx, app); err != nil {
			return nil, &ClusterError{err}
		}
	}
	dif, err := eng.Diff(ctx, req)
	if err != nil {
		var se *apply.SyncError
		if errors.As(err, &se) {
			return nil, &InputError{err}
		}
		return nil, &ClusterError{err}
	}
	return &Result{Difference: dif, Revision: r.Revision}, nil
}
