package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const testSHA = "0123456789abcdef0123456789abcdef01234567"

var testTime = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

// testMessage is a failed sync of default/web with 12 changes.
func testMessage() Message {
	changes := make([]string, 12)
	for i := range changes {
		changes[i] = fmt.Sprintf("Deployment web/api-%d configured", i)
	}
	return Message{
		Event: Event{
			Kind:         SyncFailed,
			Severity:     Error,
			Time:         testTime,
			AppNamespace: "default",
			AppName:      "web",
			Revision:     testSHA,
			Subject:      "Bump <api> & friends",
			RepoURL:      "https://github.com/acme/app.git",
			Message:      "Sync failed at wave 2",
			Changes:      changes,
			Error:        "apply Deployment web/api: spec.replicas: Invalid value: -1",
		},
		Link: "https://tend.example.com/apps/default/web",
	}
}

// hookRequest is what a test server received.
type hookRequest struct {
	Method      string
	Path        string // decoded
	EscapedPath string
	Header      http.Header
	Body        []byte
}

// hookServer is an httptest server that records requests and answers with
// status, header and body.
type hookServer struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []hookRequest
	status int
	header http.Header
	body   string
}

func newHookServer(t *testing.T, status int, body string) *hookServer {
	t.Helper()
	rec := &hookServer{status: status, body: body, header: http.Header{}}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, hookRequest{Method: r.Method, Path: r.URL.Path, EscapedPath: r.URL.EscapedPath(), Header: r.Header.Clone(), Body: b})
		status, body := rec.status, rec.body
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		rec.mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(rec.Close)
	return rec
}

// answer changes the answer to the next requests.
func (rec *hookServer) answer(status int, body string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.status, rec.body = status, body
}

// reset forgets the requests received so far.
func (rec *hookServer) reset() {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.reqs = nil
}

func (rec *hookServer) requests() []hookRequest {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]hookRequest(nil), rec.reqs...)
}

// only returns the single request the server received.
func (rec *hookServer) only(t *testing.T) hookRequest {
	t.Helper()
	reqs := rec.requests()
	if len(reqs) != 1 {
		t.Fatalf("server received %d requests, want 1", len(reqs))
	}
	return reqs[0]
}

func mustNew(t *testing.T, cfg Config) Provider {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.Type, err)
	}
	return p
}

func mustSend(t *testing.T, p Provider, m Message) {
	t.Helper()
	if err := p.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
}

func decodeJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

func checkRequest(t *testing.T, r hookRequest, method string) {
	t.Helper()
	if r.Method != method {
		t.Errorf("method = %s, want %s", r.Method, method)
	}
	if got, want := r.Header.Get("User-Agent"), "tend"; got != want {
		t.Errorf("User-Agent = %q, want %q", got, want)
	}
	if got := r.Header.Get("Content-Type"); !strings.HasPrefix(got, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", got)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want []string // substrings of the error
	}{
		{Config{}, []string{"spec.provider", "discord, slack"}},
		{Config{Type: "pagerduty"}, []string{`unknown provider "pagerduty"`, "spec.provider"}},
		{Config{Type: "discord"}, []string{`discord: no webhook address: set spec.address or the "address" key of the Notifier's Secret`}},
		{Config{Type: "discord", Address: "discord.com/api/webhooks/1/secret-token"}, []string{"discord: address is not an http:// or https:// URL"}},
		{Config{Type: "slack"}, []string{"slack: no webhook address", `"token" key`, "spec.channel"}},
		{Config{Type: "slack", Token: "xoxb-1"}, []string{"slack: no channel: set spec.channel"}},
		{Config{Type: "matrix", Token: "t", Channel: "!r:example.org"}, []string{"matrix: no homeserver address", "spec.address"}},
		{Config{Type: "matrix", Address: "https://matrix.example.org", Channel: "!r:example.org"}, []string{"matrix: no token", `"token" key`}},
		{Config{Type: "matrix", Address: "https://matrix.example.org", Token: "t"}, []string{"matrix: no room: set spec.channel"}},
		{Config{Type: "matrix", Address: "https://matrix.example.org", Token: "t", Channel: "#ops:example.org"}, []string{"room alias", "room ID"}},
		{Config{Type: "matrix", Address: "ftp://matrix.example.org", Token: "t", Channel: "!r:example.org"}, []string{`address "ftp://matrix.example.org" is not an http:// or https:// URL`}},
		{Config{Type: "teams"}, []string{"teams: no workflow webhook address", "spec.address"}},
		{Config{Type: "telegram", Channel: "-100"}, []string{"telegram: no token", `"token" key`}},
		{Config{Type: "telegram", Token: "1:x"}, []string{"telegram: no chat: set spec.channel"}},
		{Config{Type: "webhook"}, []string{"webhook: no webhook address", "spec.address"}},
		{Config{Type: "github"}, []string{"github: no token", `"token" key`}},
		{Config{Type: "gitlab"}, []string{"gitlab: no token", `"token" key`}},
		{Config{Type: "gitea", Token: "t"}, []string{"gitea: no Gitea address", "spec.address"}},
	} {
		p, err := New(tc.cfg)
		if err == nil {
			t.Errorf("New(%+v) = %T, want an error", tc.cfg, p)
			continue
		}
		for _, want := range tc.want {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("New(%+v) error = %q, want it to contain %q", tc.cfg, err, want)
			}
		}
		if strings.Contains(err.Error(), "secret-token") {
			t.Errorf("New(%+v) error %q repeats the webhook address", tc.cfg, err)
		}
	}

	// Every provider accepts a complete config.
	for _, cfg := range []Config{
		{Type: "discord", Address: "https://discord.com/api/webhooks/1/x"},
		{Type: "slack", Address: "https://hooks.slack.com/services/T/B/x"},
		{Type: "slack", Token: "xoxb-1", Channel: "C1"},
		{Type: "matrix", Address: "https://matrix.example.org", Token: "t", Channel: "!r:example.org"},
		{Type: "teams", Address: "https://prod.westeurope.logic.azure.com/workflows/x"},
		{Type: "telegram", Token: "1:x", Channel: "-100"},
		{Type: "webhook", Address: "https://hooks.example.com/tend"},
		{Type: "github", Token: "t"},
		{Type: "gitlab", Token: "t"},
		{Type: "gitea", Address: "https://gitea.example.com", Token: "t"},
	} {
		if _, err := New(cfg); err != nil {
			t.Errorf("New(%+v): %v", cfg, err)
		}
	}
	if len(ProviderTypes) != 9 {
		t.Errorf("ProviderTypes = %v, want 9 types", ProviderTypes)
	}
}

func TestDiscord(t *testing.T) {
	srv := newHookServer(t, http.StatusNoContent, "")
	p := mustNew(t, Config{Type: "discord", Address: srv.URL + "/api/webhooks/1/tok", Username: "tend"})
	mustSend(t, p, testMessage())

	r := srv.only(t)
	checkRequest(t, r, "POST")
	if got, want := r.Path, "/api/webhooks/1/tok"; got != want {
		t.Errorf("path = %q, want %q", got, want)
	}
	var got struct {
		Username string `json:"username"`
		Embeds   []struct {
			Title       string `json:"title"`
			Description string `json:"description"`
			Color       int    `json:"color"`
			URL         string `json:"url"`
			Timestamp   string `json:"timestamp"`
			Fields      []struct {
				Name   string `json:"name"`
				Value  string `json:"value"`
				Inline bool   `json:"inline"`
			} `json:"fields"`
		} `json:"embeds"`
		AllowedMentions struct {
			Parse []string `json:"parse"`
		} `json:"allowed_mentions"`
	}
	decodeJSON(t, r.Body, &got)
	if got.Username != "tend" {
		t.Errorf("username = %q, want tend", got.Username)
	}
	if len(got.Embeds) != 1 {
		t.Fatalf("%d embeds, want 1", len(got.Embeds))
	}
	e := got.Embeds[0]
	if want := "default/web: sync failed"; e.Title != want {
		t.Errorf("title = %q, want %q", e.Title, want)
	}
	for _, want := range []string{"Sync failed at wave 2", "`0123456789ab`", "Bump <api> & friends"} {
		if !strings.Contains(e.Description, want) {
			t.Errorf("description %q does not contain %q", e.Description, want)
		}
	}
	if e.Color != 0xE01E5A {
		t.Errorf("color = %#x, want red %#x", e.Color, 0xE01E5A)
	}
	if e.URL != "https://tend.example.com/apps/default/web" {
		t.Errorf("url = %q, want the message's link", e.URL)
	}
	if e.Timestamp != "2025-03-14T15:09:26Z" {
		t.Errorf("timestamp = %q, want 2025-03-14T15:09:26Z", e.Timestamp)
	}
	fields := map[string]string{}
	for _, f := range e.Fields {
		fields[f.Name] = f.Value
	}
	if v := fields["Changes"]; !strings.Contains(v, "• Deployment web/api-0 configured") || strings.Contains(v, "api-10") || !strings.HasSuffix(v, "• and 2 more") {
		t.Errorf("Changes field = %q, want the first 10 changes and \"and 2 more\"", v)
	}
	if v := fields["Error"]; !strings.Contains(v, "spec.replicas: Invalid value: -1") {
		t.Errorf("Error field = %q, want the error", v)
	}
	if got.AllowedMentions.Parse == nil || len(got.AllowedMentions.Parse) != 0 {
		t.Errorf("allowed_mentions.parse = %v, want []", got.AllowedMentions.Parse)
	}
}

func TestDiscordLimits(t *testing.T) {
	m := testMessage()
	m.Event.AppName = strings.Repeat("w", 300)
	m.Event.Error = strings.Repeat("e", 5000)
	m.Event.Changes = []string{strings.Repeat("c", 180), strings.Repeat("d", 180), strings.Repeat("f", 180), strings.Repeat("g", 180), strings.Repeat("h", 180), strings.Repeat("i", 180)}
	e := discordEmbedOf(newCard(m))
	if n := len([]rune(e.Title)); n > discordTitle {
		t.Errorf("title has %d characters, Discord allows %d", n, discordTitle)
	}
	total := len([]rune(e.Title)) + len([]rune(e.Description))
	for _, f := range e.Fields {
		if n := len([]rune(f.Value)); n > discordFieldValue {
			t.Errorf("field %s has %d characters, Discord allows %d", f.Name, n, discordFieldValue)
		}
		total += len([]rune(f.Name)) + len([]rune(f.Value))
		if f.Name == "Changes" && !strings.HasSuffix(f.Value, "more") {
			t.Errorf("Changes = %q, want the changes that do not fit counted", f.Value)
		}
	}
	if total > discordEmbedTotal {
		t.Errorf("embed has %d characters, Discord allows %d", total, discordEmbedTotal)
	}
}

func TestDiscordRetryAfterFromBody(t *testing.T) {
	srv := newHookServer(t, http.StatusTooManyRequests, `{"message": "You are being rate limited.", "retry_after": 1.5, "global": false}`)
	p := mustNew(t, Config{Type: "discord", Address: srv.URL + "/api/webhooks/1/tok"})
	err := p.Send(context.Background(), testMessage())
	var he *HTTPError
	if !errors.As(err, &he) {
		t.Fatalf("Send = %v, want an *HTTPError", err)
	}
	if he.Status != 429 || he.RetryAfter != 1500*time.Millisecond || !he.Retryable() {
		t.Errorf("HTTPError = %+v, want status 429, RetryAfter 1.5s, retryable", he)
	}
}

func TestRetryAfterHeader(t *testing.T) {
	srv := newHookServer(t, http.StatusTooManyRequests, "slow down")
	srv.header.Set("Retry-After", "7")
	p := mustNew(t, Config{Type: "teams", Address: srv.URL + "/workflows/abc"})
	err := p.Send(context.Background(), testMessage())
	var he *HTTPError
	if !errors.As(err, &he) {
		t.Fatalf("Send = %v, want an *HTTPError", err)
	}
	if want := (HTTPError{Status: 429, RetryAfter: 7 * time.Second, Body: "slow down"}); *he != want {
		t.Errorf("HTTPError = %+v, want %+v", *he, want)
	}
	if !he.Retryable() {
		t.Error("429 is not retryable")
	}

	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"7":                             7 * time.Second,
		"0":                             0,
		"-3":                            0,
		"soon":                          0,
		"Wed, 01 Jan 2025 00:00:30 GMT": 30 * time.Second,
		"Tue, 31 Dec 2024 23:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(v, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestErrorBodyIsCappedAndScrubbed(t *testing.T) {
	srv := newHookServer(t, http.StatusBadRequest, "")
	addr := srv.URL + "/api/webhooks/1/very-secret-webhook-token"
	srv.answer(http.StatusBadRequest, "bad request for "+addr+" "+strings.Repeat("x", 2000))
	p := mustNew(t, Config{Type: "discord", Address: addr})
	err := p.Send(context.Background(), testMessage())
	var he *HTTPError
	if !errors.As(err, &he) {
		t.Fatalf("Send = %v, want an *HTTPError", err)
	}
	if len(he.Body) > 512 {
		t.Errorf("Body has %d bytes, want at most 512", len(he.Body))
	}
	if strings.Contains(he.Body, "very-secret-webhook-token") || !strings.HasPrefix(he.Body, "bad request for <redacted>") {
		t.Errorf("Body = %.80q…, want the webhook address redacted", he.Body)
	}
	if he.Retryable() {
		t.Error("400 is retryable")
	}
}

func TestRedirectIsAnError(t *testing.T) {
	target := newHookServer(t, http.StatusOK, "")
	srv := newHookServer(t, http.StatusFound, "")
	srv.header.Set("Location", target.URL+"/new/secret-path")
	p := mustNew(t, Config{Type: "webhook", Address: srv.URL + "/old"})
	err := p.Send(context.Background(), testMessage())
	var he *HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusFound {
		t.Fatalf("Send = %v, want an HTTPError 302", err)
	}
	if want := "redirected to " + target.URL + "/…: set the final URL as the address"; he.Body != want {
		t.Errorf("Body = %q, want %q", he.Body, want)
	}
	if n := len(target.requests()); n != 0 {
		t.Errorf("the redirect was followed (%d requests)", n)
	}
}

func TestUnreachableWebhookKeepsAddressSecret(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL + "/api/webhooks/1/very-secret-webhook-token"
	srv.Close()
	p := mustNew(t, Config{Type: "discord", Address: addr})
	err := p.Send(context.Background(), testMessage())
	if err == nil {
		t.Fatal("Send to a closed server succeeded")
	}
	if strings.Contains(err.Error(), "very-secret-webhook-token") || strings.Contains(err.Error(), "/api/webhooks") {
		t.Errorf("error %q shows the webhook path", err)
	}
	if !strings.Contains(err.Error(), "discord: POST "+srv.URL) {
		t.Errorf("error %q does not say which host failed", err)
	}
}

func TestSlackWebhook(t *testing.T) {
	srv := newHookServer(t, http.StatusOK, "ok")
	p := mustNew(t, Config{Type: "slack", Address: srv.URL + "/services/T0/B0/xyz"})
	mustSend(t, p, testMessage())

	r := srv.only(t)
	checkRequest(t, r, "POST")
	if r.Header.Get("Authorization") != "" {
		t.Error("incoming webhook request has an Authorization header")
	}
	var got struct {
		Channel string `json:"channel"`
		Text    string `json:"text"`
		Blocks  []struct {
			Type string `json:"type"`
			Text struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"text"`
			Elements []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"elements"`
		} `json:"blocks"`
	}
	decodeJSON(t, r.Body, &got)
	if got.Channel != "" {
		t.Errorf("channel = %q, want none for a webhook", got.Channel)
	}
	if !strings.Contains(got.Text, "default/web: sync failed") {
		t.Errorf("text = %q, want the title as fallback", got.Text)
	}
	var types []string
	for _, b := range got.Blocks {
		types = append(types, b.Type)
	}
	if got, want := strings.Join(types, ","), "header,section,section,section,context"; got != want {
		t.Fatalf("blocks = %s, want %s", got, want)
	}
	if h := got.Blocks[0].Text; h.Type != "plain_text" || !strings.Contains(h.Text, "default/web: sync failed") {
		t.Errorf("header = %+v, want plain_text with the title", h)
	}
	main := got.Blocks[1].Text
	if main.Type != "mrkdwn" || !strings.Contains(main.Text, "`0123456789ab`") || !strings.Contains(main.Text, "Bump &lt;api&gt; &amp; friends") {
		t.Errorf("section = %+v, want mrkdwn with the short SHA and the escaped subject", main)
	}
	if e := got.Blocks[2].Text.Text; !strings.Contains(e, "*Error*") || !strings.Contains(e, "Invalid value: -1") {
		t.Errorf("error section = %q", e)
	}
	if c := got.Blocks[3].Text.Text; !strings.Contains(c, "• Deployment web/api-9 configured") || !strings.HasSuffix(c, "• and 2 more") {
		t.Errorf("changes section = %q, want 10 changes and \"and 2 more\"", c)
	}
	if c := got.Blocks[4].Elements; len(c) != 1 || !strings.Contains(c[0].Text, "<https://tend.example.com/apps/default/web|Open in tend>") {
		t.Errorf("context = %+v, want the link", c)
	}
}

func TestSlackBotToken(t *testing.T) {
	srv := newHookServer(t, http.StatusOK, `{"ok": true, "channel": "C1", "ts": "1.2"}`)
	p := mustNew(t, Config{Type: "slack", Address: srv.URL + "/api/", Token: "xoxb-secret", Channel: "C0123"})
	mustSend(t, p, testMessage())

	r := srv.only(t)
	checkRequest(t, r, "POST")
	if got, want := r.Path, "/api/chat.postMessage"; got != want {
		t.Errorf("path = %q, want %q", got, want)
	}
	if got, want := r.Header.Get("Authorization"), "Bearer xoxb-secret"; got != want {
		t.Errorf("Authorization = %q, want %q", got, want)
	}
	var got struct {
		Channel string            `json:"channel"`
		Text    string            `json:"text"`
		Blocks  []json.RawMessage `json:"blocks"`
	}
	decodeJSON(t, r.Body, &got)
	if got.Channel != "C0123" || got.Text == "" || len(got.Blocks) != 5 {
		t.Errorf("payload = channel %q, text %q, %d blocks; want C0123, a text and 5 blocks", got.Channel, got.Text, len(got.Blocks))
	}

	// chat.postMessage says "ok": false with 200.
	srv.answer(http.StatusOK, `{"ok": false, "error": "not_in_channel"}`)
	err := p.Send(context.Background(), testMessage())
	if err == nil || !strings.Contains(err.Error(), "slack: chat.postMessage: not_in_channel: invite the app") {
		t.Errorf("Send = %v, want the not_in_channel error with a hint", err)
	}
	var pe *PermanentError
	if !errors.As(err, &pe) {
		t.Errorf("Send = %T, want a PermanentError (retrying cannot invite the app)", err)
	}
}

func TestMatrix(t *testing.T) {
	srv := newHookServer(t, http.StatusOK, `{"event_id": "$e"}`)
	p := mustNew(t, Config{Type: "matrix", Address: srv.URL + "/", Token: "syt_secret", Channel: "!room:example.org"})
	mustSend(t, p, testMessage())
	mustSend(t, p, testMessage())

	reqs := srv.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	var txns []string
	for _, r := range reqs {
		checkRequest(t, r, "PUT")
		const prefix = "/_matrix/client/v3/rooms/!room:example.org/send/m.room.message/"
		txn, ok := strings.CutPrefix(r.Path, prefix)
		if !ok || txn == "" || strings.Contains(txn, "/") {
			t.Fatalf("path = %q, want %s<txnId>", r.Path, prefix)
		}
		txns = append(txns, txn)
		if got, want := r.Header.Get("Authorization"), "Bearer syt_secret"; got != want {
			t.Errorf("Authorization = %q, want %q", got, want)
		}
	}
	if txns[0] == txns[1] {
		t.Errorf("both sends used transaction ID %q", txns[0])
	}
	if !strings.Contains(reqs[0].EscapedPath, "%21room") {
		t.Errorf("escaped path = %q, want the room ID escaped", reqs[0].EscapedPath)
	}

	var got matrixMessage
	decodeJSON(t, reqs[0].Body, &got)
	if got.MsgType != "m.notice" || got.Format != "org.matrix.custom.html" {
		t.Errorf("msgtype, format = %q, %q; want m.notice, org.matrix.custom.html", got.MsgType, got.Format)
	}
	for _, want := range []string{"default/web: sync failed", "Bump <api> & friends", "0123456789ab", "- and 2 more"} {
		if !strings.Contains(got.Body, want) {
			t.Errorf("body does not contain %q:\n%s", want, got.Body)
		}
	}
	for _, want := range []string{"Bump &lt;api&gt; &amp; friends", "<code>0123456789ab</code>", "<li>Deployment web/api-0 configured</li>", `<a href="https://tend.example.com/apps/default/web">`} {
		if !strings.Contains(got.FormattedBody, want) {
			t.Errorf("formatted_body does not contain %q:\n%s", want, got.FormattedBody)
		}
	}
	if strings.Contains(got.FormattedBody, "<api>") {
		t.Error("formatted_body contains unescaped user text")
	}
}

func TestMatrixRateLimit(t *testing.T) {
	srv := newHookServer(t, http.StatusTooManyRequests, `{"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests", "retry_after_ms": 2500}`)
	p := mustNew(t, Config{Type: "matrix", Address: srv.URL, Token: "syt_secret", Channel: "!room:example.org"})
	var he *HTTPError
	if err := p.Send(context.Background(), testMessage()); !errors.As(err, &he) || he.RetryAfter != 2500*time.Millisecond {
		t.Errorf("Send = %v, want an HTTPError with RetryAfter 2.5s", err)
	}
}

func TestTeams(t *testing.T) {
	srv := newHookServer(t, http.StatusAccepted, "")
	p := mustNew(t, Config{Type: "teams", Address: srv.URL + "/workflows/abc/triggers/manual/paths/invoke?sig=s3cr3t"})
	mustSend(t, p, testMessage())

	r := srv.only(t)
	checkRequest(t, r, "POST")
	var got struct {
		Type        string `json:"type"`
		Attachments []struct {
			ContentType string           `json:"contentType"`
			ContentURL  *json.RawMessage `json:"contentUrl"`
			Content     struct {
				Schema  string `json:"$schema"`
				Type    string `json:"type"`
				Version string `json:"version"`
				Body    []struct {
					Type  string `json:"type"`
					Text  string `json:"text"`
					Color string `json:"color"`
					Facts []struct {
						Title string `json:"title"`
						Value string `json:"value"`
					} `json:"facts"`
				} `json:"body"`
				Actions []struct {
					Type string `json:"type"`
					URL  string `json:"url"`
				} `json:"actions"`
			} `json:"content"`
		} `json:"attachments"`
	}
	decodeJSON(t, r.Body, &got)
	if got.Type != "message" || len(got.Attachments) != 1 {
		t.Fatalf("type %q with %d attachments, want message with 1", got.Type, len(got.Attachments))
	}
	a := got.Attachments[0]
	if a.ContentType != "application/vnd.microsoft.card.adaptive" {
		t.Errorf("contentType = %q", a.ContentType)
	}
	if !strings.Contains(string(r.Body), `"contentUrl":null`) {
		t.Errorf("contentUrl is not null: %s", r.Body)
	}
	c := a.Content
	if c.Schema != "http://adaptivecards.io/schemas/adaptive-card.json" || c.Type != "AdaptiveCard" || c.Version != "1.4" {
		t.Errorf("card = %s %s %s, want the adaptive card schema, AdaptiveCard, 1.4", c.Schema, c.Type, c.Version)
	}
	if len(c.Body) == 0 || c.Body[0].Type != "TextBlock" || c.Body[0].Text != "default/web: sync failed" || c.Body[0].Color != "Attention" {
		t.Errorf("first block = %+v, want a TextBlock with the title in Attention colour", c.Body[0])
	}
	var facts, changes string
	for _, b := range c.Body {
		if b.Type == "FactSet" {
			for _, f := range b.Facts {
				facts += f.Title + "=" + f.Value + ";"
			}
		}
		if strings.HasPrefix(b.Text, "- Deployment") {
			changes = b.Text
		}
	}
	if !strings.Contains(facts, "Revision=0123456789ab Bump <api> & friends;") {
		t.Errorf("facts = %s, want the revision", facts)
	}
	if !strings.HasSuffix(changes, "- and 2 more") {
		t.Errorf("changes = %q", changes)
	}
	if len(c.Actions) != 1 || c.Actions[0].Type != "Action.OpenUrl" || c.Actions[0].URL != "https://tend.example.com/apps/default/web" {
		t.Errorf("actions = %+v, want one Action.OpenUrl to the link", c.Actions)
	}

	// Without a link there is no action.
	m := testMessage()
	m.Link = ""
	if card := adaptiveCardOf(newCard(m)); card.Actions != nil {
		t.Errorf("actions = %+v without a link", card.Actions)
	}
}

func TestTelegram(t *testing.T) {
	const token = "123456:ABC-secret"
	srv := newHookServer(t, http.StatusOK, `{"ok": true, "result": {}}`)
	p := mustNew(t, Config{Type: "telegram", Address: srv.URL, Token: token, Channel: "-1001234"})
	mustSend(t, p, testMessage())

	r := srv.only(t)
	checkRequest(t, r, "POST")
	if got, want := r.Path, "/bot"+token+"/sendMessage"; got != want {
		t.Errorf("path = %q, want %q", got, want)
	}
	var got telegramMessage
	decodeJSON(t, r.Body, &got)
	if got.ChatID != "-1001234" || got.ParseMode != "HTML" || !got.DisableWebPagePreview {
		t.Errorf("message = chat %q, parse mode %q, preview disabled %v; want -1001234, HTML, true", got.ChatID, got.ParseMode, got.DisableWebPagePreview)
	}
	for _, want := range []string{"<b>🔴 default/web: sync failed</b>", "<code>0123456789ab</code> Bump &lt;api&gt; &amp; friends", "<pre>apply Deployment", "• and 2 more", `<a href="https://tend.example.com/apps/default/web">`} {
		if !strings.Contains(got.Text, want) {
			t.Errorf("text does not contain %q:\n%s", want, got.Text)
		}
	}
	if n := len([]rune(got.Text)); n > 4096 {
		t.Errorf("text has %d characters, Telegram allows 4096", n)
	}
}

func TestTelegramKeepsTokenSecret(t *testing.T) {
	const token = "123456:ABC-secret"

	// Unreachable: net/http's error would contain the URL, token included.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	p := mustNew(t, Config{Type: "telegram", Address: dead.URL, Token: token, Channel: "1"})
	err := p.Send(context.Background(), testMessage())
	if err == nil {
		t.Fatal("Send to a closed server succeeded")
	}
	if strings.Contains(err.Error(), "ABC-secret") || !strings.Contains(err.Error(), "telegram: POST "+dead.URL) {
		t.Errorf("error = %q, want the host without the token", err)
	}

	// 401, with the token echoed in the answer.
	srv := newHookServer(t, http.StatusUnauthorized, `{"ok": false, "error_code": 401, "description": "Unauthorized: bot`+token+`"}`)
	p = mustNew(t, Config{Type: "telegram", Address: srv.URL, Token: token, Channel: "1"})
	err = p.Send(context.Background(), testMessage())
	var he *HTTPError
	if !errors.As(err, &he) || he.Status != 401 {
		t.Fatalf("Send = %v, want an HTTPError 401", err)
	}
	if strings.Contains(err.Error(), "ABC-secret") || !strings.Contains(he.Body, "Unauthorized: bot<redacted>") {
		t.Errorf("error = %q, want the token redacted", err)
	}

	// 429 says how long to wait in parameters.retry_after.
	srv.answer(http.StatusTooManyRequests, `{"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 9", "parameters": {"retry_after": 9}}`)
	if err := p.Send(context.Background(), testMessage()); !errors.As(err, &he) || he.RetryAfter != 9*time.Second {
		t.Errorf("Send = %v, want an HTTPError with RetryAfter 9s", err)
	}
}

func TestWebhook(t *testing.T) {
	key := []byte("hmac-key")
	srv := newHookServer(t, http.StatusOK, "")
	p := mustNew(t, Config{Type: "webhook", Address: srv.URL + "/hook", HMACKey: key})
	m := testMessage()
	m.Summary, m.Folded = "default/web changed state 6 times in 10m", 6
	mustSend(t, p, m)

	r := srv.only(t)
	checkRequest(t, r, "POST")
	if got, want := r.Header.Get("X-Tend-Event"), "SyncFailed"; got != want {
		t.Errorf("X-Tend-Event = %q, want %q", got, want)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(r.Body)
	if got, want := r.Header.Get("X-Tend-Signature"), "sha256="+hex.EncodeToString(mac.Sum(nil)); got != want {
		t.Errorf("X-Tend-Signature = %q, want %q", got, want)
	}
	var got map[string]any
	decodeJSON(t, r.Body, &got)
	for k, want := range map[string]any{
		"kind":     "SyncFailed",
		"severity": "error",
		"time":     "2025-03-14T15:09:26Z",
		"app":      map[string]any{"namespace": "default", "name": "web"},
		"revision": testSHA,
		"subject":  "Bump <api> & friends",
		"message":  "Sync failed at wave 2",
		"error":    "apply Deployment web/api: spec.replicas: Invalid value: -1",
		"summary":  "default/web changed state 6 times in 10m",
		"folded":   float64(6),
		"link":     "https://tend.example.com/apps/default/web",
	} {
		if fmt.Sprint(got[k]) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	if changes, _ := got["changes"].([]any); len(changes) != 12 {
		t.Errorf("changes = %v, want all 12", got["changes"])
	}

	// Without a key: no signature; empty fields are still present.
	srv2 := newHookServer(t, http.StatusOK, "")
	mustSend(t, mustNew(t, Config{Type: "webhook", Address: srv2.URL}), Message{Event: Event{Kind: SyncStarted, AppNamespace: "a", AppName: "b"}})
	r = srv2.only(t)
	if sig := r.Header.Get("X-Tend-Signature"); sig != "" {
		t.Errorf("X-Tend-Signature = %q without a key", sig)
	}
	decodeJSON(t, r.Body, &got)
	if got["severity"] != "info" || fmt.Sprint(got["changes"]) != "[]" || got["error"] != "" || got["link"] != "" {
		t.Errorf("payload = %s, want severity info and empty fields present", r.Body)
	}
}

func TestSendHonoursContext(t *testing.T) {
	srv := newHookServer(t, http.StatusOK, "")
	p := mustNew(t, Config{Type: "webhook", Address: srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Send(ctx, testMessage()); !errors.Is(err, context.Canceled) {
		t.Errorf("Send with a cancelled context = %v, want context.Canceled", err)
	}
	if n := len(srv.requests()); n != 0 {
		t.Errorf("%d requests with a cancelled context", n)
	}
}

func TestCardSummary(t *testing.T) {
	m := testMessage()
	m.Summary, m.Folded = "changed state 6 times in 10 minutes", 6
	c := newCard(m)
	if c.title != "default/web: sync failed (6 events)" || c.text != "changed state 6 times in 10 minutes" {
		t.Errorf("card = %q / %q, want the summary", c.title, c.text)
	}
	lines := strings.Join(c.lines(), "\n")
	for _, want := range []string{"Revision: 0123456789ab Bump <api> & friends", "Error: apply", "- and 2 more", m.Link} {
		if !strings.Contains(lines, want) {
			t.Errorf("lines do not contain %q:\n%s", want, lines)
		}
	}

	// An event without a message or severity still reads.
	c = newCard(Message{Event: Event{Kind: DriftDetected, AppNamespace: "a", AppName: "b"}})
	if c.text != "Drift detected." || c.severity != Warning || c.colour() != colourWarning {
		t.Errorf("card = %+v, want text \"Drift detected.\" and warning", c)
	}
}

func TestJoinCapped(t *testing.T) {
	more := func(n int) string { return fmt.Sprintf("and %d more", n) }
	for _, tc := range []struct {
		items      []string
		max, extra int
		want       string
	}{
		{[]string{"aaa", "bbb"}, 100, 0, "aaa\nbbb"},
		{[]string{"aaa", "bbb"}, 100, 3, "aaa\nbbb\nand 3 more"},
		{[]string{"aaaa", "bbbb", "cccc", "dddd"}, 16, 0, "aaaa\nand 3 more"},
		{[]string{"aaaa", "bbbb"}, 3, 0, "an…"},
		{[]string{"aaaa", "bbbb", "cccc"}, 14, 0, "aaaa\nbbbb\ncccc"},
	} {
		got := joinCapped(tc.items, "\n", tc.max, tc.extra, more)
		if got != tc.want {
			t.Errorf("joinCapped(%q, %d, %d) = %q, want %q", tc.items, tc.max, tc.extra, got, tc.want)
		}
		if n := len([]rune(got)); n > tc.max {
			t.Errorf("joinCapped(%q, %d, %d) has %d characters", tc.items, tc.max, tc.extra, n)
		}
	}
}
