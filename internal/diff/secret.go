package diff

import (
	"bytes"
	"encoding/base64"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/tend-gitops/tend/internal/apply/secret"
	"github.com/tend-gitops/tend/internal/livestate"
)

// Masks shown instead of Secret values.
const (
	// MaskSecret stands for a Secret value: on both sides when it is
	// unchanged, for an added or removed key, and for the live side of a
	// changed value.
	MaskSecret = "(secret value)"
	// MaskChangedSecret stands for the desired side of a changed value.
	MaskChangedSecret = "(changed secret value)"
	// MaskGenerated stands for a value tend will generate (the key is in
	// the Secret's tend.dev/generate annotation and not in git).
	MaskGenerated = "(generated secret value)"
)

func isSecret(obj *unstructured.Unstructured) bool {
	gvk := obj.GroupVersionKind()
	return gvk.Group == "" && gvk.Kind == "Secret"
}

// secretValues returns obj's values by key as the API server will store
// them: data decoded from base64, overlaid with stringData.
func secretValues(obj *unstructured.Unstructured) map[string][]byte {
	out := map[string][]byte{}
	if data, ok := obj.Object["data"].(map[string]any); ok {
		for k, v := range data {
			s := fmt.Sprint(v)
			if b, err := base64.StdEncoding.DecodeString(s); err == nil {
				out[k] = b
			} else {
				out[k] = []byte(s)
			}
		}
	}
	if data, ok := obj.Object["stringData"].(map[string]any); ok {
		for k, v := range data {
			out[k] = []byte(fmt.Sprint(v))
		}
	}
	return out
}

// liveSecretValues returns live's data values undecoded: base64, or a hash
// from the livestate cache.
func liveSecretValues(live *unstructured.Unstructured) map[string]string {
	out := map[string]string{}
	for _, field := range []string{"data", "stringData"} {
		if data, ok := live.Object[field].(map[string]any); ok {
			for k, v := range data {
				out[k] = fmt.Sprint(v)
			}
		}
	}
	return out
}

// sameSecretValue reports whether a desired value equals a live one, which
// may be base64 or a livestate hash.
func sameSecretValue(desired []byte, live string) bool {
	if livestate.IsSecretValueHash(live) {
		return livestate.HashSecretValue(desired) == live
	}
	if b, err := base64.StdEncoding.DecodeString(live); err == nil {
		return bytes.Equal(desired, b)
	}
	return bytes.Equal(desired, []byte(live))
}

// maskAll replaces view's data and stringData by masked data.
func maskAll(view map[string]any, obj *unstructured.Unstructured) {
	delete(view, "data")
	delete(view, "stringData")
	dropLastApplied(view)
	data := map[string]any{}
	for k := range secretValues(obj) {
		data[k] = MaskSecret
	}
	if len(data) > 0 {
		view["data"] = data
	}
}

// maskCompare sets the masked data of both views of a Secret update. Keys
// only live has show only if tend applied them before (owned), since an
// apply removes those.
func maskCompare(desiredView, liveView map[string]any, desired, live *unstructured.Unstructured, owned *fieldpath.Set) {
	want := secretValues(desired)
	have := liveSecretValues(live)
	dm, lm := map[string]any{}, map[string]any{}
	for k, v := range want {
		dm[k] = MaskSecret
		h, ok := have[k]
		if !ok {
			continue
		}
		lm[k] = MaskSecret
		if !sameSecretValue(v, h) {
			dm[k] = MaskChangedSecret
		}
	}
	// Generated keys are tend's, not git's: a value the live Secret has
	// stays (an apply carries it forward), a missing one will be created.
	generated := map[string]bool{}
	for _, k := range secret.Generated(desired) {
		generated[k] = true
		if _, ok := want[k]; ok {
			continue // desired carries its value: compared above
		}
		if _, ok := have[k]; ok {
			dm[k], lm[k] = MaskSecret, MaskSecret
		} else {
			dm[k] = MaskGenerated
		}
	}
	_, ownedData := fieldElement(owned, "data")
	_, ownedStringData := fieldElement(owned, "stringData")
	for k := range have {
		if _, ok := want[k]; ok || generated[k] {
			continue
		}
		m1, _ := fieldElement(ownedData, k)
		m2, _ := fieldElement(ownedStringData, k)
		if m1 || m2 {
			lm[k] = MaskSecret
		}
	}
	if len(dm) > 0 {
		desiredView["data"] = dm
	}
	if len(lm) > 0 {
		liveView["data"] = lm
	}
}

// maskGenerated adds to the view of a Secret to create the keys tend will
// generate in it.
func maskGenerated(view map[string]any, desired *unstructured.Unstructured) {
	keys := secret.Generated(desired)
	if len(keys) == 0 {
		return
	}
	data, _ := view["data"].(map[string]any)
	if data == nil {
		data = map[string]any{}
	}
	for _, k := range keys {
		if _, ok := data[k]; !ok {
			data[k] = MaskGenerated
		}
	}
	view["data"] = data
}

// dropEngineMetadata removes from both views of a Secret update the
// metadata tend's engine adds at apply time and git never declares: the
// rotation it handled last on a Secret with generated values, and the
// replication label on a replicated one. Comparing them with git would
// show them as removed after every sync.
func dropEngineMetadata(desired *unstructured.Unstructured, views ...map[string]any) {
	spec, _ := secret.ParseSpec(desired.GetAnnotations())
	_, replicated, _ := secret.ReplicateSelector(desired.GetAnnotations())
	for _, v := range views {
		if spec != nil {
			dropMetadataKey(v, "annotations", secret.AnnotationRotatedAt)
		}
		if replicated {
			dropMetadataKey(v, "labels", secret.LabelReplicate)
		}
	}
}

// dropMetadataKey deletes metadata.<field>[key] from view without changing
// maps view may share with an object.
func dropMetadataKey(view map[string]any, field, key string) {
	md, ok := view["metadata"].(map[string]any)
	if !ok {
		return
	}
	m, ok := md[field].(map[string]any)
	if !ok {
		return
	}
	if _, ok := m[key]; !ok {
		return
	}
	md = shallowCopy(md)
	view["metadata"] = md
	m = shallowCopy(m)
	delete(m, key)
	if len(m) == 0 {
		delete(md, field)
	} else {
		md[field] = m
	}
}
