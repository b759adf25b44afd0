package diff

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// IgnoreRule names fields tend must neither show as differences nor manage.
// The engine applies the desired object with those fields removed (see
// ApplyIgnoreRules), so tend gives up ownership of them and the API server
// keeps whatever value someone else sets.
type IgnoreRule struct {
	// Group, Kind, Name and Namespace select the objects the rule applies
	// to. Empty matches any; Group "" cannot select only the core group.
	Group, Kind, Name, Namespace string
	// JSONPointers are RFC 6901 pointers into the object, for example
	// /spec/replicas or /metadata/annotations/example.com~1hash. List items
	// are addressed by index. A pointer to nothing is not an error.
	JSONPointers []string
	// Managers are field managers (as in metadata.managedFields) whose
	// fields in the live object are removed from the desired one, for
	// example the manager of a HorizontalPodAutoscaler owning
	// spec.replicas.
	Managers []string
}

func (r IgnoreRule) matches(obj *unstructured.Unstructured) bool {
	gvk := obj.GroupVersionKind()
	return (r.Group == "" || r.Group == gvk.Group) &&
		(r.Kind == "" || r.Kind == gvk.Kind) &&
		(r.Name == "" || r.Name == obj.GetName()) &&
		(r.Namespace == "" || r.Namespace == obj.GetNamespace())
}

// ApplyIgnoreRules returns a copy of desired without the fields the rules
// that select it ignore: the fields their JSON pointers name, and the fields
// their managers own in live (read from live's managedFields, main resource
// only). live may be nil (the object does not exist yet); then only the
// pointers apply. Containers that become empty through the removal are
// removed too. A pointer that is malformed or names the object's identity
// (apiVersion, kind, metadata.name, metadata.namespace) is an error.
//
// A live object from the livestate cache carries only the managedFields
// entries the cache keeps; managers named in rules must be among them
// (livestate.Options.KeepManagers).
func ApplyIgnoreRules(desired, live *unstructured.Unstructured, rules []IgnoreRule) (*unstructured.Unstructured, error) {
	if desired == nil {
		return nil, errors.New("apply ignore rules: no desired object")
	}
	out := desired.DeepCopy()
	managers := map[string]bool{}
	for i, r := range rules {
		if !r.matches(desired) {
			continue
		}
		for _, p := range r.JSONPointers {
			tokens, err := parsePointer(p)
			if err != nil {
				return nil, fmt.Errorf("ignore rule %d: %w", i+1, err)
			}
			out.Object, _ = removeTokens(out.Object, tokens).(map[string]any)
		}
		for _, m := range r.Managers {
			managers[m] = true
		}
	}
	if len(managers) == 0 || live == nil {
		return out, nil
	}
	set, err := managedSet(live, func(manager, _ string) bool { return managers[manager] })
	if err != nil {
		return nil, fmt.Errorf("ignore rules for %s: %w", describe(live), err)
	}
	if set == nil {
		return out, nil
	}
	// Never remove identity; managers do not own it, but be certain.
	set = set.Difference(fieldpath.NewSet(
		fieldpath.MakePathOrDie("apiVersion"),
		fieldpath.MakePathOrDie("kind"),
		fieldpath.MakePathOrDie("metadata", "name"),
		fieldpath.MakePathOrDie("metadata", "namespace"),
	))
	out.Object, _ = pruneOwned(out.Object, set).(map[string]any)
	return out, nil
}

// protected are pointers that would remove what identifies the object.
var protected = [][]string{{"apiVersion"}, {"kind"}, {"metadata"}, {"metadata", "name"}, {"metadata", "namespace"}}

// parsePointer splits an RFC 6901 JSON pointer into unescaped tokens.
func parsePointer(p string) ([]string, error) {
	if p == "" || p == "/" {
		return nil, fmt.Errorf("JSON pointer %q would ignore the whole object", p)
	}
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("JSON pointer %q must start with /", p)
	}
	tokens := strings.Split(p[1:], "/")
	for i, t := range tokens {
		if strings.Contains(strings.ReplaceAll(strings.ReplaceAll(t, "~0", ""), "~1", ""), "~") {
			return nil, fmt.Errorf("JSON pointer %q: bad escape in %q (use ~0 for ~ and ~1 for /)", p, t)
		}
		tokens[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	for _, pr := range protected {
		if slices.Equal(tokens, pr) {
			return nil, fmt.Errorf("JSON pointer %q names the object's identity, which cannot be ignored", p)
		}
	}
	return tokens, nil
}

// removeTokens removes the value at tokens from node and returns the
// (possibly new) node. Maps and lists emptied by the removal are removed.
func removeTokens(node any, tokens []string) any {
	tok, rest := tokens[0], tokens[1:]
	switch n := node.(type) {
	case map[string]any:
		child, ok := n[tok]
		if !ok {
			return n
		}
		if len(rest) == 0 {
			delete(n, tok)
			return n
		}
		wasEmpty := isEmptyContainer(child)
		nc := removeTokens(child, rest)
		if !wasEmpty && isEmptyContainer(nc) {
			delete(n, tok)
		} else {
			n[tok] = nc
		}
		return n
	case []any:
		i, err := strconv.Atoi(tok)
		if err != nil || i < 0 || i >= len(n) || (len(tok) > 1 && tok[0] == '0') {
			return n
		}
		if len(rest) == 0 {
			return slices.Delete(n, i, i+1)
		}
		wasEmpty := isEmptyContainer(n[i])
		nc := removeTokens(n[i], rest)
		if !wasEmpty && isEmptyContainer(nc) {
			return slices.Delete(n, i, i+1)
		}
		n[i] = nc
		return n
	}
	return node
}

// pruneOwned removes from node the leaves of set: the fields set owns
// outright. A member that also has owned descendants (a map, or a list item,
// whose existence is owned along with some of its fields) is descended into,
// not removed: only its owned fields go. Maps and lists emptied by the
// removal are removed.
func pruneOwned(node any, set *fieldpath.Set) any {
	switch n := node.(type) {
	case map[string]any:
		for k, v := range n {
			member, children := fieldElement(set, k)
			switch {
			case children != nil:
				wasEmpty := isEmptyContainer(v)
				nv := pruneOwned(v, children)
				if !wasEmpty && isEmptyContainer(nv) {
					delete(n, k)
				} else {
					n[k] = nv
				}
			case member:
				delete(n, k)
			}
		}
		return n
	case []any:
		out := make([]any, 0, len(n))
		for i, item := range n {
			pe, member, children := itemElement(set, item, i)
			if keys := keyFields(pe); keys != nil {
				// Owning a keyed item means sharing it: keep the item and
				// its key fields, remove only the owned fields.
				member = false
				if children == nil {
					children = &fieldpath.Set{}
				}
				for _, k := range keys {
					children = children.Difference(fieldpath.NewSet(fieldpath.MakePathOrDie(k)))
				}
			}
			found := pe != nil
			switch {
			case found && children != nil:
				wasEmpty := isEmptyContainer(item)
				ni := pruneOwned(item, children)
				if !wasEmpty && isEmptyContainer(ni) {
					continue
				}
				out = append(out, ni)
			case found && member:
				// Owned outright: drop the item.
			default:
				out = append(out, item)
			}
		}
		return out
	}
	return node
}

func isEmptyContainer(v any) bool {
	switch c := v.(type) {
	case map[string]any:
		return len(c) == 0
	case []any:
		return len(c) == 0
	}
	return false
}
