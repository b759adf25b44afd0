package promote

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// InvalidRequest is an approval that cannot be made as asked: the Stage
// has no approval, the freight is not kept, nothing passed upstream.
type InvalidRequest struct{ Msg string }

func (e *InvalidRequest) Error() string { return e.Msg }

func invalid(format string, a ...any) error { return &InvalidRequest{Msg: fmt.Sprintf(format, a...)} }

// Approve approves, for Stage st (which must have spec.approval), the
// freight called name of its Warehouse; empty name approves what the Stage
// waits for: the freight that passed in its upstream Stage, else the
// Warehouse's newest. by, when set, is recorded as who approved
// (tend.dev/approved-by). The CLI (`tend promote approve`, `rollback`)
// and the dashboard approve through it.
func Approve(ctx context.Context, c client.Client, st *tendv1.Stage, name, by string) (*tendv1.Freight, error) {
	if !st.Spec.Approval {
		return nil, invalid("the Stage %s/%s promotes each new piece of freight as it is found (it has no spec.approval): there is nothing to approve", st.Namespace, st.Name)
	}
	var wh tendv1.Warehouse
	if err := c.Get(ctx, types.NamespacedName{Namespace: st.Namespace, Name: st.Spec.Warehouse.Name}, &wh); err != nil {
		return nil, fmt.Errorf("the Stage's Warehouse %s: %w", st.Spec.Warehouse.Name, err)
	}
	if len(wh.Status.Freight) == 0 {
		return nil, invalid("the Warehouse %s/%s has found no freight yet", wh.Namespace, wh.Name)
	}
	f := &wh.Status.Freight[0]
	switch {
	case name != "":
		var names []string
		for i := range wh.Status.Freight {
			names = append(names, wh.Status.Freight[i].Name)
		}
		if f = FreightOf(&wh, name); f == nil {
			return nil, invalid("the Warehouse %s/%s keeps no freight %q; it keeps %s", wh.Namespace, wh.Name, name, strings.Join(names, ", "))
		}
	case st.Spec.Upstream != nil:
		var u tendv1.Stage
		if err := c.Get(ctx, types.NamespacedName{Namespace: st.Namespace, Name: st.Spec.Upstream.Stage}, &u); err != nil {
			return nil, fmt.Errorf("the Stage's upstream Stage %s: %w", st.Spec.Upstream.Stage, err)
		}
		p := u.Status.Freight
		if p == nil || p.VerifiedAt == nil {
			return nil, invalid("nothing has passed in the upstream Stage %s/%s yet; wait, or name the freight to approve", u.Namespace, u.Name)
		}
		if f = FreightOf(&wh, p.Name); f == nil {
			return nil, invalid("freight %s, which passed in the upstream Stage %s, is no longer kept by the Warehouse %s/%s", p.Name, u.Name, wh.Namespace, wh.Name)
		}
	}
	ann := map[string]any{tendv1.AnnotationApprovedFreight: f.Name, tendv1.AnnotationApprovedBy: nil}
	if by != "" {
		ann[tendv1.AnnotationApprovedBy] = by
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
	if err != nil {
		return nil, err
	}
	if err := c.Patch(ctx, st, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return nil, err
	}
	return f, nil
}

// Previous is the promotion of other freight than the one st runs that
// its history holds last: what a rollback returns to.
func Previous(st *tendv1.Stage) (*tendv1.Promotion, error) {
	cur := st.Status.Freight
	if cur == nil {
		return nil, invalid("the Stage %s/%s has promoted nothing yet", st.Namespace, st.Name)
	}
	for i := range st.Status.History {
		if st.Status.History[i].Name != cur.Name {
			return &st.Status.History[i], nil
		}
	}
	return nil, invalid("the Stage %s/%s has run no other freight than %s (%s)", st.Namespace, st.Name, cur.Name, cur.Versions)
}

// FreightOf is the Warehouse's freight called name, nil if it keeps none.
func FreightOf(wh *tendv1.Warehouse, name string) *tendv1.Freight {
	for i := range wh.Status.Freight {
		if wh.Status.Freight[i].Name == name {
			return &wh.Status.Freight[i]
		}
	}
	return nil
}
