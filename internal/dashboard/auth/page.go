package auth

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
)

// pageCSP allows the pages of this package nothing but posting their
// forms here and the dashboard's own stylesheet (StyleSheet): no script,
// no image.
const pageCSP = "default-src 'none'; style-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// StyleSheet is the path of the stylesheet the pages link to; the server
// in front of the Authenticator serves it without a session (it is the
// dashboard's own, public, CSS).
const StyleSheet = "/assets/app.css"

// Refuse answers an API request (/api/...) with a JSON error and any other
// with a short page that says what happened and what to do, with a link
// to sign in again.
func Refuse(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if isAPI(r) || strings.Contains(r.Header.Get("Accept"), "application/json") {
		writeJSON(w, code, map[string]string{"error": msg})
		return
	}
	writePage(w, code, fmt.Sprintf("%d %s", code, http.StatusText(code)),
		"<p>"+html.EscapeString(msg)+`</p><p><a href="/auth/login">Sign in again</a> · <a href="/">Dashboard</a></p>`)
}

// writePage writes a page whose body is trusted HTML.
func writePage(w http.ResponseWriter, code int, title, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(code)
	fmt.Fprintf(w, "<!doctype html>\n<html lang=\"en\"><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>tend · %s</title>\n<link rel=\"stylesheet\" href=\"%s\">\n<header class=\"top\"><span class=\"brand\">tend</span></header>\n<main class=\"auth\">\n<h1>%s</h1>\n%s\n</main>\n</html>\n",
		html.EscapeString(title), StyleSheet, html.EscapeString(title), body)
}

// renderTokenForm shows the admin token form, with a problem if any and a
// link to single sign-on when there is an issuer.
func (a *Authenticator) renderTokenForm(w http.ResponseWriter, code int, next, problem string) {
	var b strings.Builder
	if problem != "" {
		fmt.Fprintf(&b, "<p><strong>%s</strong></p>\n", html.EscapeString(problem))
	}
	if len(a.cfg.AdminTokenHash) != 0 {
		fmt.Fprintf(&b, `<form method="post" action="/auth/token">
<p><label>Admin token <input type="password" name="token" autocomplete="off" required autofocus></label>
<input type="hidden" name="next" value="%s">
<button type="submit">Sign in</button></p>
</form>
<p>The admin token is the one <code>tend dashboard token</code> printed.</p>
`, html.EscapeString(next))
	}
	if a.oauth != nil {
		fmt.Fprintf(&b, "<p><a href=\"/auth/login?next=%s\">Sign in with single sign-on</a></p>\n", html.EscapeString(url.QueryEscape(next)))
	}
	if b.Len() == 0 {
		b.WriteString("<p>No way to sign in is configured.</p>")
	}
	writePage(w, code, "Sign in", b.String())
}

// signedOut says so. With single sign-on the issuer may still have a
// session, and signing in again may not ask for a password.
func (a *Authenticator) signedOut(w http.ResponseWriter, r *http.Request) {
	writePage(w, http.StatusOK, "Signed out", `<p>You are signed out of the dashboard.</p><p><a href="/auth/login">Sign in again</a></p>`)
}
