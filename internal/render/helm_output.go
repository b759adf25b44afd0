package render

import (
	"fmt"
	"path"
	"sort"
	"strings"

	chart "helm.sh/helm/v4/pkg/chart/v2"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"
)

const (
	// helmHookAnnotation marks a hook; its value lists the events.
	helmHookAnnotation = "helm.sh/hook"
	notesFileSuffix    = "NOTES.txt"
)

// installOrder ranks kinds as Helm installs them.
var installOrder = func() map[string]int {
	m := make(map[string]int, len(releaseutil.InstallOrder))
	for i, k := range releaseutil.InstallOrder {
		m[k] = i
	}
	return m
}()

// chartObjects turns the engine's output (template path -> text) into
// objects in the order `helm template` prints them: CRDs from the crds/
// directories of the chart and its enabled subcharts (when j.includeCRDs),
// then the templates' objects by Helm's install order of kinds (ties keep
// template path and document order), then hooks. Partials, NOTES.txt, empty
// documents and comment-only documents produce nothing. Hooks keep their
// annotations: the apply engine decides when they run. Each object's origin
// is recorded in f as its `# Source:` path, for validation messages.
func chartObjects(f *files, c *chart.Chart, rendered map[string]string, j chartJob) ([]*unstructured.Unstructured, error) {
	var crds, manifests, hooks []*unstructured.Unstructured
	if j.includeCRDs {
		for _, crd := range c.CRDObjects() {
			objs, err := parseManifests(crd.Filename, string(crd.File.Data))
			if err != nil {
				return nil, err
			}
			for _, o := range objs {
				f.setOrigin(o, "helm chart file "+crd.Filename)
			}
			crds = append(crds, objs...)
		}
	}
	names := make([]string, 0, len(rendered))
	for name := range rendered {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if strings.HasPrefix(path.Base(name), "_") || strings.HasSuffix(name, notesFileSuffix) {
			continue
		}
		objs, err := parseManifests(name, rendered[name])
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			f.setOrigin(o, "helm template "+name)
			hook, ok := o.GetAnnotations()[helmHookAnnotation]
			switch {
			case !ok:
				manifests = append(manifests, o)
			case j.skipHooks, j.skipTests && isTestHook(hook):
			default:
				hooks = append(hooks, o)
			}
		}
	}
	sortByKind(manifests)
	sortByKind(hooks)
	out := make([]*unstructured.Unstructured, 0, len(crds)+len(manifests)+len(hooks))
	out = append(out, crds...)
	out = append(out, manifests...)
	return append(out, hooks...), nil
}

// isTestHook reports whether a helm.sh/hook value names a test hook.
func isTestHook(v string) bool {
	for e := range strings.SplitSeq(v, ",") {
		switch strings.TrimSpace(e) {
		case "test", "test-success":
			return true
		}
	}
	return false
}

// sortByKind orders objects by Helm's install order, unknown kinds last and
// alphabetically, keeping the order of equals.
func sortByKind(objs []*unstructured.Unstructured) {
	sort.SliceStable(objs, func(i, j int) bool {
		a, b := objs[i].GetKind(), objs[j].GetKind()
		ra, aok := installOrder[a]
		rb, bok := installOrder[b]
		switch {
		case aok && bok:
			return ra < rb
		case aok != bok:
			return aok
		default:
			return a < b
		}
	})
}

// parseManifests parses a rendered template (or CRD file) called source,
// which may hold several YAML documents, into objects. A v1 List is
// expanded into its items.
func parseManifests(source, text string) ([]*unstructured.Unstructured, error) {
	docs := releaseutil.SplitManifests(text)
	keys := make([]string, 0, len(docs))
	for k := range docs {
		keys = append(keys, k)
	}
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	var out []*unstructured.Unstructured
	for i, k := range keys {
		js, err := yaml.YAMLToJSON([]byte(docs[k]))
		if err != nil {
			return nil, fmt.Errorf("%s (document %d of the rendered output) is not valid YAML: %v; fix the template", source, i+1, err)
		}
		if s := strings.TrimSpace(string(js)); s == "null" || s == "" {
			continue // empty or only comments
		}
		var m map[string]any
		if err := utiljson.Unmarshal(js, &m); err != nil {
			return nil, fmt.Errorf("%s (document %d of the rendered output) is not a YAML mapping; each document must be one Kubernetes object", source, i+1)
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetAPIVersion() == "" || u.GetKind() == "" {
			return nil, fmt.Errorf("%s (document %d of the rendered output, name %q) has no apiVersion or kind; each document must be a Kubernetes object", source, i+1, u.GetName())
		}
		if u.GetAPIVersion() == "v1" && u.GetKind() == "List" {
			items, _, err := unstructured.NestedSlice(m, "items")
			if err != nil {
				return nil, fmt.Errorf("%s (document %d): List items: %w", source, i+1, err)
			}
			for n, it := range items {
				im, ok := it.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("%s (document %d): List item %d is not an object", source, i+1, n+1)
				}
				out = append(out, &unstructured.Unstructured{Object: im})
			}
			continue
		}
		out = append(out, u)
	}
	return out, nil
}
