package render

// The overlay: an App's kustomize options (namePrefix, images, patches,
// ...) applied to whatever its path renders. tend builds, in memory, the
// kustomization Argo CD and Flux would write around the path:
//
//	<path>/.tend-overlay/kustomization.yaml   resources: [rendered.yaml], the options
//	<path>/.tend-overlay/rendered.yaml        the render's output
//
// and builds it with kustomize on the same confined filesystem as a
// kustomization in the artifact (kustFS): components and patch files are
// read from the artifact, nothing is written to disk. A chart's output gets
// the overlay as a post-render step, a kustomization's output as an outer
// kustomization.

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/resid"
	sigsyaml "sigs.k8s.io/yaml"
)

// Overlay holds the kustomize options applied to a render's output, each as
// the kustomization field of the same name. The zero value changes nothing.
type Overlay struct {
	// NamePrefix and NameSuffix are added to every object's name;
	// references to renamed objects are updated.
	NamePrefix, NameSuffix string `json:",omitempty"`
	// Namespace overrides the namespace of every namespaced object.
	Namespace string `json:",omitempty"`
	// Images change container images.
	Images []Image `json:",omitempty"`
	// Patches are strategic-merge or JSON 6902 patches.
	Patches []Patch `json:",omitempty"`
	// Components are kustomize components, directories relative to
	// Options.Path (they may use ../ but not leave the artifact).
	Components []string `json:",omitempty"`
	// Labels are added to every object's metadata, not to selectors or
	// pod templates.
	Labels map[string]string `json:",omitempty"`
	// Annotations are added to every object and pod template.
	Annotations map[string]string `json:",omitempty"`
	// Replicas set workloads' replica counts by name.
	Replicas []Replica `json:",omitempty"`
}

// Image is one entry of kustomize's images.
type Image struct {
	Name, NewName, NewTag, Digest string `json:",omitempty"`
}

// Patch is one entry of kustomize's patches: Patch inline, or Path, a file
// relative to Options.Path.
type Patch struct {
	Patch, Path string       `json:",omitempty"`
	Target      *PatchTarget `json:",omitempty"`
}

// PatchTarget selects the objects a patch applies to, as kustomize's
// patch target.
type PatchTarget struct {
	Group, Version, Kind, Name, Namespace, LabelSelector, AnnotationSelector string `json:",omitempty"`
}

// Replica is one entry of kustomize's replicas.
type Replica struct {
	Name  string
	Count int64
}

// IsZero reports whether o changes nothing.
func (o *Overlay) IsZero() bool {
	return o == nil || (o.NamePrefix == "" && o.NameSuffix == "" && o.Namespace == "" && len(o.Images) == 0 &&
		len(o.Patches) == 0 && len(o.Components) == 0 && len(o.Labels) == 0 && len(o.Annotations) == 0 &&
		len(o.Replicas) == 0)
}

// overlayDir is the directory, under the App's path, where the overlay
// kustomization is served from memory. Paths the overlay names (components,
// patch files) are relative to the App's path, so they get a "../".
const overlayDir = ".tend-overlay"

// originAnnotation carries each object's source file through the overlay
// build, so that validation errors still name it; it is removed after.
const originAnnotation = "render.tend.dev/origin"

// applyOverlay builds the overlay kustomization around objs, the output of
// the render of dir, and returns what kustomize makes of it.
func (r *Renderer) applyOverlay(ctx context.Context, f *files, dir string, objs []*unstructured.Unstructured, opts Options) ([]*unstructured.Unstructured, error) {
	ov := opts.Overlay
	if ov.IsZero() {
		return objs, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	for _, orig := range objs {
		o := orig.DeepCopy()
		if origin := f.originOf(orig); origin != "" {
			addAnnotation(o, originAnnotation, origin)
		}
		y, err := sigsyaml.Marshal(o.Object)
		if err != nil {
			return nil, fmt.Errorf("kustomize overlay: %s: %w", describe(o), err)
		}
		buf.WriteString("---\n")
		buf.Write(y)
	}
	k, err := overlayKustomization(ov, dir, f)
	if err != nil {
		return nil, err
	}
	kb, err := sigsyaml.Marshal(k)
	if err != nil {
		return nil, fmt.Errorf("kustomize overlay: %w", err)
	}

	kr := &kustRewriter{ctx: ctx, r: r, f: f, opts: opts}
	kfs := newKustFS(f, kr.rewrite)
	kr.fs = kfs
	odir := path.Join(dir, overlayDir)
	kfs.put(path.Join(odir, "rendered.yaml"), buf.Bytes())
	kfs.put(path.Join(odir, "kustomization.yaml"), kb)
	kust := krusty.MakeKustomizer(&krusty.Options{
		Reorder:          krusty.ReorderOptionNone, // keep the render's order (CRDs first, hooks, waves)
		LoadRestrictions: types.LoadRestrictionsNone,
		PluginConfig:     types.DisabledPluginConfig(),
	})
	kustomizeMu.Lock()
	m, err := kust.Run(kfs, path.Join(kustRoot, odir))
	kustomizeMu.Unlock()
	if err != nil {
		if ours := kfs.firstFailure(); ours != nil {
			return nil, fmt.Errorf("kustomize overlay (spec.kustomize): %w", ours)
		}
		msg := strings.ReplaceAll(err.Error(), path.Join(kustRoot, odir)+"/", "")
		msg = strings.ReplaceAll(msg, kustRoot+"/", "")
		return nil, fmt.Errorf("kustomize overlay (spec.kustomize): %s", msg)
	}
	out, err := resmapObjects(m.Resources(), "kustomize overlay (spec.kustomize)")
	if err != nil {
		return nil, err
	}
	for _, o := range out {
		if origin, ok := o.GetAnnotations()[originAnnotation]; ok {
			removeAnnotation(o, originAnnotation)
			f.setOrigin(o, origin)
		}
	}
	if ov.Namespace != "" {
		// kustomize knows the built-in kinds' scope, not custom ones: take
		// the namespace off objects this render knows are cluster-scoped.
		sc := r.scopeOf(out)
		for _, o := range out {
			if namespaced, known := sc(o.GroupVersionKind()); known && !namespaced {
				o.SetNamespace("")
			}
		}
	}
	return out, nil
}

// overlayKustomization returns the kustomization for ov around the render
// of dir. Components and patch files must be in the artifact.
func overlayKustomization(ov *Overlay, dir string, f *files) (*types.Kustomization, error) {
	k := &types.Kustomization{
		TypeMeta:          types.TypeMeta{APIVersion: types.KustomizationVersion, Kind: types.KustomizationKind},
		Resources:         []string{"rendered.yaml"},
		NamePrefix:        ov.NamePrefix,
		NameSuffix:        ov.NameSuffix,
		Namespace:         ov.Namespace,
		CommonAnnotations: ov.Annotations,
	}
	if len(ov.Labels) > 0 {
		k.Labels = []types.Label{{Pairs: ov.Labels, IncludeSelectors: false, IncludeTemplates: false}}
	}
	for i, c := range ov.Components {
		p, err := inArtifact(dir, c)
		if err != nil {
			return nil, fmt.Errorf("spec.kustomize.components[%d]: %w", i, err)
		}
		if kustomizationFile(f, p) == "" {
			return nil, fmt.Errorf("spec.kustomize.components[%d]: %s has no kustomization.yaml in the source revision; name a directory holding a kustomize Component", i, p)
		}
		k.Components = append(k.Components, "../"+c)
	}
	for _, im := range ov.Images {
		k.Images = append(k.Images, types.Image{Name: im.Name, NewName: im.NewName, NewTag: im.NewTag, Digest: im.Digest})
	}
	for i, p := range ov.Patches {
		kp := types.Patch{Patch: p.Patch}
		if p.Path != "" {
			ap, err := inArtifact(dir, p.Path)
			if err != nil {
				return nil, fmt.Errorf("spec.kustomize.patches[%d].path: %w", i, err)
			}
			if !f.exists(ap) {
				return nil, fmt.Errorf("spec.kustomize.patches[%d].path: %s does not exist in the source revision; fix the path or add the file", i, ap)
			}
			kp.Path = "../" + p.Path
		}
		if t := p.Target; t != nil {
			kp.Target = &types.Selector{
				ResId: resid.ResId{
					Gvk:       resid.Gvk{Group: t.Group, Version: t.Version, Kind: t.Kind},
					Name:      t.Name,
					Namespace: t.Namespace,
				},
				AnnotationSelector: t.AnnotationSelector,
				LabelSelector:      t.LabelSelector,
			}
		}
		k.Patches = append(k.Patches, kp)
	}
	for _, rp := range ov.Replicas {
		k.Replicas = append(k.Replicas, types.Replica{Name: rp.Name, Count: rp.Count})
	}
	return k, nil
}

// inArtifact resolves p, relative to the App's path dir, to an artifact
// path, refusing absolute paths and paths that leave the artifact.
func inArtifact(dir, p string) (string, error) {
	if path.IsAbs(p) || strings.Contains(p, "://") {
		return "", fmt.Errorf("%q must be a path relative to spec.path", p)
	}
	c, err := clean(path.Join(dir, p))
	if err != nil {
		return "", fmt.Errorf("%q is outside the source artifact; use a path inside the same Source", p)
	}
	return c, nil
}

func addAnnotation(o *unstructured.Unstructured, k, v string) {
	a := o.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[k] = v
	o.SetAnnotations(a)
}

func removeAnnotation(o *unstructured.Unstructured, k string) {
	a := o.GetAnnotations()
	delete(a, k)
	if len(a) == 0 {
		a = nil
	}
	o.SetAnnotations(a)
}
