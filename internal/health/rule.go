package health

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Rule decides the health of one kind with CEL expressions, replacing the
// built-in check for that kind. Each expression sees the whole object as the
// variable `object` (a map, as in the object's JSON), and its top-level
// fields (apiVersion, kind, metadata, spec, status) under their own names,
// as Flux's healthCheckExprs see them; it must return a bool.
// They are tried in the order Degraded, Healthy, Progressing; the first that
// is true decides. When none is true the object is Progressing. Empty
// expressions are skipped, but a rule needs at least one.
type Rule struct {
	// Group is the API group of the kind: "" for the core group, "apps",
	// "example.com".
	Group string
	// Kind is the kind the rule applies to, e.g. "Widget".
	Kind string

	Degraded    string
	Healthy     string
	Progressing string

	// Message, when set, is a CEL expression returning the string shown to
	// people, e.g. `object.status.message`. It should read status fields
	// only. When empty, the message names the expression that decided.
	Message string
}

// costLimit bounds the work of one evaluation, so a rule cannot stall the
// checker; real rules cost a few hundred at most, and reaching the limit takes
// tens of milliseconds.
const costLimit = 100_000

// topLevel are the object's fields an expression may also name directly,
// as Flux's healthCheckExprs do (`status.conditions` for
// `object.status.conditions`).
var topLevel = []string{"apiVersion", "kind", "metadata", "spec", "status"}

// celEnv declares `object` and the top-level fields as dynamic values,
// with optional field access (object.?status.?phase) and the string
// extension functions.
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	opts := []cel.EnvOption{cel.Variable("object", cel.DynType), cel.OptionalTypes(), ext.Strings()}
	for _, f := range topLevel {
		opts = append(opts, cel.Variable(f, cel.DynType))
	}
	return cel.NewEnv(opts...)
})

// compiledRule is a Rule with its expressions compiled.
type compiledRule struct {
	name  string // e.g. "Widget.example.com", for messages
	exprs []compiledExpr
	// message is nil when the rule has no Message expression.
	message cel.Program
}

type compiledExpr struct {
	state  State
	source string
	prg    cel.Program
}

// NewChecker returns a Checker that uses rules in place of the built-in
// checks of their kinds. It compiles every expression once, and reports
// every problem with the kind of the rule and the CEL error.
func NewChecker(rules []Rule) (*Checker, error) {
	env, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("health rules: create CEL environment: %w", err)
	}
	c := &Checker{rules: make(map[schema.GroupKind]*compiledRule, len(rules))}
	var errs []error
	for _, r := range rules {
		cr, err := compileRule(env, r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		gk := schema.GroupKind{Group: r.Group, Kind: r.Kind}
		if c.rules[gk] != nil {
			errs = append(errs, fmt.Errorf("health rule for %s: more than one rule for this kind", cr.name))
			continue
		}
		c.rules[gk] = cr
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

func compileRule(env *cel.Env, r Rule) (*compiledRule, error) {
	gk := schema.GroupKind{Group: r.Group, Kind: r.Kind}
	name := gk.String()
	switch {
	case r.Kind == "":
		return nil, fmt.Errorf("health rule for group %q: kind is empty", r.Group)
	case gk == schema.GroupKind{Kind: "Secret"}:
		return nil, fmt.Errorf("health rule for Secret: not allowed, Secrets are always Healthy and their data never reaches a message")
	case r.Degraded == "" && r.Healthy == "" && r.Progressing == "":
		return nil, fmt.Errorf("health rule for %s: set at least one of degraded, healthy or progressing", name)
	}
	cr := &compiledRule{name: name}
	var errs []error
	for _, e := range []struct {
		state  State
		source string
	}{{Degraded, r.Degraded}, {Healthy, r.Healthy}, {Progressing, r.Progressing}} {
		if e.source == "" {
			continue
		}
		prg, err := compileExpr(env, e.source, cel.BoolType)
		if err != nil {
			errs = append(errs, fmt.Errorf("health rule for %s: %s expression: %w", name, lower(e.state), err))
			continue
		}
		cr.exprs = append(cr.exprs, compiledExpr{state: e.state, source: e.source, prg: prg})
	}
	if r.Message != "" {
		prg, err := compileExpr(env, r.Message, cel.StringType)
		if err != nil {
			errs = append(errs, fmt.Errorf("health rule for %s: message expression: %w", name, err))
		}
		cr.message = prg
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cr, nil
}

// compileExpr compiles src and checks that it can return want: exactly
// want, or dyn (most field accesses on `object` are dyn), which is then
// checked at evaluation.
func compileExpr(env *cel.Env, src string, want *cel.Type) (cel.Program, error) {
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if out := ast.OutputType(); !out.IsExactType(want) && !out.IsExactType(cel.DynType) {
		return nil, fmt.Errorf("%q returns %s, want %s", src, out, want)
	}
	return env.Program(ast, cel.CostLimit(costLimit))
}

// check evaluates the rule against obj. An evaluation error, or a result of
// the wrong type, makes the object Unknown with a message naming the rule.
func (r *compiledRule) check(obj *unstructured.Unstructured) status {
	vars := map[string]any{"object": obj.Object}
	for _, f := range topLevel {
		// A missing field is not bound: naming it is an evaluation
		// error, as object.status is on an object without status.
		if v, ok := obj.Object[f]; ok {
			vars[f] = v
		}
	}
	s := status{Progressing, "NoRuleMatched", fmt.Sprintf("no expression of the health rule for %s is true", r.name)}
	for _, e := range r.exprs {
		out, _, err := e.prg.Eval(vars)
		if err != nil {
			return r.failed(lower(e.state)+" expression", err)
		}
		matched, ok := out.Value().(bool)
		if !ok {
			return r.failed(lower(e.state)+" expression", fmt.Errorf("returned %s, want bool", out.Type()))
		}
		if matched {
			s = status{e.state, "HealthRule", fmt.Sprintf("health rule for %s: %s: %s", r.name, lower(e.state), e.source)}
			break
		}
	}
	if r.message == nil {
		return s
	}
	out, _, err := r.message.Eval(vars)
	if err != nil {
		return r.failed("message expression", err)
	}
	msg, ok := out.Value().(string)
	if !ok {
		return r.failed("message expression", fmt.Errorf("returned %s, want string", out.Type()))
	}
	if msg != "" {
		s.detail = msg
	}
	return s
}

func (r *compiledRule) failed(what string, err error) status {
	return status{Unknown, ReasonRuleError, fmt.Sprintf("health rule for %s: %s: %v", r.name, what, err)}
}

func lower(s State) string { return strings.ToLower(string(s)) }
