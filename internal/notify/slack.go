package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Slack's block limits, in characters (https://api.slack.com/reference/block-kit/blocks).
const (
	slackHeader  = 150
	slackSection = 3000
)

// slackAPI is the default Web API base for chat.postMessage.
const slackAPI = "https://slack.com/api"

// slack posts Block Kit messages to an incoming webhook (address), or with
// a bot token to chat.postMessage (token, channel; address is then the
// Web API base).
type slack struct {
	// url is the webhook URL, or the chat.postMessage URL with a token.
	url      string
	token    string
	channel  string
	username string
	t        *transport
}

var _ Provider = (*slack)(nil)

func newSlack(cfg Config) (*slack, error) {
	s := &slack{token: cfg.Token, channel: cfg.Channel, username: cfg.Username}
	if cfg.Token == "" {
		if cfg.Address == "" {
			return nil, fmt.Errorf(`slack: no webhook address: set spec.address or the "address" key of the Notifier's Secret to the incoming webhook URL, or put a bot token in the "token" key and set spec.channel`)
		}
		if _, err := parseAddress("slack", cfg.Address, true); err != nil {
			return nil, err
		}
		s.url = cfg.Address
		s.t = newTransport("slack", cfg, urlSecrets(cfg.Address)...)
		return s, nil
	}
	if cfg.Channel == "" {
		return nil, fmt.Errorf("slack: no channel: set spec.channel to the channel ID (C0123456789) or name the bot token posts to")
	}
	base, err := apiBase("slack", cfg.Address, slackAPI)
	if err != nil {
		return nil, err
	}
	s.url = base + "/chat.postMessage"
	s.t = newTransport("slack", cfg, cfg.Token)
	return s, nil
}

type slackPayload struct {
	Channel     string       `json:"channel,omitempty"`
	Username    string       `json:"username,omitempty"`
	Text        string       `json:"text"`
	Blocks      []slackBlock `json:"blocks"`
	UnfurlLinks bool         `json:"unfurl_links"`
}

type slackBlock struct {
	Type     string       `json:"type"`
	Text     *slackText   `json:"text,omitempty"`
	Elements []*slackText `json:"elements,omitempty"`
}

type slackText struct {
	Type  string `json:"type"` // plain_text or mrkdwn
	Text  string `json:"text"`
	Emoji bool   `json:"emoji,omitempty"`
}

// slackHints say what to do about chat.postMessage's errors
// (https://api.slack.com/methods/chat.postMessage#errors).
var slackHints = map[string]string{
	"channel_not_found": "check spec.channel; a private channel needs its ID and the app invited",
	"not_in_channel":    "invite the app to the channel (/invite @app)",
	"is_archived":       "the channel is archived: set spec.channel to another one",
	"invalid_auth":      `check the "token" key of the Notifier's Secret`,
	"not_authed":        `check the "token" key of the Notifier's Secret`,
	"token_revoked":     `the token was revoked: put a new one in the "token" key of the Notifier's Secret`,
	"missing_scope":     "give the Slack app the chat:write scope and reinstall it",
}

func (s *slack) Send(ctx context.Context, m Message) error {
	c := newCard(m)
	p := slackPayload{
		Username: s.username,
		Text:     slackEscape(c.mark() + " " + c.title + ": " + c.text),
		Blocks:   slackBlocks(c),
	}
	var header http.Header
	if s.token != "" {
		p.Channel = s.channel
		header = http.Header{
			"Authorization": {"Bearer " + s.token},
			// Without the charset Slack answers with a warning.
			"Content-Type": {"application/json; charset=utf-8"},
		}
	}
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	answer, err := s.t.do(ctx, "POST", s.url, header, body)
	if err != nil || s.token == "" {
		// The incoming webhook answers "ok" in plain text; its errors are
		// non-2xx.
		return err
	}
	// chat.postMessage answers 200 with ok=false on errors.
	var r struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(answer, &r); err != nil {
		return fmt.Errorf("slack: chat.postMessage answered something other than JSON: %q", s.t.excerpt(answer))
	}
	if !r.OK {
		msg := "slack: chat.postMessage: " + s.t.scrub(r.Error)
		if hint, ok := slackHints[r.Error]; ok {
			msg += ": " + hint
		}
		return &PermanentError{Err: errors.New(msg)}
	}
	return nil
}

func slackBlocks(c card) []slackBlock {
	section := func(text string) slackBlock {
		return slackBlock{Type: "section", Text: &slackText{Type: "mrkdwn", Text: truncate(text, slackSection)}}
	}
	blocks := []slackBlock{{
		Type: "header",
		Text: &slackText{Type: "plain_text", Text: truncate(c.mark()+" "+c.title, slackHeader), Emoji: true},
	}}
	text := slackEscape(c.text)
	if c.revision != "" {
		text += "\n*Revision* `" + c.revision + "`"
		if c.subject != "" {
			text += " " + slackEscape(c.subject)
		}
	}
	blocks = append(blocks, section(text))
	if c.err != "" {
		blocks = append(blocks, section("*Error*\n```"+slackEscape(c.err)+"```"))
	}
	if len(c.changes) > 0 {
		const head = "*Changes*\n"
		blocks = append(blocks, section(head+c.changeList("• ", slackEscape, slackSection-len(head))))
	}
	// The date renders in the reader's time zone; the fallback is UTC.
	footer := fmt.Sprintf("%s · <!date^%d^{date_short_pretty} {time}|%s>",
		c.severity, c.time.Unix(), c.time.UTC().Format("2006-01-02 15:04 UTC"))
	if c.link != "" {
		footer = "<" + slackLinkEscape(c.link) + "|Open in tend> · " + footer
	}
	blocks = append(blocks, slackBlock{Type: "context", Elements: []*slackText{{Type: "mrkdwn", Text: footer}}})
	return blocks
}

// slackEscape escapes the three characters Slack's mrkdwn reserves
// (https://api.slack.com/reference/surfaces/formatting#escaping).
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace

// slackLinkEscape keeps a URL inside <url|text>.
var slackLinkEscape = strings.NewReplacer("&", "&amp;", "<", "%3C", ">", "%3E", "|", "%7C").Replace
