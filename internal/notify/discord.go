package notify

import (
	"context"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"
)

// Discord's embed limits, in characters
// (https://discord.com/developers/docs/resources/message#embed-object-embed-limits).
const (
	discordTitle       = 256
	discordDescription = 4096
	discordFieldValue  = 1024
	discordEmbedTotal  = 6000
	discordUsername    = 80
)

// discord posts an embed to a Discord webhook
// (https://discord.com/developers/docs/resources/webhook#execute-webhook).
type discord struct {
	url      string
	username string
	t        *transport
}

var _ Provider = (*discord)(nil)

func newDiscord(cfg Config) (*discord, error) {
	if cfg.Address == "" {
		return nil, errNoAddress("discord", "webhook address")
	}
	if _, err := parseAddress("discord", cfg.Address, true); err != nil {
		return nil, err
	}
	return &discord{
		url:      cfg.Address,
		username: truncate(cfg.Username, discordUsername),
		t:        newTransport("discord", cfg, urlSecrets(cfg.Address)...),
	}, nil
}

type discordPayload struct {
	Username        string          `json:"username,omitempty"`
	Embeds          []discordEmbed  `json:"embeds"`
	AllowedMentions discordMentions `json:"allowed_mentions"`
}

// discordMentions with no Parse keeps "@everyone" in a commit subject from
// pinging anyone.
type discordMentions struct {
	Parse []string `json:"parse"`
}

type discordEmbed struct {
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Color       int            `json:"color"`
	URL         string         `json:"url,omitempty"`
	Timestamp   string         `json:"timestamp"`
	Fields      []discordField `json:"fields,omitempty"`
}

type discordField struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline"`
}

func (d *discord) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(discordPayload{
		Username:        d.username,
		Embeds:          []discordEmbed{discordEmbedOf(newCard(m))},
		AllowedMentions: discordMentions{Parse: []string{}},
	})
	if err != nil {
		return err
	}
	answer, err := d.t.do(ctx, "POST", d.url, nil, body)
	if err != nil {
		// A 429's body says how long to wait, in seconds with a fraction.
		var limited struct {
			RetryAfter float64 `json:"retry_after"`
		}
		if json.Unmarshal(answer, &limited) == nil {
			err = withRetryAfter(err, seconds(limited.RetryAfter))
		}
		return err
	}
	return nil
}

func discordEmbedOf(c card) discordEmbed {
	e := discordEmbed{
		Title:     truncate(c.title, discordTitle),
		Color:     c.colour(),
		URL:       c.link,
		Timestamp: c.time.UTC().Format(time.RFC3339),
	}
	desc := discordEscape(c.text)
	if desc != "" && strings.ContainsRune("#>-", rune(desc[0])) {
		desc = `\` + desc // a heading, quote or list at the start of a line
	}
	if c.revision != "" {
		desc += "\n**Revision** `" + c.revision + "`"
		if c.subject != "" {
			desc += " " + discordEscape(c.subject)
		}
	}
	if c.err != "" {
		// A code block has no escape; break any fence in the error.
		fenced := "```\n" + strings.ReplaceAll(c.err, "```", "`\u200b``") + "\n```"
		if utf8.RuneCountInString(fenced) > discordFieldValue {
			fenced = "```\n" + truncate(strings.ReplaceAll(c.err, "```", "`\u200b``"), discordFieldValue-8) + "\n```"
		}
		e.Fields = append(e.Fields, discordField{Name: "Error", Value: fenced})
	}
	if len(c.changes) > 0 {
		e.Fields = append(e.Fields, discordField{Name: "Changes", Value: c.changeList("• ", discordEscape, discordFieldValue)})
	}
	// The embed as a whole must stay within discordEmbedTotal characters:
	// the description gives way.
	room := discordEmbedTotal - utf8.RuneCountInString(e.Title)
	for _, f := range e.Fields {
		room -= utf8.RuneCountInString(f.Name) + utf8.RuneCountInString(f.Value)
	}
	e.Description = truncate(desc, min(room, discordDescription))
	return e
}

// discordEscape keeps user text inside a line from being read as Discord
// markdown (emphasis, code, spoilers, masked links).
var discordEscape = strings.NewReplacer(
	`\`, `\\`, "*", `\*`, "_", `\_`, "~", `\~`, "`", "\\`", "|", `\|`, "[", `\[`, "]", `\]`,
).Replace
