package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"
)

// adminTokenPrefix marks admin tokens, so that secret scanners and people
// recognize one.
const adminTokenPrefix = "tend_admin_"

// NewAdminToken makes a local admin token (256 random bits) and its hash.
// The token is shown once (`tend dashboard token`); only the hash is
// kept, in a Secret, and goes to Config.AdminTokenHash.
func NewAdminToken() (token string, hash []byte) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	token = adminTokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, HashAdminToken(token)
}

// adminTokenID names an admin token in its sessions: the first bytes of
// a hash of its hash, which tells tokens apart and reveals nothing usable.
func adminTokenID(hash []byte) string {
	id := sha256.Sum256(append([]byte("tend admin token id\x00"), hash...))
	return base64.RawURLEncoding.EncodeToString(id[:12])
}

// HashAdminToken is the SHA-256 of token, without surrounding spaces
// (pasting adds some).
func HashAdminToken(token string) []byte {
	h := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return h[:]
}

// tokenForm shows the admin token form.
func (a *Authenticator) tokenForm(w http.ResponseWriter, r *http.Request) {
	if len(a.cfg.AdminTokenHash) == 0 {
		Refuse(w, r, http.StatusNotFound, "admin token sign-in is off: sign in with single sign-on")
		return
	}
	a.renderTokenForm(w, http.StatusOK, safeNext(r.URL.Query().Get("next")), "")
}

// tokenLogin signs in as admin with the token of the form field token.
// The hashes are compared in constant time.
func (a *Authenticator) tokenLogin(w http.ResponseWriter, r *http.Request) {
	if len(a.cfg.AdminTokenHash) == 0 {
		Refuse(w, r, http.StatusNotFound, "admin token sign-in is off: sign in with single sign-on")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	token := r.PostFormValue("token")
	next := safeNext(r.PostFormValue("next"))
	if token == "" || subtle.ConstantTimeCompare(HashAdminToken(token), a.cfg.AdminTokenHash) != 1 {
		a.log.Info("dashboard sign-in refused", "method", "admin token", "reason", "wrong token")
		if isAPI(r) || strings.Contains(r.Header.Get("Accept"), "application/json") {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "wrong admin token"})
			return
		}
		a.renderTokenForm(w, http.StatusUnauthorized, next, "That is not the admin token: use the one `tend dashboard token` printed (run it again to make a new one).")
		return
	}
	u := &User{Name: "admin", Admin: true, grants: *a.grants.Load()}
	if err := a.startSession(w, u, "admin token"); err != nil {
		Refuse(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}
