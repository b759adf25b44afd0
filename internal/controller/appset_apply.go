package controller

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tend-gitops/tend/api/v1alpha1"
)

// AppSetFieldOwner is the server-side apply field manager of generated
// Apps. The AppSet owns exactly the fields its template sets; fields set by
// others (spec.targetRevision from `tend rollback`, say) are left alone.
const AppSetFieldOwner = "tend-appset"

// appSetDefaulted lists the App spec fields that the CRD defaults. A zero
// duration there means "not set" in the template, so it is left out of the
// apply configuration and the App gets the CRD default, as a hand-written
// App does.
var appSetDefaulted = [][]string{
	{"sync", "interval"},
	{"sync", "retry", "backoff"},
	{"sync", "retry", "maxBackoff"},
	{"health", "timeout"},
}

// appSetApplyConfig returns the server-side apply configuration of a
// generated App: apiVersion, kind, name, namespace, labels, annotations,
// owner references and the spec fields the template sets.
func appSetApplyConfig(app *v1alpha1.App) (*unstructured.Unstructured, error) {
	spec, err := appSetJSONMap(app.Spec)
	if err != nil {
		return nil, fmt.Errorf("encode App %s spec: %w", app.Name, err)
	}
	for _, p := range appSetDefaulted {
		if v, ok, _ := unstructured.NestedString(spec, p...); ok && v == "0s" {
			unstructured.RemoveNestedField(spec, p...)
		}
	}
	for _, k := range []string{"destination", "sync", "health"} {
		if m, ok := spec[k].(map[string]any); ok && len(m) == 0 {
			delete(spec, k)
		}
	}
	meta := map[string]any{"name": app.Name, "namespace": app.Namespace}
	if len(app.Labels) > 0 {
		meta["labels"] = appSetAnyMap(app.Labels)
	}
	if len(app.Annotations) > 0 {
		meta["annotations"] = appSetAnyMap(app.Annotations)
	}
	if app.Spec.DeletesObjects() {
		// The App controller would add its finalizer with a patch of its
		// own; setting it here saves a write per App.
		meta["finalizers"] = []any{Finalizer}
	}
	if len(app.OwnerReferences) > 0 {
		refs, err := appSetJSONValue(app.OwnerReferences)
		if err != nil {
			return nil, fmt.Errorf("encode App %s owner references: %w", app.Name, err)
		}
		meta["ownerReferences"] = refs
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(),
		"kind":       "App",
		"metadata":   meta,
		"spec":       spec,
	}}, nil
}

// appSetUpToDate reports whether applying cfg to the live App would change
// nothing: every field cfg sets already has its value, and the AppSet owns
// no field that cfg no longer sets (applying would remove it). Lists are
// compared whole, as the App CRD declares them atomic.
func appSetUpToDate(cfg *unstructured.Unstructured, live *v1alpha1.App) (bool, error) {
	liveSpec, err := appSetJSONMap(live.Spec)
	if err != nil {
		return false, fmt.Errorf("encode App %s spec: %w", live.Name, err)
	}
	meta := cfg.Object["metadata"].(map[string]any)
	if !appSetSubset(cfg.Object["spec"], liveSpec) ||
		!appSetSubset(meta["labels"], appSetAnyMap(live.Labels)) ||
		!appSetSubset(meta["annotations"], appSetAnyMap(live.Annotations)) {
		return false, nil
	}
	for _, want := range cfg.GetFinalizers() {
		if !slices.Contains(live.Finalizers, want) {
			return false, nil
		}
	}
	for _, want := range cfg.GetOwnerReferences() {
		found := false
		for _, have := range live.OwnerReferences {
			if reflect.DeepEqual(appSetNormalRef(want), appSetNormalRef(have)) {
				found = true
				break
			}
		}
		if !found {
			return false, nil
		}
	}
	if len(live.ManagedFields) == 0 {
		// A cache that strips managed fields: removals from the template
		// are not seen, but steady state stays free of writes.
		return true, nil
	}
	var owned map[string]any
	for _, mf := range live.ManagedFields {
		if mf.Manager != AppSetFieldOwner || mf.Operation != metav1.ManagedFieldsOperationApply || mf.Subresource != "" {
			continue
		}
		if mf.FieldsV1 == nil {
			break
		}
		if err := json.Unmarshal(mf.FieldsV1.GetRawBytes(), &owned); err != nil {
			return false, fmt.Errorf("decode managed fields of App %s: %w", live.Name, err)
		}
	}
	if owned == nil {
		// Never applied by an AppSet (or managed fields were reset):
		// apply once to own the fields.
		return false, nil
	}
	return appSetOwnedCovered(owned, cfg.Object), nil
}

// appSetNormalRef drops the optional booleans' pointer-ness so two owner
// references compare by value.
func appSetNormalRef(r metav1.OwnerReference) [6]any {
	b := func(p *bool) bool { return p != nil && *p }
	return [6]any{r.APIVersion, r.Kind, r.Name, r.UID, b(r.Controller), b(r.BlockOwnerDeletion)}
}

// appSetSubset reports whether every field of want is in have with the
// same value. Objects are compared field by field; lists and scalars whole.
func appSetSubset(want, have any) bool {
	w, ok := want.(map[string]any)
	if !ok {
		if want == nil {
			return true
		}
		return reflect.DeepEqual(want, have)
	}
	h, ok := have.(map[string]any)
	if !ok {
		return len(w) == 0 && have == nil
	}
	for k, wv := range w {
		hv, ok := h[k]
		if !ok {
			return false
		}
		if wv == nil {
			continue
		}
		if !appSetSubset(wv, hv) {
			return false
		}
	}
	return true
}

// appSetOwnedCovered reports whether every field in a managed-fields set
// (FieldsV1: {"f:spec": {"f:path": {}}}) is present in obj. A field that
// is owned but no longer in the apply configuration would be removed by
// the next apply, so the App is not up to date.
func appSetOwnedCovered(owned map[string]any, obj any) bool {
	for k, sub := range owned {
		subSet, _ := sub.(map[string]any)
		switch {
		case k == ".":
		case strings.HasPrefix(k, "f:"):
			m, ok := obj.(map[string]any)
			if !ok {
				return false
			}
			v, ok := m[strings.TrimPrefix(k, "f:")]
			if !ok {
				return false
			}
			if !appSetOwnedCovered(subSet, v) {
				return false
			}
		case strings.HasPrefix(k, "k:"):
			// An item of a list keyed by fields, e.g. an owner reference
			// by uid: some item of obj must have those fields.
			var key map[string]any
			if err := json.Unmarshal([]byte(strings.TrimPrefix(k, "k:")), &key); err != nil {
				return false
			}
			list, _ := obj.([]any)
			found := false
			for _, item := range list {
				if appSetSubset(key, item) && appSetOwnedCovered(subSet, item) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		default:
			// v: (set items) and i: (positions) do not occur in App;
			// the whole list is compared by value anyway.
		}
	}
	return true
}

// appSetJSONMap encodes v (a struct) as a JSON object.
func appSetJSONMap(v any) (map[string]any, error) {
	out, err := appSetJSONValue(v)
	if err != nil {
		return nil, err
	}
	m, ok := out.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%T does not encode as a JSON object", v)
	}
	return m, nil
}

// appSetJSONValue round-trips v through JSON, giving the untyped form the
// apiserver sees.
func appSetJSONValue(v any) (any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func appSetAnyMap(in map[string]string) map[string]any {
	out := make(map[string]any, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}
