package render

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resource"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	sigsyaml "sigs.k8s.io/yaml"
)

// kustomizeMu serializes kustomize builds: kustomize keeps process-wide
// state (the OpenAPI schema a kustomization may replace) that concurrent
// builds would race on. Flux's kustomize-controller does the same.
var kustomizeMu sync.Mutex

// renderKustomize builds the kustomization in dir in-process. Files are
// read through f (so they are recorded and SOPS files decrypted in
// memory) and anything kustomize writes stays in memory. Paths may leave
// the kustomization's directory (../base) but not the artifact. helmCharts
// are inflated with tend's Helm renderer, not the helm binary.
func (r *Renderer) renderKustomize(ctx context.Context, f *files, dir string, opts Options) ([]*unstructured.Unstructured, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	kr := &kustRewriter{ctx: ctx, r: r, f: f, opts: opts}
	kfs := newKustFS(f, kr.rewrite)
	kr.fs = kfs
	if opts.AllowRemoteBases {
		kfs.remote = filesys.MakeFsOnDisk()
	}
	k := krusty.MakeKustomizer(&krusty.Options{
		Reorder:          krusty.ReorderOptionUnspecified, // as `kustomize build`: legacy order unless sortOptions says otherwise
		LoadRestrictions: types.LoadRestrictionsNone,      // kustFS confines reads to the artifact
		PluginConfig:     types.DisabledPluginConfig(),
	})
	kustomizeMu.Lock()
	m, err := k.Run(kfs, path.Join(kustRoot, dir))
	kustomizeMu.Unlock()
	if err != nil {
		if ours := kfs.firstFailure(); ours != nil {
			return nil, fmt.Errorf("kustomize build %s: %w", dir, ours)
		}
		msg := strings.ReplaceAll(err.Error(), kustRoot+"/", "")
		msg = strings.ReplaceAll(msg, strings.TrimSuffix(filepath.ToSlash(f.root), "/")+"/", "")
		return nil, fmt.Errorf("kustomize build %s: %s", dir, msg)
	}
	return resmapObjects(m.Resources(), "kustomize build "+dir)
}

// resmapObjects converts kustomize's output into objects; errors start
// with what (the build they come from).
func resmapObjects(resources []*resource.Resource, what string) ([]*unstructured.Unstructured, error) {
	objs := make([]*unstructured.Unstructured, 0, len(resources))
	for _, res := range resources {
		var v any
		// Decode the node ourselves: RNode.Map's error would quote the
		// resource, which may be a decrypted Secret.
		if err := res.YNode().Decode(&v); err != nil {
			return nil, fmt.Errorf("%s: decode %s: %v", what, res.CurId(), err)
		}
		nv, err := normalize(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", what, res.CurId(), err)
		}
		mm, ok := nv.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: %s is not an object", what, res.CurId())
		}
		objs = append(objs, &unstructured.Unstructured{Object: mm})
	}
	return objs, nil
}

// kustRewriter checks each kustomization kustomize reads and serves it
// rewritten when it has helmCharts or KSOPS generators.
type kustRewriter struct {
	ctx  context.Context
	r    *Renderer
	f    *files
	fs   *kustFS
	opts Options
}

// referenceFields are the kustomization fields that name other
// kustomizations or files that must exist.
var referenceFields = []string{"resources", "components", "bases"}

func (kr *kustRewriter) rewrite(p string, b []byte) ([]byte, error) {
	var k map[string]any
	if err := yaml.Unmarshal(b, &k); err != nil {
		return nil, yamlError(p, yamlLineFix(b, err))
	}
	if k == nil {
		return b, nil
	}
	kdir := path.Dir(p)
	for _, field := range referenceFields {
		for _, ref := range stringList(k[field]) {
			if err := kr.checkReference(p, kdir, field, ref); err != nil {
				return nil, err
			}
		}
	}
	if _, ok := k["helmChartInflationGenerator"]; ok {
		return nil, fmt.Errorf("%s: helmChartInflationGenerator is not supported; use helmCharts", p)
	}
	rewritten, err := kr.ksops(p, kdir, k)
	if err != nil {
		return nil, err
	}
	charts, ok := k["helmCharts"].([]any)
	if !ok || len(charts) == 0 {
		if !rewritten {
			return b, nil
		}
		return marshalKustomization(p, k)
	}
	chartHome := "charts"
	if g, ok := k["helmGlobals"].(map[string]any); ok {
		if h, ok := g["chartHome"].(string); ok && h != "" {
			chartHome = h
		}
	}
	home, err := clean(path.Join(kdir, chartHome))
	if path.IsAbs(chartHome) || err != nil {
		return nil, fmt.Errorf("%s: helmGlobals.chartHome %q must be a directory inside the source artifact, relative to the kustomization", p, chartHome)
	}
	resources, _ := k["resources"].([]any)
	for i, c := range charts {
		spec, err := helmChartSpec(c, kdir)
		if err != nil {
			return nil, fmt.Errorf("%s: helmCharts[%d]: %w", p, i, err)
		}
		objs, err := kr.r.inflateHelmChart(kr.ctx, kr.f, home, spec)
		if err != nil {
			return nil, fmt.Errorf("%s: helmCharts[%d] (%s): %w", p, i, spec.Name, err)
		}
		var buf bytes.Buffer
		for _, o := range objs {
			y, err := sigsyaml.Marshal(o.Object)
			if err != nil {
				return nil, fmt.Errorf("%s: helmCharts[%d] (%s): %w", p, i, spec.Name, err)
			}
			buf.WriteString("---\n")
			buf.Write(y)
		}
		// Served from memory only: kustomize reads it like any resource.
		name := fmt.Sprintf(".tend-helmchart-%d-%s.yaml", i, spec.Name)
		kr.fs.put(path.Join(kdir, name), buf.Bytes())
		resources = append(resources, name)
	}
	delete(k, "helmCharts")
	delete(k, "helmGlobals")
	k["resources"] = resources
	return marshalKustomization(p, k)
}

// marshalKustomization serves a kustomization rewritten.
func marshalKustomization(p string, k map[string]any) ([]byte, error) {
	out, err := sigsyaml.Marshal(k)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return out, nil
}

// checkReference checks one entry of a kustomization's resources,
// components or bases: a local path must exist in the artifact, and a
// remote one needs Options.AllowRemoteBases.
func (kr *kustRewriter) checkReference(p, kdir, field, ref string) error {
	local, err := clean(path.Join(kdir, ref))
	if err == nil && kr.f.exists(local) {
		return nil
	}
	if looksRemote(ref) {
		if kr.opts.AllowRemoteBases {
			return nil
		}
		return fmt.Errorf("%s references the remote base %q in %s, and remote bases are not allowed for this App: copy the base into the repository, or allow remote bases for the App", p, ref, field)
	}
	if err != nil {
		return fmt.Errorf("%s lists %q in %s, which is outside the source artifact; kustomizations can only use files of the same source", p, ref, field)
	}
	return fmt.Errorf("%s lists %q in %s, but %s does not exist in the source revision; fix the path or add it", p, ref, field, local)
}

// looksRemote reports whether a kustomization reference is a URL or a
// remote repository (github.com/org/repo//path?ref=v1, git@host:org/repo).
func looksRemote(ref string) bool {
	if strings.Contains(ref, "://") || strings.HasPrefix(ref, "git@") {
		return true
	}
	host, rest, ok := strings.Cut(ref, "/")
	return ok && rest != "" && strings.Contains(host, ".") && !strings.HasPrefix(host, ".")
}

func stringList(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// helmChartSpec converts one helmCharts entry into what the Helm renderer
// takes, with local values files made relative to the artifact root.
func helmChartSpec(c any, kdir string) (KustomizeHelmChart, error) {
	var hc types.HelmChart
	b, err := json.Marshal(c)
	if err == nil {
		err = json.Unmarshal(b, &hc)
	}
	if err != nil {
		return KustomizeHelmChart{}, fmt.Errorf("not a valid helmCharts entry: %w", err)
	}
	vf, err := artifactPath(kdir, "valuesFile", hc.ValuesFile)
	if err != nil {
		return KustomizeHelmChart{}, err
	}
	var extra []string
	for _, p := range hc.AdditionalValuesFiles {
		ap, err := artifactPath(kdir, "additionalValuesFiles", p)
		if err != nil {
			return KustomizeHelmChart{}, err
		}
		extra = append(extra, ap)
	}
	return KustomizeHelmChart{
		Name:                  hc.Name,
		Version:               hc.Version,
		Repo:                  hc.Repo,
		ReleaseName:           hc.ReleaseName,
		Namespace:             hc.Namespace,
		ValuesFile:            vf,
		AdditionalValuesFiles: extra,
		ValuesInline:          hc.ValuesInline,
		ValuesMerge:           hc.ValuesMerge,
		IncludeCRDs:           hc.IncludeCRDs,
		SkipHooks:             hc.SkipHooks,
		SkipTests:             hc.SkipTests,
		APIVersions:           hc.ApiVersions,
		KubeVersion:           hc.KubeVersion,
	}, nil
}

// artifactPath resolves a file path of a kustomization (relative to its
// directory kdir) to an artifact path.
func artifactPath(kdir, field, p string) (string, error) {
	if p == "" {
		return "", nil
	}
	if path.IsAbs(p) || strings.Contains(p, "://") {
		return "", fmt.Errorf("%s %q must be a path relative to the kustomization", field, p)
	}
	c, err := clean(path.Join(kdir, p))
	if err != nil {
		return "", fmt.Errorf("%s %q is outside the source artifact", field, p)
	}
	return c, nil
}

// kustomizeCloneDir is where kustomize clones remote git bases (its
// filesys.NewTmpConfirmedDir); reads there are allowed only when the App
// allows remote bases.
func kustomizeCloneDir(p string) bool {
	return strings.HasPrefix(p, path.Join(os.TempDir(), "kustomize-"))
}
