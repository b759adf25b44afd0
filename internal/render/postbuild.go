package render

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/fluxcd/pkg/envsubst"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// SubstituteDisabled, as an annotation or label with the value "disabled",
// leaves an object out of PostBuild substitution, as in Flux.
const SubstituteDisabled = "kustomize.toolkit.fluxcd.io/substitute"

// PostBuild substitutes ${name} in rendered objects with Flux's envsubst
// rules (fluxcd/pkg/envsubst: ${name:=default}, ${name:position},
// ${name/from/to}, ...), after any overlay and before namespaces are
// filled in.
type PostBuild struct {
	// Vars are the variables by name (values from Secrets only enter the
	// render cache's key as a hash).
	Vars map[string]string `json:",omitempty"`
	// Always substitutes even with no variable defined (for defaults);
	// otherwise nothing is substituted then, as Flux's WithVariables.
	Always bool `json:",omitempty"`
	// Strict fails on a variable without a default that is not defined;
	// otherwise it becomes the empty string.
	Strict bool `json:",omitempty"`
}

// substitute applies pb to objs, replacing each changed object.
func substitute(objs []*unstructured.Unstructured, pb *PostBuild) ([]*unstructured.Unstructured, error) {
	if pb == nil || (len(pb.Vars) == 0 && !pb.Always) {
		return objs, nil
	}
	lookup := func(name string) (string, bool) {
		v, ok := pb.Vars[name]
		return v, ok || !pb.Strict
	}
	for i, o := range objs {
		if o.GetAnnotations()[SubstituteDisabled] == "disabled" || o.GetLabels()[SubstituteDisabled] == "disabled" {
			continue
		}
		doc, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", describe(o), err)
		}
		out, err := envsubst.Eval(string(doc), lookup)
		if err != nil {
			return nil, fmt.Errorf("%s: spec.postBuild substitution: %w", describe(o), err)
		}
		if out == string(doc) {
			continue
		}
		m := map[string]any{}
		if err := yaml.Unmarshal([]byte(out), &m); err != nil {
			// A parser error may quote the text, and so a value from a
			// Secret: values are masked.
			return nil, fmt.Errorf("%s: after spec.postBuild substitution it is not valid YAML (quote values that hold YAML syntax): %s", describe(o), maskValues(err.Error(), pb.Vars))
		}
		keepStrings(o.Object, m, "")
		objs[i] = &unstructured.Unstructured{Object: m}
	}
	return objs, nil
}

// keepStrings undoes what substituting a whole document does to fields
// that only hold strings: "${port}" in a ConfigMap's data becomes 8080,
// a number, once substituted. Flux keeps the source's quotes; a render
// has no quotes left, so values that were strings stay strings where
// Kubernetes wants strings (labels, annotations, ConfigMap and Secret
// data, env values, args and command), and may become numbers or
// booleans elsewhere (replicas: ${replicas}), as in Flux.
func keepStrings(orig, subst any, key string) any {
	switch o := orig.(type) {
	case map[string]any:
		n, ok := subst.(map[string]any)
		if !ok {
			return subst
		}
		for k, v := range n {
			if ov, ok := o[k]; ok {
				n[k] = keepStrings(ov, v, k)
			}
		}
		if key == "labels" || key == "annotations" || key == "data" || key == "stringData" {
			for k, v := range n {
				if _, was := o[k].(string); was {
					n[k] = scalarString(v)
				}
			}
		}
		if _, was := o["value"].(string); was {
			n["value"] = scalarString(n["value"])
		}
		return n
	case []any:
		n, ok := subst.([]any)
		if !ok || len(n) != len(o) {
			return subst
		}
		for i := range n {
			n[i] = keepStrings(o[i], n[i], "")
			if _, was := o[i].(string); was && (key == "args" || key == "command") {
				n[i] = scalarString(n[i])
			}
		}
		return n
	}
	return subst
}

// scalarString turns a number, boolean or null back into the string it
// was written as.
func scalarString(v any) any {
	switch x := v.(type) {
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case int64, bool:
		return fmt.Sprint(x)
	}
	return v
}

// maskValues replaces in msg every variable value of 3 or more characters
// (shorter ones would mask ordinary words) with "***".
func maskValues(msg string, vars map[string]string) string {
	for _, v := range vars {
		if len(v) >= 3 {
			msg = strings.ReplaceAll(msg, v, "***")
		}
	}
	return msg
}
