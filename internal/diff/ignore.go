package diff

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/itchyny/gojq"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/tend-gitops/tend/internal/livestate"
)

// IgnoreRule names fields tend must neither apply nor show as differences
// (an App's spec.ignoreDifferences). See Ignore for what a sync does with
// them.
type IgnoreRule struct {
	// Group, Kind, Name and Namespace select the objects the rule applies
	// to. Empty matches any; Group "" cannot select only the core group.
	Group, Kind, Name, Namespace string
	// JSONPointers are RFC 6901 pointers into the object, for example
	// /spec/replicas or /metadata/annotations/example.com~1hash. List items
	// are addressed by index. A pointer to nothing is not an error.
	JSONPointers []string
	// JQPathExpressions are jq path expressions (as in Argo CD), for
	// example .spec.template.spec.containers[] | select(.name == "app") | .image.
	// An expression that fails on an object (say, iterating over a field
	// the object lacks) selects nothing in it.
	JQPathExpressions []string
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

// Ignore is a checked, compiled list of IgnoreRules; the zero value and nil
// ignore nothing.
//
// What a sync does with ignored fields (ForApply): an object that does not
// exist yet is created as git declares it; afterwards an ignored field keeps
// its live value (tend applies the value it finds, so nothing changes and
// a field tend alone owned is not removed), and fields the named managers
// own are not applied at all. The object is annotated with the ignored
// fields (livestate.IgnoredFieldsAnnotation), so that another writer
// changing them is not drift. Whether an object needs applying is decided
// on Strip's result: a change in git to an ignored field does not apply it.
type Ignore struct {
	rules []compiledRule
}

type compiledRule struct {
	IgnoreRule
	pointers [][]string
	jq       []*gojq.Code
}

// NewIgnore checks and compiles rules. Errors name the rule and field as
// spec.ignoreDifferences[i].field[j].
func NewIgnore(rules []IgnoreRule) (*Ignore, error) {
	if len(rules) == 0 {
		return nil, nil
	}
	ig := &Ignore{}
	for i, r := range rules {
		c := compiledRule{IgnoreRule: r}
		for j, p := range r.JSONPointers {
			tokens, err := parsePointer(p)
			if err != nil {
				return nil, fmt.Errorf("spec.ignoreDifferences[%d].jsonPointers[%d]: %w", i, j, err)
			}
			c.pointers = append(c.pointers, tokens)
		}
		for j, expr := range r.JQPathExpressions {
			q, err := gojq.Parse("path(" + expr + ")")
			if err == nil {
				var code *gojq.Code
				if code, err = gojq.Compile(q); err == nil {
					c.jq = append(c.jq, code)
					continue
				}
			}
			return nil, fmt.Errorf("spec.ignoreDifferences[%d].jqPathExpressions[%d]: %q is not a jq path expression: %v", i, j, expr, err)
		}
		ig.rules = append(ig.rules, c)
	}
	return ig, nil
}

// Matches reports whether any rule selects obj.
func (ig *Ignore) Matches(obj *unstructured.Unstructured) bool {
	if ig == nil {
		return false
	}
	for _, r := range ig.rules {
		if r.matches(obj) {
			return true
		}
	}
	return false
}

// paths returns the concrete paths (unescaped tokens) that the pointers and
// jq expressions of the rules selecting sel name in obj, without
// duplicates; only paths obj has.
func (ig *Ignore) paths(sel, obj *unstructured.Unstructured) [][]string {
	if ig == nil || obj == nil {
		return nil
	}
	var (
		out  [][]string
		seen = map[string]bool{}
	)
	add := func(tokens []string) {
		if _, ok := lookup(obj.Object, tokens); !ok {
			return
		}
		if k := pointer(tokens); !seen[k] {
			seen[k] = true
			out = append(out, tokens)
		}
	}
	var doc any
	for _, r := range ig.rules {
		if !r.matches(sel) {
			continue
		}
		for _, p := range r.pointers {
			add(p)
		}
		if len(r.jq) > 0 && doc == nil {
			doc = jsonDoc(obj.Object)
		}
		for _, code := range r.jq {
			for _, tokens := range jqPaths(code, doc) {
				add(tokens)
			}
		}
	}
	return out
}

// managers returns the managers the rules selecting obj name.
func (ig *Ignore) managers(obj *unstructured.Unstructured) map[string]bool {
	out := map[string]bool{}
	if ig == nil {
		return out
	}
	for _, r := range ig.rules {
		if r.matches(obj) {
			for _, m := range r.Managers {
				out[m] = true
			}
		}
	}
	return out
}

// Strip returns a copy of obj without the fields the pointers and jq
// expressions of the rules selecting it name: what git declares that tend
// manages. Containers emptied by the removal are removed too.
func (ig *Ignore) Strip(obj *unstructured.Unstructured) *unstructured.Unstructured {
	out := obj.DeepCopy()
	for _, tokens := range ig.paths(obj, obj) {
		out.Object, _ = removeTokens(out.Object, tokens).(map[string]any)
	}
	return out
}

// ForApply returns what a sync applies for desired given live (nil when
// the object does not exist yet), and the fields left to others as JSON
// pointers, also recorded in livestate.IgnoredFieldsAnnotation on the
// result: each ignored field takes live's value, or is left out when live
// lacks it; fields the rules' managers own in live are left out. live must
// be the object as the API server returns it (with every managedFields
// entry and real Secret values), not a cached copy.
func (ig *Ignore) ForApply(desired, live *unstructured.Unstructured) (*unstructured.Unstructured, []string, error) {
	out := desired.DeepCopy()
	if !ig.Matches(desired) {
		return out, nil, nil
	}
	if live != nil {
		for _, tokens := range append(ig.paths(desired, desired), ig.paths(desired, live)...) {
			if v, ok := lookup(live.Object, tokens); ok {
				out.Object = setTokens(out.Object, tokens, runtime.DeepCopyJSONValue(v))
			} else {
				out.Object, _ = removeTokens(out.Object, tokens).(map[string]any)
			}
		}
		if managers := ig.managers(desired); len(managers) > 0 {
			set, err := managedSet(live, func(manager, _ string) bool { return managers[manager] })
			if err != nil {
				return nil, nil, fmt.Errorf("ignore rules for %s: %w", describe(live), err)
			}
			if set != nil {
				// Never remove identity; managers do not own it, but be certain.
				set = set.Difference(fieldpath.NewSet(
					fieldpath.MakePathOrDie("apiVersion"),
					fieldpath.MakePathOrDie("kind"),
					fieldpath.MakePathOrDie("metadata", "name"),
					fieldpath.MakePathOrDie("metadata", "namespace"),
				))
				out.Object, _ = pruneOwned(out.Object, set).(map[string]any)
			}
		}
	}
	var ptrs []string
	for _, tokens := range ig.paths(desired, out) {
		ptrs = append(ptrs, pointer(tokens))
	}
	sort.Strings(ptrs)
	ann := out.GetAnnotations()
	if len(ptrs) == 0 {
		delete(ann, livestate.IgnoredFieldsAnnotation)
	} else {
		if ann == nil {
			ann = map[string]string{}
		}
		b, _ := json.Marshal(ptrs)
		ann[livestate.IgnoredFieldsAnnotation] = string(b)
	}
	out.SetAnnotations(ann)
	return out, ptrs, nil
}

// ApplyIgnoreRules compiles rules and returns ForApply's object.
func ApplyIgnoreRules(desired, live *unstructured.Unstructured, rules []IgnoreRule) (*unstructured.Unstructured, error) {
	if desired == nil {
		return nil, errors.New("apply ignore rules: no desired object")
	}
	ig, err := NewIgnore(rules)
	if err != nil {
		return nil, err
	}
	out, _, err := ig.ForApply(desired, live)
	return out, err
}

// jsonDoc converts an unstructured object into the types gojq takes.
func jsonDoc(obj map[string]any) any {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil
	}
	var doc any
	if json.Unmarshal(b, &doc) != nil {
		return nil
	}
	return doc
}

// jqPaths runs a compiled path(...) query on doc and returns the paths it
// yields; a runtime error ends the paths (the expression selects nothing
// more in this object).
func jqPaths(code *gojq.Code, doc any) [][]string {
	var out [][]string
	iter := code.Run(doc)
	for {
		v, ok := iter.Next()
		if !ok {
			return out
		}
		if _, isErr := v.(error); isErr {
			return out
		}
		p, ok := v.([]any)
		if !ok || len(p) == 0 {
			continue
		}
		tokens := make([]string, 0, len(p))
		for _, el := range p {
			switch e := el.(type) {
			case string:
				tokens = append(tokens, e)
			case int:
				tokens = append(tokens, strconv.Itoa(e))
			case float64:
				tokens = append(tokens, strconv.Itoa(int(e)))
			default:
				tokens = nil
			}
			if tokens == nil {
				break
			}
		}
		if tokens != nil && !isProtected(tokens) {
			out = append(out, tokens)
		}
	}
}

// pointer encodes tokens as an RFC 6901 JSON pointer.
func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

// lookup returns the value at tokens in node.
func lookup(node any, tokens []string) (any, bool) {
	for _, tok := range tokens {
		switch n := node.(type) {
		case map[string]any:
			v, ok := n[tok]
			if !ok {
				return nil, false
			}
			node = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(n) {
				return nil, false
			}
			node = n[i]
		default:
			return nil, false
		}
	}
	return node, true
}

// setTokens sets the value at tokens in obj, creating maps on the way; a
// list index obj does not have is left alone.
func setTokens(obj map[string]any, tokens []string, v any) map[string]any {
	var node any = obj
	for i, tok := range tokens {
		last := i == len(tokens)-1
		switch n := node.(type) {
		case map[string]any:
			if last {
				n[tok] = v
				return obj
			}
			next, ok := n[tok]
			if !ok || next == nil {
				if _, err := strconv.Atoi(tokens[i+1]); err == nil {
					return obj // a list desired lacks: nothing to set
				}
				next = map[string]any{}
				n[tok] = next
			}
			node = next
		case []any:
			j, err := strconv.Atoi(tok)
			if err != nil || j < 0 || j >= len(n) {
				return obj
			}
			if last {
				n[j] = v
				return obj
			}
			node = n[j]
		default:
			return obj
		}
	}
	return obj
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
	if isProtected(tokens) {
		return nil, fmt.Errorf("JSON pointer %q names the object's identity, which cannot be ignored", p)
	}
	return tokens, nil
}

func isProtected(tokens []string) bool {
	for _, pr := range protected {
		if slices.Equal(tokens, pr) {
			return true
		}
	}
	return false
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
