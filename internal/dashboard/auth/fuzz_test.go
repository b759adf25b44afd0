package auth

import (
	"reflect"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParsePolicy reads a dashboard policy document (the policy.yaml key
// of the dashboard's ConfigMap). It never panics; what it accepts are
// grants that name someone and a role, and writing them back out as a
// policy reads as the same grants. `make fuzz-smoke` runs it briefly; see
// docs/development.md for longer runs.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(`- groups: [platform]
  role: admin
- groups: [team-a]
  role: operator
  namespaces: ["team-a-*"]
- groups: ["*"]
  role: viewer
- users: [oncall@example.com]
  role: operator
`))
	f.Add([]byte("# nothing granted yet\n"))
	f.Add([]byte("[]\n"))
	f.Add([]byte("- {groups: [a], role: Admin, namespaces: ['[']}\n"))
	f.Add([]byte("- groups: &g [a, b]\n  role: viewer\n- groups: *g\n  role: admin\n"))
	f.Add([]byte("---\n- groups: [a]\n  role: viewer\n---\n- users: [b]\n  role: admin\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		grants, err := ParsePolicy(doc)
		if err != nil {
			return
		}
		type entry struct {
			Groups     []string `yaml:"groups,omitempty"`
			Users      []string `yaml:"users,omitempty"`
			Role       string   `yaml:"role"`
			Namespaces []string `yaml:"namespaces,omitempty"`
		}
		out := make([]entry, 0, len(grants))
		for i, g := range grants {
			if len(g.Groups)+len(g.Users) == 0 {
				t.Fatalf("grant %d names nobody: %+v", i, g)
			}
			if g.Role != Viewer && g.Role != Operator && g.Role != Admin {
				t.Fatalf("grant %d has role %v", i, g.Role)
			}
			for _, n := range append(append([]string{}, g.Groups...), g.Users...) {
				if n == "" {
					t.Fatalf("grant %d has an empty name", i)
				}
			}
			out = append(out, entry{g.Groups, g.Users, g.Role.String(), g.Namespaces})
		}
		b, err := yaml.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParsePolicy(b)
		if err != nil {
			t.Fatalf("the grants written back do not parse: %v\n%s", err, b)
		}
		if len(grants) == 0 && len(again) == 0 {
			return
		}
		if !reflect.DeepEqual(nilEmpty(again), nilEmpty(grants)) {
			t.Fatalf("the grants written back read as\n%+v\nnot\n%+v\n%s", again, grants, b)
		}
	})
}

// nilEmpty makes empty lists nil: "namespaces: []" and no namespaces mean
// the same (every namespace), and a policy written back omits both.
func nilEmpty(grants []Grant) []Grant {
	out := make([]Grant, len(grants))
	for i, g := range grants {
		for _, l := range []*[]string{&g.Groups, &g.Users, &g.Namespaces} {
			if len(*l) == 0 {
				*l = nil
			}
		}
		out[i] = g
	}
	return out
}
