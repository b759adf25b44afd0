package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/appspec"
	"github.com/tend-gitops/tend/internal/cluster"
	"github.com/tend-gitops/tend/internal/objstatus"
	"github.com/tend-gitops/tend/internal/project"
	"github.com/tend-gitops/tend/internal/render"
	"github.com/tend-gitops/tend/internal/source/git"
)

// observed is what a reconcile found: the App's Source, the connection to
// its cluster, what it renders to and how the cluster differs from that.
type observed struct {
	interval time.Duration
	windows  []window
	src      tendv1.Source
	srcKey   types.NamespacedName
	extra    []extraSource // spec.sources
	conn     *cluster.Conn
	project  *project.Rules // nil: the App names no Project
	opts     render.Options
	// rev is the revision rendered (a chart Source's: the chart version), result
	// its render.
	rev    string
	result *render.Result
	// req applies result (without the options of a requested sync).
	req apply.Request
	// toApply and toPrune differ from git; drift is what another writer
	// changed since tend applied it.
	toApply, toPrune, drift []apply.ObjectRef
}

// haltKind is why a reconcile ends before deciding anything.
type haltKind int

const (
	// haltStalled: a problem only a change of the App (or what it names)
	// fixes.
	haltStalled haltKind = iota
	// haltWaiting: something the App needs is not ready yet.
	haltWaiting
	// haltRenderFailed: the revision does not render; the last good one
	// stays applied.
	haltRenderFailed
)

// halt ends a reconcile after observe: the App is stalled, waits, or its
// newest revision does not render.
type halt struct {
	kind   haltKind
	reason string
	err    error
	after  time.Duration // haltWaiting
	rev    string        // haltRenderFailed
}

func stalledBy(reason string, err error) *halt {
	return &halt{kind: haltStalled, reason: reason, err: err}
}

// observe reads what the App's reconcile decides on. A transient failure
// (the apiserver, a cluster or a Secret read did not answer) is returned as
// the error; a problem the user must fix, or something to wait for, as a
// halt.
func (r *AppReconciler) observe(ctx context.Context, app *tendv1.App, st *appState) (*observed, *halt, error) {
	obs := &observed{interval: app.Spec.Sync.Interval.Duration}
	if obs.interval <= 0 {
		obs.interval = 10 * time.Minute
	}
	var (
		err error
		h   *halt
	)
	if obs.windows, err = parseWindows(app.Spec.Sync.Windows); err != nil {
		return nil, stalledBy(ReasonInvalidSpec, err), nil
	}
	// The Project's rules come before anything the App names is waited
	// for or read.
	if obs.project, err = project.Load(ctx, r.Client, app); err != nil {
		switch {
		case errors.Is(err, project.ErrNotFound):
			// Its creation reconciles the App (the Project watch).
			return nil, &halt{kind: haltWaiting, reason: ReasonProjectNotFound, err: err, after: time.Minute}, nil
		case objstatus.IsPermanent(err):
			return nil, stalledBy(ReasonProjectDenied, err), nil
		}
		return nil, nil, err
	}
	if err := obs.project.CheckRefs(app); err != nil {
		return nil, stalledBy(ReasonProjectDenied, err), nil
	}
	if refs := project.CrossNamespaceRefs(app); r.NoCrossNamespaceRefs && len(refs) > 0 {
		return nil, stalledBy(ReasonCrossNamespaceRef, fmt.Errorf("%s: this controller runs with --no-cross-namespace-refs, so an App references only objects in its own namespace (%s)",
			strings.Join(refs, "; "), app.Namespace)), nil
	}
	obs.srcKey = types.NamespacedName{Namespace: app.Namespace, Name: app.Spec.SourceRef.Name}
	if app.Spec.SourceRef.Namespace != "" {
		obs.srcKey.Namespace = app.Spec.SourceRef.Namespace
	}
	if !r.manages(obs.srcKey.Namespace) {
		// The cache holds only the watched namespaces: a read would fail
		// on every reconcile.
		return nil, stalledBy(ReasonSourceNotFound, fmt.Errorf("the Source %s is in a namespace this controller does not watch (its --namespaces); move the Source or fix spec.sourceRef", obs.srcKey)), nil
	}
	if err := r.Client.Get(ctx, obs.srcKey, &obs.src); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, stalledBy(ReasonSourceNotFound, fmt.Errorf("the Source %s not found; create it or fix spec.sourceRef", obs.srcKey)), nil
		}
		return nil, nil, err
	}
	st.rememberSource(&obs.src)
	if err := obs.project.CheckApp(ctx, r.Client, app, &obs.src); err != nil {
		if errors.Is(err, project.ErrDenied) {
			return nil, stalledBy(ReasonProjectDenied, err), nil
		}
		return nil, nil, err
	}
	if obs.extra, h, err = r.loadSources(ctx, app, obs.project); h != nil || err != nil {
		return nil, h, err
	}
	if msg, cyc, err := r.checkDependencies(ctx, app); err != nil {
		return nil, nil, err
	} else if cyc {
		return nil, stalledBy(ReasonDependencyCycle, errors.New(msg)), nil
	} else if msg != "" {
		return nil, &halt{kind: haltWaiting, reason: ReasonDependencyNotReady, err: errors.New(msg), after: 30 * time.Second}, nil
	}
	if obs.conn, err = r.Clusters.Get(ctx, app.Namespace, app.Spec.Destination.ClusterRef); err != nil {
		if objstatus.IsPermanent(err) {
			return nil, stalledBy(ReasonInvalidSpec, fmt.Errorf("spec.destination.clusterRef: %w", err)), nil
		}
		return nil, nil, err // the apiserver or the cluster did not answer: back off
	}
	if obs.opts, err = r.renderOptions(ctx, app, &obs.src, obs.extra); err != nil {
		if errors.Is(err, appspec.ErrSourceNotReady) {
			// A values Source that has not fetched yet: its first
			// revision reconciles the App (the Source index).
			return nil, &halt{kind: haltWaiting, reason: ReasonArtifactNotReady, err: err, after: 5 * time.Second}, nil
		}
		if objstatus.IsPermanent(err) {
			return nil, stalledBy(ReasonInvalidSpec, err), nil
		}
		return nil, nil, err
	}
	rules, err := st.compiled(app)
	if err != nil {
		return nil, stalledBy(ReasonInvalidSpec, err), nil
	}

	// What to render: the Source's artifact, or a pinned revision.
	if obs.rev, obs.result, err = r.renderApp(ctx, app, &obs.src, obs.srcKey, obs.conn, obs.opts, st); err != nil {
		if errors.Is(err, errNoArtifact) {
			if err == errNoArtifact {
				err = fmt.Errorf("waiting for Source %s to fetch its first revision", obs.srcKey)
			}
			return nil, &halt{kind: haltWaiting, reason: ReasonArtifactNotReady, err: err, after: 5 * time.Second}, nil
		}
		return nil, &halt{kind: haltRenderFailed, reason: ReasonRenderFailed, err: err, rev: obs.rev}, nil
	}
	if len(obs.extra) > 0 {
		if obs.rev, obs.result, err = r.renderSources(ctx, app, obs.conn, obs.rev, obs.result, obs.extra, st); err != nil {
			if errors.Is(err, errNoArtifact) {
				return nil, &halt{kind: haltWaiting, reason: ReasonArtifactNotReady, err: err, after: 5 * time.Second}, nil
			}
			return nil, &halt{kind: haltRenderFailed, reason: ReasonRenderFailed, err: err, rev: obs.rev}, nil
		}
	}
	if check := (projectCheck{obs.result, obs.project.Version(), app.Generation}); obs.project != nil && st.allowed != check {
		if err := obs.project.CheckObjects(app, obs.result.Objects(), obs.conn.Scope); err != nil {
			// Nothing of this revision is applied; what an earlier
			// one applied stays.
			return nil, stalledBy(ReasonProjectDenied, err), nil
		}
		st.allowed = check
	}
	if st.inv == nil {
		inv, err := obs.conn.Engine.Inventory.Load(ctx, apply.AppRef{Namespace: app.Namespace, Name: app.Name})
		if err != nil {
			var fe *apply.InventoryFormatError
			if errors.As(err, &fe) {
				// A newer tend wrote it (a rollback of tend): only an
				// upgrade helps. Nothing is applied or pruned meanwhile.
				return nil, stalledBy(ReasonInventoryFormat, err), nil
			}
			return nil, nil, err
		}
		if h, err := r.adoptFrom(ctx, app, obs.conn.Engine.Inventory, inv); h != nil || err != nil {
			return nil, h, err
		}
		st.inv = inv
	}
	result := obs.result
	obs.req = appspec.Request(app, rules)
	obs.req.Revision = obs.rev
	obs.req.ObjectsFunc = func() []*unstructured.Unstructured { return desiredObjects(result) }
	obs.req.Inventory = st.inv
	// Make sure the live cache watches every kind involved (no-op after the
	// first reconcile), then read drift and health from it.
	if obs.toApply, obs.toPrune, err = obs.conn.Engine.PreviewFrom(ctx, obs.req, st.inv); err != nil {
		var (
			oe *apply.OwnershipError
			se *apply.SyncError
		)
		switch {
		case errors.As(err, &oe):
			// Another App declares the same object: only a change to
			// one of them helps (a new revision or spec reconciles).
			return nil, stalledBy(ReasonOwnershipConflict, err), nil
		case errors.As(err, &se):
			// What git declares cannot be applied (a Secret tend must
			// not touch, a bad hook or wave annotation).
			return nil, stalledBy(ReasonInvalidObjects, err), nil
		}
		return nil, nil, err // the cluster did not answer: back off
	}
	obs.drift = obs.conn.Engine.Drift(st.inv)
	if err := r.readableChecks(ctx, app, st, obs.conn, rules.Checks, app.Spec.Sync.Interval.Duration); err != nil {
		return nil, nil, err
	}
	return obs, nil, nil
}

var errNoArtifact = errors.New("no artifact yet")

// renderer renders app for conn's cluster: kinds' scope from its
// discovery, and Helm's capabilities and lookup from the cluster,
// discovered only when a Helm chart is rendered (an idle controller asks
// the cluster nothing). An App with a ServiceAccount looks up as that
// account, and its renders are cached apart from other accounts'.
func (r *AppReconciler) renderer(app *tendv1.App, conn *cluster.Conn) *render.Renderer {
	rnd := &render.Renderer{Charts: r.Charts, Scope: conn.Scope, Discover: conn.HelmCluster, Target: conn.Display()}
	if sa := r.serviceAccount(app); sa != "" {
		user := cluster.ServiceAccountUser(app.Namespace, sa)
		rnd.Target += " as " + user
		rnd.Discover = func() (*render.Cluster, error) {
			cl, err := conn.HelmCluster()
			if err != nil || cl == nil || cl.Config == nil {
				return cl, err
			}
			as := *cl
			as.Config = rest.CopyConfig(cl.Config)
			as.Config.Impersonate = rest.ImpersonationConfig{UserName: user}
			return &as, nil
		}
	}
	return rnd
}

// renderApp renders the App from its Source's current artifact, or from its
// pinned revision.
func (r *AppReconciler) renderApp(ctx context.Context, app *tendv1.App, src *tendv1.Source, srcKey types.NamespacedName, conn *cluster.Conn, opts render.Options, st *appState) (string, *render.Result, error) {
	rnd := r.renderer(app, conn)
	if src.Spec.ChartRegistry() {
		return r.renderChart(ctx, rnd, src, opts)
	}
	// The Store names the revision on disk; holding the artifact keeps
	// fetches out of its checkout while it renders.
	art, release, ok := r.Artifacts.Open(srcKey)
	if !ok {
		return "", nil, errNoArtifact
	}
	defer release()
	rev, dir := art.Revision, art.Dir
	if repo := project.RepoOf(src); app.Spec.Project != "" && art.URL != "" && !project.SameRepo(art.URL, repo) {
		// The Source's URL changed and its files are still the old
		// repository's: its Project allowed the new one, not those.
		return "", nil, fmt.Errorf("the Source %s still holds the files of %s; waiting for a fetch from %s: %w", srcKey, art.URL, repo, errNoArtifact)
	}
	if pin := app.Spec.TargetRevision; pin != "" {
		release()
		var err error
		if rev, dir, err = r.pinnedCheckout(ctx, app, src, pin); err != nil {
			return pin, nil, err
		}
	}
	if rev == art.Revision {
		// Events about this revision name its commit (the Source's
		// status names it too, but can still name the previous one).
		st.subjectRev, st.subject = art.Revision, art.Subject
	}
	var changed []string
	if st.result != nil {
		changed = r.Artifacts.ChangedBetween(srcKey, st.resultRev, rev)
	}
	start := time.Now()
	res, err := r.Cache.RenderChange(ctx, rnd, dir, rev, opts, st.result, changed)
	if r.metrics != nil {
		r.metrics.render.WithLabelValues(resultLabel(err)).Observe(time.Since(start).Seconds())
	}
	if err != nil {
		return rev, nil, err
	}
	st.result, st.resultRev = res, rev
	st.rendered.Store(&rendered{rev: rev, files: res.Files})
	return rev, res, nil
}

// renderChart renders a chart from a chart Source. The version a range
// selects today is part of the cache key, so a new chart version in the
// range is rendered (the chart fetcher keeps the index and archive, so the
// render that follows does not fetch again).
func (r *AppReconciler) renderChart(ctx context.Context, rnd *render.Renderer, src *tendv1.Source, opts render.Options) (string, *render.Result, error) {
	key := "chart:" + chartURL(src)
	rev := "chart"
	if ref := chartRefOf(opts); ref != nil && r.Charts != nil {
		version, err := rnd.ChartRevision(ctx, opts)
		if err != nil {
			return "chart", nil, fmt.Errorf("helm chart %q from %s: %w", ref.Name, chartURL(src), err)
		}
		key += "@" + ref.Name + "@" + version
		rev = version
	}
	res, err := r.Cache.Render(ctx, rnd, r.emptyDir(), key, opts)
	return rev, res, err
}

// chartRefOf is the chart an App renders from a chart Source, if any.
func chartRefOf(opts render.Options) *render.ChartRef {
	if opts.Helm == nil {
		return nil
	}
	return opts.Helm.Chart
}

func (r *AppReconciler) emptyDir() string {
	return r.DataDir + "/empty"
}

// pinnedCheckout fetches a revision into the App's own checkout, with the
// Source's credentials read from their watch (renderOptions keeps it for
// a pinned App; a rollback's read starts one that the App's next render
// lets go unless the Source still reads it).
func (r *AppReconciler) pinnedCheckout(ctx context.Context, app *tendv1.App, src *tendv1.Source, rev string) (string, string, error) {
	dir := fmt.Sprintf("%s/pins/%s/%s", r.DataDir, app.Namespace, app.Name)
	if src.Spec.OCIArtifact() {
		return r.pinnedArtifact(ctx, app, src, rev, dir)
	}
	if _, err := os.Stat(dir + ".digest"); err == nil {
		// The pin held an OCI artifact until the Source became git.
		if err := os.RemoveAll(dir); err != nil {
			return rev, "", err
		}
		if err := os.Remove(dir + ".digest"); err != nil {
			return rev, "", err
		}
	}
	auth, err := GitAuth(ctx, readerFor(r.Client, appOwner(app)), src)
	if err != nil {
		return rev, "", err
	}
	res, err := r.Fetcher.Fetch(ctx, dir, git.Options{URL: src.Spec.Git.URL, Ref: git.Ref{Commit: rev}, Auth: auth, Timeout: src.Spec.Timeout.Duration})
	if err != nil {
		return rev, "", fmt.Errorf("fetch pinned revision %s (spec.targetRevision): %w", rev, err)
	}
	return res.Revision, res.Dir, nil
}

// pinnedArtifact pulls the OCI artifact of digest rev into dir, unless dir
// already holds it (an artifact's files never change under one digest).
func (r *AppReconciler) pinnedArtifact(ctx context.Context, app *tendv1.App, src *tendv1.Source, rev, dir string) (string, string, error) {
	if !strings.HasPrefix(rev, "sha256:") {
		return rev, "", objstatus.Permanentf("spec.targetRevision %q: the Source %s is an OCI artifact; pin it to a digest (sha256:<hex>)", rev, src.Name)
	}
	marker := dir + ".digest"
	if have, err := os.ReadFile(marker); err == nil && string(have) == rev {
		return rev, dir, nil
	}
	puller, ok := r.Charts.(ArtifactPuller)
	if !ok {
		return rev, "", fmt.Errorf("this controller's chart fetcher cannot pull OCI artifacts")
	}
	pull, err := ArtifactPull(ctx, readerFor(r.Client, appOwner(app)), puller, src, rev)
	if err != nil {
		return rev, "", err
	}
	// Unpacked and verified aside, then swapped in: the marker names
	// only a directory that holds all of its digest.
	if err := os.Remove(marker); err != nil && !errors.Is(err, os.ErrNotExist) {
		return rev, "", err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return rev, "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+app.Name+".pull-")
	if err != nil {
		return rev, "", err
	}
	defer os.RemoveAll(tmp)
	if _, _, err := pull(ctx, "", tmp); err != nil {
		return rev, "", fmt.Errorf("pull pinned revision %s (spec.targetRevision): %w", rev, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return rev, "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return rev, "", err
	}
	if err := os.WriteFile(marker, []byte(rev), 0o644); err != nil {
		return rev, "", err
	}
	return rev, dir, nil
}
