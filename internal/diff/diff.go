// Package diff owns what tend shows as the difference between the objects
// an App declares and the objects in the cluster (for `tend diff`, App
// status and notifications), and the ignore rules that make tend leave
// fields alone.
//
// Differences are shown, not used to decide whether to apply: drift is
// detected from ownership fingerprints (livestate.Fingerprint). A difference
// is computed against the projection of the live object onto the desired
// one, so server defaults and fields other managers own never show up, plus
// the fields tend itself applied before (from its managedFields entry) that
// the desired object no longer declares, since applying removes them.
//
// Secret values never appear in a diff, not even as hashes: data and
// stringData values are replaced by masks that only tell whether a value is
// unchanged, changed, added or removed.
package diff

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/tend-gitops/tend/internal/livestate"
)

// Actions an ObjectDiff reports.
const (
	ActionCreate    = "create"
	ActionUpdate    = "update"
	ActionDelete    = "delete"
	ActionUnchanged = "unchanged"
)

// ActionRank orders actions as diffs list them: creates, then updates,
// then deletes, then the unchanged.
func ActionRank(a string) int {
	switch a {
	case ActionCreate:
		return 0
	case ActionUpdate:
		return 1
	case ActionDelete:
		return 2
	}
	return 3
}

// ObjectDiff is the difference for one object.
type ObjectDiff struct {
	Group, Kind, Namespace, Name string
	// Action is ActionCreate, ActionUpdate, ActionDelete or ActionUnchanged.
	Action string
	// Unified is a unified diff (3 lines of context) of the live object's
	// YAML against the desired object's YAML, with Secret values masked.
	// It is empty when Action is ActionUnchanged.
	Unified string
}

// Compare returns the difference between desired and live. live nil means
// the object is to be created, desired nil that it is to be deleted.
//
// For an update, live is first projected onto desired: only the fields
// desired sets are compared, plus the fields live says tend applied before
// (its "tend" Apply entry in managedFields), which an apply would remove.
// Numbers compare by value (1 equals 1.0), resource quantities by amount
// ("500m" equals "0.5"), items of lists of named objects (containers, env,
// ports, volumes) by name rather than position. status is not compared: tend
// does not apply it.
//
// Pass desired exactly as tend would apply it: with the tend.dev/owner
// annotation and after ApplyIgnoreRules. A field tend applied before and
// desired lacks shows as removed, because applying removes it (unless
// another manager also owns it). The live object may come from the
// livestate cache (hashed Secret values are understood), but a cached object
// carries no field set of tend's by default, so such removals only show
// against an object read from the API server.
//
// Keys a Secret's tend.dev/generate annotation lists and git does not set
// are tend's (see package apply/secret): one the live Secret has shows as
// unchanged, since a sync keeps its value, and a missing one as added. The
// metadata the engine adds to such Secrets (tend.dev/rotated-at, the
// tend.dev/replicate label of a replicated Secret) is not compared.
func Compare(desired, live *unstructured.Unstructured) (ObjectDiff, error) {
	ref := desired
	if ref == nil {
		ref = live
	}
	if ref == nil {
		return ObjectDiff{}, errors.New("compare: neither a desired nor a live object")
	}
	gvk := ref.GroupVersionKind()
	d := ObjectDiff{Group: gvk.Group, Kind: gvk.Kind, Namespace: ref.GetNamespace(), Name: ref.GetName()}

	var liveView, desiredView map[string]any
	switch {
	case live == nil:
		d.Action = ActionCreate
		desiredView = cleanDesired(desired)
		if isSecret(desired) {
			maskAll(desiredView, desired)
			maskGenerated(desiredView, desired)
		}
	case desired == nil:
		d.Action = ActionDelete
		liveView = cleanLive(live)
		if isSecret(live) {
			maskAll(liveView, live)
		}
	default:
		var err error
		desiredView, liveView, err = views(desired, live)
		if err != nil {
			return ObjectDiff{}, fmt.Errorf("compare %s: %w", describe(ref), err)
		}
	}

	a, err := render(liveView)
	if err != nil {
		return ObjectDiff{}, fmt.Errorf("compare %s: live: %w", describe(ref), err)
	}
	b, err := render(desiredView)
	if err != nil {
		return ObjectDiff{}, fmt.Errorf("compare %s: desired: %w", describe(ref), err)
	}
	if d.Action == "" {
		if a == b {
			d.Action = ActionUnchanged
			return d, nil
		}
		d.Action = ActionUpdate
	}
	d.Unified, err = difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A:        splitLines(a),
		B:        splitLines(b),
		FromFile: "live " + describe(ref),
		ToFile:   "desired " + describe(ref),
		Context:  3,
	})
	if err != nil {
		return ObjectDiff{}, fmt.Errorf("compare %s: %w", describe(ref), err)
	}
	return d, nil
}

// Summary counts diffs by action, for example
// "3 to create, 1 to update, 2 to delete, 40 unchanged". Actions with no
// object are left out; no diffs at all gives "no objects".
func Summary(diffs []ObjectDiff) string {
	counts := map[string]int{}
	for _, d := range diffs {
		counts[d.Action]++
	}
	var parts []string
	for _, p := range []struct{ action, format string }{
		{ActionCreate, "%d to create"},
		{ActionUpdate, "%d to update"},
		{ActionDelete, "%d to delete"},
		{ActionUnchanged, "%d unchanged"},
	} {
		if n := counts[p.action]; n > 0 {
			parts = append(parts, fmt.Sprintf(p.format, n))
		}
	}
	if len(parts) == 0 {
		return "no objects"
	}
	return strings.Join(parts, ", ")
}

// views returns what Compare renders for an update: desired cleaned, and
// live projected onto it.
func views(desired, live *unstructured.Unstructured) (desiredView, liveView map[string]any, err error) {
	owned, err := managedSet(live, func(manager, op string) bool {
		return manager == livestate.DefaultFieldManager && op == "Apply"
	})
	if err != nil {
		return nil, nil, err
	}
	desiredView = cleanDesired(desired)
	liveObj := shallowCopy(live.Object)
	secret := isSecret(desired)
	if secret {
		for _, v := range []map[string]any{desiredView, liveObj} {
			delete(v, "data")
			delete(v, "stringData")
			dropLastApplied(v)
		}
	}
	liveView, _ = project(desiredView, liveObj, owned, false).(map[string]any)
	if liveView == nil {
		liveView = map[string]any{}
	}
	if secret {
		maskCompare(desiredView, liveView, desired, live, owned)
		dropEngineMetadata(desired, desiredView, liveView)
	}
	return desiredView, liveView, nil
}

// cleanDesired returns a deep copy of desired without null values, status
// and the metadata the API server sets, none of which an apply changes.
func cleanDesired(desired *unstructured.Unstructured) map[string]any {
	out, _ := dropNulls(desired.DeepCopy().Object).(map[string]any)
	if out == nil {
		out = map[string]any{}
	}
	delete(out, "status")
	if md, ok := out["metadata"].(map[string]any); ok {
		for _, f := range serverMetadata {
			delete(md, f)
		}
		if len(md) == 0 {
			delete(out, "metadata")
		}
	}
	return out
}

// cleanLive returns live as shown for a deletion: without status, server
// metadata and kubectl's last-applied-configuration annotation.
func cleanLive(live *unstructured.Unstructured) map[string]any {
	out := live.DeepCopy().Object
	delete(out, "status")
	if md, ok := out["metadata"].(map[string]any); ok {
		for _, f := range serverMetadata {
			delete(md, f)
		}
	}
	dropLastApplied(out)
	return out
}

// serverMetadata are metadata fields the API server sets.
var serverMetadata = []string{"managedFields", "resourceVersion", "uid", "generation", "creationTimestamp", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"}

func dropLastApplied(obj map[string]any) {
	md, ok := obj["metadata"].(map[string]any)
	if !ok {
		return
	}
	md = shallowCopy(md) // obj may share it with the caller's object
	obj["metadata"] = md
	ann, ok := md["annotations"].(map[string]any)
	if !ok {
		return
	}
	if _, ok := ann[livestate.LastAppliedAnnotation]; !ok {
		return
	}
	ann = shallowCopy(ann)
	delete(ann, livestate.LastAppliedAnnotation)
	if len(ann) == 0 {
		delete(md, "annotations")
	} else {
		md["annotations"] = ann
	}
}

func dropNulls(v any) any {
	switch n := v.(type) {
	case map[string]any:
		for k, c := range n {
			if c == nil {
				delete(n, k)
				continue
			}
			n[k] = dropNulls(c)
		}
	case []any:
		for i, c := range n {
			n[i] = dropNulls(c)
		}
	}
	return v
}

func shallowCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// render returns obj as YAML; nil renders as nothing.
func render(obj map[string]any) (string, error) {
	if obj == nil {
		return "", nil
	}
	b, err := yaml.Marshal(obj)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return difflib.SplitLines(strings.TrimSuffix(s, "\n"))
}

// describe names an object as in a diff header: "apps/v1 Deployment ns/web".
func describe(obj *unstructured.Unstructured) string {
	name := obj.GetName()
	if ns := obj.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return obj.GetAPIVersion() + " " + obj.GetKind() + " " + name
}
