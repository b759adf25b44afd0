package compat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// This file writes what an object maps to back onto it: its status in the
// old tool's shape, or events for kinds without a status.

// writeStatus writes obj's status when it changed, and records an event
// when what stops the object is new.
func (r *Reconciler) writeStatus(ctx context.Context, obj *unstructured.Unstructured, o *observed) error {
	if r.kind.status == nil {
		return r.writeProblem(ctx, obj, o)
	}
	oldStatus, _, _ := unstructured.NestedMap(obj.Object, "status")
	oldProblem := problemOf(oldStatus)
	status := r.kind.status(obj, o)
	if sameStatus(oldStatus, status) {
		return nil
	}
	patch, err := json.Marshal([]map[string]any{{"op": "add", "path": "/status", "value": status}})
	if err != nil {
		return err
	}
	var opts []client.SubResourcePatchOption
	if r.kind.statusSubresource {
		err = r.Client.Status().Patch(ctx, obj, client.RawPatch(types.JSONPatchType, patch), opts...)
	} else {
		err = r.Client.Patch(ctx, obj, client.RawPatch(types.JSONPatchType, patch))
	}
	if err != nil {
		return client.IgnoreNotFound(err)
	}
	if p := o.problem(); p != "" && p != oldProblem {
		reason := ReasonUnsupported
		if o.conv.err == nil {
			reason = ReasonConflict
		}
		r.Recorder.Eventf(obj, nil, "Warning", reason, "Reconcile", "%s", p)
	}
	for _, w := range o.conv.warnings {
		if !strings.Contains(fmt.Sprint(oldStatus), w) {
			r.Recorder.Eventf(obj, nil, "Normal", "Differs", "Reconcile", "%s", w)
		}
	}
	return nil
}

// ProblemAnnotation records, on an object whose kind has no status
// (Flux's Alerts), a hash of the problem and warnings last reported as
// events, so that each is sent once, across restarts too.
const ProblemAnnotation = "tend.dev/compat-reported"

// writeProblem reports what stops obj and where tend differs as events,
// once per change, for kinds without a status.
func (r *Reconciler) writeProblem(ctx context.Context, obj *unstructured.Unstructured, o *observed) error {
	p := o.problem()
	sum := ""
	if p != "" || len(o.conv.warnings) > 0 {
		h := sha256.Sum256([]byte(p + "\x00" + strings.Join(o.conv.warnings, "\x00")))
		sum = hex.EncodeToString(h[:8])
	}
	if obj.GetAnnotations()[ProblemAnnotation] == sum {
		return nil
	}
	var value any
	if sum != "" {
		value = sum
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{ProblemAnnotation: value}}})
	if err != nil {
		return err
	}
	if err := r.Client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return client.IgnoreNotFound(err)
	}
	if p != "" {
		reason := ReasonUnsupported
		if o.conv.err == nil {
			reason = ReasonConflict
		}
		r.Recorder.Eventf(obj, nil, "Warning", reason, "Reconcile", "%s", p)
	}
	for _, w := range o.conv.warnings {
		r.Recorder.Eventf(obj, nil, "Normal", "Differs", "Reconcile", "%s", w)
	}
	return nil
}

// problemOf finds the message of the problem condition a status written
// by tend holds (Argo CD's InvalidSpecError or Flux's Stalled).
func problemOf(status map[string]any) string {
	conds, _, _ := unstructured.NestedSlice(status, "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		t, _ := m["type"].(string)
		if t == argoInvalidSpec || (t == "Stalled" && m["status"] == "True") {
			msg, _ := m["message"].(string)
			return msg
		}
	}
	return ""
}

// sameStatus compares two statuses, ignoring the times written only when
// something else changes.
func sameStatus(a, b map[string]any) bool {
	strip := func(m map[string]any) string {
		c, _ := toJSON(orEmpty(m)).(map[string]any)
		delete(c, "reconciledAt")
		if conds, ok := c["conditions"].([]any); ok {
			for _, x := range conds {
				if cm, ok := x.(map[string]any); ok {
					delete(cm, "lastTransitionTime")
				}
			}
		}
		b, _ := json.Marshal(c)
		return string(b)
	}
	return strip(a) == strip(b)
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// toJSON converts a typed value to its JSON form (maps, slices, strings,
// float64), as unstructured objects hold it.
func toJSON(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

// transitionTime keeps a condition's lastTransitionTime while its status
// stays, from the old status's conditions.
func transitionTime(old map[string]any, typ, status string, now metav1.Time) string {
	conds, _, _ := unstructured.NestedSlice(old, "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == typ && m["status"] == status {
			if t, ok := m["lastTransitionTime"].(string); ok {
				return t
			}
		}
	}
	return now.UTC().Format(time.RFC3339)
}
