// Package render turns the files of a fetched source revision into the exact
// Kubernetes objects an App declares: plain YAML or JSON directories,
// kustomizations (in-process, sigs.k8s.io/kustomize/api) and Helm charts (the
// Helm SDK), with SOPS-encrypted files decrypted in memory on the way.
//
// Every render also reports the set of files it read, relative to the
// artifact root. Given the files a new commit changed, an App whose read set
// is untouched does not need rendering again (see Cache).
//
// Rendering never writes to the artifact and never writes decrypted data to
// disk: files are read through a view of the artifact that records each
// read and decrypts SOPS documents in memory.
package render

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/client-go/rest"
)

// Options say what to render from an artifact. The zero value renders the
// artifact root as plain YAML.
type Options struct {
	// Path is the directory inside the artifact, slash-separated and
	// relative to its root ("" or "." for the root). Its content decides the
	// renderer: kustomization.yaml (or .yml, or Kustomization) means
	// kustomize, Chart.yaml means Helm, anything else plain YAML.
	Path string
	// Namespace is the App's destination namespace: set on namespaced
	// objects that have none, and the Helm release namespace.
	Namespace string
	// Recursive makes plain YAML directories include subdirectories.
	Recursive bool
	// Include and Exclude filter the files of a plain YAML directory by
	// globs over their path relative to Path (see FileGlob).
	Include []string `json:",omitempty"`
	Exclude []string `json:",omitempty"`
	// AllowRemoteBases lets kustomizations reference remote (URL) bases.
	AllowRemoteBases bool
	// Helm configures chart rendering. It is required for a remote chart
	// and optional for a chart directory at Path.
	Helm *HelmOptions
	// Keys decrypt SOPS-encrypted files. Without keys, an encrypted file is
	// an error naming it.
	Keys *Keys
	// Overlay, when set, is applied with kustomize to whatever Path
	// renders (plain YAML, a kustomization, or a chart's output), before
	// Namespace fills in the namespaces still empty.
	Overlay *Overlay `json:",omitempty"`
	// PostBuild, when set, substitutes variables in the objects after the
	// overlay.
	PostBuild *PostBuild `json:",omitempty"`
}

// HelmOptions configure a Helm render.
type HelmOptions struct {
	// ReleaseName defaults to the App's name as the caller passes it here;
	// it is required.
	ReleaseName string
	// Chart names a chart in a chart repository or OCI registry. When nil,
	// the chart is the directory at Options.Path.
	Chart *ChartRef
	// Values are inline values, merged last (highest precedence).
	Values map[string]any
	// ValuesFiles are files in the artifact, relative to Options.Path
	// (they may use ../), merged in order after the chart's defaults.
	ValuesFiles []string
	// ValuesFrom are values the caller resolved from Secrets and ConfigMaps,
	// merged in order after ValuesFiles and before Values.
	ValuesFrom []map[string]any
}

// ChartRef names a chart outside the artifact.
type ChartRef struct {
	// RepoURL is an HTTP(S) chart repository (serving index.yaml) or an OCI
	// registry repository prefix (oci://host/path).
	RepoURL string
	// Name of the chart in the repository.
	Name string
	// Version is an exact version or a semver range; empty means the latest.
	Version string
	// Username and Password authenticate to the repository, when set.
	Username, Password string
}

// Keys decrypt SOPS files.
type Keys struct {
	// Age holds age identities ("AGE-SECRET-KEY-1...").
	Age []string
	// PGP holds ASCII-armored OpenPGP private keys.
	PGP [][]byte
}

// Cluster describes the target cluster to Helm: its version and API
// versions for .Capabilities, and a read-only config for `lookup`.
type Cluster struct {
	// KubeVersion is the server's git version, e.g. "v1.37.1".
	KubeVersion string
	// APIVersions lists "group/version" and "group/version/Kind" entries.
	APIVersions []string
	// Config, when set, answers Helm's lookup function. Renders only read
	// through it.
	Config *rest.Config
}

// Result is what a render produced.
//
// A Result keeps its objects encoded as JSON, not as nested maps: the App
// controller and the Cache keep one Result per App, and encoded they take
// about a quarter of the memory. Objects decodes them.
type Result struct {
	// Files lists every artifact file the render read, slash-separated,
	// relative to the artifact root, sorted. It also holds the paths the
	// render probed for existence (so creating one counts as a change) and
	// the directories it listed, as "dir/" ("./" for the root).
	Files []string

	// spec is the SpecHash of the Options this Result was rendered with,
	// set by Cache; "" when unknown.
	spec string
	// usesCluster says the render consulted the target cluster (a Helm
	// chart's capabilities or lookup), and cluster is the clusterHash of
	// what it saw; both set by Cache.
	usesCluster bool
	cluster     string
	// objects in render order, each encoded as JSON.
	objects [][]byte
}

// newResult encodes objs into a Result.
func newResult(objs []*unstructured.Unstructured, files []string) (*Result, error) {
	res := &Result{Files: files, objects: make([][]byte, len(objs))}
	for i, o := range objs {
		b, err := json.Marshal(o.Object)
		if err != nil {
			return nil, fmt.Errorf("%s cannot be encoded as JSON: %w", describe(o), err)
		}
		res.objects[i] = b
	}
	return res, nil
}

// Objects returns the rendered objects in render order, CRDs from Helm
// charts' crds/ first. Each call decodes them anew, so the caller owns
// what it gets and may modify it.
func (r *Result) Objects() []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, len(r.objects))
	for i, b := range r.objects {
		var m map[string]any
		if err := utiljson.Unmarshal(b, &m); err != nil {
			// newResult encoded b from a map; it always decodes.
			panic(fmt.Sprintf("render: decode a rendered object: %v", err))
		}
		out[i] = &unstructured.Unstructured{Object: m}
	}
	return out
}

// Len returns how many objects the render produced.
func (r *Result) Len() int { return len(r.objects) }

// Renderer renders Apps. The zero value renders plain YAML and kustomize
// offline; set Charts for remote charts and Cluster for cluster-aware Helm
// rendering.
type Renderer struct {
	// Charts fetches charts from repositories and registries.
	Charts ChartFetcher
	// Cluster is the target cluster; nil renders Helm charts with the Helm
	// SDK's default capabilities and lookup returning nothing.
	Cluster *Cluster
	// Discover, when set and Cluster is nil, describes the target cluster
	// the first time a Helm chart is rendered (once per Renderer): renders
	// without Helm never ask the cluster, and a Cache checks a kept Helm
	// Result against the cluster only then. An error renders with Helm's
	// defaults, as a nil Cluster does.
	Discover func() (*Cluster, error)
	// Target names the target cluster when one Cache serves renders for
	// several ("" for one): Results for different targets are kept apart.
	Target string

	discover     sync.Once
	discovered   *Cluster
	clusterAsked atomic.Bool
	// Scope, when set, tells whether a kind is namespaced, typically from
	// the target cluster's discovery; known is false for kinds the cluster
	// does not serve. Renders consult, in order: CustomResourceDefinitions
	// in the same output, Scope, then a built-in list of cluster-scoped
	// kinds. Kinds none of them know are treated as namespaced. Scope is
	// called from concurrent renders and must be safe for that.
	Scope func(gvk schema.GroupVersionKind) (namespaced bool, known bool)
}

// cluster returns the target cluster, discovering it on first use; nil
// when unknown.
func (r *Renderer) cluster() *Cluster {
	if r == nil {
		return nil
	}
	if r.Cluster != nil || r.Discover == nil {
		return r.Cluster
	}
	r.discover.Do(func() {
		if cl, err := r.Discover(); err == nil {
			r.discovered = cl
		}
	})
	return r.discovered
}

// helmCluster is cluster for a Helm render, which a Cache then checks
// against the cluster before reusing.
func (r *Renderer) helmCluster() *Cluster {
	r.clusterAsked.Store(true)
	return r.cluster()
}

// Render renders opts from the artifact checked out at root.
func (r *Renderer) Render(ctx context.Context, root string, opts Options) (*Result, error) {
	return r.render(ctx, newFiles(root, opts.Keys), opts)
}

// render is Render over f (the tests' fuzz targets serve f from memory).
func (r *Renderer) render(ctx context.Context, f *files, opts Options) (*Result, error) {
	dir := path.Clean("/" + filepath.ToSlash(opts.Path))[1:]
	if dir == "" {
		dir = "."
	}
	if dir != "." {
		fi, err := f.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("path %q: %w", opts.Path, notFoundHint(err))
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("path %q is a file; an App's path names a directory", opts.Path)
		}
	}
	var (
		objs []*unstructured.Unstructured
		err  error
	)
	if (len(opts.Include) > 0 || len(opts.Exclude) > 0) &&
		(opts.Helm != nil && opts.Helm.Chart != nil || f.exists(path.Join(dir, "Chart.yaml")) || kustomizationFile(f, dir) != "") {
		return nil, fmt.Errorf("spec.include and spec.exclude filter the files of a plain YAML directory, and path %q is a chart or a kustomization: remove them (a kustomization lists its resources itself)", opts.Path)
	}
	switch {
	case opts.Helm != nil && opts.Helm.Chart != nil:
		objs, err = r.renderRemoteChart(ctx, f, dir, opts)
	case f.exists(path.Join(dir, "Chart.yaml")):
		objs, err = r.renderChartDir(ctx, f, dir, opts)
	case kustomizationFile(f, dir) != "":
		objs, err = r.renderKustomize(ctx, f, dir, opts)
	default:
		objs, err = r.renderPlain(f, dir, opts)
	}
	if err != nil {
		return nil, err
	}
	if objs, err = r.applyOverlay(ctx, f, dir, objs, opts); err != nil {
		return nil, err
	}
	if objs, err = substitute(objs, opts.PostBuild); err != nil {
		return nil, err
	}
	scope := r.scopeOf(objs)
	setDefaultNamespace(objs, opts.Namespace, scope)
	if err := validate(objs, scope, f.originOf); err != nil {
		return nil, err
	}
	return newResult(objs, f.readSet())
}

func notFoundHint(err error) error {
	if os.IsNotExist(err) {
		return fmt.Errorf("no such directory in the source revision; check the App's path")
	}
	return err
}

// kustomizationFile returns the kustomization file in dir, or "".
func kustomizationFile(f *files, dir string) string {
	for _, name := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		if p := path.Join(dir, name); f.exists(p) {
			return p
		}
	}
	return ""
}

var _ fs.StatFS = (*files)(nil)
