package apply

import (
	"context"
	"k8s.io/apimachinery/pkg/types"
	"slices"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tend-gitops/tend/internal/health"
)

// OwnerOf returns the App that applied obj, from its owner annotation.
func OwnerOf(obj *unstructured.Unstructured) (AppRef, bool) {
	v := obj.GetAnnotations()[AnnotationOwner]
	ns, name, ok := strings.Cut(v, "/")
	if !ok || ns == "" || name == "" {
		return AppRef{}, false
	}
	return AppRef{Namespace: ns, Name: name}, true
}

// Drift lists the inventory's objects whose live state no longer matches
// what tend applied: missing from the cluster, or with a different
// ownership fingerprint (another manager changed or took a field tend set).
// It reads only the watch cache; kinds must be watched.
func (e *Engine) Drift(inv *Inventory) []ObjectRef {
	var out []ObjectRef
	for _, ref := range inv.Refs() {
		entry := inv.Entries[ref]
		gvk := ref.GroupKind().WithVersion(entry.Version)
		live, ok := e.Live.Get(gvk, ref.Namespace, ref.Name)
		if !ok || e.Fingerprint(live, FieldManager) != entry.Fingerprint {
			out = append(out, ref)
		}
	}
	return out
}

// ObjectHealth is the health of one object an App owns.
type ObjectHealth struct {
	Ref    ObjectRef
	Result health.Result
}

// severity orders health states from best to worst for aggregation.
var severity = map[health.State]int{
	health.Healthy: 0, health.Unknown: 1, health.Progressing: 2, health.Missing: 3, health.Degraded: 4,
}

// Checked is an object an App does not apply whose health counts toward
// the App's (spec.health.checks).
type Checked struct {
	Ref     ObjectRef
	Version string
}

// checkedStubs are objects of checks' kinds, for watchKinds.
func checkedStubs(checks []Checked) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, 0, len(checks))
	for _, c := range checks {
		o := &unstructured.Unstructured{}
		o.SetGroupVersionKind(c.Ref.GroupKind().WithVersion(c.Version))
		out = append(out, o)
	}
	return out
}

// Assess returns the health of every object in the inventory and of
// checks, and the App's overall health: the worst of them. Objects still
// Progressing longer than timeout after since count as Degraded. It reads
// only the watch cache (Sync and PreviewFrom watch checks' kinds). h, when
// not nil, replaces the Engine's checker (an App's own health rules).
// Objects with one of the owners' UIDs (Request.Owners) count as Healthy.
func (e *Engine) Assess(h HealthChecker, owners []types.UID, inv *Inventory, checks []Checked, since time.Time, timeout time.Duration) (health.State, []ObjectHealth) {
	overall := health.Healthy
	var out []ObjectHealth
	if h == nil {
		h = e.Health
	}
	checker, _ := h.(*health.Checker)
	refs := inv.Refs()
	versions := make(map[ObjectRef]string, len(refs)+len(checks))
	for _, ref := range refs {
		versions[ref] = inv.Entries[ref].Version
	}
	for _, c := range checks {
		if _, ok := versions[c.Ref]; !ok {
			refs = append(refs, c.Ref)
			versions[c.Ref] = c.Version
		}
	}
	for _, ref := range refs {
		gvk := ref.GroupKind().WithVersion(versions[ref])
		live, ok := e.Live.Get(gvk, ref.Namespace, ref.Name)
		var r health.Result
		switch {
		case !ok:
			r = health.Result{State: health.Missing, Reason: health.ReasonNotFound, Message: ref.String() + " is not in the cluster"}
		case slices.Contains(owners, live.GetUID()):
			continue
		case checker != nil && timeout > 0:
			r = checker.CheckWithTimeout(live, since, timeout, time.Now())
		default:
			r = h.Check(live)
		}
		if severity[r.State] > severity[overall] {
			overall = r.State
		}
		if r.State != health.Healthy {
			out = append(out, ObjectHealth{Ref: ref, Result: r})
		}
	}
	return overall, out
}

// Preview reports, from the inventory and the watch cache, which objects a
// sync of req would apply and which it would prune. It reads the App's
// inventory from the store; PreviewFrom takes one the caller holds.
func (e *Engine) Preview(ctx context.Context, req Request) (toApply, toPrune []ObjectRef, err error) {
	inv, err := e.Inventory.Load(ctx, req.App)
	if err != nil {
		return nil, nil, err
	}
	return e.PreviewFrom(ctx, req, inv)
}

// PreviewFrom is Preview against inv, the App's inventory as of its last
// sync: no request to the apiserver beyond starting watches.
func (e *Engine) PreviewFrom(ctx context.Context, req Request, inv *Inventory) (toApply, toPrune []ObjectRef, err error) {
	e.defaults()
	plan, err := NewPlan(req.objects(), len(inv.Entries) > 0)
	if err != nil {
		return nil, nil, err
	}
	s := &syncRun{e: e, req: req, plan: plan, old: inv, next: inv.Clone(), res: &Result{}}
	if err := s.watchKinds(ctx, append(plan.All(), checkedStubs(req.HealthChecks)...), false); err != nil {
		return nil, nil, err
	}
	need, err := s.prepare(ctx)
	if err != nil {
		return nil, nil, err
	}
	for ref := range need {
		toApply = append(toApply, ref)
	}
	// The created Namespace's labels and annotations are part of what
	// the App wants (spec.destination.namespaceMetadata).
	stale, err := s.namespaceStale(ctx)
	if err != nil {
		return nil, nil, err
	}
	if stale {
		toApply = append(toApply, ObjectRef{Kind: "Namespace", Name: req.CreateNamespace})
	}
	sort.Slice(toApply, func(i, j int) bool { return toApply[i].String() < toApply[j].String() })
	return toApply, s.pruneCandidates(), nil
}
