package auth

import "testing"

func TestRole(t *testing.T) {
	grants := []Grant{
		{Groups: []string{"platform"}, Role: Admin},
		{Groups: []string{"team-a"}, Role: Operator, Namespaces: []string{"team-a-*", "shared"}},
		{Groups: []string{"team-a"}, Role: Viewer, Namespaces: []string{"team-b-*"}},
		{Users: []string{"Oncall@Example.com"}, Role: Operator, Namespaces: []string{"prod"}},
		{Groups: []string{"*"}, Role: Viewer, Namespaces: []string{"public-*"}},
	}
	for _, tc := range []struct {
		name string
		user User
		ns   string
		want Role
	}{
		{"admin group everywhere", User{Groups: []string{"platform"}}, "anything", Admin},
		{"admin group cluster-scoped", User{Groups: []string{"platform"}}, "", Admin},
		{"glob", User{Groups: []string{"team-a"}}, "team-a-web", Operator},
		{"exact", User{Groups: []string{"team-a"}}, "shared", Operator},
		{"glob is anchored", User{Groups: []string{"team-a"}}, "x-team-a-web", None},
		{"lower grant elsewhere", User{Groups: []string{"team-a"}}, "team-b-api", Viewer},
		{"namespaced grants leave cluster scope out", User{Groups: []string{"team-a"}}, "", None},
		{"highest of several groups", User{Groups: []string{"team-a", "platform"}}, "team-a-web", Admin},
		{"star group", User{Groups: nil}, "public-docs", Viewer},
		{"user by verified email, any case", User{Email: "oncall@example.com"}, "prod", Operator},
		{"no email, no user grant", User{Name: "oncall@example.com"}, "prod", None},
		{"unknown group", User{Groups: []string{"team-c"}}, "team-a-web", None},
		{"admin token", User{Admin: true}, "prod", Admin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := tc.user
			u.grants = grants
			if got := u.Role(tc.ns); got != tc.want {
				t.Fatalf("Role(%q) = %s, want %s", tc.ns, got, tc.want)
			}
		})
	}
}

func TestActionRole(t *testing.T) {
	for _, a := range []string{"sync", "refresh", "rollback", "unpin", "suspend", "resume"} {
		if r, ok := ActionRole(a); !ok || r != Operator {
			t.Errorf("ActionRole(%q) = %s, %v; want operator", a, r, ok)
		}
	}
	if _, ok := ActionRole("delete"); ok {
		t.Error("ActionRole(delete) is known")
	}
}
