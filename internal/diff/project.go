package diff

import (
	"encoding/json"
	"fmt"
	"strconv"

	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// mergeKeys are the fields that identify items of Kubernetes' lists of
// objects (containers, env and volumes by name, container ports by
// containerPort, Service ports by port, volumeMounts by mountPath, ...), in
// the order they are tried. A list is matched by the first key every desired
// item has, with distinct values.
var mergeKeys = []string{"name", "containerPort", "port", "mountPath", "devicePath", "ip", "topologyKey"}

// quantityParents are keys under which strings and numbers are compared as
// resource quantities.
var quantityParents = map[string]bool{"resources": true, "hard": true, "limits": true, "requests": true, "overhead": true, "capacity": true}

// project returns live restricted to the shape of desired: the map keys and
// list items desired has (items of named lists matched by name), plus what
// owned (the fields tend applied before) covers that desired no longer has.
// Scalars equal to desired's (after normalising numbers and quantities) take
// desired's form, so equal objects render identically. quantity says that
// the value is under a key holding resource quantities.
func project(desired, live any, owned *fieldpath.Set, quantity bool) any {
	switch d := desired.(type) {
	case map[string]any:
		l, ok := live.(map[string]any)
		if !ok {
			return live
		}
		out := make(map[string]any, len(d))
		for k, dv := range d {
			lv, ok := l[k]
			if !ok {
				if isEmptyContainer(dv) {
					// The API server drops empty maps and lists.
					out[k] = dv
				}
				continue
			}
			member, children := fieldElement(owned, k)
			q := quantity || quantityParents[k]
			dl, okD := dv.([]any)
			ll, okL := lv.([]any)
			if member && children == nil && okD && okL {
				// tend owns the whole list: it is atomic, order matters.
				out[k] = projectPositional(dl, ll, nil, q)
				continue
			}
			out[k] = project(dv, lv, children, q)
		}
		for k, lv := range l {
			if _, ok := d[k]; ok {
				continue
			}
			if v, ok := ownedPart(lv, owned, k); ok {
				out[k] = v
			}
		}
		return out
	case []any:
		l, ok := live.([]any)
		if !ok {
			return live
		}
		if key := mergeKey(d); key != "" {
			return projectKeyed(d, l, key, owned, quantity)
		}
		if isScalarList(d) && isScalarList(l) && hasValueElements(owned) {
			return projectSet(d, l, owned)
		}
		return projectPositional(d, l, owned, quantity)
	default:
		switch live.(type) {
		case map[string]any, []any:
			return live
		}
		if scalarsEqual(desired, live, quantity) {
			return desired
		}
		return live
	}
}

// projectKeyed projects a list of objects matched by key: items in desired's
// order, then live items tend owned that desired no longer has.
func projectKeyed(d, l []any, key string, owned *fieldpath.Set, quantity bool) []any {
	byKey := make(map[string]int, len(l))
	for i, lv := range l {
		if m, ok := lv.(map[string]any); ok {
			if v, ok := m[key]; ok {
				byKey[scalarKey(v)] = i
			}
		}
	}
	out := make([]any, 0, len(d))
	matched := make(map[int]bool, len(d))
	for _, dv := range d {
		i, ok := byKey[scalarKey(dv.(map[string]any)[key])]
		if !ok {
			continue
		}
		matched[i] = true
		_, _, children := itemElement(owned, l[i], i)
		out = append(out, project(dv, l[i], children, quantity))
	}
	for i, lv := range l {
		if matched[i] {
			continue
		}
		if v, ok := ownedItem(lv, owned, i); ok {
			out = append(out, v)
		}
	}
	return out
}

// projectPositional projects a list item by item. An apply replaces such a
// list, so extra live items show as removed.
func projectPositional(d, l []any, owned *fieldpath.Set, quantity bool) []any {
	out := make([]any, len(l))
	for i, lv := range l {
		if i < len(d) {
			_, _, children := itemElement(owned, lv, i)
			out[i] = project(d[i], lv, children, quantity)
		} else {
			out[i] = lv
		}
	}
	return out
}

// projectSet projects a list used as a set (such as finalizers): desired's
// items that live has, then live items tend owned that desired no longer has.
func projectSet(d, l []any, owned *fieldpath.Set) []any {
	var out []any
	for _, dv := range d {
		for _, lv := range l {
			if scalarsEqual(dv, lv, false) {
				out = append(out, dv)
				break
			}
		}
	}
	for i, lv := range l {
		in := false
		for _, dv := range d {
			if scalarsEqual(dv, lv, false) {
				in = true
				break
			}
		}
		if in {
			continue
		}
		if pe, member, _ := itemElement(owned, lv, i); pe != nil && member {
			out = append(out, lv)
		}
	}
	return out
}

// ownedPart returns the part of map value v, under key k of a map whose
// owned fields are owned, that tend owns.
func ownedPart(v any, owned *fieldpath.Set, k string) (any, bool) {
	member, children := fieldElement(owned, k)
	switch {
	case children != nil:
		r := restrict(v, children)
		if r == nil && member {
			return v, true
		}
		return r, r != nil
	case member:
		return v, true
	}
	return nil, false
}

// ownedItem returns the part of list item number i that tend owns, with the
// fields that identify it.
func ownedItem(item any, owned *fieldpath.Set, i int) (any, bool) {
	pe, member, children := itemElement(owned, item, i)
	if pe == nil {
		return nil, false
	}
	if children == nil {
		return item, member
	}
	r, _ := restrict(item, children).(map[string]any)
	if r == nil {
		r = map[string]any{}
	}
	if m, ok := item.(map[string]any); ok {
		for _, k := range keyFields(pe) {
			if v, ok := m[k]; ok {
				r[k] = v
			}
		}
	}
	if len(r) == 0 {
		return nil, false
	}
	return r, true
}

// restrict returns the part of v that set covers, or nil if none.
func restrict(v any, set *fieldpath.Set) any {
	switch n := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, c := range n {
			if r, ok := ownedPart(c, set, k); ok {
				out[k] = r
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []any:
		var out []any
		for i, c := range n {
			if r, ok := ownedItem(c, set, i); ok {
				out = append(out, r)
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	}
	return nil
}

// mergeKey returns the key that identifies the items of d, or "" when d is
// not a list of objects with one.
func mergeKey(d []any) string {
	if len(d) == 0 {
		return ""
	}
next:
	for _, key := range mergeKeys {
		seen := make(map[string]bool, len(d))
		for _, item := range d {
			m, ok := item.(map[string]any)
			if !ok {
				return ""
			}
			v, ok := m[key]
			if !ok || !isScalar(v) || seen[scalarKey(v)] {
				continue next
			}
			seen[scalarKey(v)] = true
		}
		return key
	}
	return ""
}

func isScalar(v any) bool {
	switch v.(type) {
	case map[string]any, []any, nil:
		return false
	}
	return true
}

func isScalarList(l []any) bool {
	for _, v := range l {
		if !isScalar(v) {
			return false
		}
	}
	return true
}

// scalarKey is a string form of a scalar under which equal numbers of
// different types are equal.
func scalarKey(v any) string {
	if f, ok := toFloat(v); ok {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return fmt.Sprintf("%T:%v", v, v)
}

// scalarsEqual compares two scalars: numbers by value, quantities (when
// quantity is set) by amount, anything else exactly.
func scalarsEqual(a, b any, quantity bool) bool {
	fa, okA := toFloat(a)
	fb, okB := toFloat(b)
	if okA && okB && fa == fb {
		return true
	}
	if quantity {
		qa, errA := toQuantity(a)
		qb, errB := toQuantity(b)
		if errA == nil && errB == nil {
			return qa.Cmp(qb) == 0
		}
	}
	if !isScalar(a) || !isScalar(b) {
		return false
	}
	return a == b
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case float32:
		return float64(n), true
	case float64:
		return n, true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

func toQuantity(v any) (resource.Quantity, error) {
	switch n := v.(type) {
	case string:
		return resource.ParseQuantity(n)
	case json.Number:
		return resource.ParseQuantity(n.String())
	}
	if f, ok := toFloat(v); ok {
		return resource.ParseQuantity(strconv.FormatFloat(f, 'f', -1, 64))
	}
	return resource.Quantity{}, fmt.Errorf("not a quantity: %T", v)
}
