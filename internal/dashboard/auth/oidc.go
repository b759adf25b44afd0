package auth

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// login sends the browser to the issuer with a fresh state, nonce and
// PKCE verifier, kept in a sealed state cookie for the callback. Without
// an issuer it shows the admin token form.
func (a *Authenticator) login(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if a.oauth == nil {
		a.renderTokenForm(w, http.StatusOK, next, "")
		return
	}
	st := loginState{State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier(), Next: next, Expires: a.now().Add(stateTTL).Unix()}
	name := a.stateCookieName(st.State)
	v, err := a.states.seal(name, st)
	if err != nil {
		Refuse(w, r, http.StatusInternalServerError, "cannot start the sign-in: "+err.Error())
		return
	}
	http.SetCookie(w, a.cookie(name, v, "/auth/callback", int(stateTTL.Seconds())))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, a.oauth.AuthCodeURL(st.State, oidc.Nonce(st.Nonce), oauth2.S256ChallengeOption(st.Verifier)), http.StatusFound)
}

// callback finishes a sign-in: the state must match a state cookie of
// this browser, not expired and not used before; the code is exchanged
// with the PKCE verifier; the ID token must be signed by the issuer, for
// this client, unexpired and carry the nonce; the user must have a grant.
// Anything else is refused with a page saying why, and no session is
// made.
func (a *Authenticator) callback(w http.ResponseWriter, r *http.Request) {
	if a.oauth == nil {
		Refuse(w, r, http.StatusNotFound, "single sign-on is not configured")
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	name := a.stateCookieName(state)
	c, cookieErr := r.Cookie(name)
	// The state cookie is for one use, whatever happens next.
	if state != "" {
		http.SetCookie(w, a.cookie(name, "", "/auth/callback", -1))
	}
	if e := q.Get("error"); e != "" {
		a.refuseSignIn(w, r, http.StatusUnauthorized, fmt.Sprintf("the issuer refused the sign-in: %s %s", e, q.Get("error_description")))
		return
	}
	if state == "" || len(state) > 128 || q.Get("code") == "" {
		a.refuseSignIn(w, r, http.StatusBadRequest, "this is not a callback from the issuer (no state or code)")
		return
	}
	if cookieErr != nil {
		a.refuseSignIn(w, r, http.StatusUnauthorized, "this sign-in was already used, has expired or was started in another browser")
		return
	}
	var st loginState
	if err := a.states.open(name, c.Value, &st); err != nil {
		a.refuseSignIn(w, r, http.StatusUnauthorized, "the sign-in state is not valid: "+err.Error())
		return
	}
	if subtle.ConstantTimeCompare([]byte(st.State), []byte(state)) != 1 {
		a.refuseSignIn(w, r, http.StatusUnauthorized, "the sign-in state does not match")
		return
	}
	if !a.now().Before(time.Unix(st.Expires, 0)) {
		a.refuseSignIn(w, r, http.StatusUnauthorized, "the sign-in took too long")
		return
	}
	if err := a.used.claim(st.State, time.Unix(st.Expires, 0), a.now()); err != nil {
		a.refuseSignIn(w, r, http.StatusUnauthorized, err.Error())
		return
	}
	ctx := context.WithValue(r.Context(), oauth2.HTTPClient, a.cfg.HTTPClient)
	tok, err := a.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(st.Verifier))
	if err != nil {
		a.refuseSignIn(w, r, http.StatusUnauthorized, "the issuer refused the code: "+err.Error())
		return
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		a.refuseSignIn(w, r, http.StatusUnauthorized, "the issuer sent no ID token (is the openid scope allowed for this client?)")
		return
	}
	idt, err := a.verifier.Verify(ctx, raw)
	if err != nil {
		a.refuseSignIn(w, r, http.StatusUnauthorized, "the ID token is not valid: "+err.Error())
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(st.Nonce)) != 1 {
		a.refuseSignIn(w, r, http.StatusUnauthorized, "the ID token's nonce does not match this sign-in")
		return
	}
	u, err := a.userFromToken(idt)
	if err != nil {
		a.refuseSignIn(w, r, http.StatusUnauthorized, err.Error())
		return
	}
	if !u.granted() {
		a.log.Info("dashboard sign-in refused", "user", u.Name, "subject", u.Subject, "reason", "no grant")
		Refuse(w, r, http.StatusForbidden, fmt.Sprintf("%s signed in, but no grant of the dashboard policy names you or your groups (%s): ask an admin to add one", u.Name, groupList(u.Groups)))
		return
	}
	if err := a.startSession(w, u, "oidc"); err != nil {
		a.refuseSignIn(w, r, http.StatusForbidden, err.Error())
		return
	}
	http.Redirect(w, r, st.Next, http.StatusSeeOther)
}

func (a *Authenticator) refuseSignIn(w http.ResponseWriter, r *http.Request, code int, reason string) {
	a.log.Info("dashboard sign-in refused", "reason", reason)
	Refuse(w, r, code, "sign-in refused: "+reason)
}

// userFromToken reads who signed in from the ID token's claims. The
// groups claim may be a list or, with some issuers, a single string.
func (a *Authenticator) userFromToken(idt *oidc.IDToken) (*User, error) {
	var claims map[string]json.RawMessage
	if err := idt.Claims(&claims); err != nil {
		return nil, fmt.Errorf("the ID token's claims: %w", err)
	}
	str := func(k string) string {
		var s string
		_ = json.Unmarshal(claims[k], &s)
		return s
	}
	u := &User{Subject: idt.Subject, grants: *a.grants.Load()}
	// Only an address the issuer says it verified counts: issuers that
	// leave email_verified out may let users type any address, and grants
	// by users: match on it.
	if verified := string(claims["email_verified"]); str("email") != "" && (verified == "true" || verified == `"true"`) {
		u.Email = str("email")
	}
	for _, k := range []string{"preferred_username", "name", "email"} {
		if u.Name = str(k); u.Name != "" {
			break
		}
	}
	if u.Name == "" {
		u.Name = idt.Subject
	}
	if g, ok := claims[a.cfg.GroupsClaim]; ok && string(g) != "null" {
		if err := json.Unmarshal(g, &u.Groups); err != nil {
			var one string
			if json.Unmarshal(g, &one) != nil {
				return nil, fmt.Errorf("the ID token's %q claim is neither a list of groups nor a group", a.cfg.GroupsClaim)
			}
			u.Groups = []string{one}
		}
	}
	return u, nil
}

// maxPendingStates bounds the used states remembered: past it, sign-ins
// are refused until old ones expire (a flood of callbacks cannot grow
// memory without end).
const maxPendingStates = 100_000

// usedStates remembers the states of finished sign-ins until they expire,
// so that a callback replayed with its state cookie is refused by this
// replica. (Another replica does not know them; there the issuer's
// one-use code refuses the replay.)
type usedStates struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func newUsedStates() *usedStates { return &usedStates{seen: map[string]time.Time{}} }

// claim marks state used; it fails when it already was.
func (u *usedStates) claim(state string, expires, now time.Time) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.seen[state]; ok {
		return errors.New("this sign-in was already used (replayed callback)")
	}
	if len(u.seen) >= maxPendingStates/2 {
		for s, exp := range u.seen {
			if !now.Before(exp) {
				delete(u.seen, s)
			}
		}
	}
	if len(u.seen) >= maxPendingStates {
		return errors.New("too many sign-ins at once: try again in a few minutes")
	}
	u.seen[state] = expires
	return nil
}
