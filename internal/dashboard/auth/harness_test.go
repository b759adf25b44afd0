package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
)

// testKey is a session key for tests.
var testKey = bytes.Repeat([]byte("k"), 32)

// testGrants: dev operates team-a-*, everybody views everything.
var testGrants = []Grant{
	{Groups: []string{"dev"}, Role: Operator, Namespaces: []string{"team-a-*"}},
	{Groups: []string{"*"}, Role: Viewer},
}

// issuer is a mockoidc provider on loopback whose token endpoint the
// test can watch and change.
type issuer struct {
	m *mockoidc.MockOIDC

	mu sync.Mutex
	// challenge and method are the PKCE parameters of the last
	// authorization request, verifier the code_verifier of the last
	// token request.
	challenge, method, verifier string
	// badVerifier, when set, replaces the code_verifier the client sends.
	badVerifier string
	// mutate, when set, rewrites the ID token's claims; it returns the
	// key to sign the result with.
	mutate func(m *mockoidc.MockOIDC, claims jwt.MapClaims) *mockoidc.Keypair
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{m: m}
	if err := m.AddMiddleware(is.watch); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return is
}

// watch records the PKCE parameters and applies badVerifier and mutate.
// mockoidc itself checks that the verifier hashes to the challenge.
func (is *issuer) watch(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case mockoidc.AuthorizationEndpoint:
			q := r.URL.Query()
			is.mu.Lock()
			is.challenge, is.method = q.Get("code_challenge"), q.Get("code_challenge_method")
			is.mu.Unlock()
			next.ServeHTTP(w, r)
		case mockoidc.TokenEndpoint:
			body, _ := io.ReadAll(r.Body)
			form, _ := url.ParseQuery(string(body))
			is.mu.Lock()
			if form.Get("code_verifier") != "" {
				is.verifier = form.Get("code_verifier")
			}
			if is.badVerifier != "" {
				form.Set("code_verifier", is.badVerifier)
			}
			mutate := is.mutate
			is.mu.Unlock()
			body = []byte(form.Encode())
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			out := rec.Body.Bytes()
			if mutate != nil && rec.Code == http.StatusOK {
				out = is.rewrite(out, mutate)
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.Header().Del("Content-Length")
			w.WriteHeader(rec.Code)
			_, _ = w.Write(out)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func (is *issuer) rewrite(resp []byte, mutate func(*mockoidc.MockOIDC, jwt.MapClaims) *mockoidc.Keypair) []byte {
	var tr map[string]any
	if err := json.Unmarshal(resp, &tr); err != nil {
		panic(err)
	}
	raw, _ := tr["id_token"].(string)
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(raw, claims); err != nil {
		panic(err)
	}
	key := mutate(is.m, claims)
	signed, err := key.SignJWT(claims)
	if err != nil {
		panic(err)
	}
	tr["id_token"] = signed
	out, _ := json.Marshal(tr)
	return out
}

// dashboard is an Authenticator in front of a stand-in for the dashboard:
// GET /api/v1/whoami tells who the request comes from; POST
// /api/v1/apps/{namespace}/{name}/{action} needs operator and counts the
// changes it makes; any other GET is a page.
type dashboard struct {
	a       *Authenticator
	srv     *httptest.Server
	client  *http.Client
	changes atomic.Int32
}

func newDashboard(t *testing.T, cfg Config) *dashboard {
	t.Helper()
	d := &dashboard{}
	mux := http.NewServeMux()
	d.srv = httptest.NewServer(mux)
	t.Cleanup(d.srv.Close)
	if cfg.Issuer != "" && cfg.RedirectURL == "" {
		cfg.RedirectURL = d.srv.URL + "/auth/callback"
	}
	if cfg.SessionKey == nil {
		cfg.SessionKey = testKey
	}
	if cfg.Grants == nil {
		cfg.Grants = testGrants
	}
	a, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	d.a = a
	a.Routes(mux)
	app := http.NewServeMux()
	app.HandleFunc("GET /api/v1/whoami", func(w http.ResponseWriter, r *http.Request) {
		u, _ := UserFrom(r.Context())
		writeJSON(w, http.StatusOK, map[string]any{"name": u.Name, "groups": u.Groups, "admin": u.Admin})
	})
	app.Handle("POST /api/v1/apps/{namespace}/{name}/{action}", RequireRole(Operator, func(r *http.Request) string { return r.PathValue("namespace") },
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d.changes.Add(1)
			writeJSON(w, http.StatusOK, map[string]string{"action": r.PathValue("action")})
		})))
	app.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "dashboard page %s", r.URL.Path)
	})
	mux.Handle("/", a.Require(app))
	d.client = newClient(t)
	return d
}

// newClient is a browser: a cookie jar, following redirects.
func newClient(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar}
}

// get fetches path from the dashboard and returns the status, the final
// URL's path and the body.
func (d *dashboard) get(t *testing.T, path string) (int, string, string) {
	t.Helper()
	resp, err := d.client.Get(d.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Request.URL.Path, string(b)
}

// do sends a request with the client's cookies and returns the status
// and body.
func (d *dashboard) do(t *testing.T, method, path string, header http.Header, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, d.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// user is who the client's session cookie says it is.
func (d *dashboard) user(t *testing.T) (*User, error) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, d.srv.URL+"/", nil)
	u, _ := url.Parse(d.srv.URL)
	for _, c := range d.client.Jar.Cookies(u) {
		req.AddCookie(c)
	}
	return d.a.User(req)
}

// sessionCookie is the client's session cookie, or nil.
func (d *dashboard) sessionCookie(t *testing.T) *http.Cookie {
	t.Helper()
	u, _ := url.Parse(d.srv.URL)
	for _, c := range d.client.Jar.Cookies(u) {
		if c.Name == d.a.sessionCookieName() {
			return c
		}
	}
	return nil
}

// setSessionCookie replaces the client's session cookie value.
func (d *dashboard) setSessionCookie(t *testing.T, value string) {
	t.Helper()
	u, _ := url.Parse(d.srv.URL)
	d.client.Jar.SetCookies(u, []*http.Cookie{{Name: d.a.sessionCookieName(), Value: value, Path: "/"}})
}
