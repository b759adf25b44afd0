package apply

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// TakeOver makes tend the only field manager of the fields it applies that
// other tools (Argo CD, Flux, Helm, kubectl apply) set before, without
// changing a value. For each object a sync applies:
//
//  1. a conflict with one of Managers is forced (git differs from live
//     there, so tend's value wins);
//  2. every fields entry of Managers on the main resource (Apply or Update)
//     loses the fields tend's apply entry holds; entries left empty are
//     dropped. The new managedFields are written with one JSON patch
//     guarded by the object's resourceVersion.
//
// Server-side apply alone would leave such a manager co-owner of every
// field it set to the value git has, and the next git change to that field
// would conflict with it. Fields a manager set and git does not (a tracking
// label, kubectl's last-applied annotation, Helm's release annotations)
// stay with it, values untouched.
type TakeOver struct {
	// Managers are the field managers whose fields tend takes over; see
	// DefaultTakeOverManagers.
	Managers []string
}

// Field managers the tools tend takes over from write as.
const (
	ManagerArgoCD           = "argocd-controller"         // Argo CD with ServerSideApply=true
	ManagerClientSideApply  = "kubectl-client-side-apply" // kubectl apply, Argo CD's default client-side apply
	ManagerFluxKustomize    = "kustomize-controller"      // Flux Kustomization
	ManagerFluxHelm         = "helm-controller"           // Flux HelmRelease (Helm SDK)
	ManagerHelm             = "helm"                      // the Helm CLI
	ManagerBeforeFirstApply = "before-first-apply"        // the apiserver's name for fields set before any managedFields existed
)

// takeOverMaxConflictRetry bounds the re-reads after the managedFields
// patch met a newer object.
const takeOverMaxConflictRetry = 5

// DefaultTakeOverManagers returns the field managers Argo CD, Flux, Helm
// and kubectl's client-side apply leave on the objects they created.
func DefaultTakeOverManagers() []string {
	return []string{ManagerArgoCD, ManagerClientSideApply, ManagerFluxKustomize, ManagerFluxHelm, ManagerHelm, ManagerBeforeFirstApply}
}

// has reports whether manager is one t takes over from; a nil t takes over
// from nobody.
func (t *TakeOver) has(manager string) bool {
	if t == nil {
		return false
	}
	for _, m := range t.Managers {
		if m == manager {
			return true
		}
	}
	return false
}

// takeOver removes the fields tend's apply entry in applied (an apply
// response, with every managedFields entry) holds from the entries of t's
// managers, and writes the result. It returns the object as written (applied
// itself when no entry shared a field with tend) and the managers that lost
// fields. On a conflict (the object changed since applied was read) it reads
// the object again and retries.
func (e *Engine) takeOver(ctx context.Context, t *TakeOver, applied *unstructured.Unstructured) (*unstructured.Unstructured, []string, error) {
	ri, _, err := e.resourceFor(applied)
	if err != nil {
		return nil, nil, err
	}
	obj := applied
	for attempt := 0; ; attempt++ {
		entries, moved, err := withoutTendFields(obj.GetManagedFields(), t)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: take over fields: %w", describe(obj), err)
		}
		if len(moved) == 0 {
			return obj, nil, nil
		}
		patch, err := json.Marshal([]map[string]any{
			{"op": "replace", "path": "/metadata/resourceVersion", "value": obj.GetResourceVersion()},
			{"op": "replace", "path": "/metadata/managedFields", "value": entries},
		})
		if err != nil {
			return nil, nil, fmt.Errorf("%s: take over fields: %w", describe(obj), err)
		}
		out, err := e.patch(ctx, ri, obj.GetName(), patch)
		if err == nil {
			return out, moved, nil
		}
		if !apierrors.IsConflict(err) || attempt >= takeOverMaxConflictRetry {
			return nil, nil, fmt.Errorf("%s: take over fields from %s: %w", describe(obj), strings.Join(moved, ", "), serverError{err})
		}
		// Someone wrote the object since: start from what it is now.
		release, err := e.acquire(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", describe(obj), err)
		}
		obj, err = ri.Get(ctx, applied.GetName(), metav1.GetOptions{})
		release()
		if err != nil {
			return nil, nil, fmt.Errorf("%s: read to take over fields: %w", describe(applied), serverError{err})
		}
	}
}

func (e *Engine) patch(ctx context.Context, ri dynamic.ResourceInterface, name string, patch []byte) (*unstructured.Unstructured, error) {
	release, err := e.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return ri.Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
}

// withoutTendFields returns entries with the fields of tend's apply entry
// removed from the main-resource entries of t's managers, empty ones
// dropped, and the managers that lost a field (sorted). moved is empty when
// there is nothing to write: no apply entry of tend's, or no shared field.
func withoutTendFields(entries []metav1.ManagedFieldsEntry, t *TakeOver) (out []metav1.ManagedFieldsEntry, moved []string, err error) {
	var tend *fieldpath.Set
	for _, en := range entries {
		if en.Manager == FieldManager && en.Operation == metav1.ManagedFieldsOperationApply && en.Subresource == "" {
			if tend, err = decodeFields(en); err != nil {
				return nil, nil, fmt.Errorf("manager %s: %w", en.Manager, err)
			}
		}
	}
	if tend == nil || tend.Empty() {
		return entries, nil, nil
	}
	seen := map[string]bool{}
	out = make([]metav1.ManagedFieldsEntry, 0, len(entries))
	for _, en := range entries {
		// Status and scale entries hold fields tend does not apply.
		if !t.has(en.Manager) || en.Subresource != "" {
			out = append(out, en)
			continue
		}
		fields, err := decodeFields(en)
		if err != nil {
			return nil, nil, fmt.Errorf("manager %s: %w", en.Manager, err)
		}
		if fields.Intersection(tend).Empty() {
			out = append(out, en)
			continue
		}
		if !seen[en.Manager] {
			seen[en.Manager] = true
			moved = append(moved, en.Manager)
		}
		rest := fields.Difference(tend)
		if rest.Empty() {
			continue // nothing left: the manager owns nothing now
		}
		raw, err := rest.ToJSON()
		if err != nil {
			return nil, nil, fmt.Errorf("manager %s: %w", en.Manager, err)
		}
		en.FieldsV1 = metav1.NewFieldsV1(string(raw))
		out = append(out, en)
	}
	sort.Strings(moved)
	return out, moved, nil
}

// decodeFields decodes a managedFields entry's fieldsV1.
func decodeFields(en metav1.ManagedFieldsEntry) (*fieldpath.Set, error) {
	s := &fieldpath.Set{}
	if en.FieldsV1 == nil || len(en.FieldsV1.GetRawBytes()) == 0 {
		return s, nil
	}
	if en.FieldsType != "" && en.FieldsType != "FieldsV1" {
		return nil, fmt.Errorf("fields type %q is not FieldsV1", en.FieldsType)
	}
	if err := s.FromJSON(bytes.NewReader(en.FieldsV1.GetRawBytes())); err != nil {
		return nil, fmt.Errorf("decode fieldsV1: %w", err)
	}
	return s, nil
}
