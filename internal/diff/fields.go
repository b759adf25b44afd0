package diff

import (
	"bytes"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/value"
)

// managedSet is the union of the fields the managedFields entries of obj
// for the main resource (not status or scale) that match select own; nil
// when there are none.
func managedSet(obj *unstructured.Unstructured, match func(manager, operation string) bool) (*fieldpath.Set, error) {
	md, _ := obj.Object["metadata"].(map[string]any)
	entries, _ := md["managedFields"].([]any)
	var out *fieldpath.Set
	for _, e := range entries {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		manager, _ := m["manager"].(string)
		op, _ := m["operation"].(string)
		sub, _ := m["subresource"].(string)
		if sub != "" || !match(manager, op) || m["fieldsV1"] == nil {
			continue
		}
		raw, err := json.Marshal(m["fieldsV1"])
		if err != nil {
			return nil, fmt.Errorf("managedFields of %s: %w", manager, err)
		}
		s := &fieldpath.Set{}
		if err := s.FromJSON(bytes.NewReader(raw)); err != nil {
			return nil, fmt.Errorf("managedFields of %s: %w", manager, err)
		}
		if out == nil {
			out = s
		} else {
			out = out.Union(s)
		}
	}
	return out, nil
}

// fieldElement looks a map key up in set: whether the key itself is a member,
// and the set of its owned descendants (nil if none).
func fieldElement(set *fieldpath.Set, key string) (member bool, children *fieldpath.Set) {
	if set == nil {
		return false, nil
	}
	pe := fieldpath.FieldNameElement(key)
	children, _ = set.Children.Get(pe)
	return set.Members.Has(pe), children
}

// itemElement looks list item number index up in set, by its key fields
// (k:), its value (v:) or its index (i:). It returns nil when set does not
// address the item.
func itemElement(set *fieldpath.Set, item any, index int) (pe *fieldpath.PathElement, member bool, children *fieldpath.Set) {
	if set == nil {
		return nil, false, nil
	}
	look := func(e fieldpath.PathElement) {
		if pe == nil && itemMatches(e, item, index) {
			pe = &e
		}
	}
	set.Members.Iterate(look)
	set.Children.Iterate(look)
	if pe == nil {
		return nil, false, nil
	}
	children, _ = set.Children.Get(*pe)
	return pe, set.Members.Has(*pe), children
}

// keyFields returns the names of pe's key fields, if it selects by key.
func keyFields(pe *fieldpath.PathElement) []string {
	if pe == nil || pe.Key == nil {
		return nil
	}
	names := make([]string, 0, len(*pe.Key))
	for _, f := range *pe.Key {
		names = append(names, f.Name)
	}
	return names
}

// itemMatches reports whether pe addresses item, the list's element number
// index. Key fields missing from item are not compared: desired objects
// often leave out key fields the API server defaults (a port's protocol).
func itemMatches(pe fieldpath.PathElement, item any, index int) bool {
	switch {
	case pe.Key != nil:
		m, ok := item.(map[string]any)
		if !ok {
			return false
		}
		matched := 0
		for _, f := range *pe.Key {
			v, ok := m[f.Name]
			if !ok {
				continue
			}
			if !value.Equals(value.NewValueInterface(v), f.Value) {
				return false
			}
			matched++
		}
		return matched > 0
	case pe.Value != nil:
		switch item.(type) {
		case map[string]any, []any:
			return false
		}
		return value.Equals(value.NewValueInterface(item), *pe.Value)
	case pe.Index != nil:
		return *pe.Index == index
	}
	return false
}

// hasValueElements reports whether set addresses list items by value, which
// makes the list a set.
func hasValueElements(set *fieldpath.Set) bool {
	if set == nil {
		return false
	}
	found := false
	check := func(pe fieldpath.PathElement) {
		if pe.Value != nil {
			found = true
		}
	}
	set.Members.Iterate(check)
	set.Children.Iterate(check)
	return found
}
