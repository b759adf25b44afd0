package auth

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
	"golang.org/x/oauth2"
)

func alice() *mockoidc.MockUser {
	return &mockoidc.MockUser{Subject: "u-alice", Email: "alice@example.com", EmailVerified: true, PreferredUsername: "alice", Groups: []string{"dev", "qa"}}
}

func oidcConfig(is *issuer) Config {
	c := is.m.Config()
	return Config{Issuer: c.Issuer, ClientID: c.ClientID, ClientSecret: c.ClientSecret}
}

func TestLoginFlow(t *testing.T) {
	is := newIssuer(t)
	d := newDashboard(t, oidcConfig(is))
	is.m.QueueUser(alice())

	// A page without a session goes to the issuer and back to the page.
	code, path, body := d.get(t, "/apps/team-a-web?tab=tree")
	if code != http.StatusOK || path != "/apps/team-a-web" {
		t.Fatalf("after sign-in: %d %s %q, want 200 on /apps/team-a-web", code, path, body)
	}
	u, err := d.user(t)
	if err != nil {
		t.Fatalf("User after sign-in: %v", err)
	}
	if got, want := u.Name, "alice"; got != want {
		t.Errorf("name %q, want %q", got, want)
	}
	if got, want := u.Email, "alice@example.com"; got != want {
		t.Errorf("email %q, want %q", got, want)
	}
	if got, want := u.Groups, []string{"dev", "qa"}; !slices.Equal(got, want) {
		t.Errorf("groups %q, want %q", got, want)
	}
	if u.Admin {
		t.Error("an OIDC user is not the admin")
	}
	for ns, want := range map[string]Role{"team-a-web": Operator, "prod": Viewer, "": Viewer} {
		if got := u.Role(ns); got != want {
			t.Errorf("Role(%q) = %s, want %s", ns, got, want)
		}
	}

	// PKCE: S256 challenge of the verifier sent with the code (and
	// mockoidc refuses a verifier that does not hash to the challenge).
	is.mu.Lock()
	if is.method != "S256" || is.challenge == "" || is.challenge != oauth2.S256ChallengeFromVerifier(is.verifier) {
		t.Errorf("PKCE: method %q, challenge %q, verifier %q: want S256 and the challenge of the verifier", is.method, is.challenge, is.verifier)
	}
	is.mu.Unlock()

	// An operator syncs in team-a-*, a viewer elsewhere cannot.
	csrf := http.Header{CSRFHeader: {u.CSRFToken()}}
	if code, body := d.do(t, http.MethodPost, "/api/v1/apps/team-a-web/web/sync", csrf, ""); code != http.StatusOK {
		t.Fatalf("sync in team-a-web: %d %s", code, body)
	}
	code, body = d.do(t, http.MethodPost, "/api/v1/apps/prod/web/sync", csrf, "")
	if code != http.StatusForbidden || !strings.Contains(body, "alice is a viewer in namespace prod, and this needs operator") {
		t.Fatalf("sync in prod: %d %s, want 403 saying alice is a viewer", code, body)
	}
	if got := d.changes.Load(); got != 1 {
		t.Fatalf("%d changes, want 1 (the refused sync changed something)", got)
	}

	// A new policy applies to the session at once.
	d.a.SetGrants([]Grant{{Groups: []string{"qa"}, Role: Operator}})
	if code, body := d.do(t, http.MethodPost, "/api/v1/apps/prod/web/sync", csrf, ""); code != http.StatusOK {
		t.Fatalf("sync in prod after qa became operator: %d %s", code, body)
	}
}

func TestCallbackRefusesBadIDTokens(t *testing.T) {
	other, err := mockoidc.RandomKeypair(2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		setup  func(is *issuer)
		reason string
	}{
		{"wrong audience", func(is *issuer) {
			is.mutate = func(m *mockoidc.MockOIDC, c jwt.MapClaims) *mockoidc.Keypair {
				c["aud"] = []string{"another-client"}
				return m.Keypair
			}
		}, "expected audience"},
		{"wrong issuer", func(is *issuer) {
			is.mutate = func(m *mockoidc.MockOIDC, c jwt.MapClaims) *mockoidc.Keypair {
				c["iss"] = "https://evil.example.com/oidc"
				return m.Keypair
			}
		}, "issued by a different provider"},
		{"forged signature", func(is *issuer) {
			is.mutate = func(m *mockoidc.MockOIDC, c jwt.MapClaims) *mockoidc.Keypair {
				c["groups"] = []string{"dev", "platform-admins"}
				return other
			}
		}, "the ID token is not valid"},
		{"wrong nonce", func(is *issuer) {
			is.mutate = func(m *mockoidc.MockOIDC, c jwt.MapClaims) *mockoidc.Keypair {
				c["nonce"] = "another-sign-in"
				return m.Keypair
			}
		}, "nonce does not match"},
		{"expired", func(is *issuer) {
			// The issuer's clock is behind: its token expired before it
			// reaches the dashboard.
			is.m.FastForward(-(is.m.AccessTTL + time.Hour))
		}, "token is expired"},
		{"wrong PKCE verifier", func(is *issuer) {
			is.badVerifier = oauth2.GenerateVerifier()
		}, "the issuer refused the code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := newIssuer(t)
			tc.setup(is)
			d := newDashboard(t, oidcConfig(is))
			is.m.QueueUser(alice())
			code, path, body := d.get(t, "/auth/login")
			if code != http.StatusUnauthorized || path != "/auth/callback" {
				t.Fatalf("got %d on %s, want 401 on /auth/callback", code, path)
			}
			if !strings.Contains(body, "sign-in refused") || !strings.Contains(body, tc.reason) {
				t.Errorf("page %q does not say %q", body, tc.reason)
			}
			if c := d.sessionCookie(t); c != nil {
				t.Errorf("a session cookie was set: %v", c)
			}
			if code, _ := d.do(t, http.MethodGet, "/api/v1/whoami", nil, ""); code != http.StatusUnauthorized {
				t.Errorf("whoami after refused sign-in: %d, want 401", code)
			}
		})
	}
}

func TestNewRefusesWrongIssuer(t *testing.T) {
	is := newIssuer(t)
	cfg := oidcConfig(is)
	cfg.Issuer = strings.Replace(cfg.Issuer, "127.0.0.1", "localhost", 1)
	cfg.SessionKey, cfg.RedirectURL = testKey, "http://127.0.0.1/auth/callback"
	_, err := New(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "did not match") {
		t.Fatalf("New with an issuer the discovery document does not name: %v, want an issuer mismatch", err)
	}
}

func TestReplayedCallbackRefused(t *testing.T) {
	is := newIssuer(t)
	d := newDashboard(t, oidcConfig(is))
	is.m.QueueUser(alice())
	is.m.QueueUser(alice())
	noFollow := func(c *http.Client) *http.Client {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		return c
	}
	browser := noFollow(newClient(t))
	var lastBody string
	step := func(c *http.Client, u string, cookies ...*http.Cookie) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		for _, ck := range cookies {
			req.AddCookie(ck)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		lastBody = string(b)
		return resp
	}

	login := step(browser, d.srv.URL+"/auth/login")
	var state *http.Cookie
	for _, c := range login.Cookies() {
		if strings.HasPrefix(c.Name, "tend_login_") {
			state = c
		}
	}
	if state == nil {
		t.Fatalf("login set no state cookie: %v", login.Header["Set-Cookie"])
	}
	if !state.HttpOnly || state.SameSite != http.SameSiteLaxMode || state.Path != "/auth/callback" {
		t.Errorf("state cookie %v: want HttpOnly, SameSite=Lax, Path=/auth/callback", state)
	}
	authorize := step(browser, login.Header.Get("Location"))
	callback := authorize.Header.Get("Location")
	if !strings.HasPrefix(callback, d.srv.URL+"/auth/callback?") {
		t.Fatalf("issuer redirected to %q", callback)
	}

	if resp := step(browser, callback); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("first callback: %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The browser has dropped the state cookie: the same URL again fails.
	if resp := step(browser, callback); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("second callback: %d, want 401", resp.StatusCode)
	}
	// An attacker who kept the state cookie and the URL fails too, in a
	// fresh browser, before the code reaches the issuer (which would
	// refuse it as used too).
	if resp := step(noFollow(newClient(t)), callback, state); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(lastBody, "already used (replayed callback)") {
		t.Fatalf("replayed callback with its state cookie: %d %q, want 401 already used", resp.StatusCode, lastBody)
	}
	// And a callback whose state is not this browser's.
	u, _ := url.Parse(callback)
	q := u.Query()
	q.Set("state", "forged-state")
	u.RawQuery = q.Encode()
	if resp := step(noFollow(newClient(t)), u.String(), state); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("callback with another state: %d, want 401", resp.StatusCode)
	}
	// Nor does the state cookie move to the other state's name.
	moved := *state
	moved.Name = d.a.stateCookieName("forged-state")
	if resp := step(noFollow(newClient(t)), u.String(), &moved); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("callback with another state and a renamed state cookie: %d, want 401", resp.StatusCode)
	}
}

func TestCallbackIssuerError(t *testing.T) {
	is := newIssuer(t)
	d := newDashboard(t, oidcConfig(is))
	code, body := d.do(t, http.MethodGet, "/auth/callback?error=access_denied&error_description=%3Cb%3Enope%3C%2Fb%3E", nil, "")
	if code != http.StatusUnauthorized || !strings.Contains(body, "access_denied &lt;b&gt;nope&lt;/b&gt;") {
		t.Fatalf("callback with an error: %d %q, want 401 with the escaped error", code, body)
	}
}

func TestSignInWithoutGrantRefused(t *testing.T) {
	is := newIssuer(t)
	cfg := oidcConfig(is)
	cfg.Grants = []Grant{{Groups: []string{"platform"}, Role: Admin}}
	d := newDashboard(t, cfg)
	is.m.QueueUser(alice())
	code, _, body := d.get(t, "/")
	if code != http.StatusForbidden || !strings.Contains(body, "no grant of the dashboard policy names you or your groups (dev, qa)") {
		t.Fatalf("sign-in without a grant: %d %q, want 403 naming the groups", code, body)
	}
	if c := d.sessionCookie(t); c != nil {
		t.Errorf("a session cookie was set: %v", c)
	}
}

func TestGroupsTrimmedToFitCookie(t *testing.T) {
	is := newIssuer(t)
	d := newDashboard(t, oidcConfig(is))
	u := alice()
	for i := range 300 {
		u.Groups = append(u.Groups, "some-long-directory-group-name-"+strings.Repeat("x", i%10))
	}
	is.m.QueueUser(u)
	if code, _, body := d.get(t, "/"); code != http.StatusOK {
		t.Fatalf("sign-in with 302 groups: %d %q", code, body)
	}
	got, err := d.user(t)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"dev"}; !slices.Equal(got.Groups, want) {
		t.Errorf("groups %q, want only those grants name: %q", got.Groups, want)
	}
	if got.Role("team-a-x") != Operator {
		t.Errorf("Role(team-a-x) = %s, want operator", got.Role("team-a-x"))
	}
}

// TestEmailOnlyWhenVerified: grants by users match the e-mail address only
// when the issuer says it verified it; an ID token without
// email_verified (some issuers let users type any address) gives none.
func TestEmailOnlyWhenVerified(t *testing.T) {
	for _, tc := range []struct {
		name   string
		claim  any // nil: left out
		wanted string
	}{{"verified", true, "alice@example.com"}, {"unverified", false, ""}, {"left out", nil, ""}, {"string true", "true", "alice@example.com"}} {
		t.Run(tc.name, func(t *testing.T) {
			is := newIssuer(t)
			d := newDashboard(t, oidcConfig(is))
			is.m.QueueUser(alice())
			is.mutate = func(m *mockoidc.MockOIDC, c jwt.MapClaims) *mockoidc.Keypair {
				c["email_verified"] = tc.claim
				if tc.claim == nil {
					delete(c, "email_verified")
				}
				return m.Keypair
			}
			if code, _, body := d.get(t, "/"); code != http.StatusOK {
				t.Fatalf("sign-in: %d %s", code, body)
			}
			u, err := d.user(t)
			if err != nil {
				t.Fatal(err)
			}
			if u.Email != tc.wanted {
				t.Errorf("email %q, want %q", u.Email, tc.wanted)
			}
		})
	}
}
