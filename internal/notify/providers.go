package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ProviderTypes are the values of Config.Type (a Notifier's spec.provider)
// that New accepts.
var ProviderTypes = []string{"discord", "slack", "matrix", "teams", "telegram", "webhook", "github", "gitlab", "gitea"}

// New validates cfg and returns the provider for cfg.Type. Its errors name
// the Notifier field or Secret key to fix; they never contain the address
// of a webhook (which is a credential) or a token.
func New(cfg Config) (Provider, error) {
	switch cfg.Type {
	case "discord":
		return newDiscord(cfg)
	case "slack":
		return newSlack(cfg)
	case "matrix":
		return newMatrix(cfg)
	case "teams":
		return newTeams(cfg)
	case "telegram":
		return newTelegram(cfg)
	case "webhook":
		return newWebhook(cfg)
	case "github", "gitlab", "gitea":
		return newCommitStatus(cfg)
	case "":
		return nil, fmt.Errorf("no provider: set spec.provider to one of %s", strings.Join(ProviderTypes, ", "))
	}
	return nil, fmt.Errorf("unknown provider %q: set spec.provider to one of %s", cfg.Type, strings.Join(ProviderTypes, ", "))
}

// userAgent identifies tend to the providers.
const userAgent = "tend"

// Limits of what tend reads from an answer and keeps of it in an error.
const (
	maxAnswer  = 64 << 10
	maxErrBody = 512
)

// errNoAddress is the error for a missing address; what names it: "webhook
// address", "homeserver address".
func errNoAddress(provider, what string) error {
	return fmt.Errorf(`%s: no %s: set spec.address or the "address" key of the Notifier's Secret`, provider, what)
}

// errNoToken is the error for a missing token; what says which token.
func errNoToken(provider, what string) error {
	return fmt.Errorf(`%s: no token: put the %s in the "token" key of the Notifier's Secret (spec.secretRef)`, provider, what)
}

// parseAddress checks that raw is an absolute http(s) URL. A secret address
// (a webhook URL carries its credential) is not repeated in the error.
func parseAddress(provider, raw string, secret bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		shown := ""
		if !secret {
			shown = fmt.Sprintf(" %q", raw)
		}
		return nil, fmt.Errorf(`%s: address%s is not an http:// or https:// URL: fix spec.address or the "address" key of the Notifier's Secret`, provider, shown)
	}
	return u, nil
}

// apiBase is an API base URL without its trailing slash.
func apiBase(provider, raw, def string) (string, error) {
	if raw == "" {
		return def, nil
	}
	if _, err := parseAddress(provider, raw, false); err != nil {
		return "", err
	}
	return strings.TrimRight(raw, "/"), nil
}

// urlSecrets are the parts of a webhook URL that are credentials: the URL,
// and its path and query when long enough to be a token rather than a
// route.
func urlSecrets(raw string) []string {
	s := []string{raw}
	if u, err := url.Parse(raw); err == nil {
		if len(u.Path) >= 16 {
			s = append(s, u.Path, u.EscapedPath())
		}
		if len(u.RawQuery) >= 16 {
			s = append(s, u.RawQuery)
		}
	}
	return s
}

// transport sends JSON requests for one provider and turns answers into
// errors free of the provider's secrets.
type transport struct {
	provider string
	client   *http.Client
	// secrets are removed from every error text.
	secrets []string
	// retryAfter, when set, reads a provider's own wait headers for a
	// non-2xx answer without Retry-After.
	retryAfter func(h http.Header, now time.Time) time.Duration
}

func newTransport(provider string, cfg Config, secrets ...string) *transport {
	t := &transport{provider: provider, client: cfg.Client}
	if t.client == nil {
		t.client = &http.Client{
			Timeout: 15 * time.Second,
			// A redirected POST becomes a GET and delivers nothing: report
			// the redirect instead of following it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	for _, s := range secrets {
		if s != "" {
			t.secrets = append(t.secrets, s, url.PathEscape(s), url.QueryEscape(s))
		}
	}
	// Longest first, so that a token inside a URL goes with the URL.
	sort.Slice(t.secrets, func(i, j int) bool { return len(t.secrets[i]) > len(t.secrets[j]) })
	return t
}

// scrub replaces every secret in s.
func (t *transport) scrub(s string) string {
	for _, secret := range t.secrets {
		s = strings.ReplaceAll(s, secret, "<redacted>")
	}
	return s
}

// do sends body to rawURL and returns the answer's body. A non-2xx answer
// is an *HTTPError, returned with the body so that providers can read
// their JSON error. Transport errors name the host, never the path.
func (t *transport) do(ctx context.Context, method, rawURL string, header http.Header, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, bytes.NewReader(body))
	if err != nil {
		return nil, &scrubbedError{msg: t.provider + ": " + t.scrub(err.Error()), err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := t.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		msg := fmt.Sprintf("%s: %s %s: %s", t.provider, method, hostOnly(req.URL), t.scrub(err.Error()))
		return nil, &scrubbedError{msg: msg, err: err}
	}
	defer resp.Body.Close()
	answer, readErr := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		he := &HTTPError{
			Status:     resp.StatusCode,
			RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
			Body:       t.excerpt(answer),
		}
		if he.RetryAfter == 0 && t.retryAfter != nil {
			he.RetryAfter = t.retryAfter(resp.Header, time.Now())
		}
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			// Name the host only: the target of a secret URL may be one.
			where := "elsewhere"
			if loc, err := resp.Location(); err == nil {
				where = hostOnly(loc)
			}
			he.Body = "redirected to " + where + ": set the final URL as the address"
		}
		return answer, he
	}
	if readErr != nil {
		return nil, &scrubbedError{msg: fmt.Sprintf("%s: read answer from %s: %s", t.provider, hostOnly(req.URL), t.scrub(readErr.Error())), err: readErr}
	}
	return answer, nil
}

// excerpt is the start of an answer for an HTTPError: secrets removed,
// at most maxErrBody bytes of valid UTF-8.
func (t *transport) excerpt(b []byte) string {
	s := strings.TrimSpace(t.scrub(strings.ToValidUTF8(string(b), "?")))
	if len(s) <= maxErrBody {
		return s
	}
	cut := maxErrBody
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// hostOnly shows where a request went without the path, which may hold a
// token (Telegram) or be the credential (webhook URLs).
func hostOnly(u *url.URL) string {
	s := u.Scheme + "://" + u.Host
	if u.Path != "" && u.Path != "/" {
		s += "/…"
	}
	return s
}

// scrubbedError shows msg, free of secrets, and unwraps to the cause, so
// that errors.Is(err, context.DeadlineExceeded) still works.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		return seconds(secs)
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// seconds converts a non-negative number of seconds to a duration.
func seconds(s float64) time.Duration {
	if s <= 0 || s > 24*60*60 {
		return 0
	}
	return time.Duration(s * float64(time.Second))
}

// withRetryAfter sets the HTTPError's RetryAfter to d when the answer's
// body said how long to wait; the body is more precise than the header.
func withRetryAfter(err error, d time.Duration) error {
	var he *HTTPError
	if d > 0 && errors.As(err, &he) {
		he.RetryAfter = d
	}
	return err
}
