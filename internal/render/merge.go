package render

import (
	"fmt"
	"slices"
)

// DuplicateError says two Results being merged both hold an object.
type DuplicateError struct {
	// Object describes it: "Kind.group namespace/name".
	Object string
	// First and Second are the indexes of the Results holding it.
	First, Second int
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("%s is rendered by both part %d and part %d", e.Object, e.First, e.Second)
}

// Merge joins Results rendered from several sources into one, objects in
// order (parts[0]'s first). Files are parts[0]'s: they say what a change
// of that artifact can affect. An object (group, kind, namespace, name) in
// two parts is a *DuplicateError. Merge keeps no part's cache marks: the
// merged Result is not a Cache entry.
func Merge(parts []*Result) (*Result, error) {
	if len(parts) == 1 {
		return parts[0], nil
	}
	type key struct{ group, kind, namespace, name string }
	seen := map[key]int{}
	out := &Result{}
	for i, p := range parts {
		if i == 0 {
			out.Files = slices.Clone(p.Files)
		}
		for j, o := range p.Objects() {
			gvk := o.GroupVersionKind()
			k := key{gvk.Group, gvk.Kind, o.GetNamespace(), o.GetName()}
			if first, ok := seen[k]; ok && first != i {
				return nil, &DuplicateError{Object: describe(o), First: first, Second: i}
			}
			seen[k] = i
			out.objects = append(out.objects, p.objects[j])
		}
	}
	return out, nil
}
