package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Cookies. A session lives in one cookie, sealed with AES-256-GCM under a
// key derived from Config.SessionKey: nobody without the key can read it
// or make one, and any change to it fails authentication. The cookie's
// name is the additional data, so a sealed value cannot move from one
// cookie to another (a login state cookie is no session).
//
// SameSite is Lax for both cookies, not Strict: the issuer sends the
// browser back to /auth/callback with a cross-site navigation, which must
// carry the state cookie, and a Strict session cookie set during that
// redirect chain would be missing from the first page (and from every
// link followed from chat or mail). Lax cookies are not sent with
// cross-site POSTs; on top of that every state-changing request needs
// the session's CSRF token and passes http.CrossOriginProtection.

const (
	// maxCookieValue keeps a cookie, with its name and attributes, under
	// the 4096 bytes browsers store.
	maxCookieValue = 3800
	// stateTTL is how long a sign-in may take at the issuer.
	stateTTL = 10 * time.Minute
	// sessionVersion changes when session's shape does; older cookies
	// are refused (their users sign in again).
	sessionVersion = 1
)

// session is what the session cookie holds.
type session struct {
	V       int      `json:"v"`
	Subject string   `json:"sub,omitempty"`
	Name    string   `json:"n"`
	Email   string   `json:"e,omitempty"`
	Groups  []string `json:"g,omitempty"`
	Admin   bool     `json:"a,omitempty"`
	// Token names the admin token an admin session signed in with
	// (adminTokenID): a new token ends the sessions of the old one.
	Token   string `json:"t,omitempty"`
	CSRF    string `json:"c"`
	Expires int64  `json:"x"`
}

// loginState is what a state cookie holds between /auth/login and
// /auth/callback.
type loginState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Next     string `json:"r"`
	Expires  int64  `json:"x"`
}

// sealer encrypts and authenticates cookie values.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte, purpose string) (sealer, error) {
	k, err := hkdf.Key(sha256.New, key, nil, "tend dashboard "+purpose, 32)
	if err != nil {
		return sealer{}, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return sealer{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return sealer{}, err
	}
	return sealer{aead: aead}, nil
}

// seal encodes v for the cookie called name.
func (s sealer) seal(name string, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(b)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, b, []byte(name))), nil
}

var errForged = errors.New("the cookie was not made by this dashboard or was changed (or the session key changed)")

// open decodes into v what seal encoded for the cookie called name.
func (s sealer) open(name, value string, v any) error {
	if len(value) > maxCookieValue*2 {
		return errForged
	}
	b, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(b) < s.aead.NonceSize()+s.aead.Overhead() {
		return errForged
	}
	plain, err := s.aead.Open(nil, b[:s.aead.NonceSize()], b[s.aead.NonceSize():], []byte(name))
	if err != nil {
		return errForged
	}
	if err := json.Unmarshal(plain, v); err != nil {
		return fmt.Errorf("cookie: %w", err)
	}
	return nil
}

// sessionCookieName is __Host- prefixed when Secure: the browser then
// refuses it from plain HTTP, from another path and from a subdomain.
func (a *Authenticator) sessionCookieName() string {
	if a.cfg.Secure {
		return "__Host-tend_auth"
	}
	return "tend_auth"
}

// stateCookieName is one per sign-in under way, so that two tabs signing
// in at once do not overwrite each other's state.
func (a *Authenticator) stateCookieName(state string) string {
	if len(state) > 16 {
		state = state[:16]
	}
	if a.cfg.Secure {
		return "__Secure-tend_login_" + state
	}
	return "tend_login_" + state
}

func (a *Authenticator) cookie(name, value, path string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: path, MaxAge: maxAge, HttpOnly: true, Secure: a.cfg.Secure, SameSite: http.SameSiteLaxMode}
}

// setSession seals s into the session cookie. When the user's groups make
// it too big, only the groups that some grant names are kept.
func (a *Authenticator) setSession(w http.ResponseWriter, u *User, s session) error {
	name := a.sessionCookieName()
	v, err := a.sessions.seal(name, s)
	if err != nil {
		return err
	}
	if len(v) > maxCookieValue {
		s.Groups = u.grantedGroups()
		if v, err = a.sessions.seal(name, s); err != nil {
			return err
		}
		if len(v) > maxCookieValue {
			return fmt.Errorf("the session does not fit in a cookie (%d bytes) even with only the %d groups that grants name", len(v), len(s.Groups))
		}
	}
	http.SetCookie(w, a.cookie(name, v, "/", int(time.Unix(s.Expires, 0).Sub(a.now()).Seconds())))
	return nil
}

func (a *Authenticator) clearSession(w http.ResponseWriter) {
	http.SetCookie(w, a.cookie(a.sessionCookieName(), "", "/", -1))
}
