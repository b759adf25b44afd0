package apply

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/tend-gitops/tend/internal/diff"
)

// Difference is what a sync would change (Engine.Diff).
type Difference struct {
	// Objects has one entry per rendered object and per object a sync
	// would prune.
	Objects []diff.ObjectDiff
	// Notes say things about objects that are not differences, such as an
	// object that left git and stays because pruning is off.
	Notes []string
	// Errors are objects a sync would fail on, each naming the object.
	Errors []string
	// Warnings are what a sync would warn about without failing, such as
	// fields left to the controllers that own them.
	Warnings []string
	// Hooks counts hooks, which run during a sync and are not compared.
	Hooks int
}

// Diff reports what a sync of req would change, without changing
// anything. Each object is prepared as Sync prepares it (owner annotation,
// ownership check, Secret markers, req.Ignore), sent as a server-side
// apply dry run with Sync's conflict handling (fields controllers own are
// left to them and warned about, a person's edits are taken back), and
// compared with the live object read from the API server. Objects the
// inventory holds that req no longer renders show as deletions when
// req.Prune and a sync would delete them, else as notes.
//
// A zero req.App diffs objects that belong to no App: there is no
// inventory and no ownership check, and the owner annotation is whatever
// the live object has. Errors reaching the cluster are returned; errors of
// single objects are listed in Difference.Errors.
func (e *Engine) Diff(ctx context.Context, req Request) (*Difference, error) {
	e.defaults()
	objs := req.objects()
	inv := req.Inventory
	if inv == nil && req.App != (AppRef{}) {
		var err error
		if inv, err = e.Inventory.Load(ctx, req.App); err != nil {
			return nil, err
		}
	}
	if inv == nil {
		inv = &Inventory{Entries: map[ObjectRef]Entry{}}
	}
	plan, err := NewPlan(objs, len(inv.Entries) > 0)
	if err != nil {
		return nil, &SyncError{Err: err}
	}
	s := &syncRun{e: e, req: req, plan: plan, old: inv, next: inv.Clone(), res: &Result{}}
	d := &Difference{Hooks: len(plan.PreSync) + len(plan.PostSync) + len(plan.SyncFail) + len(plan.PostDelete)}
	if err := s.watchKinds(ctx, plan.All(), true); err != nil {
		return nil, err
	}
	if req.App != (AppRef{}) {
		s.annotateOwner()
	}
	crdKinds := map[schema.GroupKind]bool{}
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" {
			g, _, _ := unstructured.NestedString(o.Object, "spec", "group")
			k, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
			crdKinds[schema.GroupKind{Group: g, Kind: k}] = true
		}
	}
	for _, o := range plan.All() {
		od, warning, err := s.diffObject(ctx, o, crdKinds)
		if err != nil {
			if unreachable(err) {
				return nil, err
			}
			d.Errors = append(d.Errors, err.Error())
			continue
		}
		if warning != "" {
			d.Warnings = append(d.Warnings, warning)
		}
		d.Objects = append(d.Objects, od)
	}
	for _, ref := range s.pruneCandidates() {
		od, note, err := s.diffGone(ctx, ref)
		switch {
		case err != nil && unreachable(err):
			return nil, err
		case err != nil:
			d.Errors = append(d.Errors, err.Error())
		case note != "":
			d.Notes = append(d.Notes, note)
		case od != nil:
			d.Objects = append(d.Objects, *od)
		}
	}
	return d, nil
}

// diffObject diffs one rendered object against the cluster.
func (s *syncRun) diffObject(ctx context.Context, o *unstructured.Unstructured, crdKinds map[schema.GroupKind]bool) (diff.ObjectDiff, string, error) {
	ref := RefOf(o)
	ri, _, err := s.e.resourceFor(o)
	if err != nil {
		var nm *meta.NoKindMatchError
		if errors.As(err, &nm) && crdKinds[o.GroupVersionKind().GroupKind()] {
			od, err := diff.Compare(o, nil) // its CRD comes with the same sync
			return od, "", err
		}
		return diff.ObjectDiff{}, "", err
	}
	if s.req.App != (AppRef{}) {
		if _, _, err := s.check(o); err != nil {
			return diff.ObjectDiff{}, "", err
		}
	}
	live, err := ri.Get(ctx, o.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		live = nil
	case err != nil:
		return diff.ObjectDiff{}, "", fmt.Errorf("%s: %w", ref, err)
	}
	if live != nil && s.req.App == (AppRef{}) {
		if owner := live.GetAnnotations()[AnnotationOwner]; owner != "" {
			setAnnotation(o, AnnotationOwner, owner)
		}
	}
	applied := o
	if s.req.Ignore.Matches(o) {
		if applied, _, err = s.req.Ignore.ForApply(o, live); err != nil {
			return diff.ObjectDiff{}, "", err
		}
	}
	force := s.req.ForceConflicts || o.GetAnnotations()[AnnotationForceConflicts] == "true"
	out, warning, err := s.e.applyObject(ctx, applied, force, s.req.TakeOver, true)
	switch {
	case err != nil && live == nil && apierrors.IsNotFound(err):
		// Its namespace does not exist yet (the same sync creates it).
		out = applied
	case err != nil && unreachable(err):
		return diff.ObjectDiff{}, "", err
	case err != nil && live != nil && refusedChange(err) && s.recreates(o):
		// A sync deletes it and creates it as git has it.
		if verr := s.e.validAsNew(ctx, applied); verr != nil {
			return diff.ObjectDiff{}, "", fmt.Errorf("%s: a sync would fail: %s; %w", ref, serverMessage(err), verr)
		}
		// Shown as the object it creates.
		out, live = applied, nil
		warning = joinMessages(fmt.Sprintf("%s: a sync recreates it: %s", ref, serverMessage(err)), warning)
	case err != nil:
		return diff.ObjectDiff{}, "", fmt.Errorf("%s: a sync would fail: %s", ref, serverMessage(err))
	case live == nil:
		out = applied
	}
	od, err := diff.Compare(out, live)
	return od, warning, err
}

// diffGone diffs an object the App applied before and no longer renders:
// a deletion when a sync would prune it, a note when it would stay, nothing
// when it is gone or another App took it over.
func (s *syncRun) diffGone(ctx context.Context, ref ObjectRef) (*diff.ObjectDiff, string, error) {
	o := &unstructured.Unstructured{}
	o.SetGroupVersionKind(ref.GroupKind().WithVersion(s.old.Entries[ref].Version))
	o.SetNamespace(ref.Namespace)
	o.SetName(ref.Name)
	ri, _, err := s.e.resourceFor(o)
	if err != nil {
		var nm *meta.NoKindMatchError
		if errors.As(err, &nm) {
			return nil, "", nil // its kind is gone, and so is it
		}
		return nil, "", err
	}
	live, err := ri.Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", ref, err)
	}
	switch verdict, why := s.pruneVerdict(live, s.old.Entries[ref]); {
	case verdict == letGo:
		return nil, "", nil
	case verdict == keep:
		return nil, fmt.Sprintf("%s left git and stays (%s)", ref, why), nil
	case !s.req.Prune:
		return nil, fmt.Sprintf("%s left git and stays: pruning is off (spec.sync.prune or --prune)", ref), nil
	}
	od, err := diff.Compare(nil, live)
	if err != nil {
		return nil, "", err
	}
	return &od, "", nil
}

// unreachable reports whether err is a failure to reach the cluster rather
// than an answer about one object.
func unreachable(err error) bool {
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne)
}

func setAnnotation(o *unstructured.Unstructured, key, value string) {
	ann := o.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[key] = value
	o.SetAnnotations(ann)
}
