package example_test

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// The chats the Notifiers post to, played by two servers that check every
// request as Discord's and Matrix's APIs would, and keep what they accept.
const (
	// discordPath is the webhook's path: /api/webhooks/<id>/<token>.
	discordPath = "/api/webhooks/1161331416531509248/demo-only-discord-webhook-token"
	matrixToken = "syt_dGVuZA_demo-only-matrix-token"
	// matrixRoom is the room ID in clusters/k8s-235/platform/notifiers.yaml.
	matrixRoom = "!k8s235-alerts:matrix.k8s-235.example.org"
)

// post is one message a chat accepted.
type post struct {
	chat string // "discord" or "matrix"
	// title is the Discord embed's title or the first line of the Matrix
	// body; text is the rest.
	title, text string
	// colour is the embed's colour (Discord only).
	colour int
}

type chats struct {
	discord, matrix *httptest.Server

	mu       sync.Mutex
	posts    []post
	problems []string // requests the real API would have refused
	txnIDs   map[string]bool
}

func newChats(t *testing.T) *chats {
	t.Helper()
	c := &chats{txnIDs: map[string]bool{}}
	c.discord = httptest.NewServer(http.HandlerFunc(c.serveDiscord))
	mux := http.NewServeMux()
	mux.HandleFunc("/_matrix/client/v3/rooms/{roomID}/send/{eventType}/{txnID}", c.serveMatrix)
	c.matrix = httptest.NewServer(mux)
	t.Cleanup(func() {
		c.discord.Close()
		c.matrix.Close()
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, p := range c.problems {
			t.Errorf("a request the real API would refuse: %s", p)
		}
	})
	return c
}

// refuse records a request the real API would refuse and answers as it
// would.
func (c *chats) refuse(w http.ResponseWriter, status int, body any, format string, args ...any) {
	c.mu.Lock()
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// discordWebhook is the JSON body of Discord's Execute Webhook
// (https://discord.com/developers/docs/resources/webhook#execute-webhook):
// every field Discord accepts, so that a misspelt one is an error.
type discordWebhook struct {
	Content         string          `json:"content"`
	Username        string          `json:"username"`
	AvatarURL       string          `json:"avatar_url"`
	TTS             bool            `json:"tts"`
	Embeds          []discordEmbed  `json:"embeds"`
	AllowedMentions *discordMention `json:"allowed_mentions"`
	Flags           int             `json:"flags"`
	ThreadName      string          `json:"thread_name"`
}

type discordMention struct {
	Parse []string `json:"parse"`
	Roles []string `json:"roles"`
	Users []string `json:"users"`
}

type discordEmbed struct {
	Title       string `json:"title"`
	Type        string `json:"type"`
	Description string `json:"description"`
	URL         string `json:"url"`
	Timestamp   string `json:"timestamp"`
	Color       int    `json:"color"`
	Fields      []struct {
		Name   string `json:"name"`
		Value  string `json:"value"`
		Inline bool   `json:"inline"`
	} `json:"fields"`
}

func (c *chats) serveDiscord(w http.ResponseWriter, r *http.Request) {
	invalid := func(format string, args ...any) {
		c.refuse(w, http.StatusBadRequest, map[string]any{"code": 50109, "message": "The request body contains invalid JSON."}, "discord: "+format, args...)
	}
	if r.Method != http.MethodPost || r.URL.Path != discordPath {
		c.refuse(w, http.StatusNotFound, map[string]any{"code": 10015, "message": "Unknown Webhook"}, "discord: %s %s", r.Method, r.URL.Path)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		invalid("Content-Type %q", r.Header.Get("Content-Type"))
		return
	}
	var m discordWebhook
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		invalid("body: %v", err)
		return
	}
	n := utf8.RuneCountInString
	switch {
	case m.Content == "" && len(m.Embeds) == 0:
		invalid("neither content nor embeds")
		return
	case len(m.Embeds) > 10, n(m.Content) > 2000, n(m.Username) > 80:
		invalid("over a limit: %d embeds, content %d, username %d", len(m.Embeds), n(m.Content), n(m.Username))
		return
	case strings.Contains(strings.ToLower(m.Username), "discord"):
		invalid("username %q contains \"discord\"", m.Username)
		return
	case m.AllowedMentions == nil || m.AllowedMentions.Parse == nil || len(m.AllowedMentions.Parse) > 0:
		invalid("allowed_mentions %+v: a commit subject with @everyone would ping the channel", m.AllowedMentions)
		return
	}
	for _, e := range m.Embeds {
		total := n(e.Title) + n(e.Description)
		for _, f := range e.Fields {
			total += n(f.Name) + n(f.Value)
			if f.Name == "" || f.Value == "" || n(f.Name) > 256 || n(f.Value) > 1024 {
				invalid("embed field %q: empty or over its limit", f.Name)
				return
			}
		}
		if _, err := time.Parse(time.RFC3339, e.Timestamp); e.Timestamp != "" && err != nil {
			invalid("embed timestamp %q: %v", e.Timestamp, err)
			return
		}
		if e.Title == "" || n(e.Title) > 256 || n(e.Description) > 4096 || len(e.Fields) > 25 || total > 6000 || e.Color < 0 || e.Color > 0xFFFFFF {
			invalid("embed %q over a limit", e.Title)
			return
		}
	}
	e := m.Embeds[0]
	text := e.Description
	for _, f := range e.Fields {
		text += "\n" + f.Name + ": " + f.Value
	}
	c.mu.Lock()
	c.posts = append(c.posts, post{chat: "discord", title: e.Title, text: text, colour: e.Color})
	c.mu.Unlock()
	w.WriteHeader(http.StatusNoContent) // what Discord answers without ?wait=true
}

// serveMatrix is the client-server API's PUT
// /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}
// (https://spec.matrix.org/v1.11/client-server-api/#put_matrixclientv3roomsroomidsendeventtypetxnid).
func (c *chats) serveMatrix(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		c.refuse(w, http.StatusMethodNotAllowed, map[string]any{"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}, "matrix: method %s", r.Method)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+matrixToken {
		c.refuse(w, http.StatusUnauthorized, map[string]any{"errcode": "M_UNKNOWN_TOKEN", "error": "Invalid access token passed."}, "matrix: Authorization header is not the bot's bearer token")
		return
	}
	if room := r.PathValue("roomID"); room != matrixRoom {
		c.refuse(w, http.StatusForbidden, map[string]any{"errcode": "M_FORBIDDEN", "error": "User not in room"}, "matrix: room %q", room)
		return
	}
	if et := r.PathValue("eventType"); et != "m.room.message" {
		c.refuse(w, http.StatusBadRequest, map[string]any{"errcode": "M_BAD_JSON", "error": "bad event type"}, "matrix: event type %q", et)
		return
	}
	var m struct {
		MsgType       string `json:"msgtype"`
		Body          string `json:"body"`
		Format        string `json:"format"`
		FormattedBody string `json:"formatted_body"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 65536)).Decode(&m); err != nil {
		c.refuse(w, http.StatusBadRequest, map[string]any{"errcode": "M_NOT_JSON", "error": "Content not JSON."}, "matrix: body: %v", err)
		return
	}
	bad := ""
	switch {
	case m.MsgType != "m.notice" && m.MsgType != "m.text":
		bad = "msgtype " + m.MsgType
	case m.Body == "":
		bad = "no body"
	case m.Format != "" && (m.Format != "org.matrix.custom.html" || m.FormattedBody == ""):
		bad = "format " + m.Format + " without formatted_body"
	}
	if bad != "" {
		c.refuse(w, http.StatusBadRequest, map[string]any{"errcode": "M_BAD_JSON", "error": bad}, "matrix: %s", bad)
		return
	}
	txn := r.PathValue("txnID")
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.txnIDs[txn] {
		// The homeserver would drop the message as a retransmission.
		c.problems = append(c.problems, "matrix: transaction ID "+txn+" used twice")
	}
	c.txnIDs[txn] = true
	title, text, _ := strings.Cut(m.Body, "\n")
	c.posts = append(c.posts, post{chat: "matrix", title: title, text: text})
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"event_id":"$%d-tend"}`, len(c.posts))
}

// wait waits until chat has a post for which match holds, and returns it.
func (c *chats) wait(t *testing.T, chat, what string, match func(post) bool) post {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.mu.Lock()
		for _, p := range c.posts {
			if p.chat == chat && match(p) {
				c.mu.Unlock()
				return p
			}
		}
		seen := len(c.posts)
		c.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("%s never got %s (%d posts in all):\n%s", chat, what, seen, c.dump())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *chats) dump() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, p := range c.posts {
		fmt.Fprintf(&b, "  %s: %s | %s\n", p.chat, p.title, strings.ReplaceAll(p.text, "\n", " | "))
	}
	return b.String()
}
