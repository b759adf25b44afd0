// Package appdiff renders an App outside the controller and compares it
// with the cluster, one way for every caller: `tend render APP`,
// `tend sync APP --local`, `tend adopt` and `tend diff APP` in the CLI, and
// the dashboard's diff view.
//
// Render fetches the App's Source into a temporary directory (the revision
// the Source last fetched, the App's pin, or a branch, tag or commit given)
// with the Source's credentials, checks the App against its Project and
// renders it with the App's own options (appspec.RenderOptions), as the
// controller does. Diff then sends what a sync would apply through the
// apply engine's server-side apply dry run (apply.Engine.Diff) with the
// App's sync options (appspec.Request): what a sync would change, object by
// object, with Secret values masked (package diff).
package appdiff

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/appspec"
	"github.com/tend-gitops/tend/internal/artifact"
	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/objstatus"
	"github.com/tend-gitops/tend/internal/project"
	"github.com/tend-gitops/tend/internal/render"
	"github.com/tend-gitops/tend/internal/source/chart"
	"github.com/tend-gitops/tend/internal/source/git"
)

// Differ renders the Apps of one cluster and compares them with it.
type Differ struct {
	// Config reaches the cluster; Helm charts discover its version and
	// APIs through it.
	Config *rest.Config
	// Client reads the Apps' Sources and Projects and the Secrets and
	// ConfigMaps their specs name, and maps kinds to resources (its
	// RESTMapper). Its reads should not come from a cache: Secrets are
	// read once per render and should not be kept.
	Client client.Client
	// Engine compares; only Diff needs it.
	Engine *apply.Engine
	// EngineFor, when set, returns the engine an App's sync runs on (one
	// acting as its ServiceAccount), for Diff to compare with in place of
	// Engine: the diff then shows what that account's sync would do.
	EngineFor func(ctx context.Context, app *tendv1.App) (*apply.Engine, error)
	// ActAs, when set, returns the user an App's render acts as (the
	// ServiceAccount its syncs impersonate), "" for Config's own: Helm's
	// lookup and capabilities then read what that account may read, as
	// in the App's sync.
	ActAs func(app *tendv1.App) string
}

// Rendered is an App rendered from its Source.
type Rendered struct {
	// Objects as the App applies them (a Namespace it creates is not one
	// of them: see apply.Request.CreateNamespace).
	Objects []*unstructured.Unstructured
	// Revision rendered: a commit, or a chart or artifact version.
	Revision string
}

// Known are tend objects of one namespace, by name, that are not created
// yet: what `tend adopt` maps Argo CD and Flux objects to. Render reads
// them before the cluster's.
type Known struct {
	Sources  map[string]*tendv1.Source
	Projects map[string]*tendv1.Project
}

// InputError is a problem with the App, its Source or what they render:
// its user must fix it, retrying does not help.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// ClusterError is a request to the cluster's API that failed while reading
// what the App's spec names (its Project, Secrets, ConfigMaps).
type ClusterError struct{ Err error }

func (e *ClusterError) Error() string { return e.Err.Error() }
func (e *ClusterError) Unwrap() error { return e.Err }

// NotFetchedError says the App's Source has no revision to render yet.
// It comes wrapped in an InputError.
type NotFetchedError struct {
	Source *tendv1.Source
}

func (e *NotFetchedError) Error() string {
	did := "fetched a revision"
	if e.Source.Spec.OCIArtifact() {
		did = "pulled its artifact"
	}
	return fmt.Sprintf("the Source %s/%s has not %s yet (is the tend controller running? `tend status` shows the Source)", e.Source.Namespace, e.Source.Name, did)
}

// Renderer returns a renderer for the cluster cfg reaches: kinds' scope
// from mapper, Helm's capabilities and lookup from the cluster, discovered
// when a Helm chart is rendered.
func Renderer(cfg *rest.Config, mapper meta.RESTMapper) *render.Renderer {
	return &render.Renderer{
		Charts: chart.New(chart.Options{}), Scope: scopeOf(mapper),
		Discover: func() (*render.Cluster, error) { return render.DiscoverCluster(cfg) },
	}
}

// scopeOf tells the renderer whether a kind is namespaced, from discovery.
func scopeOf(m meta.RESTMapper) func(schema.GroupVersionKind) (bool, bool) {
	return func(gvk schema.GroupVersionKind) (bool, bool) {
		mp, err := m.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return false, false
		}
		return mp.Scope.Name() == meta.RESTScopeNameNamespace, true
	}
}

// Render renders app from its Source src at ref (a branch, tag or commit,
// or a tag or digest of an OCI artifact Source; "" means the App's pinned
// spec.targetRevision, else the revision the Source last fetched), fetched
// into a temporary directory that is gone when it returns. kn are Sources
// and Projects of the App's namespace not created yet (zero: none).
func (d *Differ) Render(ctx context.Context, app *tendv1.App, src *tendv1.Source, ref string, kn Known) (*Rendered, error) {
	base, err := os.MkdirTemp("", "tend-render-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(base)
	// The App's Source is checked out (or a chart rendered) under dir,
	// other Sources' values files under base/values.
	dir := filepath.Join(base, "src")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	var rd client.Reader = d.Client
	if len(kn.Sources) > 0 || len(kn.Projects) > 0 {
		rd = knownReader{Reader: d.Client, ns: app.Namespace, known: kn}
	}
	files := &checkoutFiles{d: d, dir: filepath.Join(base, "values"), revs: map[string]checkout{}}
	inputErr := func(err error) error {
		if objstatus.IsPermanent(err) || errors.Is(err, appspec.ErrSourceNotReady) || errors.Is(err, project.ErrNotFound) || errors.Is(err, project.ErrDenied) {
			return &InputError{fmt.Errorf("the App %s/%s: %w", app.Namespace, app.Name, err)}
		}
		return &ClusterError{err}
	}
	if err := appspec.CheckSources(app); err != nil {
		return nil, inputErr(err)
	}
	if ref != "" && len(app.Spec.Sources) > 0 {
		return nil, &InputError{fmt.Errorf("--revision: the App %s/%s renders %d Sources (spec.sources); render it at its Sources' revisions, without --revision", app.Namespace, app.Name, len(app.Spec.Sources)+1)}
	}
	opts, err := appspec.RenderOptions(ctx, rd, files, app, src)
	if err != nil {
		return nil, inputErr(err)
	}
	// The App's Project, checked as the controller checks it: a render
	// its Project refuses is refused here too.
	rules, err := project.Load(ctx, rd, app)
	if err == nil {
		err = rules.CheckApp(ctx, rd, app, src)
	}
	if err != nil {
		return nil, inputErr(err)
	}
	extra, err := d.sources(ctx, rd, files, rules, app)
	if err != nil {
		return nil, inputErr(err)
	}
	cfg := d.Config
	if d.ActAs != nil {
		if user := d.ActAs(app); user != "" {
			cfg = rest.CopyConfig(cfg)
			cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
		}
	}
	rnd := Renderer(cfg, d.Client.RESTMapper())
	rev, res, err := d.renderSource(ctx, rnd, app, src, ref, dir, opts)
	if err != nil {
		return nil, err
	}
	if len(extra) > 0 {
		revs, parts := []string{rev}, []*render.Result{res}
		for i, e := range extra {
			edir := filepath.Join(base, "sources", strconv.Itoa(i))
			if err := os.MkdirAll(edir, 0o700); err != nil {
				return nil, err
			}
			erev, eres, err := d.renderSource(ctx, rnd, appspec.SourceView(app, i), e.src, "", edir, e.opts)
			if err != nil {
				var ie *InputError
				if errors.As(err, &ie) {
					return nil, &InputError{appspec.SourceError(app, i, err)}
				}
				return nil, fmt.Errorf("%s: %w", appspec.SourceField(app, i), err)
			}
			revs, parts = append(revs, erev), append(parts, eres)
		}
		rev = appspec.JoinRevisions(revs)
		if res, err = appspec.MergeRenders(app, parts); err != nil {
			return nil, &InputError{fmt.Errorf("render App %s/%s at %s: %w", app.Namespace, app.Name, rev, err)}
		}
	}
	objs := res.Objects()
	if err := rules.CheckObjects(app, objs, rnd.Scope); err != nil {
		return nil, &InputError{fmt.Errorf("the App %s/%s at %s: %w", app.Namespace, app.Name, shortRev(rev), err)}
	}
	return &Rendered{Objects: objs, Revision: rev}, nil
}

// shortRev shortens a commit SHA for messages.
func shortRev(rev string) string {
	if commitSHA.MatchString(rev) {
		return rev[:12]
	}
	return rev
}

// knownReader reads Sources and Projects of namespace ns from known first.
type knownReader struct {
	client.Reader
	ns    string
	known Known
}

func (r knownReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if key.Namespace == r.ns {
		switch o := obj.(type) {
		case *tendv1.Source:
			if s := r.known.Sources[key.Name]; s != nil {
				s.DeepCopyInto(o)
				return nil
			}
		case *tendv1.Project:
			if p := r.known.Projects[key.Name]; p != nil {
				p.DeepCopyInto(o)
				return nil
			}
		}
	}
	return r.Reader.Get(ctx, key, obj, opts...)
}

// checkoutFiles reads other Sources' files (Helm values) from checkouts of
// their current revision under dir, one per Source.
type checkoutFiles struct {
	d    *Differ
	dir  string
	revs map[string]checkout
}

type checkout struct{ rev, dir string }

func (f *checkoutFiles) ReadFile(ctx context.Context, src *tendv1.Source, name string) ([]byte, string, error) {
	key := src.Namespace + "/" + src.Name
	co, ok := f.revs[key]
	if !ok {
		if src.ResourceVersion != "" && (src.Status.Artifact == nil || src.Status.Artifact.Revision == "") {
			return nil, "", appspec.ErrSourceNotReady
		}
		rev, dir, err := f.d.fetch(ctx, src, &tendv1.App{}, "", filepath.Join(f.dir, strconv.Itoa(len(f.revs))))
		if err != nil {
			return nil, "", err
		}
		co = checkout{rev: rev, dir: dir}
		f.revs[key] = co
	}
	data, err := artifact.ReadFileIn(co.dir, name)
	return data, co.rev, err
}

// renderSource renders app from src (fetched into dir at ref, or its
// chart's version) with opts.
func (d *Differ) renderSource(ctx context.Context, rnd *render.Renderer, app *tendv1.App, src *tendv1.Source, ref, dir string, opts render.Options) (string, *render.Result, error) {
	var (
		rev string
		err error
	)
	if !src.Spec.ChartRegistry() {
		if rev, dir, err = d.fetch(ctx, src, app, ref, dir); err != nil {
			return "", nil, err
		}
	} else if ref != "" {
		return "", nil, &InputError{fmt.Errorf("--revision: Source %s/%s is a chart repository, not git; set spec.chart.version to render another version", src.Namespace, src.Name)}
	} else if rev, err = rnd.ChartRevision(ctx, opts); err != nil {
		return "", nil, &InputError{fmt.Errorf("render App %s/%s: %w", app.Namespace, app.Name, err)}
	}
	res, err := rnd.Render(ctx, dir, opts)
	if err != nil {
		return "", nil, &InputError{fmt.Errorf("render App %s/%s at %s: %w", app.Namespace, app.Name, shortRev(rev), err)}
	}
	return rev, res, nil
}

// extraSource is an entry of an App's spec.sources: its Source and the
// options it renders with.
type extraSource struct {
	src  *tendv1.Source
	opts render.Options
}

// sources reads the Sources of app's spec.sources and their render
// options, checked against the App's Project as the controller checks
// them. Errors name the entry.
func (d *Differ) sources(ctx context.Context, rd client.Reader, files appspec.SourceFiles, rules *project.Rules, app *tendv1.App) ([]extraSource, error) {
	var out []extraSource
	for i, s := range app.Spec.Sources {
		ns := app.Namespace
		if s.SourceRef.Namespace != "" {
			ns = s.SourceRef.Namespace
		}
		src := &tendv1.Source{}
		if err := rd.Get(ctx, client.ObjectKey{Namespace: ns, Name: s.SourceRef.Name}, src); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, objstatus.Permanentf("%s: the Source %s/%s not found; create it or fix spec.sources[%d].sourceRef", appspec.SourceField(app, i), ns, s.SourceRef.Name, i)
			}
			return nil, err
		}
		if err := rules.CheckApp(ctx, rd, app, src); err != nil {
			return nil, fmt.Errorf("%s: %w", appspec.SourceField(app, i), err)
		}
		opts, err := appspec.RenderOptions(ctx, rd, files, appspec.SourceView(app, i), src)
		if err != nil {
			return nil, appspec.SourceError(app, i, err)
		}
		out = append(out, extraSource{src: src, opts: opts})
	}
	return out, nil
}

// fetch checks the App's git Source out into a directory under dir (or
// pulls its OCI artifact) and returns the revision and the checkout.
func (d *Differ) fetch(ctx context.Context, src *tendv1.Source, app *tendv1.App, ref, dir string) (string, string, error) {
	if src.Spec.OCIArtifact() {
		return d.pull(ctx, src, app, ref, dir)
	}
	auth, err := controller.GitAuth(ctx, d.Client, src)
	if err != nil {
		return "", "", err
	}
	g := src.Spec.Git
	opts := git.Options{URL: g.URL, Auth: auth, Timeout: src.Spec.Timeout.Duration}
	var refs []git.Ref
	switch {
	case ref != "" && commitSHA.MatchString(ref):
		refs = []git.Ref{{Commit: ref}}
	case ref != "":
		refs = []git.Ref{{Branch: ref}, {Tag: ref}}
	case app.Spec.TargetRevision != "":
		refs = []git.Ref{{Commit: app.Spec.TargetRevision}}
	case src.ResourceVersion == "":
		// A Source not in the cluster yet (tend adopt maps it from a
		// Flux or Argo CD object): its ref, as the controller will fetch.
		refs = []git.Ref{{Branch: g.Ref.Branch, Tag: g.Ref.Tag, SemVer: g.Ref.SemVer, Commit: g.Ref.Commit}}
	case src.Status.Artifact == nil || src.Status.Artifact.Revision == "":
		return "", "", &InputError{&NotFetchedError{Source: src}}
	case g.Ref.Tag == "" && g.Ref.SemVer == "":
		// The branch and the commit in it: fetches the branch, which
		// every server allows, rather than a bare commit.
		branch := g.Ref.Branch
		if branch == "" {
			branch = "main"
		}
		refs = []git.Ref{{Branch: branch, Commit: src.Status.Artifact.Revision}, {Commit: src.Status.Artifact.Revision}}
	default:
		refs = []git.Ref{{Commit: src.Status.Artifact.Revision}}
	}
	fetcher := &git.Fetcher{}
	var firstErr error
	for i, r := range refs {
		opts.Ref = r
		res, err := fetcher.Fetch(ctx, filepath.Join(dir, strconv.Itoa(i)), opts)
		if err == nil {
			return res.Revision, res.Dir, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if !errors.Is(err, git.ErrRefNotFound) {
			break
		}
	}
	return "", "", fmt.Errorf("fetch Source %s/%s: %w", src.Namespace, src.Name, firstErr)
}

var commitSHA = regexp.MustCompile(`^[0-9a-f]{40}$`)

// pull pulls the App's OCI artifact Source into dir, as the controller
// does (controller.ArtifactPull): ref (a digest or a tag), the App's pin,
// the Source's ref for a Source not in the cluster yet, or the digest the
// Source last pulled.
func (d *Differ) pull(ctx context.Context, src *tendv1.Source, app *tendv1.App, ref, dir string) (string, string, error) {
	src = src.DeepCopy()
	digest := ""
	switch {
	case strings.HasPrefix(ref, "sha256:"):
		digest = ref
	case ref != "":
		src.Spec.OCI.Ref = &tendv1.OCIRef{Tag: ref}
	case app.Spec.TargetRevision != "":
		digest = app.Spec.TargetRevision
	case src.ResourceVersion == "":
	case src.Status.Artifact == nil || src.Status.Artifact.Revision == "":
		return "", "", &InputError{&NotFetchedError{Source: src}}
	default:
		digest = src.Status.Artifact.Revision
	}
	pull, err := controller.ArtifactPull(ctx, d.Client, chart.New(chart.Options{}), src, digest)
	if err != nil {
		return "", "", err
	}
	dir = filepath.Join(dir, "oci")
	art, _, err := pull(ctx, "", dir)
	if err != nil {
		return "", "", fmt.Errorf("pull Source %s/%s: %w", src.Namespace, src.Name, err)
	}
	return art.Revision, dir, nil
}
