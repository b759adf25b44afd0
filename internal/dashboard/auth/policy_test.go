package auth

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseGrants(t *testing.T) {
	got, err := ParseGrants(map[string]string{PolicyKey: `
- groups: [platform]
  role: admin
- groups: [team-a]
  role: Operator
  namespaces: ["team-a-*", team-shared]
- users: [oncall@example.com]
  role: operator
- groups: ["*"]
  role: viewer
`, "other": "ignored"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Grant{
		{Groups: []string{"platform"}, Role: Admin},
		{Groups: []string{"team-a"}, Role: Operator, Namespaces: []string{"team-a-*", "team-shared"}},
		{Users: []string{"oncall@example.com"}, Role: Operator},
		{Groups: []string{"*"}, Role: Viewer},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("grants\n%+v\nwant\n%+v", got, want)
	}

	for _, empty := range []string{"", "# nobody yet\n", "[]"} {
		if g, err := ParseGrants(map[string]string{PolicyKey: empty}); err != nil || len(g) != 0 {
			t.Errorf("policy %q: %v %v, want no grants and no error", empty, g, err)
		}
	}
}

func TestParseGrantsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, policy string
		says         []string
	}{
		{"bad role", "- groups: [a]\n  role: viewer\n- groups: [dev]\n  role: operater\n", []string{"entry 2 (line 3)", `role "operater" is not one of viewer, operator, admin`}},
		{"no role", "- groups: [a]\n", []string{"entry 1 (line 1)", "has no role"}},
		{"nobody", "- role: admin\n", []string{"entry 1", "names no groups and no users"}},
		{"unknown field", "- groups: [a]\n  role: admin\n  namespace: [x]\n", []string{"entry 1", `unknown field "namespace"`}},
		{"bad glob", "- groups: [a]\n  role: admin\n  namespaces: [\"team-[\"]\n", []string{"entry 1", `namespace pattern "team-["`}},
		{"empty namespace", "- groups: [a]\n  role: admin\n  namespaces: [\"\"]\n", []string{"entry 1", "empty namespace pattern"}},
		{"not a list", "groups: [a]\nrole: admin\n", []string{"want a list of grants"}},
		{"entry not a mapping", "- admin\n", []string{"entry 1", "want a mapping"}},
		{"groups not a list", "- groups: {a: b}\n  role: admin\n", []string{"entry 1"}},
		{"not YAML", "- groups: [a\n", []string{"not YAML"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseGrants(map[string]string{PolicyKey: tc.policy})
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range append(tc.says, "dashboard policy policy.yaml") {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}

	_, err := ParseGrants(map[string]string{"policy.yml": "[]"})
	if err == nil || !strings.Contains(err.Error(), "no policy.yaml key (found policy.yml)") {
		t.Errorf("misnamed key: %v", err)
	}
}
