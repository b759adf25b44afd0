package example_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// discordSink is a Discord webhook on loopback: it serves
// POST /api/webhooks/{id}/{token} and checks each message against
// Discord's documented rules for executing a webhook
// (https://discord.com/developers/docs/resources/webhook#execute-webhook,
// .../resources/message#embed-object-embed-limits). A message Discord
// would refuse is answered 400 with Discord's error body and fails the
// test; one it would accept is answered 204, as Discord does.
type discordSink struct {
	t     *testing.T
	srv   *httptest.Server
	path  string // /api/webhooks/{id}/{token}
	token string

	mu   sync.Mutex
	msgs []discordMessage
}

// discordMessage is a delivered message, as the test reads it.
type discordMessage struct {
	discordPayload
	raw []byte
}

// discordPayload holds the JSON parameters of Execute Webhook (those a
// JSON body may carry). Unknown fields are refused by the sink: Discord
// silently ignores them, which would hide a misspelt field.
type discordPayload struct {
	Content         string           `json:"content"`
	Username        string           `json:"username"`
	AvatarURL       string           `json:"avatar_url"`
	TTS             bool             `json:"tts"`
	Embeds          []discordEmbed   `json:"embeds"`
	AllowedMentions *allowedMentions `json:"allowed_mentions"`
	Components      []any            `json:"components"`
	Attachments     []any            `json:"attachments"`
	Flags           int              `json:"flags"`
	ThreadName      string           `json:"thread_name"`
	AppliedTags     []string         `json:"applied_tags"`
	Poll            any              `json:"poll"`
}

type allowedMentions struct {
	Parse       *[]string `json:"parse"` // nil: the field is missing
	Roles       []string  `json:"roles"`
	Users       []string  `json:"users"`
	RepliedUser bool      `json:"replied_user"`
}

type discordEmbed struct {
	Title       string         `json:"title"`
	Type        string         `json:"type"`
	Description string         `json:"description"`
	URL         string         `json:"url"`
	Timestamp   string         `json:"timestamp"`
	Color       *int           `json:"color"`
	Footer      *embedText     `json:"footer"`
	Image       *embedMedia    `json:"image"`
	Thumbnail   *embedMedia    `json:"thumbnail"`
	Author      *embedText     `json:"author"`
	Fields      []discordField `json:"fields"`
}

type embedText struct {
	Text    string `json:"text"` // footer
	Name    string `json:"name"` // author
	URL     string `json:"url"`
	IconURL string `json:"icon_url"`
}

type embedMedia struct {
	URL string `json:"url"`
}

type discordField struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline"`
}

// Discord's limits, in characters.
const (
	maxContent     = 2000
	maxEmbeds      = 10
	maxTitle       = 256
	maxDescription = 4096
	maxFields      = 25
	maxFieldName   = 256
	maxFieldValue  = 1024
	maxFooter      = 2048
	maxAuthor      = 256
	maxEmbedsTotal = 6000
	maxUsername    = 80
)

func newDiscordSink(t *testing.T) *discordSink {
	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		t.Fatal(err)
	}
	s := &discordSink{t: t, token: hex.EncodeToString(tok)}
	s.path = "/api/webhooks/1187654321098765432/" + s.token
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	t.Cleanup(func() {
		if t.Failed() {
			for i, m := range s.messages() {
				t.Logf("Discord message %d: %s", i, m.raw)
			}
		}
	})
	return s
}

// URL is the webhook URL, as Discord shows it under "Copy Webhook URL".
func (s *discordSink) URL() string { return s.srv.URL + s.path }

func (s *discordSink) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != s.path {
		writeDiscordError(w, http.StatusNotFound, 10015, "Unknown Webhook")
		s.t.Errorf("Discord: request to a path that is not the webhook's (%d bytes)", len(r.URL.Path))
		return
	}
	if r.Method != http.MethodPost {
		writeDiscordError(w, http.StatusMethodNotAllowed, 0, "405: Method Not Allowed")
		s.t.Errorf("Discord: %s instead of POST", r.Method)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		writeDiscordError(w, http.StatusBadRequest, 50006, "Cannot send an empty message")
		s.t.Errorf("Discord: Content-Type %q, want application/json", ct)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		s.t.Errorf("Discord: read body: %v", err)
		return
	}
	var p discordPayload
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		writeDiscordError(w, http.StatusBadRequest, 50109, "The request body contains invalid JSON.")
		s.t.Errorf("Discord: body is not a webhook message: %v: %s", err, body)
		return
	}
	if problems := checkDiscordPayload(p); len(problems) > 0 {
		writeDiscordError(w, http.StatusBadRequest, 50035, "Invalid Form Body")
		s.t.Errorf("Discord would refuse this message (%s): %s", strings.Join(problems, "; "), body)
		return
	}
	s.mu.Lock()
	s.msgs = append(s.msgs, discordMessage{discordPayload: p, raw: body})
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func writeDiscordError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"message": msg, "code": code})
}

// checkDiscordPayload lists what Discord would refuse in p.
func checkDiscordPayload(p discordPayload) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	n := utf8.RuneCountInString
	if p.Content == "" && len(p.Embeds) == 0 && len(p.Components) == 0 && p.Poll == nil {
		bad("no content, embeds, components or poll")
	}
	if n(p.Content) > maxContent {
		bad("content has %d characters, more than %d", n(p.Content), maxContent)
	}
	if p.Username != "" {
		if n(p.Username) > maxUsername {
			bad("username has %d characters, more than %d", n(p.Username), maxUsername)
		}
		for _, word := range []string{"discord", "clyde", "@", "#", ":", "```"} {
			if strings.Contains(strings.ToLower(p.Username), word) {
				bad("username %q contains %q", p.Username, word)
			}
		}
	}
	if len(p.Embeds) > maxEmbeds {
		bad("%d embeds, more than %d", len(p.Embeds), maxEmbeds)
	}
	total := 0
	for i, e := range p.Embeds {
		at := func(what string, got, limit int) {
			total += got
			if got > limit {
				bad("embed %d: %s has %d characters, more than %d", i, what, got, limit)
			}
		}
		at("title", n(e.Title), maxTitle)
		at("description", n(e.Description), maxDescription)
		if e.Footer != nil {
			at("footer text", n(e.Footer.Text), maxFooter)
		}
		if e.Author != nil {
			at("author name", n(e.Author.Name), maxAuthor)
		}
		if len(e.Fields) > maxFields {
			bad("embed %d: %d fields, more than %d", i, len(e.Fields), maxFields)
		}
		for j, f := range e.Fields {
			if strings.TrimSpace(f.Name) == "" || strings.TrimSpace(f.Value) == "" {
				bad("embed %d field %d: name and value must not be empty", i, j)
			}
			at(fmt.Sprintf("field %d name", j), n(f.Name), maxFieldName)
			at(fmt.Sprintf("field %d value", j), n(f.Value), maxFieldValue)
		}
		if e.Color != nil && (*e.Color < 0 || *e.Color > 0xFFFFFF) {
			bad("embed %d: color %d is not 0xRRGGBB", i, *e.Color)
		}
		if e.Timestamp != "" {
			if _, err := time.Parse(time.RFC3339, e.Timestamp); err != nil {
				bad("embed %d: timestamp %q is not ISO 8601", i, e.Timestamp)
			}
		}
		if e.URL != "" && !strings.HasPrefix(e.URL, "http://") && !strings.HasPrefix(e.URL, "https://") {
			bad("embed %d: url %q is not http(s)", i, e.URL)
		}
	}
	if total > maxEmbedsTotal {
		bad("embeds have %d characters in all, more than %d", total, maxEmbedsTotal)
	}
	if am := p.AllowedMentions; am != nil && am.Parse != nil {
		for _, v := range *am.Parse {
			if v != "roles" && v != "users" && v != "everyone" {
				bad("allowed_mentions.parse has %q", v)
			}
		}
	}
	return out
}

func (s *discordSink) messages() []discordMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]discordMessage(nil), s.msgs...)
}

// wait returns the first message at index from or later that match
// accepts, and the index after it.
func (s *discordSink) wait(what string, from int, match func(discordMessage) bool) (discordMessage, int) {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		msgs := s.messages()
		for i := from; i < len(msgs); i++ {
			if match(msgs[i]) {
				return msgs[i], i + 1
			}
		}
		if time.Now().After(deadline) {
			var titles []string
			for _, m := range msgs {
				titles = append(titles, m.title())
			}
			s.t.Fatalf("timed out waiting for a Discord message: %s; got:\n  %s", what, strings.Join(titles, "\n  "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// title is the first embed's title ("" without embeds).
func (m discordMessage) title() string {
	if len(m.Embeds) == 0 {
		return ""
	}
	return m.Embeds[0].Title
}

// field is the value of the first embed's field called name.
func (m discordMessage) field(name string) string {
	if len(m.Embeds) == 0 {
		return ""
	}
	for _, f := range m.Embeds[0].Fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// text is every string a person can read in the message.
func (m discordMessage) text() string {
	parts := []string{m.Content, m.Username}
	for _, e := range m.Embeds {
		parts = append(parts, e.Title, e.Description, e.URL)
		if e.Footer != nil {
			parts = append(parts, e.Footer.Text)
		}
		if e.Author != nil {
			parts = append(parts, e.Author.Name)
		}
		for _, f := range e.Fields {
			parts = append(parts, f.Name, f.Value)
		}
	}
	return strings.Join(parts, "\n")
}

// colour is the first embed's colour as red, green and blue.
func (m discordMessage) colour() (r, g, b int, ok bool) {
	if len(m.Embeds) == 0 || m.Embeds[0].Color == nil {
		return 0, 0, 0, false
	}
	c := *m.Embeds[0].Color
	return c >> 16 & 0xFF, c >> 8 & 0xFF, c & 0xFF, true
}

// isRed and isGreen: the colour Discord shows on the embed's left edge.
func (m discordMessage) isRed() bool {
	r, g, b, ok := m.colour()
	return ok && r > 2*g && r > 2*b
}

func (m discordMessage) isGreen() bool {
	r, g, b, ok := m.colour()
	return ok && g > r && g > b
}
