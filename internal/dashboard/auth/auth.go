// Package auth owns who may use the dashboard when the controller serves
// it to a team: single sign-on against any OpenID Connect issuer (Dex,
// Keycloak, authentik, GitLab, Google) with the authorization-code flow
// and PKCE, a local admin token for first use (or when the issuer is
// down), sessions in sealed cookies, CSRF protection, and roles — viewer,
// operator, admin — that a policy grants to the issuer's groups,
// namespace by namespace.
//
// Nothing is stored on the server: a session is an AES-GCM sealed,
// HttpOnly, SameSite=Lax cookie (Secure and __Host- prefixed when
// Config.Secure) that holds who the user is, their groups, a CSRF token
// and an expiry, sealed under Config.SessionKey, so replicas sharing the
// key share sessions and a restart keeps them. The price: signing out
// clears the cookie in that browser, but a copy of the cookie taken
// before stays valid until it expires (Config.SessionTTL). Roles are
// worked out on each request from the groups and the current grants, so
// a policy change applies at once.
//
// ID tokens are checked by coreos/go-oidc (signature against the
// issuer's keys, issuer, audience, expiry) and the nonce by this package;
// the code is exchanged by x/oauth2 with the PKCE verifier (S256).
//
// Routes serves /auth/login, /auth/callback, /auth/token, /auth/logout
// and /auth/signed-out; Require guards everything else, RequireRole each
// action:
//
//	a, err := auth.New(ctx, cfg)
//	mux := http.NewServeMux()
//	a.Routes(mux)
//	mux.Handle("/", a.Require(dashboardMux))
package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Config configures an Authenticator. Either Issuer or AdminTokenHash must
// be set, and SessionKey always.
type Config struct {
	// Issuer is the OIDC issuer URL, exactly as the issuer writes it in
	// its discovery document and tokens ("https://dex.example.com",
	// "https://accounts.google.com"). Empty turns single sign-on off.
	Issuer string
	// ClientID and ClientSecret are the dashboard's client at the issuer.
	ClientID     string
	ClientSecret string
	// RedirectURL is the dashboard's public URL followed by
	// /auth/callback, as registered with the issuer.
	RedirectURL string
	// Scopes asked for; "openid" is always added. Default: openid,
	// profile, email, groups (what Dex, Keycloak and authentik need for
	// a groups claim). Google and GitLab refuse the groups scope: set
	// openid, profile, email there (and grant by users for Google).
	Scopes []string
	// GroupsClaim names the ID token claim that lists the user's groups.
	// Default "groups".
	GroupsClaim string
	// Grants give roles to groups and users (see ParseGrants); SetGrants
	// changes them while serving.
	Grants []Grant
	// SessionKey seals session cookies: 32 bytes or more of randomness,
	// from a Secret, the same for every replica. Changing it signs
	// everybody out.
	SessionKey []byte
	// SessionTTL is how long a session lasts from sign-in. Default 12h.
	SessionTTL time.Duration
	// AdminTokenHash is the SHA-256 of the local admin token
	// (HashAdminToken); empty turns admin token sign-in off.
	AdminTokenHash []byte
	// Secure marks cookies Secure (and __Host-/__Secure- prefixed). Set
	// it whenever the dashboard is reached over HTTPS, which is always
	// but on loopback.
	Secure bool
	// HTTPClient talks to the issuer (a custom CA goes here). Default: a
	// client with a 30s timeout.
	HTTPClient *http.Client
	// Log gets a line per sign-in, sign-out and refusal; never a secret.
	Log *slog.Logger
}

// Authenticator signs users in and out and tells who sent a request.
type Authenticator struct {
	cfg      Config
	oauth    *oauth2.Config
	verifier *oidc.IDTokenVerifier
	sessions sealer
	states   sealer
	used     *usedStates
	grants   atomic.Pointer[[]Grant]
	origins  *http.CrossOriginProtection
	log      *slog.Logger
	// now is the clock sessions and ID tokens are checked against.
	now func() time.Time
}

// ErrNoSession is User's error when the request carries no session
// cookie.
var ErrNoSession = errors.New("not signed in")

// New checks cfg and, when cfg.Issuer is set, reads the issuer's
// discovery document. It fails when the issuer cannot be reached: a caller
// that should not depend on the issuer retries New with a backoff.
func New(ctx context.Context, cfg Config) (*Authenticator, error) {
	if len(cfg.SessionKey) < 32 {
		return nil, fmt.Errorf("dashboard auth: the session key has %d bytes, want 32 or more (e.g. `head -c 32 /dev/urandom` into the Secret)", len(cfg.SessionKey))
	}
	if cfg.Issuer == "" && len(cfg.AdminTokenHash) == 0 {
		return nil, errors.New("dashboard auth: neither an OIDC issuer nor an admin token is configured: nobody could sign in (run `tend dashboard token` or set the issuer)")
	}
	if len(cfg.AdminTokenHash) != 0 && len(cfg.AdminTokenHash) != 32 {
		return nil, fmt.Errorf("dashboard auth: the admin token hash has %d bytes, want a SHA-256 (32 bytes)", len(cfg.AdminTokenHash))
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	a := &Authenticator{cfg: cfg, used: newUsedStates(), log: cfg.Log, now: time.Now}
	a.SetGrants(cfg.Grants)
	var err error
	if a.sessions, err = newSealer(cfg.SessionKey, "session"); err != nil {
		return nil, err
	}
	if a.states, err = newSealer(cfg.SessionKey, "login state"); err != nil {
		return nil, err
	}
	a.origins = http.NewCrossOriginProtection()
	a.origins.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Refuse(w, r, http.StatusForbidden, "cross-origin request refused: use the dashboard's own pages")
	}))
	if cfg.RedirectURL != "" {
		u, err := url.Parse(cfg.RedirectURL)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("dashboard auth: redirect URL %q: want an absolute URL ending in /auth/callback", cfg.RedirectURL)
		}
		if err := a.origins.AddTrustedOrigin(u.Scheme + "://" + u.Host); err != nil {
			return nil, fmt.Errorf("dashboard auth: redirect URL %q: %w", cfg.RedirectURL, err)
		}
	}
	if cfg.Issuer != "" {
		if cfg.ClientID == "" || cfg.RedirectURL == "" {
			return nil, errors.New("dashboard auth: an OIDC issuer needs a client ID and a redirect URL (the dashboard's URL + /auth/callback)")
		}
		p, err := oidc.NewProvider(oidc.ClientContext(ctx, cfg.HTTPClient), cfg.Issuer)
		if err != nil {
			return nil, fmt.Errorf("dashboard auth: discover OIDC issuer %s: %w", cfg.Issuer, err)
		}
		scopes := cfg.Scopes
		if len(scopes) == 0 {
			scopes = []string{"profile", "email", "groups"}
		}
		if !slices.Contains(scopes, oidc.ScopeOpenID) {
			scopes = append([]string{oidc.ScopeOpenID}, scopes...)
		}
		a.oauth = &oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: cfg.RedirectURL, Endpoint: p.Endpoint(), Scopes: scopes}
		a.verifier = p.Verifier(&oidc.Config{ClientID: cfg.ClientID, Now: func() time.Time { return a.now() }})
	}
	return a, nil
}

// SetGrants replaces the grants, for a policy ConfigMap that changed. It
// applies to the next request of every session: roles are not kept in
// the cookie, groups are.
func (a *Authenticator) SetGrants(grants []Grant) {
	grants = slices.Clone(grants)
	a.grants.Store(&grants)
}

// Routes registers the sign-in and sign-out endpoints on mux:
//
//	GET  /auth/login       to the issuer (state, nonce, PKCE S256); without an issuer, the admin token form
//	GET  /auth/callback    back from the issuer: checks the one-use state, exchanges the code, verifies the ID token
//	GET  /auth/token       the admin token form
//	POST /auth/token       signs in with the admin token (form field token)
//	POST /auth/logout      signs out (form field csrf or header X-Tend-CSRF)
//	GET  /auth/signed-out  says so
//
// All of them take ?next= (or a next form field): the dashboard path to
// go to once signed in.
func (a *Authenticator) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /auth/login", a.login)
	mux.HandleFunc("GET /auth/callback", a.callback)
	mux.HandleFunc("GET /auth/token", a.tokenForm)
	mux.Handle("POST /auth/token", a.origins.Handler(http.HandlerFunc(a.tokenLogin)))
	mux.Handle("POST /auth/logout", a.origins.Handler(http.HandlerFunc(a.logout)))
	mux.HandleFunc("GET /auth/signed-out", a.signedOut)
}

// User is who the request's session cookie says signed in. A missing
// cookie is ErrNoSession; an expired, forged or changed one another
// error.
func (a *Authenticator) User(r *http.Request) (*User, error) {
	c, err := r.Cookie(a.sessionCookieName())
	if err != nil || c.Value == "" {
		return nil, ErrNoSession
	}
	var s session
	if err := a.sessions.open(c.Name, c.Value, &s); err != nil {
		return nil, fmt.Errorf("session refused: %w", err)
	}
	if s.V != sessionVersion {
		return nil, errors.New("session refused: it is from another version of tend")
	}
	if !a.now().Before(time.Unix(s.Expires, 0)) {
		return nil, errors.New("session expired")
	}
	if s.Admin && (len(a.cfg.AdminTokenHash) == 0 || s.Token != adminTokenID(a.cfg.AdminTokenHash)) {
		return nil, errors.New("session refused: the admin token it signed in with was replaced or removed")
	}
	return &User{Subject: s.Subject, Name: s.Name, Email: s.Email, Groups: s.Groups, Admin: s.Admin, grants: *a.grants.Load(), csrf: s.CSRF}, nil
}

type userKey struct{}

// UserFrom is the user Require put in ctx.
func UserFrom(ctx context.Context) (*User, bool) {
	u, ok := ctx.Value(userKey{}).(*User)
	return u, ok
}

// WithUser returns ctx carrying u, as Require does (for tests of handlers
// behind Require).
func WithUser(ctx context.Context, u *User) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

// CSRFHeader carries the session's CSRF token (User.CSRFToken) on
// state-changing requests.
const CSRFHeader = "X-Tend-CSRF"

// Require serves next only requests with a valid session, the user in
// their context (UserFrom). Without one, API requests (/api/...) get 401
// JSON, page loads a redirect to /auth/login, other requests a 401 page.
// State-changing requests (all but GET, HEAD, OPTIONS) must also be
// same-origin and carry the session's CSRF token in CSRFHeader or a csrf
// form field, or get 403.
func (a *Authenticator) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := a.User(r)
		if err != nil {
			if !errors.Is(err, ErrNoSession) {
				a.clearSession(w)
				a.log.Info("dashboard session refused", "reason", err.Error(), "path", r.URL.Path)
			}
			if !isAPI(r) && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
				http.Redirect(w, r, "/auth/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			Refuse(w, r, http.StatusUnauthorized, err.Error()+": sign in again")
			return
		}
		if !safeMethod(r.Method) {
			if err := a.origins.Check(r); err != nil {
				Refuse(w, r, http.StatusForbidden, "cross-origin request refused: use the dashboard's own pages")
				return
			}
			if !a.checkCSRF(r, u) {
				Refuse(w, r, http.StatusForbidden, "missing or wrong CSRF token: reload the page")
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(WithUser(r.Context(), u)))
	})
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// checkCSRF compares the request's CSRF token with the session's. The form
// field is read only from URL-encoded form bodies, which ParseForm keeps
// for the next handler.
func (a *Authenticator) checkCSRF(r *http.Request, u *User) bool {
	got := r.Header.Get(CSRFHeader)
	if got == "" && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		got = r.PostFormValue("csrf")
	}
	return got != "" && u.csrf != "" && subtle.ConstantTimeCompare([]byte(got), []byte(u.csrf)) == 1
}

func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }

// startSession hands u a new session cookie and logs the sign-in.
func (a *Authenticator) startSession(w http.ResponseWriter, u *User, method string) error {
	s := session{V: sessionVersion, Subject: u.Subject, Name: u.Name, Email: u.Email, Groups: u.Groups, Admin: u.Admin, CSRF: randomToken(), Expires: a.now().Add(a.cfg.SessionTTL).Unix()}
	if u.Admin {
		s.Token = adminTokenID(a.cfg.AdminTokenHash)
	}
	if err := a.setSession(w, u, s); err != nil {
		return err
	}
	a.log.Info("dashboard sign-in", "user", u.Name, "subject", u.Subject, "method", method, "groups", len(u.Groups))
	return nil
}

// logout clears the session. With a valid session, the request must carry
// its CSRF token (a forged sign-out is refused); without one, it just
// clears whatever cookie there was.
func (a *Authenticator) logout(w http.ResponseWriter, r *http.Request) {
	if u, err := a.User(r); err == nil {
		if !a.checkCSRF(r, u) {
			Refuse(w, r, http.StatusForbidden, "missing or wrong CSRF token: sign out from the dashboard's own page")
			return
		}
		a.log.Info("dashboard sign-out", "user", u.Name)
	}
	a.clearSession(w)
	if isAPI(r) || strings.Contains(r.Header.Get("Accept"), "application/json") {
		writeJSON(w, http.StatusOK, map[string]string{"status": "signed out"})
		return
	}
	http.Redirect(w, r, "/auth/signed-out", http.StatusSeeOther)
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// safeNext keeps next only when it is a path on this site: no scheme, no
// host, no "//" or "/\" that a browser would read as another host.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\r\n") {
		return "/"
	}
	if u, err := url.Parse(next); err != nil || u.Scheme != "" || u.Host != "" || strings.HasPrefix(u.Path, "/auth/") {
		return "/"
	}
	return next
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
