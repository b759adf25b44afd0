package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"strings"
)

// telegramAPI is the default Bot API base.
const telegramAPI = "https://api.telegram.org"

// telegram sends HTML messages with the Bot API's sendMessage
// (https://core.telegram.org/bots/api#sendmessage). The bot token is part
// of the URL path, so errors never show the path.
type telegram struct {
	// url is the sendMessage URL, token included.
	url  string
	chat string
	t    *transport
}

var _ Provider = (*telegram)(nil)

func newTelegram(cfg Config) (*telegram, error) {
	base, err := apiBase("telegram", cfg.Address, telegramAPI)
	if err != nil {
		return nil, err
	}
	if cfg.Token == "" {
		return nil, errNoToken("telegram", "bot token from @BotFather")
	}
	if cfg.Channel == "" {
		return nil, fmt.Errorf(`telegram: no chat: set spec.channel to the chat ID ("-1001234567890") or "@channelusername"`)
	}
	return &telegram{
		url:  base + "/bot" + cfg.Token + "/sendMessage",
		chat: cfg.Channel,
		t:    newTransport("telegram", cfg, cfg.Token),
	}, nil
}

type telegramMessage struct {
	ChatID                string `json:"chat_id"`
	Text                  string `json:"text"`
	ParseMode             string `json:"parse_mode"`
	DisableWebPagePreview bool   `json:"disable_web_page_preview"`
}

// telegramAnswer is the Bot API's answer
// (https://core.telegram.org/bots/api#making-requests).
type telegramAnswer struct {
	OK          bool   `json:"ok"`
	Description string `json:"description"`
	Parameters  struct {
		RetryAfter int `json:"retry_after"`
	} `json:"parameters"`
}

func (tg *telegram) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(telegramMessage{
		ChatID:                tg.chat,
		Text:                  telegramHTML(newCard(m)),
		ParseMode:             "HTML",
		DisableWebPagePreview: true,
	})
	if err != nil {
		return err
	}
	answer, err := tg.t.do(ctx, "POST", tg.url, nil, body)
	var r telegramAnswer
	jsonErr := json.Unmarshal(answer, &r)
	if err != nil {
		if jsonErr == nil {
			err = withRetryAfter(err, seconds(float64(r.Parameters.RetryAfter)))
		}
		return err
	}
	if jsonErr == nil && !r.OK {
		return errors.New("telegram: sendMessage: " + tg.t.scrub(r.Description))
	}
	return nil
}

// telegramHTML is the card in the HTML Telegram parses
// (https://core.telegram.org/bots/api#html-style). The card's limits keep
// it under sendMessage's 4096 characters.
func telegramHTML(c card) string {
	esc := html.EscapeString
	var b strings.Builder
	b.WriteString("<b>" + c.mark() + " " + esc(c.title) + "</b>\n" + esc(c.text))
	if c.revision != "" {
		b.WriteString("\n<b>Revision</b> <code>" + esc(c.revision) + "</code>")
		if c.subject != "" {
			b.WriteString(" " + esc(c.subject))
		}
	}
	if c.err != "" {
		b.WriteString("\n<b>Error</b>\n<pre>" + esc(c.err) + "</pre>")
	}
	if len(c.changes) > 0 {
		b.WriteString("\n<b>Changes</b>")
		for _, ch := range c.changes {
			b.WriteString("\n• " + esc(ch))
		}
		if c.more > 0 {
			fmt.Fprintf(&b, "\n• and %d more", c.more)
		}
	}
	if c.link != "" {
		b.WriteString("\n" + `<a href="` + esc(c.link) + `">Open in tend</a>`)
	}
	return b.String()
}
