package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"regexp"
	"strings"
	"time"

	yamlv2 "go.yaml.in/yaml/v2"
	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// decodeManifests parses the manifests in one file: a JSON object, array of
// objects or stream of objects for .json files, a stream of YAML documents
// otherwise. Documents with neither apiVersion nor kind are not manifests
// and are skipped, and so are kustomize's own configuration kinds; lists
// (kind List, or any *List with items) are expanded. Errors name p and,
// for YAML, the line.
func decodeManifests(p string, b []byte) ([]*unstructured.Unstructured, error) {
	if strings.EqualFold(path.Ext(p), ".json") {
		return decodeJSONManifests(p, b)
	}
	return decodeYAMLManifests(p, b)
}

func decodeYAMLManifests(p string, b []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, yamlError(p, yamlLineFix(b, err))
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		for root.Kind == yaml.AliasNode && root.Alias != nil {
			root = root.Alias
		}
		if root.Kind != yaml.MappingNode {
			continue // a scalar or a list: not a manifest
		}
		var v any
		if err := root.Decode(&v); err != nil {
			return nil, yamlError(p, err)
		}
		nv, err := normalize(v)
		if err != nil {
			return nil, fmt.Errorf("%s: document at line %d: %w", p, root.Line, err)
		}
		m, _ := nv.(map[string]any)
		objs, err := toObjects(m, fmt.Sprintf("%s: document at line %d", p, root.Line))
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?(?:unmarshal errors:\s*)?line (\d+): (.*)$`)

// yamlLineFix returns the error YAML v2's parser gives for b when it fails
// too, else err. YAML v3 reports some scanner errors one line early (it
// uses the 0-based line of where the token started); v2 reports the line
// people look for.
func yamlLineFix(b []byte, err error) error {
	dec := yamlv2.NewDecoder(bytes.NewReader(b))
	for {
		var v any
		err2 := dec.Decode(&v)
		if errors.Is(err2, io.EOF) {
			return err
		}
		if err2 != nil {
			if yamlLine.MatchString(err2.Error()) {
				return err2
			}
			return err
		}
	}
}

// yamlError turns a YAML parser error into one naming the file and line.
func yamlError(p string, err error) error {
	msg := strings.TrimSpace(err.Error())
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("invalid YAML in %s, line %s: %s; fix the file", p, m[1], m[2])
	}
	return fmt.Errorf("invalid YAML in %s: %s; fix the file", p, strings.TrimPrefix(msg, "yaml: "))
}

func decodeJSONManifests(p string, b []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	for n := 1; ; n++ {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, jsonError(p, b, err)
		}
		nv, err := normalize(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		switch nv := nv.(type) {
		case map[string]any:
			objs, err := toObjects(nv, fmt.Sprintf("%s: value %d", p, n))
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
		case []any:
			for i, item := range nv {
				m, ok := item.(map[string]any)
				if !ok {
					continue
				}
				objs, err := toObjects(m, fmt.Sprintf("%s: array item %d", p, i+1))
				if err != nil {
					return nil, err
				}
				out = append(out, objs...)
			}
		}
	}
}

// jsonError names the file and the line of a JSON error's offset.
func jsonError(p string, b []byte, err error) error {
	var off int64 = -1
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		off = syn.Offset
	case errors.As(err, &typ):
		off = typ.Offset
	case errors.Is(err, io.ErrUnexpectedEOF):
		off = int64(len(b))
	}
	if off >= 0 && off <= int64(len(b)) {
		line := bytes.Count(b[:off], []byte("\n")) + 1
		return fmt.Errorf("invalid JSON in %s, line %d: %v; fix the file", p, line, err)
	}
	return fmt.Errorf("invalid JSON in %s: %v; fix the file", p, err)
}

// toObjects turns one decoded document into objects: none when it is not a
// manifest, its items when it is a list. where names the document in errors.
func toObjects(m map[string]any, where string) ([]*unstructured.Unstructured, error) {
	if m == nil {
		return nil, nil
	}
	av, hasAV := m["apiVersion"]
	kind, hasKind := m["kind"]
	switch {
	case !hasAV && !hasKind:
		return nil, nil // values file, tool configuration: not a manifest
	case !hasAV:
		return nil, fmt.Errorf("%s has kind %v but no apiVersion; add apiVersion", where, kind)
	case !hasKind:
		return nil, fmt.Errorf("%s has apiVersion %v but no kind; add kind", where, av)
	}
	avs, ok1 := av.(string)
	ks, ok2 := kind.(string)
	if !ok1 || !ok2 || avs == "" || ks == "" {
		return nil, fmt.Errorf("%s: apiVersion and kind must be non-empty strings", where)
	}
	if strings.HasPrefix(avs, "kustomize.config.k8s.io/") {
		return nil, nil // a kustomization, not an API object
	}
	if items, isList := m["items"].([]any); isList && (ks == "List" || strings.HasSuffix(ks, "List")) {
		var out []*unstructured.Unstructured
		for i, item := range items {
			im, ok := item.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: %s item %d is not an object", where, ks, i+1)
			}
			if _, ok := im["kind"]; !ok {
				return nil, fmt.Errorf("%s: %s item %d has no kind; add apiVersion and kind", where, ks, i+1)
			}
			objs, err := toObjects(im, fmt.Sprintf("%s, %s item %d", where, ks, i+1))
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
		}
		return out, nil
	}
	return []*unstructured.Unstructured{{Object: m}}, nil
}

// normalize converts decoded YAML or JSON into the value types unstructured
// objects hold: map[string]any, []any, string, bool, int64, float64, nil.
func normalize(v any) (any, error) {
	switch v := v.(type) {
	case nil, string, bool, int64:
		return v, nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			// YAML's .nan and .inf: JSON, and so the API server, has neither.
			return nil, fmt.Errorf("%v is not a number an object can hold; quote it if it is meant as a string", v)
		}
		return v, nil
	case int:
		return int64(v), nil
	case int32:
		return int64(v), nil
	case uint64:
		if v <= 1<<63-1 {
			return int64(v), nil
		}
		return float64(v), nil
	case uint:
		return normalize(uint64(v))
	case float32:
		return normalize(float64(v))
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i, nil
		}
		f, err := v.Float64()
		if err != nil {
			return nil, fmt.Errorf("number %s: %w", v, err)
		}
		return f, nil
	case time.Time:
		return v.Format(time.RFC3339Nano), nil
	case []byte:
		return string(v), nil
	case map[string]any:
		for k, e := range v {
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			v[k] = n
		}
		return v, nil
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			m[fmt.Sprint(k)] = n
		}
		return m, nil
	case []any:
		for i, e := range v {
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			v[i] = n
		}
		return v, nil
	default:
		return nil, fmt.Errorf("unsupported value of type %T", v)
	}
}
