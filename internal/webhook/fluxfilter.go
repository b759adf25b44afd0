package webhook

import (
	"encoding/json"
	"fmt"
	"sync"

	notifyv1 "github.com/fluxcd/notification-controller/api/v1"
	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Flux's Receivers filter the resources a delivery annotates with CEL
// (Flux 2.3+): spec.resourceFilter, and each resource's own filter, are
// boolean expressions over the resource (res) and the delivery's JSON
// body (req). A resource is annotated when every expression set is true.

// filterCostLimit bounds one evaluation, as internal/health's rules are.
const filterCostLimit = 100_000

// filterEnv is the CEL environment of Receiver filters: res and req are
// dynamic; the string, list, set, encoder and binding extensions Flux
// offers are there.
var filterEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("res", cel.DynType),
		cel.Variable("req", cel.DynType),
		cel.OptionalTypes(),
		cel.CrossTypeNumericComparisons(true),
		cel.DefaultUTCTimeZone(true),
		ext.Strings(), ext.Lists(), ext.Sets(), ext.Encoders(), ext.Bindings(),
	)
})

// filters caches compiled expressions by source.
var filters sync.Map // string -> cel.Program

// compileFilter compiles a Receiver filter, which must return a bool.
func compileFilter(src string) (cel.Program, error) {
	if p, ok := filters.Load(src); ok {
		return p.(cel.Program), nil
	}
	env, err := filterEnv()
	if err != nil {
		return nil, err
	}
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if out := ast.OutputType(); !out.IsExactType(cel.BoolType) && !out.IsExactType(cel.DynType) {
		return nil, fmt.Errorf("returns %s, want bool", out)
	}
	prg, err := env.Program(ast, cel.CostLimit(filterCostLimit))
	if err != nil {
		return nil, err
	}
	filters.Store(src, prg)
	return prg, nil
}

// receiverFilters checks every CEL expression of rcv, naming the field of
// the first one that does not compile.
func receiverFilters(rcv *notifyv1.Receiver) error {
	if f := rcv.Spec.ResourceFilter; f != "" {
		if _, err := compileFilter(f); err != nil {
			return fmt.Errorf("spec.resourceFilter %q: %w", f, err)
		}
	}
	for i, r := range rcv.Spec.Resources {
		if r.Filter != "" {
			if _, err := compileFilter(r.Filter); err != nil {
				return fmt.Errorf("spec.resources[%d].filter %q: %w", i, r.Filter, err)
			}
		}
	}
	return nil
}

// requestVar is a delivery's body as CEL's req: its JSON, or an empty map
// when the body is not a JSON object.
func requestVar(body []byte) map[string]any {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return map[string]any{}
	}
	return m
}

// accepts evaluates the expressions (empty ones are skipped) for obj;
// all must be true.
func accepts(exprs []string, obj *unstructured.Unstructured, req map[string]any) (bool, error) {
	for _, src := range exprs {
		if src == "" {
			continue
		}
		prg, err := compileFilter(src)
		if err != nil {
			return false, err
		}
		out, _, err := prg.Eval(map[string]any{"res": obj.Object, "req": req})
		if err != nil {
			return false, fmt.Errorf("%q: %w", src, err)
		}
		ok, isBool := out.Value().(bool)
		if !isBool {
			return false, fmt.Errorf("%q returned %v, want true or false", src, out.Value())
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}
