package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"gopkg.in/ini.v1"
)

// Each SOPS format is loaded into the same tree sops's store for it builds
// (same order, value types and comment placement, since all of them feed
// the MAC) and emitted back as plaintext in that format. Comments are not
// emitted: the plaintext is only read by renderers.

// loadSOPS loads an encrypted document of the given format.
func loadSOPS(format sopsFormat, b []byte) (*sopsDoc, error) {
	var (
		branches []sopsBranch
		metaSrc  map[string]any
		err      error
	)
	switch format {
	case sopsYAML:
		if branches, err = loadYAMLTree(b); err != nil {
			return nil, err
		}
		branches, metaSrc, err = extractNested(branches, false)
	case sopsJSON, sopsBinary:
		var br sopsBranch
		if br, err = loadJSONTree(b); err != nil {
			return nil, err
		}
		branches, metaSrc, err = extractNested([]sopsBranch{br}, false)
	case sopsINI:
		if branches, err = loadINITree(b); err != nil {
			return nil, err
		}
		branches, metaSrc, err = extractNested(branches, true)
	case sopsDotenv:
		if branches, err = loadDotenvTree(b); err != nil {
			return nil, err
		}
		branches, metaSrc, err = extractPrefixed(branches)
	default:
		return nil, fmt.Errorf("unsupported format %v", format)
	}
	if err != nil {
		return nil, err
	}
	meta, err := parseSOPSMetadata(metaSrc)
	if err != nil {
		return nil, fmt.Errorf("sops metadata: %w", err)
	}
	return &sopsDoc{branches: branches, meta: meta}, nil
}

// emitSOPS writes decrypted branches in the given format.
func emitSOPS(format sopsFormat, branches []sopsBranch) ([]byte, error) {
	switch format {
	case sopsYAML:
		return emitYAML(branches)
	case sopsJSON:
		var buf bytes.Buffer
		if err := writeJSON(&buf, branches[0]); err != nil {
			return nil, err
		}
		var out bytes.Buffer
		if err := json.Indent(&out, buf.Bytes(), "", "  "); err != nil {
			return nil, err
		}
		out.WriteByte('\n')
		return out.Bytes(), nil
	case sopsBinary:
		for _, it := range branches[0] {
			if it.key == "data" {
				if s, ok := it.value.(string); ok {
					return []byte(s), nil
				}
			}
		}
		return nil, errors.New("binary SOPS document has no string data")
	case sopsDotenv:
		var buf bytes.Buffer
		for _, it := range branches[0] {
			key, ok := it.key.(string)
			if !ok {
				continue
			}
			fmt.Fprintf(&buf, "%s=%s\n", key, strings.ReplaceAll(valueString(it.value), "\n", `\n`))
		}
		return buf.Bytes(), nil
	case sopsINI:
		return emitINI(branches)
	}
	return nil, fmt.Errorf("unsupported format %v", format)
}

// valueString formats a scalar as sops's stores.ValToString.
func valueString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case float64:
		s := strconv.FormatFloat(v, 'G', -1, 64)
		if !strings.ContainsAny(s, ".E") {
			s = strconv.FormatFloat(v, 'f', 1, 64)
		}
		return s
	case bool:
		return strconv.FormatBool(v)
	case time.Time:
		return v.Format(time.RFC3339)
	case nil:
		return ""
	default:
		return fmt.Sprintf("%v", v)
	}
}

// --- YAML (sops's stores/yaml)

func loadYAMLTree(b []byte) ([]sopsBranch, error) {
	var out []sopsBranch
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("invalid YAML: %v", err)
		}
		br, err := yamlToBranch(&doc, nil, false)
		if err != nil {
			return nil, err
		}
		out = append(out, br)
	}
}

func yamlComments(comment string, inline bool, add func(sopsComment, bool)) {
	for _, line := range strings.Split(comment, "\n") {
		if line != "" {
			add(sopsComment{value: line[1:]}, inline)
		}
	}
}

func yamlToBranch(node *yaml.Node, branch sopsBranch, handled bool) (sopsBranch, error) {
	addComment := func(c sopsComment, _ bool) { branch = append(branch, sopsItem{key: c}) }
	if !handled {
		yamlComments(node.HeadComment, false, addComment)
		yamlComments(node.LineComment, false, addComment)
	}
	var err error
	switch node.Kind {
	case yaml.DocumentNode:
		for _, c := range node.Content {
			if branch, err = yamlToBranch(c, branch, false); err != nil {
				return nil, err
			}
		}
	case yaml.SequenceNode:
		return nil, errors.New("YAML documents that are sequences are not supported by sops")
	case yaml.MappingNode:
		for i := 0; i+1 < len(node.Content); i += 2 {
			key, value := node.Content[i], node.Content[i+1]
			yamlComments(key.HeadComment, false, addComment)
			yamlComments(key.LineComment, false, addComment)
			scalar := value.Kind == yaml.ScalarNode || value.Kind == yaml.AliasNode
			if scalar {
				yamlComments(value.HeadComment, false, addComment)
				yamlComments(value.LineComment, true, addComment)
			}
			var k any
			if err := key.Decode(&k); err != nil {
				return nil, err
			}
			v, err := yamlToValue(value, scalar)
			if err != nil {
				return nil, err
			}
			branch = append(branch, sopsItem{key: k, value: v})
			if scalar {
				yamlComments(value.FootComment, false, addComment)
			}
			yamlComments(key.FootComment, false, addComment)
		}
	case yaml.ScalarNode:
		if node.ShortTag() == "!!null" {
			return branch, nil
		}
		return nil, errors.New("YAML documents that are values are not supported by sops")
	case yaml.AliasNode:
		if branch, err = yamlToBranch(node.Alias, branch, false); err != nil {
			return nil, err
		}
	}
	if !handled {
		yamlComments(node.FootComment, false, addComment)
	}
	return branch, nil
}

func yamlToValue(node *yaml.Node, handled bool) (any, error) {
	switch node.Kind {
	case yaml.SequenceNode:
		var out []any
		add := func(c sopsComment, _ bool) { out = append(out, c) }
		if !handled {
			yamlComments(node.HeadComment, false, add)
			yamlComments(node.LineComment, false, add)
		}
		for _, item := range node.Content {
			yamlComments(item.HeadComment, false, add)
			yamlComments(item.LineComment, true, add)
			v, err := yamlToValue(item, true)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			yamlComments(item.FootComment, false, add)
		}
		if !handled {
			yamlComments(node.FootComment, false, add)
		}
		return out, nil
	case yaml.MappingNode:
		return yamlToBranch(node, sopsBranch{}, handled)
	case yaml.ScalarNode:
		var v any
		_ = node.Decode(&v) // as sops: an undecodable scalar is nil
		return v, nil
	case yaml.AliasNode:
		return yamlToValue(node.Alias, false)
	}
	return nil, nil
}

func emitYAML(branches []sopsBranch) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	for _, br := range branches {
		n, err := yamlNode(br)
		if err != nil {
			return nil, err
		}
		if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{n}}); err != nil {
			return nil, err
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func yamlNode(v any) (*yaml.Node, error) {
	switch v := v.(type) {
	case sopsBranch:
		n := &yaml.Node{Kind: yaml.MappingNode}
		for _, it := range v {
			if _, ok := it.key.(sopsComment); ok {
				continue
			}
			k, err := yamlNode(it.key)
			if err != nil {
				return nil, err
			}
			val, err := yamlNode(it.value)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, k, val)
		}
		return n, nil
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		for _, e := range v {
			if _, ok := e.(sopsComment); ok {
				continue
			}
			en, err := yamlNode(e)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, en)
		}
		return n, nil
	case []byte:
		return yamlNode(string(v))
	default:
		n := &yaml.Node{}
		if err := n.Encode(v); err != nil {
			return nil, err
		}
		return n, nil
	}
}

// --- JSON (sops's stores/json)

func loadJSONTree(b []byte) (sopsBranch, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return nil, errors.New("sops JSON documents are objects")
	}
	return jsonBranch(dec)
}

func jsonBranch(dec *json.Decoder) (sopsBranch, error) {
	var br sopsBranch
	for {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		if d, ok := t.(json.Delim); ok && d == '}' {
			return br, nil
		}
		key, ok := t.(string)
		if !ok {
			return nil, fmt.Errorf("expected an object key, found %v", t)
		}
		v, err := jsonValue(dec)
		if err != nil {
			return nil, err
		}
		br = append(br, sopsItem{key: key, value: v})
	}
}

func jsonValue(dec *json.Decoder) (any, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := t.(type) {
	case json.Delim:
		switch t {
		case '{':
			return jsonBranch(dec)
		case '[':
			out := []any{}
			for dec.More() {
				v, err := jsonValue(dec)
				if err != nil {
					return nil, err
				}
				out = append(out, v)
			}
			if _, err := dec.Token(); err != nil { // ']'
				return nil, err
			}
			return out, nil
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case json.Number:
		if i, err := t.Int64(); err == nil && i >= math.MinInt && i <= math.MaxInt {
			return int(i), nil
		}
		return t.Float64()
	default:
		return t, nil // string, bool, nil
	}
}

func writeJSON(buf *bytes.Buffer, v any) error {
	switch v := v.(type) {
	case sopsBranch:
		buf.WriteByte('{')
		first := true
		for _, it := range v {
			k, ok := it.key.(string)
			if !ok {
				continue
			}
			if !first {
				buf.WriteByte(',')
			}
			first = false
			kb, _ := json.Marshal(k)
			buf.Write(kb)
			buf.WriteByte(':')
			if err := writeJSON(buf, it.value); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case []any:
		buf.WriteByte('[')
		first := true
		for _, e := range v {
			if _, ok := e.(sopsComment); ok {
				continue
			}
			if !first {
				buf.WriteByte(',')
			}
			first = false
			if err := writeJSON(buf, e); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case []byte:
		return writeJSON(buf, string(v))
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		buf.Write(b)
	}
	return nil
}

// --- dotenv (sops's stores/dotenv)

func loadDotenvTree(b []byte) ([]sopsBranch, error) {
	var br sopsBranch
	for n, line := range bytes.Split(b, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if line[0] == '#' {
			br = append(br, sopsItem{key: sopsComment{value: string(line[1:])}})
			continue
		}
		k, v, ok := bytes.Cut(line, []byte("="))
		if !ok {
			return nil, fmt.Errorf("line %d is not KEY=VALUE", n+1)
		}
		br = append(br, sopsItem{key: string(k), value: strings.ReplaceAll(string(v), `\n`, "\n")})
	}
	return []sopsBranch{br}, nil
}

// --- INI (sops's stores/ini, with the same parser)

func loadINITree(b []byte) ([]sopsBranch, error) {
	f, err := ini.LoadSources(ini.LoadOptions{AllowNonUniqueSections: true}, b)
	if err != nil {
		return nil, fmt.Errorf("invalid INI: %v", err)
	}
	strip := func(c string) string {
		switch {
		case strings.HasPrefix(c, ";"):
			return strings.TrimLeft(c, "; ")
		case strings.HasPrefix(c, "#"):
			return strings.TrimLeft(c, "# ")
		}
		return c
	}
	var br sopsBranch
	for _, s := range f.Sections() {
		items := sopsBranch{}
		if s.Comment != "" {
			items = append(items, sopsItem{key: sopsComment{value: strip(s.Comment)}})
		}
		for _, k := range s.Keys() {
			items = append(items, sopsItem{key: k.Name(), value: k.Value()})
			if k.Comment != "" {
				items = append(items, sopsItem{key: sopsComment{value: strip(k.Comment)}})
			}
		}
		br = append(br, sopsItem{key: s.Name(), value: items})
	}
	return []sopsBranch{br}, nil
}

func emitINI(branches []sopsBranch) ([]byte, error) {
	f := ini.Empty(ini.LoadOptions{AllowNonUniqueSections: true})
	f.DeleteSection(ini.DefaultSection)
	for _, it := range branches[0] {
		name, ok := it.key.(string)
		if !ok {
			continue
		}
		sec, err := f.NewSection(name)
		if err != nil {
			return nil, err
		}
		items, _ := it.value.(sopsBranch)
		for _, kv := range items {
			k, ok := kv.key.(string)
			if !ok {
				continue
			}
			if _, err := sec.NewKey(k, valueString(kv.value)); err != nil {
				return nil, err
			}
		}
	}
	var buf bytes.Buffer
	if _, err := f.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
