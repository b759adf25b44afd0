package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// matrix sends m.notice messages to a room through the client-server API
// (https://spec.matrix.org/v1.11/client-server-api/#put_matrixclientv3roomsroomidsendeventtypetxnid).
type matrix struct {
	// base is the homeserver's client API URL up to the room ID.
	base  string
	token string
	// txnPrefix (random per provider) and seq make transaction IDs unique
	// across sends and restarts: the homeserver drops a repeated ID.
	txnPrefix string
	seq       atomic.Uint64
	t         *transport
}

var _ Provider = (*matrix)(nil)

func newMatrix(cfg Config) (*matrix, error) {
	if cfg.Address == "" {
		return nil, errNoAddress("matrix", "homeserver address (https://matrix.example.org)")
	}
	base, err := apiBase("matrix", cfg.Address, "")
	if err != nil {
		return nil, err
	}
	if cfg.Token == "" {
		return nil, errNoToken("matrix", "access token of the bot's account")
	}
	switch {
	case cfg.Channel == "":
		return nil, fmt.Errorf(`matrix: no room: set spec.channel to the room ID ("!abc123:example.org"; Element: Room settings → Advanced)`)
	case strings.HasPrefix(cfg.Channel, "#"):
		return nil, fmt.Errorf(`matrix: spec.channel %q is a room alias: set the room ID instead ("!abc123:example.org"; Element: Room settings → Advanced)`, cfg.Channel)
	case !strings.HasPrefix(cfg.Channel, "!"):
		return nil, fmt.Errorf(`matrix: spec.channel %q is not a room ID: set the room ID ("!abc123:example.org"; Element: Room settings → Advanced)`, cfg.Channel)
	}
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, fmt.Errorf("matrix: transaction ID: %w", err)
	}
	return &matrix{
		base:      base + "/_matrix/client/v3/rooms/" + url.PathEscape(cfg.Channel) + "/send/m.room.message/",
		token:     cfg.Token,
		txnPrefix: fmt.Sprintf("tend.%x.%s.", time.Now().Unix(), hex.EncodeToString(r[:])),
		t:         newTransport("matrix", cfg, cfg.Token),
	}, nil
}

type matrixMessage struct {
	MsgType       string `json:"msgtype"`
	Body          string `json:"body"`
	Format        string `json:"format"`
	FormattedBody string `json:"formatted_body"`
}

func (mx *matrix) Send(ctx context.Context, m Message) error {
	c := newCard(m)
	body, err := json.Marshal(matrixMessage{
		// m.notice: an automated message, which bots do not answer.
		MsgType:       "m.notice",
		Body:          c.mark() + " " + c.title + "\n" + strings.Join(c.lines(), "\n"),
		Format:        "org.matrix.custom.html",
		FormattedBody: matrixHTML(c),
	})
	if err != nil {
		return err
	}
	txn := fmt.Sprintf("%s%d", mx.txnPrefix, mx.seq.Add(1))
	header := http.Header{"Authorization": {"Bearer " + mx.token}}
	answer, err := mx.t.do(ctx, "PUT", mx.base+url.PathEscape(txn), header, body)
	if err != nil {
		// M_LIMIT_EXCEEDED carries retry_after_ms.
		var limited struct {
			RetryAfterMS float64 `json:"retry_after_ms"`
		}
		if json.Unmarshal(answer, &limited) == nil {
			err = withRetryAfter(err, seconds(limited.RetryAfterMS/1000))
		}
		return err
	}
	return nil
}

// matrixHTML is the card in the HTML subset Matrix clients render
// (https://spec.matrix.org/v1.11/client-server-api/#mroommessage-msgtypes).
func matrixHTML(c card) string {
	esc := html.EscapeString
	var b strings.Builder
	fmt.Fprintf(&b, `<strong><font data-mx-color="#%06X">%s</font> %s</strong><br>`, c.colour(), c.mark(), esc(c.title))
	b.WriteString(esc(c.text))
	if c.revision != "" {
		b.WriteString("<br><strong>Revision</strong> <code>" + esc(c.revision) + "</code>")
		if c.subject != "" {
			b.WriteString(" " + esc(c.subject))
		}
	}
	if c.err != "" {
		b.WriteString("<br><strong>Error</strong><pre><code>" + esc(c.err) + "</code></pre>")
	}
	if len(c.changes) > 0 {
		b.WriteString("<br><strong>Changes</strong><ul>")
		for _, ch := range c.changes {
			b.WriteString("<li>" + esc(ch) + "</li>")
		}
		if c.more > 0 {
			fmt.Fprintf(&b, "<li>and %d more</li>", c.more)
		}
		b.WriteString("</ul>")
	}
	if c.link != "" {
		b.WriteString(`<a href="` + esc(c.link) + `">Open in tend</a>`)
	}
	return b.String()
}
