package auth

import (
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
)

// Role is what a user may do in a namespace. Roles are ordered: each one
// may do what the roles below it may.
type Role int

const (
	// None is the zero Role: nothing, not even reading.
	None Role = iota
	// Viewer reads Apps, Sources, Notifiers, Clusters, AppSets, trees,
	// history and events.
	Viewer
	// Operator also acts on Apps: sync, refresh, rollback, unpin,
	// suspend and resume.
	Operator
	// Admin may do everything, including what later versions reserve to
	// admins.
	Admin
)

var roleNames = map[Role]string{None: "none", Viewer: "viewer", Operator: "operator", Admin: "admin"}

func (r Role) String() string {
	if s, ok := roleNames[r]; ok {
		return s
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// ParseRole reads "viewer", "operator" or "admin" (any case).
func ParseRole(s string) (Role, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "viewer":
		return Viewer, nil
	case "operator":
		return Operator, nil
	case "admin":
		return Admin, nil
	}
	return None, fmt.Errorf("role %q is not one of viewer, operator, admin", s)
}

// ActionRole is the Role an App or Stage action needs (the actions of
// POST /api/v1/apps/{namespace}/{name}/{action} and of
// POST /api/v1/stages/{namespace}/{name}/{approve,rollback}); ok is false for an
// action it does not know, which callers should refuse.
func ActionRole(action string) (role Role, ok bool) {
	switch action {
	case "sync", "refresh", "rollback", "unpin", "suspend", "resume", "approve":
		return Operator, true
	}
	return None, false
}

// Grant gives a Role to the members of some groups (or to some users) in
// some namespaces. Grants come from the policy (see ParseGrants).
type Grant struct {
	// Groups whose members get Role, as the issuer names them in the
	// groups claim. "*" matches every signed-in user.
	Groups []string
	// Users get Role by their e-mail address, as the issuer has verified
	// it (for issuers such as Google that send no groups).
	Users []string
	// Role is what the grant allows.
	Role Role
	// Namespaces are shell patterns (path.Match: "team-*", "prod") of the
	// namespaces the grant covers; empty covers every namespace and the
	// cluster-scoped objects (namespace "").
	Namespaces []string
}

// matchesUser says whether the grant names one of u's groups or u itself.
func (g Grant) matchesUser(u *User) bool {
	for _, want := range g.Groups {
		if want == "*" || slices.Contains(u.Groups, want) {
			return true
		}
	}
	return u.Email != "" && slices.ContainsFunc(g.Users, func(e string) bool { return strings.EqualFold(e, u.Email) })
}

// matchesNamespace says whether the grant covers namespace.
func (g Grant) matchesNamespace(namespace string) bool {
	if len(g.Namespaces) == 0 {
		return true
	}
	for _, p := range g.Namespaces {
		if ok, _ := path.Match(p, namespace); ok {
			return true
		}
	}
	return false
}

// User is who signed in, as the session cookie tells.
type User struct {
	// Subject is the issuer's stable id of the user ("" for the admin
	// token).
	Subject string
	// Name is what the dashboard shows and the audit log records: the
	// preferred username, name, e-mail or subject, the first the issuer
	// sent ("admin" for the admin token).
	Name string
	// Email is set only when the issuer has verified it.
	Email string
	// Groups are the user's groups from the groups claim (only those that
	// some grant names, when there were too many to fit in a cookie).
	Groups []string
	// Admin is true for a sign-in with the local admin token: an admin
	// everywhere, whatever the grants.
	Admin bool

	grants []Grant
	csrf   string
}

// Role is the highest Role that the grants give u in namespace ("" for
// cluster-scoped objects, which only grants without namespaces cover).
func (u *User) Role(namespace string) Role {
	if u.Admin {
		return Admin
	}
	best := None
	for _, g := range u.grants {
		if g.Role > best && g.matchesUser(u) && g.matchesNamespace(namespace) {
			best = g.Role
		}
	}
	return best
}

// CSRFToken is the token that state-changing requests of this session
// must carry in the X-Tend-CSRF header (or a "csrf" form field): the page
// embeds it.
func (u *User) CSRFToken() string { return u.csrf }

// granted says whether any grant names u, in whatever namespace.
func (u *User) granted() bool {
	if u.Admin {
		return true
	}
	return slices.ContainsFunc(u.grants, func(g Grant) bool { return g.Role > None && g.matchesUser(u) })
}

// grantedGroups are those of u's groups that some grant names.
func (u *User) grantedGroups() []string {
	var out []string
	for _, grp := range u.Groups {
		if slices.ContainsFunc(u.grants, func(g Grant) bool { return slices.Contains(g.Groups, grp) }) {
			out = append(out, grp)
		}
	}
	return out
}

// RequireRole lets a request through when the user that Require put in
// its context has at least need in the namespace that namespaceOf reads
// from the request (nil: ""). Others get 401 (no user) or 403 with a page
// or JSON error saying who they are and what they lack, and next is not
// called.
//
//	mux.Handle("POST /api/v1/apps/{namespace}/{name}/{action}",
//		auth.RequireRole(auth.Operator, func(r *http.Request) string { return r.PathValue("namespace") }, h))
func RequireRole(need Role, namespaceOf func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := UserFrom(r.Context())
		if !ok {
			Refuse(w, r, http.StatusUnauthorized, "not signed in: sign in first")
			return
		}
		ns := ""
		if namespaceOf != nil {
			ns = namespaceOf(r)
		}
		if have := u.Role(ns); have < need {
			where := "in namespace " + ns
			if ns == "" {
				where = "for cluster-scoped objects"
			}
			Refuse(w, r, http.StatusForbidden, fmt.Sprintf("%s %s %s, and this needs %s: ask an admin for a grant to one of your groups (%s) in the dashboard policy",
				u.Name, rolePhrase(have), where, need, groupList(u.Groups)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func rolePhrase(r Role) string {
	switch r {
	case None:
		return "has no role"
	case Operator, Admin:
		return "is an " + r.String()
	}
	return "is a " + r.String()
}

func groupList(groups []string) string {
	if len(groups) == 0 {
		return "none"
	}
	return strings.Join(groups, ", ")
}
