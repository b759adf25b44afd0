package appspec

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/objstatus"
	"github.com/tend-gitops/tend/internal/render"
)

// Overlay maps spec.kustomize's overlay fields (namePrefix, images,
// patches, ...) onto the render overlay; nil when the App sets none. Every
// problem is reported at once, each naming its field and what to do; the
// error is permanent (the user must fix the spec).
func Overlay(ks *tendv1.KustomizeSpec) (*render.Overlay, error) {
	if ks == nil {
		return nil, nil
	}
	ov := &render.Overlay{
		NamePrefix:  ks.NamePrefix,
		NameSuffix:  ks.NameSuffix,
		Namespace:   ks.Namespace,
		Components:  ks.Components,
		Labels:      ks.CommonLabels,
		Annotations: ks.CommonAnnotations,
	}
	var errs []string
	bad := func(field, format string, args ...any) {
		errs = append(errs, field+": "+fmt.Sprintf(format, args...))
	}
	if ns := ks.Namespace; ns != "" {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			bad("spec.kustomize.namespace", "%q is not a namespace name (%s)", ns, strings.Join(msgs, "; "))
		}
	}
	for i, im := range ks.Images {
		field := fmt.Sprintf("spec.kustomize.images[%d]", i)
		switch {
		case im.Name == "":
			bad(field, "set name, the image name to change (without tag or digest)")
		case im.NewName == "" && im.NewTag == "" && im.Digest == "":
			bad(field, "image %q: set newName, newTag or digest", im.Name)
		}
		ov.Images = append(ov.Images, render.Image{Name: im.Name, NewName: im.NewName, NewTag: im.NewTag, Digest: im.Digest})
	}
	for i, p := range ks.Patches {
		field := fmt.Sprintf("spec.kustomize.patches[%d]", i)
		if msg := checkPatch(p); msg != "" {
			bad(field, "%s", msg)
		}
		rp := render.Patch{Patch: p.Patch, Path: p.Path}
		if t := p.Target; t != nil {
			rp.Target = &render.PatchTarget{
				Group: t.Group, Version: t.Version, Kind: t.Kind, Name: t.Name, Namespace: t.Namespace,
				LabelSelector: t.LabelSelector, AnnotationSelector: t.AnnotationSelector,
			}
		}
		ov.Patches = append(ov.Patches, rp)
	}
	for i, c := range ks.Components {
		if c == "" || path.IsAbs(c) || strings.Contains(c, "://") {
			bad(fmt.Sprintf("spec.kustomize.components[%d]", i), "%q: name a directory relative to spec.path in the same Source", c)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(ks.CommonLabels)) {
		v := ks.CommonLabels[k]
		if msgs := append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...); len(msgs) > 0 {
			bad("spec.kustomize.commonLabels", "%q: %s", k, strings.Join(msgs, "; "))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(ks.CommonAnnotations)) {
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			bad("spec.kustomize.commonAnnotations", "%q: %s", k, strings.Join(msgs, "; "))
		}
	}
	for i, r := range ks.Replicas {
		field := fmt.Sprintf("spec.kustomize.replicas[%d]", i)
		switch {
		case r.Name == "":
			bad(field, "set name, the workload whose replicas to set")
		case r.Count < 0:
			bad(field, "count %d: set 0 or more", r.Count)
		}
		ov.Replicas = append(ov.Replicas, render.Replica{Name: r.Name, Count: r.Count})
	}
	if len(errs) > 0 {
		return nil, objstatus.Permanentf("%s", strings.Join(errs, "; "))
	}
	if ov.IsZero() {
		return nil, nil
	}
	return ov, nil
}

// checkPatch returns what is wrong with a patch, or "".
func checkPatch(p tendv1.KustomizePatch) string {
	switch {
	case p.Patch == "" && p.Path == "":
		return "set patch (inline) or path (a file relative to spec.path)"
	case p.Patch != "" && p.Path != "":
		return "set patch or path, not both"
	case p.Path != "":
		if path.IsAbs(p.Path) || strings.Contains(p.Path, "://") {
			return fmt.Sprintf("path %q: name a file relative to spec.path in the same Source", p.Path)
		}
		return ""
	}
	var v any
	if err := yaml.Unmarshal([]byte(p.Patch), &v); err != nil {
		return fmt.Sprintf("patch is not YAML (%v); write a strategic-merge patch (an object) or a JSON 6902 patch (a list of operations)", err)
	}
	switch v := v.(type) {
	case map[string]any:
		if k, _ := v["kind"].(string); k == "" {
			return "the strategic-merge patch has no kind; write apiVersion, kind and metadata.name of the object to patch"
		}
	case []any:
		if p.Target == nil {
			return "a JSON 6902 patch needs a target; set target.kind (and name) of the objects to patch"
		}
		for j, op := range v {
			m, _ := op.(map[string]any)
			if o, _ := m["op"].(string); o == "" {
				return fmt.Sprintf("JSON 6902 operation %d has no op; write {op: add|remove|replace|move|copy|test, path: /...}", j)
			}
			if pth, _ := m["path"].(string); pth == "" {
				return fmt.Sprintf("JSON 6902 operation %d has no path", j)
			}
		}
	default:
		return "write a strategic-merge patch (an object) or a JSON 6902 patch (a list of operations)"
	}
	return ""
}
