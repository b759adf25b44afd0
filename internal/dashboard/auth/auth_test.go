package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// tokenDashboard is a dashboard with only the admin token, and the token.
func tokenDashboard(t *testing.T, cfg Config) (*dashboard, string) {
	t.Helper()
	token, hash := NewAdminToken()
	cfg.AdminTokenHash = hash
	return newDashboard(t, cfg), token
}

// signIn signs the client in with token and returns the response to the
// POST (not followed).
func (d *dashboard) signIn(t *testing.T, token, next string) *http.Response {
	t.Helper()
	c := *d.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.PostForm(d.srv.URL+"/auth/token", url.Values{"token": {token}, "next": {next}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestAdminToken(t *testing.T) {
	d, token := tokenDashboard(t, Config{})
	if !strings.HasPrefix(token, "tend_admin_") || len(token) < 40 {
		t.Fatalf("token %q: want tend_admin_ and 256 bits", token)
	}

	resp := d.signIn(t, "tend_admin_wrong", "/")
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Fatalf("wrong token: %d, cookies %v; want 401 and no cookie", resp.StatusCode, resp.Cookies())
	}
	if code, _ := d.do(t, http.MethodGet, "/api/v1/whoami", nil, ""); code != http.StatusUnauthorized {
		t.Fatalf("whoami after a wrong token: %d, want 401", code)
	}

	resp = d.signIn(t, " "+token+"\n", "/apps/x")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/apps/x" {
		t.Fatalf("right token: %d to %q, want 303 to /apps/x", resp.StatusCode, resp.Header.Get("Location"))
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies %v, want one session cookie", cookies)
	}
	c := cookies[0]
	if c.Name != "tend_auth" || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.MaxAge <= 0 || c.Secure {
		t.Errorf("session cookie %v: want tend_auth, HttpOnly, SameSite=Lax, Path=/, a Max-Age, not Secure on loopback http", c)
	}
	code, body := d.do(t, http.MethodGet, "/api/v1/whoami", nil, "")
	var who struct {
		Name  string
		Admin bool
	}
	if err := json.Unmarshal([]byte(body), &who); err != nil || code != http.StatusOK || who.Name != "admin" || !who.Admin {
		t.Fatalf("whoami: %d %s, want admin", code, body)
	}
	u, err := d.user(t)
	if err != nil {
		t.Fatal(err)
	}
	if u.Role("prod") != Admin || u.Role("") != Admin {
		t.Errorf("admin token roles: %s, %s; want admin everywhere", u.Role("prod"), u.Role(""))
	}
}

func TestSecureCookies(t *testing.T) {
	token, hash := NewAdminToken()
	a, err := New(context.Background(), Config{SessionKey: testKey, AdminTokenHash: hash, Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	a.Routes(mux)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "https://dash.example.com/auth/token", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	mux.ServeHTTP(rec, req)
	cookies := rec.Result().Cookies()
	if rec.Code != http.StatusSeeOther || len(cookies) != 1 {
		t.Fatalf("sign-in: %d, cookies %v", rec.Code, cookies)
	}
	if c := cookies[0]; c.Name != "__Host-tend_auth" || !c.Secure || !c.HttpOnly || c.Path != "/" || c.Domain != "" {
		t.Errorf("cookie %v: want __Host-tend_auth, Secure, HttpOnly, Path=/, no Domain", c)
	}
}

func TestSessionRefusals(t *testing.T) {
	d, token := tokenDashboard(t, Config{})
	if resp := d.signIn(t, token, "/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	valid := d.sessionCookie(t).Value

	other, err := newSealer(bytes.Repeat([]byte("o"), 32), "session")
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _ := other.seal(d.a.sessionCookieName(), session{V: sessionVersion, Name: "admin", Admin: true, CSRF: "x", Expires: time.Now().Add(time.Hour).Unix()})
	stateAsSession, _ := d.a.states.seal(d.a.sessionCookieName(), session{V: sessionVersion, Name: "admin", Admin: true, CSRF: "x", Expires: time.Now().Add(time.Hour).Unix()})
	tampered := []byte(valid)
	if i := len(tampered) / 2; tampered[i] == 'A' {
		tampered[i] = 'B'
	} else {
		tampered[i] = 'A'
	}

	for _, tc := range []struct{ name, value string }{
		{"forged", "eyJhbGciOiJub25lIn0.eyJuIjoiYWRtaW4iLCJhIjp0cnVlfQ."},
		{"tampered", string(tampered)},
		{"sealed with another key", otherKey},
		{"sealed for another purpose", stateAsSession},
		{"truncated", valid[:20]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d.setSessionCookie(t, tc.value)
			code, body := d.do(t, http.MethodGet, "/api/v1/whoami", nil, "")
			if code != http.StatusUnauthorized || !strings.Contains(body, "session refused") {
				t.Fatalf("whoami: %d %s, want 401 session refused", code, body)
			}
			if c := d.sessionCookie(t); c != nil {
				t.Errorf("the refused cookie was not cleared: %v", c)
			}
		})
	}

	t.Run("missing", func(t *testing.T) {
		d.setSessionCookie(t, "")
		if code, body := d.do(t, http.MethodGet, "/api/v1/whoami", nil, ""); code != http.StatusUnauthorized || !strings.Contains(body, "not signed in") {
			t.Fatalf("whoami: %d %s, want 401 not signed in", code, body)
		}
		// A page goes to the sign-in page, which comes back to it.
		code, path, body := d.get(t, "/apps/prod?x=1")
		if code != http.StatusOK || path != "/auth/login" || !strings.Contains(body, `name="next" value="/apps/prod?x=1"`) {
			t.Fatalf("page: %d on %s %q, want the sign-in form with next", code, path, body)
		}
	})

	t.Run("expired", func(t *testing.T) {
		d.setSessionCookie(t, valid)
		if code, _ := d.do(t, http.MethodGet, "/api/v1/whoami", nil, ""); code != http.StatusOK {
			t.Fatalf("whoami with the valid cookie: %d", code)
		}
		d.a.now = func() time.Time { return time.Now().Add(d.a.cfg.SessionTTL + time.Minute) }
		defer func() { d.a.now = time.Now }()
		if code, body := d.do(t, http.MethodGet, "/api/v1/whoami", nil, ""); code != http.StatusUnauthorized || !strings.Contains(body, "session expired") {
			t.Fatalf("whoami after the TTL: %d %s, want 401 session expired", code, body)
		}
	})
}

func TestCSRF(t *testing.T) {
	d, token := tokenDashboard(t, Config{})
	d.signIn(t, token, "/")
	u, err := d.user(t)
	if err != nil {
		t.Fatal(err)
	}
	const sync = "/api/v1/apps/prod/web/sync"
	for _, tc := range []struct {
		name   string
		header http.Header
		body   string
		want   int
	}{
		{"no token", nil, "", http.StatusForbidden},
		{"wrong token", http.Header{CSRFHeader: {"nope"}}, "", http.StatusForbidden},
		{"another session's token", http.Header{CSRFHeader: {randomToken()}}, "", http.StatusForbidden},
		{"cross-site", http.Header{CSRFHeader: {u.CSRFToken()}, "Sec-Fetch-Site": {"cross-site"}}, "", http.StatusForbidden},
		{"other origin", http.Header{CSRFHeader: {u.CSRFToken()}, "Origin": {"https://evil.example.com"}}, "", http.StatusForbidden},
		{"header", http.Header{CSRFHeader: {u.CSRFToken()}}, "", http.StatusOK},
		{"form field", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, "csrf=" + url.QueryEscape(u.CSRFToken()), http.StatusOK},
		{"same origin", http.Header{CSRFHeader: {u.CSRFToken()}, "Sec-Fetch-Site": {"same-origin"}, "Origin": {d.srv.URL}}, "", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := d.changes.Load()
			code, body := d.do(t, http.MethodPost, sync, tc.header, tc.body)
			if code != tc.want {
				t.Fatalf("POST sync: %d %s, want %d", code, body, tc.want)
			}
			if changed := d.changes.Load() != before; changed != (tc.want == http.StatusOK) {
				t.Errorf("changed: %v, want %v", changed, tc.want == http.StatusOK)
			}
		})
	}
}

func TestLogout(t *testing.T) {
	d, token := tokenDashboard(t, Config{})
	d.signIn(t, token, "/")
	u, err := d.user(t)
	if err != nil {
		t.Fatal(err)
	}
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}

	// A forged sign-out (no CSRF token) is refused and signs nobody out.
	if code, _ := d.do(t, http.MethodPost, "/auth/logout", form, ""); code != http.StatusForbidden {
		t.Fatalf("logout without the CSRF token: %d, want 403", code)
	}
	if code, _ := d.do(t, http.MethodPost, "/auth/logout", http.Header{"Sec-Fetch-Site": {"cross-site"}}, "csrf="+url.QueryEscape(u.CSRFToken())); code != http.StatusForbidden {
		t.Fatalf("cross-site logout: %d, want 403", code)
	}
	if _, err := d.user(t); err != nil {
		t.Fatalf("after refused sign-outs: %v", err)
	}

	code, body := d.do(t, http.MethodPost, "/auth/logout", form, "csrf="+url.QueryEscape(u.CSRFToken()))
	if code != http.StatusOK || !strings.Contains(body, "You are signed out") {
		t.Fatalf("logout: %d %q, want the signed-out page", code, body)
	}
	if c := d.sessionCookie(t); c != nil {
		t.Fatalf("session cookie still there: %v", c)
	}
	if code, _ := d.do(t, http.MethodGet, "/api/v1/whoami", nil, ""); code != http.StatusUnauthorized {
		t.Fatalf("whoami after logout: %d, want 401", code)
	}
}

func TestRequireRole(t *testing.T) {
	changed := false
	h := RequireRole(Operator, func(r *http.Request) string { return r.PathValue("namespace") }, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { changed = true }))
	mux := http.NewServeMux()
	mux.Handle("POST /api/v1/apps/{namespace}/{name}/{action}", h)
	viewer := &User{Name: "bob", Groups: []string{"qa"}, grants: testGrants}
	for _, tc := range []struct {
		name string
		user *User
		path string
		want int
		says string
	}{
		{"no user", nil, "/api/v1/apps/prod/web/sync", http.StatusUnauthorized, "not signed in"},
		{"viewer", viewer, "/api/v1/apps/team-a-x/web/sync", http.StatusForbidden, "bob is a viewer in namespace team-a-x, and this needs operator"},
		{"nobody", &User{Name: "eve"}, "/api/v1/apps/prod/web/sync", http.StatusForbidden, "eve has no role in namespace prod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, tc.path, nil)
			if tc.user != nil {
				req = req.WithContext(WithUser(req.Context(), tc.user))
			}
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.says) {
				t.Fatalf("%d %s, want %d saying %q", rec.Code, rec.Body.String(), tc.want, tc.says)
			}
			if changed {
				t.Fatal("the handler ran")
			}
		})
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	_, hash := NewAdminToken()
	for _, tc := range []struct {
		name string
		cfg  Config
		says string
	}{
		{"short key", Config{SessionKey: []byte("short"), AdminTokenHash: hash}, "32 or more"},
		{"no way in", Config{SessionKey: testKey}, "nobody could sign in"},
		{"bad hash", Config{SessionKey: testKey, AdminTokenHash: []byte("x")}, "SHA-256"},
		{"issuer without client", Config{SessionKey: testKey, Issuer: "https://dex.example.com"}, "client ID and a redirect URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(context.Background(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("New: %v, want an error saying %q", err, tc.says)
			}
		})
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"":                    "/",
		"/apps/prod?tab=tree": "/apps/prod?tab=tree",
		"//evil.example.com":  "/",
		"/\\evil.example.com": "/",
		"https://evil.com/":   "/",
		"apps":                "/",
		"/auth/logout":        "/",
		"/x\r\nSet-Cookie: a": "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAdminSessionsEndWithTheirToken: a new admin token ends the sessions
// signed in with the old one (the session key stays); the same token on
// another replica or after a restart keeps them.
func TestAdminSessionsEndWithTheirToken(t *testing.T) {
	d, token := tokenDashboard(t, Config{})
	if resp := d.signIn(t, token, "/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	if _, err := d.user(t); err != nil {
		t.Fatalf("session with the token: %v", err)
	}
	// A new token (tend dashboard token run again) on the same key.
	_, newHash := NewAdminToken()
	replaced, err := New(context.Background(), Config{SessionKey: testKey, AdminTokenHash: newHash})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, d.srv.URL+"/", nil)
	req.AddCookie(d.sessionCookie(t))
	if _, err := replaced.User(req); err == nil || !strings.Contains(err.Error(), "admin token") {
		t.Errorf("the old token's session after a new token: %v, want refused naming the admin token", err)
	}
	// The same token (another replica, a restart) keeps the session.
	same, err := New(context.Background(), Config{SessionKey: testKey, AdminTokenHash: HashAdminToken(token)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := same.User(req); err != nil {
		t.Errorf("the same token after a restart: %v, want the session kept", err)
	}
}
