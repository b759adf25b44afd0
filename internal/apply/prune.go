package apply

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// pruneCandidates are objects in the inventory that are not in this sync's
// objects.
func (s *syncRun) pruneCandidates() []ObjectRef {
	desired := map[ObjectRef]bool{}
	for _, o := range s.plan.All() {
		desired[RefOf(o)] = true
	}
	var out []ObjectRef
	for _, r := range s.old.Refs() {
		if r.Kind == "Namespace" && r.Group == "" && r.Name == s.req.CreateNamespace && r.Name != "" {
			// Created for the App, not part of it: never pruned, though
			// inventories written by earlier versions of tend list it.
			continue
		}
		if !desired[r] {
			out = append(out, r)
		}
	}
	// Namespaced objects first, CRDs and Namespaces last: the reverse of
	// apply order.
	rank := func(r ObjectRef) int {
		switch {
		case r.Kind == "Namespace" && r.Group == "":
			return 3
		case r.Kind == "CustomResourceDefinition":
			return 2
		case r.Namespace == "":
			return 1
		}
		return 0
	}
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
	return out
}

// pruneVerdict is what a sync does with a live object that left git.
type verdict int

const (
	prune verdict = iota // delete it
	keep                 // leave it, annotated to stay
	letGo                // leave it, another App owns it now
)

// pruneVerdict decides, from its annotations, whether a prune deletes
// live, and why not.
func (s *syncRun) pruneVerdict(live *unstructured.Unstructured, entry Entry) (verdict, string) {
	ann := live.GetAnnotations()
	if owner := ann[AnnotationOwner]; owner != s.req.App.String() && (owner != "" || !entry.Adopted()) {
		return letGo, fmt.Sprintf("owned by %q now, not by this App", owner)
	}
	if ann[AnnotationPrune] == "disabled" {
		return keep, AnnotationPrune + ": disabled"
	}
	opts := splitList(ann[argoOptions])
	if slices.Contains(opts, "Prune=false") {
		return keep, argoOptions + ": Prune=false"
	}
	if s.req.Deleting && slices.Contains(opts, "Delete=false") {
		return keep, argoOptions + ": Delete=false"
	}
	return prune, ""
}

// prune deletes the candidates tend may delete: still in the cluster, owned
// by this App, not annotated to be kept.
func (s *syncRun) prune(ctx context.Context, refs []ObjectRef) error {
	var errs []string
	for _, ref := range refs {
		entry := s.old.Entries[ref]
		o := &unstructured.Unstructured{}
		o.SetGroupVersionKind(ref.GroupKind().WithVersion(entry.Version))
		o.SetNamespace(ref.Namespace)
		o.SetName(ref.Name)
		if err := s.e.Live.Watch(ctx, o.GroupVersionKind()); err != nil {
			if meta.IsNoMatchError(err) || isNotServed(err) {
				delete(s.next.Entries, ref) // its kind is gone, and so is it
				continue
			}
			errs = append(errs, fmt.Sprintf("%s: %v", ref, err))
			continue
		}
		live, ok := s.e.Live.Get(o.GroupVersionKind(), ref.Namespace, ref.Name)
		if !ok {
			delete(s.next.Entries, ref)
			continue
		}
		if verdict, why := s.pruneVerdict(live, entry); verdict != prune {
			delete(s.next.Entries, ref)
			s.progress("prune", ref, Kept, why)
			continue
		}
		if s.req.DryRun {
			s.progress("prune", ref, Pruned, "dry run")
			continue
		}
		ri, _, err := s.e.resourceFor(o)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		uid := live.GetUID()
		bg := metav1.DeletePropagationBackground
		err = ri.Delete(ctx, ref.Name, metav1.DeleteOptions{PropagationPolicy: &bg, Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) {
			s.progress("prune", ref, Failed, serverMessage(err))
			errs = append(errs, fmt.Sprintf("%s: %s", ref, serverMessage(err)))
			continue
		}
		delete(s.next.Entries, ref)
		s.progress("prune", ref, Pruned, "")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}
