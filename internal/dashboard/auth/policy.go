package auth

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// PolicyKey is the key of the ConfigMap (or the Helm value rendered into
// it) that holds the dashboard policy.
const PolicyKey = "policy.yaml"

// ParseGrants reads the dashboard policy from a ConfigMap's data: under
// PolicyKey, a YAML list of grants, each with groups and/or users, a role
// and optional namespace patterns:
//
//	data:
//	  policy.yaml: |
//	    - groups: [platform]
//	      role: admin
//	    - groups: [team-a]
//	      role: operator
//	      namespaces: ["team-a-*"]
//	    - groups: ["*"]
//	      role: viewer
//	    - users: [oncall@example.com]
//	      role: operator
//
// An error names the entry (1-based) and its line, and says what to fix.
// An empty list grants nothing: only the admin token signs in.
func ParseGrants(data map[string]string) ([]Grant, error) {
	text, ok := data[PolicyKey]
	if !ok {
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return nil, fmt.Errorf("dashboard policy: no %s key (found %s): put the list of grants under %s", PolicyKey, groupList(keys), PolicyKey)
	}
	grants, err := ParsePolicy([]byte(text))
	if err != nil {
		return nil, fmt.Errorf("dashboard policy %s: %w", PolicyKey, err)
	}
	return grants, nil
}

var policyFields = []string{"groups", "users", "role", "namespaces"}

// ParsePolicy reads a policy document: the YAML list ParseGrants reads
// under PolicyKey.
func ParsePolicy(doc []byte) ([]Grant, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, fmt.Errorf("not YAML: %w", err)
	}
	if root.Kind == 0 { // empty document
		return nil, nil
	}
	list := root.Content[0]
	if list.Kind == yaml.ScalarNode && list.Tag == "!!null" {
		return nil, nil
	}
	if list.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("line %d: want a list of grants ({groups, users, role, namespaces}), got a %s", list.Line, kindName(list))
	}
	grants := make([]Grant, 0, len(list.Content))
	for i, item := range list.Content {
		g, err := parseGrant(item)
		if err != nil {
			return nil, fmt.Errorf("entry %d (line %d): %w", i+1, item.Line, err)
		}
		grants = append(grants, g)
	}
	return grants, nil
}

func parseGrant(item *yaml.Node) (Grant, error) {
	if item.Kind != yaml.MappingNode {
		return Grant{}, fmt.Errorf("want a mapping with groups, users, role, namespaces, got a %s", kindName(item))
	}
	for i := 0; i+1 < len(item.Content); i += 2 {
		if k := item.Content[i].Value; !slices.Contains(policyFields, k) {
			return Grant{}, fmt.Errorf("unknown field %q: want %s", k, strings.Join(policyFields, ", "))
		}
	}
	var e struct {
		Groups     []string `yaml:"groups"`
		Users      []string `yaml:"users"`
		Role       string   `yaml:"role"`
		Namespaces []string `yaml:"namespaces"`
	}
	if err := item.Decode(&e); err != nil {
		return Grant{}, err
	}
	if len(e.Groups) == 0 && len(e.Users) == 0 {
		return Grant{}, errors.New("names no groups and no users: add groups (or users, by e-mail address)")
	}
	if slices.Contains(e.Groups, "") || slices.Contains(e.Users, "") {
		return Grant{}, errors.New("has an empty group or user name")
	}
	if e.Role == "" {
		return Grant{}, errors.New("has no role: add role: viewer, operator or admin")
	}
	role, err := ParseRole(e.Role)
	if err != nil {
		return Grant{}, err
	}
	for _, p := range e.Namespaces {
		if p == "" {
			return Grant{}, errors.New(`has an empty namespace pattern: leave namespaces out to cover every namespace`)
		}
		if _, err := path.Match(p, ""); err != nil {
			return Grant{}, fmt.Errorf("namespace pattern %q: %w (patterns are shell globs such as team-*)", p, err)
		}
	}
	return Grant{Groups: e.Groups, Users: e.Users, Role: role, Namespaces: e.Namespaces}, nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar " + fmt.Sprintf("%q", n.Value)
	}
	return "node"
}
