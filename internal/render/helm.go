package render

// Helm charts are rendered in process with the Helm SDK (helm.sh/helm/v4):
// the chart is loaded into memory (from the artifact through the files view,
// or from a ChartFetcher), its dependencies are resolved, and Helm's own
// values coalescing, dependency processing and template engine produce the
// manifests, as `helm template` would with the target cluster's
// capabilities. Nothing is installed, no release is stored, and no helm
// binary is run.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	chartloader "helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
)

// ChartFetcher fetches packaged charts from chart repositories and OCI
// registries. internal/source/chart.Fetcher implements it; one is shared by
// every App so that downloads and indexes are cached once.
type ChartFetcher interface {
	// FetchChart returns the chart archive (.tgz) of chart name from
	// repoURL, an HTTP(S) chart repository or an oci://host/path prefix,
	// at the highest version matching version (an exact version, a semver
	// range, or "" for the latest stable one), and the version it picked.
	// auth, when not nil, holds basic-auth credentials. The archive may be
	// shared: callers must not modify it.
	FetchChart(ctx context.Context, repoURL, name, version string, auth *url.Userinfo) (archive []byte, resolved string, err error)
}

// defaultReleaseRevision is the .Release.Revision charts see: every render is
// an install from the chart's point of view.
const defaultReleaseRevision = 1

// chartJob is one chart to render with everything that decides its output.
type chartJob struct {
	chart       *chart.Chart
	releaseName string
	namespace   string
	// values are the user-supplied values, already merged in precedence
	// order; the chart's own defaults are merged under them by Helm.
	values      map[string]any
	includeCRDs bool
	skipHooks   bool
	skipTests   bool
	// kubeVersion and apiVersions adjust the capabilities (kustomize's
	// helmCharts kubeVersion and apiVersions).
	kubeVersion string
	apiVersions []string
}

// renderChartDir renders the chart whose Chart.yaml is in the artifact
// directory dir.
func (r *Renderer) renderChartDir(ctx context.Context, f *files, dir string, opts Options) ([]*unstructured.Unstructured, error) {
	c, err := loadChartDir(f, dir)
	if err != nil {
		return nil, fmt.Errorf("helm chart at %s: %w", displayDir(dir), err)
	}
	label := fmt.Sprintf("helm chart %q at %s", c.Name(), displayDir(dir))
	if err := r.resolveDependencies(ctx, f, c, dir, 0); err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	h := opts.Helm
	if h == nil {
		h = &HelmOptions{}
	}
	vals, err := userValues(f, dir, h)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	objs, err := r.renderChart(ctx, f, chartJob{
		chart:       c,
		releaseName: h.ReleaseName,
		namespace:   opts.Namespace,
		values:      vals,
		includeCRDs: true,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	return objs, nil
}

// renderRemoteChart renders opts.Helm.Chart, fetched through r.Charts.
// Values files are read from the artifact, relative to dir.
func (r *Renderer) renderRemoteChart(ctx context.Context, f *files, dir string, opts Options) ([]*unstructured.Unstructured, error) {
	h := opts.Helm
	ref := h.Chart
	label := fmt.Sprintf("helm chart %q from %s", ref.Name, redactURL(ref.RepoURL))
	vals, err := userValues(f, dir, h)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	var auth *url.Userinfo
	if ref.Username != "" || ref.Password != "" {
		auth = url.UserPassword(ref.Username, ref.Password)
	}
	c, version, err := r.fetchChart(ctx, ref.RepoURL, ref.Name, ref.Version, auth)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	label = fmt.Sprintf("helm chart %q version %s from %s", ref.Name, version, redactURL(ref.RepoURL))
	if err := r.resolveDependencies(ctx, f, c, "", 0); err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	objs, err := r.renderChart(ctx, f, chartJob{
		chart:       c,
		releaseName: h.ReleaseName,
		namespace:   opts.Namespace,
		values:      vals,
		includeCRDs: true,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	return objs, nil
}

// fetchChart fetches and loads a chart through r.Charts.
func (r *Renderer) fetchChart(ctx context.Context, repoURL, name, version string, auth *url.Userinfo) (*chart.Chart, string, error) {
	if r.Charts == nil {
		return nil, "", errors.New("fetching charts from repositories is not configured (Renderer.Charts is nil)")
	}
	archive, resolved, err := r.Charts.FetchChart(ctx, repoURL, name, version, auth)
	if err != nil {
		return nil, "", err
	}
	c, err := chartloader.LoadArchive(bytes.NewReader(archive))
	if err != nil {
		return nil, "", fmt.Errorf("chart %q version %s from %s is not a valid chart archive: %w", name, resolved, redactURL(repoURL), err)
	}
	if c.Name() != name {
		return nil, "", fmt.Errorf("%s lists chart %q version %s, but the archive holds chart %q; the repository is inconsistent", redactURL(repoURL), name, resolved, c.Name())
	}
	return c, resolved, nil
}

// userValues merges the values the App supplies, in increasing precedence:
// ValuesFiles (relative to dir, read through f) in order, ValuesFrom in
// order, then Values. Maps merge deeply; anything else is replaced, as with
// `helm template -f a.yaml -f b.yaml --set ...`.
func userValues(f *files, dir string, h *HelmOptions) (map[string]any, error) {
	vals := map[string]any{}
	for _, vf := range h.ValuesFiles {
		p := path.Join(dir, vf)
		data, err := f.ReadFile(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("values file %q (%s in the source) does not exist; check spec.helm.valuesFiles, which are relative to the App's path", vf, p)
			}
			return nil, fmt.Errorf("values file %q: %w", vf, err)
		}
		m, err := chartloader.LoadValues(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("values file %q (%s) is not valid YAML: %w", vf, p, err)
		}
		vals = chartloader.MergeMaps(vals, m)
	}
	for _, m := range h.ValuesFrom {
		vals = chartloader.MergeMaps(vals, m)
	}
	if h.Values != nil {
		vals = chartloader.MergeMaps(vals, h.Values)
	}
	return vals, nil
}

// renderChart renders j.chart with Helm's engine and turns the output into
// objects: CRDs from crds/ directories first (when j.includeCRDs), then the
// templates' objects in Helm's install order, then hooks.
func (r *Renderer) renderChart(ctx context.Context, f *files, j chartJob) ([]*unstructured.Unstructured, error) {
	c := j.chart
	if j.releaseName == "" {
		return nil, errors.New("a Helm release name is required; set spec.helm.releaseName (it defaults to the App's name)")
	}
	if err := chartutil.ValidateReleaseName(j.releaseName); err != nil {
		return nil, fmt.Errorf("release name %q: %w", j.releaseName, err)
	}
	if c.Metadata.APIVersion != chart.APIVersionV1 && c.Metadata.APIVersion != chart.APIVersionV2 {
		return nil, fmt.Errorf("chart apiVersion %q is not supported; use apiVersion v2", c.Metadata.APIVersion)
	}
	if c.Metadata.Type == "library" {
		return nil, errors.New("it is a library chart, which renders nothing on its own; point the App at a chart that depends on it")
	}
	caps, err := r.capabilities(j.kubeVersion, j.apiVersions)
	if err != nil {
		return nil, err
	}
	if kv := c.Metadata.KubeVersion; kv != "" && !chartutil.IsCompatibleRange(kv, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("chart requires kubeVersion %s, which does not match the cluster's %s", kv, caps.KubeVersion.Version)
	}
	if err := chartutil.ProcessDependencies(c, j.values); err != nil {
		return nil, fmt.Errorf("process dependencies: %w", err)
	}
	top, err := util.ToRenderValues(c, j.values, common.ReleaseOptions{
		Name:      j.releaseName,
		Namespace: j.namespace,
		Revision:  defaultReleaseRevision,
		IsInstall: true,
		IsUpgrade: false,
	}, caps)
	if err != nil {
		return nil, err
	}
	var eng engine.Engine
	if cl := r.helmCluster(); cl != nil && cl.Config != nil {
		eng = engine.New(readOnlyConfig(cl.Config))
	}
	rendered, err := eng.RenderWithContext(ctx, c, top)
	if err != nil {
		return nil, oneLine(err)
	}
	return chartObjects(f, c, rendered, j)
}

// capabilities returns what .Capabilities shows: the cluster's version and
// API versions when known, Helm's defaults otherwise, adjusted by a job's
// kubeVersion and extra API versions.
func (r *Renderer) capabilities(kubeVersion string, extra []string) (*common.Capabilities, error) {
	caps := common.DefaultCapabilities.Copy()
	caps.APIVersions = slices.Clone(caps.APIVersions)
	if cl := r.helmCluster(); cl != nil {
		if cl.KubeVersion != "" {
			kv, err := common.ParseKubeVersion(cl.KubeVersion)
			if err != nil {
				return nil, fmt.Errorf("cluster Kubernetes version %q: %w", cl.KubeVersion, err)
			}
			caps.KubeVersion = *kv
		}
		if len(cl.APIVersions) > 0 {
			caps.APIVersions = slices.Clone(common.VersionSet(cl.APIVersions))
		}
	}
	if kubeVersion != "" {
		kv, err := common.ParseKubeVersion(kubeVersion)
		if err != nil {
			return nil, fmt.Errorf("kubeVersion %q: %w", kubeVersion, err)
		}
		caps.KubeVersion = *kv
	}
	caps.APIVersions = append(caps.APIVersions, extra...)
	return caps, nil
}

// readOnlyConfig returns a copy of cfg whose requests fail unless they only
// read, so a chart's lookup calls can never change the cluster.
func readOnlyConfig(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper { return readOnlyTransport{rt} })
	return c
}

type readOnlyTransport struct{ next http.RoundTripper }

func (t readOnlyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return nil, fmt.Errorf("%s %s refused: rendering a chart only reads from the cluster", req.Method, req.URL.Path)
	}
	return t.next.RoundTrip(req)
}

// oneLine flattens Helm's multi-line template traces ("file:line:col",
// "executing ... at <...>:", message on separate indented lines) into one
// line for conditions and events, keeping every part.
func oneLine(err error) error {
	msg := err.Error()
	if !strings.Contains(msg, "\n") {
		return err
	}
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return errors.New(strings.Join(slices.DeleteFunc(lines, func(l string) bool { return l == "" }), " "))
}

// redactURL returns s with any password in it replaced, for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

// displayDir names an artifact directory in messages.
func displayDir(dir string) string {
	if dir == "." || dir == "" {
		return "the source root"
	}
	return dir
}

// ChartRevision is the revision of a render from a chart repository or
// registry: the version of the chart opts names that it renders today (a
// range resolved against the repository, as Argo CD and Flux report a
// chart's revision), "chart" when opts names no remote chart or r has no
// fetcher. The controller and the CLI both record it.
func (r *Renderer) ChartRevision(ctx context.Context, opts Options) (string, error) {
	if opts.Helm == nil || opts.Helm.Chart == nil || r.Charts == nil {
		return "chart", nil
	}
	ref := opts.Helm.Chart
	var auth *url.Userinfo
	if ref.Username != "" || ref.Password != "" {
		auth = url.UserPassword(ref.Username, ref.Password)
	}
	_, version, err := r.Charts.FetchChart(ctx, ref.RepoURL, ref.Name, ref.Version, auth)
	if err != nil {
		return "chart", err
	}
	return version, nil
}
