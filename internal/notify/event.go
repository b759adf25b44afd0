// Package notify tells people what tend did: events about Apps (sync
// started, succeeded, failed, health degraded and recovered, drift, prune,
// hook failures, rollbacks) and Sources (fetch failures, new revisions) are matched against Notifier resources and
// delivered asynchronously to chat providers (Discord, Slack, Matrix,
// Microsoft Teams, Telegram), to a generic HMAC-signed webhook, or as
// commit statuses on GitHub, GitLab and Gitea. Delivery never blocks a sync.
package notify

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Kind is what happened.
type Kind string

// Event kinds (Notifier spec.events uses these names).
const (
	SyncStarted     Kind = "SyncStarted"
	SyncSucceeded   Kind = "SyncSucceeded"
	SyncFailed      Kind = "SyncFailed"
	HealthDegraded  Kind = "HealthDegraded"
	HealthRecovered Kind = "HealthRecovered"
	DriftDetected   Kind = "DriftDetected"
	DriftCorrected  Kind = "DriftCorrected"
	Pruned          Kind = "Pruned"
	HookFailed      Kind = "HookFailed"
	RolledBack      Kind = "RolledBack"
	// Source events: a fetch failed, a new revision was fetched.
	FetchFailed Kind = "FetchFailed"
	NewRevision Kind = "NewRevision"
	// Stage events: freight committed, a promotion that could not be
	// pushed, a verification that failed, freight waiting for approval.
	Promoted           Kind = "Promoted"
	PromotionFailed    Kind = "PromotionFailed"
	VerificationFailed Kind = "VerificationFailed"
	WaitingForApproval Kind = "WaitingForApproval"
)

// Kinds lists every kind, in the order documentation shows them.
var Kinds = []Kind{SyncStarted, SyncSucceeded, SyncFailed, HealthDegraded, HealthRecovered, DriftDetected, DriftCorrected, Pruned, HookFailed, RolledBack, FetchFailed, NewRevision, Promoted, PromotionFailed, VerificationFailed, WaitingForApproval}

// Severity orders events for a Notifier's minimum severity.
type Severity string

// Severities, lowest first.
const (
	Info    Severity = "info"
	Warning Severity = "warning"
	Error   Severity = "error"
)

// Rank orders severities (info 0, warning 1, error 2; unknown -1).
func (s Severity) Rank() int {
	switch s {
	case Info:
		return 0
	case Warning:
		return 1
	case Error:
		return 2
	}
	return -1
}

// SeverityOf is the severity of an event kind.
func SeverityOf(k Kind) Severity {
	switch k {
	case SyncFailed, HealthDegraded, HookFailed, FetchFailed, PromotionFailed, VerificationFailed:
		return Error
	case DriftDetected, RolledBack, WaitingForApproval:
		return Warning
	}
	return Info
}

// Event is one thing tend did to an App or a Source. It never carries
// secret values: Changes name objects, Error is the sync's or fetch's
// error text (which tend already keeps free of Secret data).
type Event struct {
	Kind     Kind
	Severity Severity
	Time     time.Time
	// AppNamespace is the namespace of the App or Source; AppName names
	// the App, "" for a Source's event. Labels are the App's or Source's
	// labels (for Notifier selectors).
	AppNamespace, AppName string
	Labels                map[string]string
	// SourceName names the Source of a Source event (FetchFailed,
	// NewRevision); SourceType is its type (git, helm, oci).
	SourceName string
	SourceType string
	// StageName names the Stage of a Stage event (Promoted,
	// PromotionFailed, VerificationFailed, WaitingForApproval).
	StageName string
	// Revision is the full commit SHA (or "chart" for chart sources);
	// Subject is the commit subject when known.
	Revision, Subject string
	// RepoURL is the App's Source git URL (commit statuses are posted to
	// it); empty for chart sources.
	RepoURL string
	// Message says what happened, in one line.
	Message string
	// Changes name what changed: "Deployment web/api configured".
	Changes []string
	// Error is the failure, for failure kinds.
	Error string
}

// ShortRevision is the revision as people read it (12 hex digits).
func (e Event) ShortRevision() string {
	if len(e.Revision) > 12 && isHex(e.Revision) {
		return e.Revision[:12]
	}
	return e.Revision
}

// App is "namespace/name" of the App.
func (e Event) App() string { return e.AppNamespace + "/" + e.AppName }

// Object is "namespace/name" of the App, or of the Source of a Source
// event.
func (e Event) Object() string {
	if e.SourceName != "" {
		return e.AppNamespace + "/" + e.SourceName
	}
	if e.StageName != "" {
		return e.AppNamespace + "/" + e.StageName
	}
	return e.App()
}

func isHex(s string) bool {
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

// Message is what a provider sends: one event, or a summary of several
// (a flapping App).
type Message struct {
	Event Event
	// Summary, when set, replaces the event's own text: the App changed
	// state this many times and these events were folded into one message.
	Summary string
	// Folded is the number of events a summary stands for (0 otherwise).
	Folded int
	// Link is the App's page when the Notifier has a base URL.
	Link string
	// Metadata are the Notifier's spec.metadata, shown with the message.
	Metadata map[string]string
}

// Provider delivers messages to one destination.
type Provider interface {
	// Send delivers one message. A failed HTTP exchange is an *HTTPError.
	Send(ctx context.Context, m Message) error
}

// HTTPError is a provider's non-2xx answer. The dispatcher retries 429
// and 5xx, waiting RetryAfter when the server said so.
type HTTPError struct {
	Status     int
	RetryAfter time.Duration
	// Body is the start of the answer (at most 512 bytes), for status.
	Body string
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("HTTP %d %s", e.Status, http.StatusText(e.Status))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// Retryable reports whether the answer is worth retrying.
func (e *HTTPError) Retryable() bool {
	// GitHub answers a rate limit with 403 and says when it resets.
	return e.Status == http.StatusTooManyRequests || e.Status >= 500 ||
		e.Status == http.StatusForbidden && e.RetryAfter > 0
}

// PermanentError is a delivery failure that retrying cannot fix (the
// provider refused the message for a reason a person must address).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Config is a Notifier's provider settings with its credentials resolved.
type Config struct {
	// Type is the provider: discord, slack, matrix, teams, telegram,
	// webhook, github, gitlab, gitea.
	Type string
	// Address is the webhook URL (discord, slack, teams, webhook), the
	// homeserver (matrix) or the API base (telegram, github, gitlab,
	// gitea; they have public defaults).
	Address string
	// Channel is the Slack channel, Matrix room ID or Telegram chat ID.
	Channel string
	// Token is the Slack bot token, Matrix access token, Telegram bot
	// token, or the forge token for commit statuses.
	Token string
	// HMACKey signs the generic webhook's body.
	HMACKey []byte
	// Username is the sender name where the provider allows one.
	Username string
	// Client sends the requests (default: a client with a 15 s timeout).
	Client *http.Client
}
