package render

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The metadata of a SOPS document (its "sops" entry): where each format
// keeps it, and the fields decryption needs.

// extractNested removes the "sops" entries of the branches and returns the
// first branch's as plain Go values. belowTop means its values are
// flattened (INI), with newlines escaped.
func extractNested(branches []sopsBranch, belowTop bool) ([]sopsBranch, map[string]any, error) {
	var meta sopsBranch
	found := false
	for bi, br := range branches {
		out := br[:0:0]
		for _, it := range br {
			if it.key != "sops" {
				out = append(out, it)
				continue
			}
			if bi == 0 {
				if found {
					return nil, nil, errors.New("more than one sops entry")
				}
				m, ok := it.value.(sopsBranch)
				if !ok {
					return nil, nil, errors.New("the sops entry is not a mapping")
				}
				meta, found = m, true
			}
		}
		branches[bi] = out
	}
	if !found {
		return nil, nil, errors.New("no sops metadata")
	}
	if belowTop {
		for i, it := range meta {
			if s, ok := it.value.(string); ok {
				meta[i].value = strings.ReplaceAll(s, `\n`, "\n")
			}
		}
		m, err := unflatten(meta)
		return branches, m, err
	}
	return branches, plainValue(meta).(map[string]any), nil
}

// extractPrefixed removes the sops_-prefixed entries of the first branch
// (dotenv) and returns them unflattened.
func extractPrefixed(branches []sopsBranch) ([]sopsBranch, map[string]any, error) {
	if len(branches) == 0 {
		return nil, nil, errors.New("no sops metadata")
	}
	var meta sopsBranch
	out := branches[0][:0:0]
	for _, it := range branches[0] {
		if k, ok := it.key.(string); ok && strings.HasPrefix(k, "sops_") {
			meta = append(meta, sopsItem{key: k[len("sops_"):], value: it.value})
			continue
		}
		out = append(out, it)
	}
	if meta == nil {
		return nil, nil, errors.New("no sops metadata")
	}
	branches[0] = out
	m, err := unflatten(meta)
	return branches, m, err
}

// plainValue converts a tree value to maps and slices, dropping comments.
func plainValue(v any) any {
	switch v := v.(type) {
	case sopsBranch:
		m := make(map[string]any, len(v))
		for _, it := range v {
			if k, ok := it.key.(string); ok {
				m[k] = plainValue(it.value)
			}
		}
		return m
	case []any:
		out := make([]any, 0, len(v))
		for _, e := range v {
			if _, ok := e.(sopsComment); !ok {
				out = append(out, plainValue(e))
			}
		}
		return out
	default:
		return v
	}
}

// unflatten rebuilds metadata flattened into keys like
// "age__list_0__map_recipient" (sops's stores/flatten.go).
func unflatten(items sopsBranch) (map[string]any, error) {
	type node struct {
		value   any
		set     bool
		keys    map[string]*node
		indices map[int]*node
	}
	root := &node{}
	for _, it := range items {
		key, ok := it.key.(string)
		if !ok {
			continue
		}
		n := root
		for _, tok := range flatTokens(key) {
			var next *node
			if tok.isIndex {
				if n.indices == nil {
					n.indices = map[int]*node{}
				}
				if next = n.indices[tok.index]; next == nil {
					next = &node{}
					n.indices[tok.index] = next
				}
			} else {
				if n.keys == nil {
					n.keys = map[string]*node{}
				}
				if next = n.keys[tok.key]; next == nil {
					next = &node{}
					n.keys[tok.key] = next
				}
			}
			n = next
		}
		if n.set {
			return nil, fmt.Errorf("duplicate metadata key %q", key)
		}
		n.value, n.set = it.value, true
	}
	var convert func(n *node) (any, error)
	convert = func(n *node) (any, error) {
		switch {
		case n.set:
			return n.value, nil
		case len(n.keys) > 0:
			m := make(map[string]any, len(n.keys))
			for k, c := range n.keys {
				v, err := convert(c)
				if err != nil {
					return nil, err
				}
				m[k] = v
			}
			return m, nil
		case len(n.indices) > 0:
			l := make([]any, len(n.indices))
			for i, c := range n.indices {
				if i < 0 || i >= len(l) {
					return nil, errors.New("incomplete list in metadata")
				}
				v, err := convert(c)
				if err != nil {
					return nil, err
				}
				l[i] = v
			}
			return l, nil
		}
		return map[string]any{}, nil
	}
	v, err := convert(root)
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	return m, nil
}

type flatToken struct {
	key     string
	index   int
	isIndex bool
}

func flatTokens(key string) []flatToken {
	const mapSep, listSep = "__map_", "__list_"
	var out []flatToken
	cur, isIndex := "", false
	finish := func() {
		if isIndex {
			i, _ := strconv.Atoi(cur)
			out = append(out, flatToken{index: i, isIndex: true})
		} else {
			out = append(out, flatToken{key: cur})
		}
	}
	for i := 0; i < len(key); {
		switch {
		case strings.HasPrefix(key[i:], mapSep):
			finish()
			cur, isIndex = "", false
			i += len(mapSep)
		case strings.HasPrefix(key[i:], listSep):
			finish()
			cur, isIndex = "", true
			i += len(listSep)
		default:
			cur += key[i : i+1]
			i++
		}
	}
	finish()
	return out
}

// parseSOPSMetadata reads the metadata fields decryption needs, as weakly
// typed as sops reads them.
func parseSOPSMetadata(m map[string]any) (sopsMetadata, error) {
	str := func(m map[string]any, k string) string { return valueString(m[k]) }
	md := sopsMetadata{
		mac:                     str(m, "mac"),
		unencryptedSuffix:       str(m, "unencrypted_suffix"),
		encryptedSuffix:         str(m, "encrypted_suffix"),
		unencryptedRegex:        str(m, "unencrypted_regex"),
		encryptedRegex:          str(m, "encrypted_regex"),
		unencryptedCommentRegex: str(m, "unencrypted_comment_regex"),
		encryptedCommentRegex:   str(m, "encrypted_comment_regex"),
	}
	lm, err := time.Parse(time.RFC3339, str(m, "lastmodified"))
	if err != nil {
		return md, fmt.Errorf("lastmodified: %w", err)
	}
	md.lastModified = lm.Format(time.RFC3339)
	if v, ok := m["mac_only_encrypted"]; ok {
		md.macOnlyEncrypted, _ = strconv.ParseBool(valueString(v))
	}
	if v, ok := m["shamir_threshold"]; ok {
		md.keys.Threshold, _ = strconv.Atoi(valueString(v))
	}
	rules := 0
	for _, r := range []string{md.unencryptedSuffix, md.encryptedSuffix, md.unencryptedRegex, md.encryptedRegex, md.unencryptedCommentRegex, md.encryptedCommentRegex} {
		if r != "" {
			rules++
		}
	}
	switch {
	case rules > 1:
		return md, errors.New("more than one of encrypted_suffix, unencrypted_suffix, encrypted_regex, unencrypted_regex, encrypted_comment_regex, unencrypted_comment_regex")
	case rules == 0:
		md.unencryptedSuffix = "_unencrypted"
	}
	if top := keyGroupFrom(m); len(top) > 0 {
		md.keys.Groups = [][]sopsMasterKey{top}
	} else {
		groups, _ := m["key_groups"].([]any)
		for _, g := range groups {
			gm, _ := g.(map[string]any)
			md.keys.Groups = append(md.keys.Groups, keyGroupFrom(gm))
		}
	}
	if len(md.keys.Groups) == 0 {
		return md, errors.New("no keys found in the file")
	}
	return md, nil
}

// keyGroupFrom reads the master keys listed in m (a key group, or the
// metadata itself for files with a single group).
func keyGroupFrom(m map[string]any) []sopsMasterKey {
	// For each key source, the field holding the encrypted data key's
	// recipient, and the fields that name it.
	sources := []struct{ typ, list string }{
		{"kms", "kms"}, {"pgp", "pgp"}, {"gcp_kms", "gcp_kms"}, {"hckms", "hckms"},
		{"azure_kv", "azure_kv"}, {"hc_vault", "hc_vault"}, {"age", "age"},
	}
	var out []sopsMasterKey
	for _, s := range sources {
		l, _ := m[s.list].([]any)
		for _, e := range l {
			km, _ := e.(map[string]any)
			k := sopsMasterKey{Type: s.typ, EncryptedKey: valueString(km["enc"])}
			switch s.typ {
			case "age":
				k.ID = valueString(km["recipient"])
			case "pgp":
				k.ID = valueString(km["fp"])
			case "kms":
				k.ID = valueString(km["arn"])
			case "gcp_kms":
				k.ID = valueString(km["resource_id"])
			case "hckms":
				k.ID = valueString(km["key_id"])
			case "azure_kv":
				k.ID = valueString(km["vault_url"]) + "/keys/" + valueString(km["name"])
			case "hc_vault":
				k.ID = valueString(km["vault_address"]) + "/v1/" + valueString(km["engine_path"]) + "/keys/" + valueString(km["key_name"])
			}
			out = append(out, k)
		}
	}
	return out
}
