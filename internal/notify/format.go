package notify

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// What every chat message shows, before a provider renders it in its own
// markup. Limits keep the largest message inside every provider's limits
// (Telegram's 4096 characters is the smallest) without cutting markup.
const (
	maxChanges = 10   // changes listed before "and N more"
	maxLine    = 200  // characters of one line of user text
	maxError   = 1000 // characters of the error
	maxTitle   = 150  // characters of the title (Slack's header limit)
)

// Colours by severity (0xRRGGBB), and the mark that stands for the colour
// where a provider has none (Slack blocks, Matrix, Telegram).
const (
	colourInfo    = 0x2EB67D // green
	colourWarning = 0xECB22E // amber
	colourError   = 0xE01E5A // red
)

// card is a Message reduced to what a person reads: a title naming the
// App, what happened, the revision, the error, what changed and a link.
// Fields are plain text; providers escape them for their markup.
type card struct {
	severity Severity
	// title is "namespace/name: sync failed", with "(N events)" for a
	// summary.
	title string
	// text is the summary, or the event's message.
	text string
	// revision is the short revision ("" when unknown); subject is the
	// commit subject.
	revision, subject string
	err               string
	// changes are the first maxChanges changes; more counts the rest.
	changes []string
	more    int
	link    string
	time    time.Time
}

// kindPhrases says what a kind means, after the App's name.
var kindPhrases = map[Kind]string{
	SyncStarted:        "sync started",
	SyncSucceeded:      "synced",
	SyncFailed:         "sync failed",
	HealthDegraded:     "health degraded",
	HealthRecovered:    "healthy again",
	DriftDetected:      "drift detected",
	DriftCorrected:     "drift corrected",
	Pruned:             "pruned",
	HookFailed:         "hook failed",
	RolledBack:         "rolled back",
	FetchFailed:        "fetch failed",
	NewRevision:        "new revision",
	Promoted:           "promoted",
	PromotionFailed:    "promotion failed",
	VerificationFailed: "verification failed",
	WaitingForApproval: "waiting for approval",
}

func phrase(k Kind) string {
	if p, ok := kindPhrases[k]; ok {
		return p
	}
	return string(k)
}

// severityOf is the event's severity, or its kind's when unset.
func severityOf(e Event) Severity {
	if e.Severity.Rank() >= 0 {
		return e.Severity
	}
	return SeverityOf(e.Kind)
}

func newCard(m Message) card {
	e := m.Event
	c := card{
		severity: severityOf(e),
		title:    e.Object() + ": " + phrase(e.Kind),
		text:     oneLine(e.Message),
		revision: e.ShortRevision(),
		subject:  truncate(oneLine(e.Subject), maxLine),
		err:      truncate(strings.TrimSpace(e.Error), maxError),
		link:     m.Link,
		time:     e.Time,
	}
	if m.Summary != "" {
		c.text = oneLine(m.Summary)
		if m.Folded > 0 {
			c.title += fmt.Sprintf(" (%d events)", m.Folded)
		}
	}
	if c.text == "" {
		p := phrase(e.Kind)
		c.text = strings.ToUpper(p[:1]) + p[1:] + "."
	}
	c.title = truncate(c.title, maxTitle)
	c.text = truncate(c.text, maxLine*2)
	if md := metadataLine(m.Metadata); md != "" {
		c.text += " (" + truncate(md, maxLine) + ")"
	}
	if c.time.IsZero() {
		c.time = time.Now()
	}
	for i, ch := range e.Changes {
		if i == maxChanges {
			c.more = len(e.Changes) - maxChanges
			break
		}
		c.changes = append(c.changes, truncate(oneLine(ch), maxLine))
	}
	return c
}

// metadataLine is "key: value, key: value", sorted by key.
func metadataLine(md map[string]string) string {
	keys := slices.Sorted(maps.Keys(md))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, oneLine(k)+": "+oneLine(md[k]))
	}
	return strings.Join(parts, ", ")
}

// colour is the card's colour as 0xRRGGBB.
func (c card) colour() int {
	switch c.severity {
	case Error:
		return colourError
	case Warning:
		return colourWarning
	}
	return colourInfo
}

// mark is a coloured circle for providers without colours.
func (c card) mark() string {
	switch c.severity {
	case Error:
		return "🔴"
	case Warning:
		return "🟡"
	}
	return "🟢"
}

// revisionLine is "0123456789ab Fix the thing" (subject when known).
func (c card) revisionLine() string {
	if c.subject == "" {
		return c.revision
	}
	return c.revision + " " + c.subject
}

// lines is the card as plain text, one line per item, without the title.
func (c card) lines() []string {
	lines := []string{c.text}
	if c.revision != "" {
		lines = append(lines, "Revision: "+c.revisionLine())
	}
	if c.err != "" {
		lines = append(lines, "Error: "+c.err)
	}
	if len(c.changes) > 0 {
		lines = append(lines, "Changes:")
		for _, ch := range c.changes {
			lines = append(lines, "- "+ch)
		}
		if c.more > 0 {
			lines = append(lines, fmt.Sprintf("- and %d more", c.more))
		}
	}
	if c.link != "" {
		lines = append(lines, c.link)
	}
	return lines
}

// oneLine folds whitespace, newlines included, into single spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// truncate cuts s to at most n characters, ending in "…" when cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	i, count := 0, 0
	for i = range s {
		if count == n-1 {
			break
		}
		count++
	}
	return s[:i] + "…"
}

// changeList renders the changes as items (prefix + escaped change),
// one per line, within max characters: items that do not fit, and the
// changes beyond maxChanges, become a last item "and N more".
func (c card) changeList(prefix string, escape func(string) string, max int) string {
	items := make([]string, len(c.changes))
	for i, ch := range c.changes {
		items[i] = prefix + escape(ch)
	}
	return joinCapped(items, "\n", max, c.more, func(n int) string { return fmt.Sprintf("%sand %d more", prefix, n) })
}

// joinCapped joins items with sep while the result stays within max
// characters; the items that do not fit, plus extra, are counted in a
// last item more(n).
func joinCapped(items []string, sep string, max, extra int, more func(n int) string) string {
	all := items
	if extra > 0 {
		all = append(all[:len(all):len(all)], more(extra))
	}
	if s := strings.Join(all, sep); utf8.RuneCountInString(s) <= max {
		return s
	}
	var b strings.Builder
	used := 0
	for i, item := range items {
		next := item
		if i > 0 {
			next = sep + item
		}
		// Keep room for "and N more" while items (or extra) remain.
		rest := len(items) - i - 1 + extra
		need := utf8.RuneCountInString(next)
		if rest > 0 {
			need += utf8.RuneCountInString(sep + more(rest))
		}
		if used+need > max {
			tail := more(len(items) - i + extra)
			if i > 0 {
				tail = sep + tail
			}
			b.WriteString(truncate(tail, max-used))
			return b.String()
		}
		b.WriteString(next)
		used += utf8.RuneCountInString(next)
	}
	return b.String()
}
