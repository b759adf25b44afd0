package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// teams posts an Adaptive Card to a Microsoft Teams Workflows (Power
// Automate) webhook, the "Post to a channel when a webhook request is
// received" template
// (https://support.microsoft.com/office/8ae491c7-0394-4861-ba59-055e33f75498).
type teams struct {
	url string
	t   *transport
}

var _ Provider = (*teams)(nil)

func newTeams(cfg Config) (*teams, error) {
	if cfg.Address == "" {
		return nil, errNoAddress("teams", "workflow webhook address")
	}
	if _, err := parseAddress("teams", cfg.Address, true); err != nil {
		return nil, err
	}
	return &teams{url: cfg.Address, t: newTransport("teams", cfg, urlSecrets(cfg.Address)...)}, nil
}

type teamsPayload struct {
	Type        string            `json:"type"`
	Attachments []teamsAttachment `json:"attachments"`
}

type teamsAttachment struct {
	ContentType string       `json:"contentType"`
	ContentURL  *string      `json:"contentUrl"` // always null
	Content     adaptiveCard `json:"content"`
}

type adaptiveCard struct {
	Schema  string           `json:"$schema"`
	Type    string           `json:"type"`
	Version string           `json:"version"`
	Body    []adaptiveBlock  `json:"body"`
	Actions []adaptiveAction `json:"actions,omitempty"`
	MSTeams map[string]any   `json:"msteams,omitempty"`
}

// adaptiveBlock is a TextBlock or a FactSet.
type adaptiveBlock struct {
	Type     string         `json:"type"`
	Text     string         `json:"text,omitempty"`
	Weight   string         `json:"weight,omitempty"`
	Size     string         `json:"size,omitempty"`
	Color    string         `json:"color,omitempty"`
	FontType string         `json:"fontType,omitempty"`
	Wrap     bool           `json:"wrap,omitempty"`
	Facts    []adaptiveFact `json:"facts,omitempty"`
}

type adaptiveFact struct {
	Title string `json:"title"`
	Value string `json:"value"`
}

type adaptiveAction struct {
	Type  string `json:"type"`
	Title string `json:"title"`
	URL   string `json:"url"`
}

func (tm *teams) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(teamsPayload{
		Type: "message",
		Attachments: []teamsAttachment{{
			ContentType: "application/vnd.microsoft.card.adaptive",
			Content:     adaptiveCardOf(newCard(m)),
		}},
	})
	if err != nil {
		return err
	}
	_, err = tm.t.do(ctx, "POST", tm.url, nil, body)
	return err
}

func adaptiveCardOf(c card) adaptiveCard {
	colour := map[Severity]string{Info: "Good", Warning: "Warning", Error: "Attention"}[c.severity]
	text := func(s string) adaptiveBlock { return adaptiveBlock{Type: "TextBlock", Text: s, Wrap: true} }
	heading := func(s string) adaptiveBlock {
		return adaptiveBlock{Type: "TextBlock", Text: s, Weight: "Bolder", Wrap: true}
	}
	body := []adaptiveBlock{
		{Type: "TextBlock", Text: c.title, Weight: "Bolder", Size: "Medium", Color: colour, Wrap: true},
		text(c.text),
	}
	facts := []adaptiveFact{{Title: "Severity", Value: string(c.severity)}}
	if c.revision != "" {
		facts = append(facts, adaptiveFact{Title: "Revision", Value: c.revisionLine()})
	}
	facts = append(facts, adaptiveFact{Title: "Time", Value: c.time.UTC().Format("2006-01-02 15:04:05 UTC")})
	body = append(body, adaptiveBlock{Type: "FactSet", Facts: facts})
	if c.err != "" {
		errBlock := text(c.err)
		errBlock.FontType, errBlock.Color = "Monospace", "Attention"
		body = append(body, heading("Error"), errBlock)
	}
	if len(c.changes) > 0 {
		items := make([]string, 0, len(c.changes)+1)
		for _, ch := range c.changes {
			items = append(items, "- "+ch)
		}
		if c.more > 0 {
			items = append(items, fmt.Sprintf("- and %d more", c.more))
		}
		body = append(body, heading("Changes"), text(strings.Join(items, "\n")))
	}
	card := adaptiveCard{
		Schema:  "http://adaptivecards.io/schemas/adaptive-card.json",
		Type:    "AdaptiveCard",
		Version: "1.4",
		Body:    body,
		MSTeams: map[string]any{"width": "Full"},
	}
	if c.link != "" {
		card.Actions = []adaptiveAction{{Type: "Action.OpenUrl", Title: "Open in tend", URL: c.link}}
	}
	return card
}
