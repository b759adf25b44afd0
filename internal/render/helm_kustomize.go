package render

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"

	chartloader "helm.sh/helm/v4/pkg/chart/v2/loader"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Values merge modes of a kustomize helmCharts entry (valuesMerge).
const (
	valuesMergeOverride = "override"
	valuesMergeMerge    = "merge"
	valuesMergeReplace  = "replace"
)

// kustomizeDefaultReleaseName is the release name of a helmCharts entry
// without one. kustomize passes --generate-name to helm, which gives a new
// random name on every build; a GitOps render must be reproducible, so tend
// uses `helm template`'s fixed default instead.
const kustomizeDefaultReleaseName = "release-name"

// KustomizeHelmChart is one entry of a kustomization's helmCharts, with the
// field meanings of kustomize's types.HelmChart. File paths are artifact
// paths: the kustomize renderer resolves them against the kustomization
// directory before calling inflateHelmChart.
type KustomizeHelmChart struct {
	// Name of the chart: the directory chartHome/<name>, or the chart's
	// name in Repo.
	Name string
	// Version is the chart version (exact or semver range) to fetch from
	// Repo; empty means the latest stable version.
	Version string
	// Repo is an https:// chart repository or oci:// registry prefix; empty
	// means the chart must be in chartHome.
	Repo string
	// ReleaseName is .Release.Name; empty means "release-name" (kustomize
	// would generate a random one).
	ReleaseName string
	// Namespace is .Release.Namespace.
	Namespace string
	// ValuesFile replaces the chart's values.yaml as the base that
	// ValuesInline is merged with (artifact path; empty means the chart's
	// own values.yaml).
	ValuesFile string
	// AdditionalValuesFiles are merged after ValuesFile and ValuesInline,
	// in order (artifact paths).
	AdditionalValuesFiles []string
	// ValuesInline are values written in the kustomization.
	ValuesInline map[string]any
	// ValuesMerge says how ValuesInline combines with ValuesFile:
	// "override" (the default: inline wins), "merge" (the file wins) or
	// "replace" (inline only; the chart's defaults still apply beneath).
	ValuesMerge string
	// IncludeCRDs includes the chart's crds/ directories (helm template
	// --include-crds); kustomize leaves them out by default.
	IncludeCRDs bool
	// SkipHooks drops hook objects (helm template --no-hooks).
	SkipHooks bool
	// SkipTests drops test hooks (helm template --skip-tests).
	SkipTests bool
	// APIVersions are added to .Capabilities.APIVersions.
	APIVersions []string
	// KubeVersion overrides .Capabilities.KubeVersion.
	KubeVersion string
}

// inflateHelmChart renders one kustomize helmCharts entry with tend's Helm
// renderer (no helm binary). chartHome is the kustomization's
// helmGlobals.chartHome as an artifact path (by default
// "<kustomization dir>/charts"). As kustomize does, a chart with Repo and
// Version is looked for in chartHome/<name>-<version>/<name>, any other in
// chartHome/<name>; a chart found there is used as is, and otherwise one
// with a Repo is fetched through r.Charts.
func (r *Renderer) inflateHelmChart(ctx context.Context, f *files, chartHome string, spec KustomizeHelmChart) ([]*unstructured.Unstructured, error) {
	if spec.Name == "" {
		return nil, errors.New("helmCharts entry has no name; set the chart's name")
	}
	label := fmt.Sprintf("helmCharts %q", spec.Name)
	mode := spec.ValuesMerge
	switch mode {
	case "":
		mode = valuesMergeOverride
	case valuesMergeOverride, valuesMergeMerge, valuesMergeReplace:
	default:
		return nil, fmt.Errorf("%s: valuesMerge %q must be one of override, merge, replace", label, spec.ValuesMerge)
	}

	local := path.Join(chartHome, spec.Name)
	if spec.Repo != "" && spec.Version != "" {
		local = path.Join(chartHome, spec.Name+"-"+spec.Version, spec.Name)
	}
	j := chartJob{
		releaseName: spec.ReleaseName,
		namespace:   spec.Namespace,
		includeCRDs: spec.IncludeCRDs,
		skipHooks:   spec.SkipHooks,
		skipTests:   spec.SkipTests,
		kubeVersion: spec.KubeVersion,
		apiVersions: spec.APIVersions,
	}
	if j.releaseName == "" {
		j.releaseName = kustomizeDefaultReleaseName
	}
	switch {
	case f.exists(path.Join(local, "Chart.yaml")):
		c, err := loadChartDir(f, local)
		if err != nil {
			return nil, fmt.Errorf("%s: chart at %s: %w", label, local, err)
		}
		if err := r.resolveDependencies(ctx, f, c, local, 0); err != nil {
			return nil, fmt.Errorf("%s: chart at %s: %w", label, local, err)
		}
		j.chart = c
		label = fmt.Sprintf("helmCharts %q (chart at %s)", spec.Name, local)
	case spec.Repo == "":
		return nil, fmt.Errorf("%s: no chart at %s and no repo to fetch it from; set repo or vendor the chart there", label, local)
	default:
		c, version, err := r.fetchChart(ctx, spec.Repo, spec.Name, spec.Version, nil)
		if err != nil {
			return nil, fmt.Errorf("%s from %s: %w", label, redactURL(spec.Repo), err)
		}
		label = fmt.Sprintf("helmCharts %q version %s from %s", spec.Name, version, redactURL(spec.Repo))
		if err := r.resolveDependencies(ctx, f, c, "", 0); err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		j.chart = c
	}

	vals, err := kustomizeValues(f, spec, mode, j.chart.Values)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	j.values = vals
	objs, err := r.renderChart(ctx, f, j)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	return objs, nil
}

// kustomizeValues computes the values kustomize would pass to helm for
// spec: the values file (or the chart's defaults) combined with the inline
// values per mode, then the additional values files.
func kustomizeValues(f *files, spec KustomizeHelmChart, mode string, chartDefaults map[string]any) (map[string]any, error) {
	base := chartDefaults
	if spec.ValuesFile != "" {
		m, err := readValuesFile(f, spec.ValuesFile, "valuesFile")
		if err != nil {
			return nil, err
		}
		base = m
	}
	var vals map[string]any
	switch {
	case len(spec.ValuesInline) == 0:
		vals = chartloader.MergeMaps(map[string]any{}, base)
	case mode == valuesMergeOverride:
		vals = chartloader.MergeMaps(base, spec.ValuesInline)
	case mode == valuesMergeMerge:
		vals = chartloader.MergeMaps(spec.ValuesInline, base)
	default: // replace
		vals = chartloader.MergeMaps(map[string]any{}, spec.ValuesInline)
	}
	for _, p := range spec.AdditionalValuesFiles {
		m, err := readValuesFile(f, p, "additionalValuesFiles")
		if err != nil {
			return nil, err
		}
		vals = chartloader.MergeMaps(vals, m)
	}
	return vals, nil
}

// readValuesFile reads and parses the values file at artifact path p; field
// names the kustomization field it came from, for messages.
func readValuesFile(f *files, p, field string) (map[string]any, error) {
	data, err := f.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s %s does not exist in the source; the path is relative to the kustomization", field, p)
		}
		return nil, fmt.Errorf("%s %s: %w", field, p, err)
	}
	m, err := chartloader.LoadValues(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s %s is not valid YAML: %w", field, p, err)
	}
	return m, nil
}
