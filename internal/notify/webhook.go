package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"
)

// WebhookPayload is the JSON body of the generic webhook provider. Its
// shape is stable: fields are added, never renamed or removed, and every
// field is always present (empty values included), so that receivers need
// no special cases. docs/notifications.md documents it.
type WebhookPayload struct {
	// Kind is the event kind: SyncStarted, SyncFailed, ...
	Kind Kind `json:"kind"`
	// Severity is info, warning or error.
	Severity Severity `json:"severity"`
	// Time is when it happened (RFC 3339, UTC).
	Time time.Time `json:"time"`
	// App names the App; empty for a Source's event.
	App WebhookApp `json:"app"`
	// Source names the Source of a Source event (FetchFailed,
	// NewRevision), empty for an App's; Type is git, helm or oci.
	Source WebhookSource `json:"source"`
	// Stage names the Stage of a Stage event (Promoted, PromotionFailed,
	// VerificationFailed, WaitingForApproval), empty otherwise.
	Stage WebhookStage `json:"stage"`
	// Revision is the full commit SHA ("chart" for chart sources); Subject
	// is the commit subject when known.
	Revision string `json:"revision"`
	Subject  string `json:"subject"`
	// Message says what happened, in one line.
	Message string `json:"message"`
	// Changes name every object that changed ([] when none).
	Changes []string `json:"changes"`
	// Error is the failure, for failure kinds.
	Error string `json:"error"`
	// Summary replaces Message when several events were folded into one
	// delivery (a flapping App); Folded counts them (0 otherwise).
	Summary string `json:"summary"`
	Folded  int    `json:"folded"`
	// Link is the App's page when the Notifier has spec.baseURL.
	Link string `json:"link"`
	// Metadata are the Notifier's spec.metadata ({} when none).
	Metadata map[string]string `json:"metadata"`
}

// WebhookSource names a Source.
type WebhookSource struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Type      string `json:"type"`
}

// WebhookStage names a Stage.
type WebhookStage struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// WebhookApp names the App.
type WebhookApp struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// Headers of the generic webhook.
const (
	// HeaderSignature is "sha256=" + hex(HMAC-SHA256(hmacKey, body)), the
	// scheme tend's own /hooks/generic receiver verifies.
	HeaderSignature = "X-Tend-Signature"
	// HeaderEvent is the event kind.
	HeaderEvent = "X-Tend-Event"
)

// webhook posts WebhookPayload to any URL, signed when a key is set.
type webhook struct {
	url string
	key []byte
	t   *transport
}

var _ Provider = (*webhook)(nil)

func newWebhook(cfg Config) (*webhook, error) {
	if cfg.Address == "" {
		return nil, errNoAddress("webhook", "webhook address")
	}
	if _, err := parseAddress("webhook", cfg.Address, true); err != nil {
		return nil, err
	}
	return &webhook{
		url: cfg.Address,
		key: cfg.HMACKey,
		t:   newTransport("webhook", cfg, append(urlSecrets(cfg.Address), string(cfg.HMACKey))...),
	}, nil
}

// payloadOf is the generic webhook's body for m.
func payloadOf(m Message) WebhookPayload {
	e := m.Event
	changes := e.Changes
	if changes == nil {
		changes = []string{}
	}
	t := e.Time
	if t.IsZero() {
		t = time.Now()
	}
	md := m.Metadata
	if md == nil {
		md = map[string]string{}
	}
	app, src, stage := WebhookApp{Namespace: e.AppNamespace, Name: e.AppName}, WebhookSource{}, WebhookStage{}
	switch {
	case e.SourceName != "":
		app, src = WebhookApp{}, WebhookSource{Namespace: e.AppNamespace, Name: e.SourceName, Type: e.SourceType}
	case e.StageName != "":
		app, stage = WebhookApp{}, WebhookStage{Namespace: e.AppNamespace, Name: e.StageName}
	}
	return WebhookPayload{
		Kind:     e.Kind,
		Severity: severityOf(e),
		Time:     t.UTC(),
		App:      app,
		Source:   src,
		Stage:    stage,
		Metadata: md,
		Revision: e.Revision,
		Subject:  e.Subject,
		Message:  e.Message,
		Changes:  changes,
		Error:    e.Error,
		Summary:  m.Summary,
		Folded:   m.Folded,
		Link:     m.Link,
	}
}

func (w *webhook) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(payloadOf(m))
	if err != nil {
		return err
	}
	header := http.Header{HeaderEvent: {string(m.Event.Kind)}}
	if len(w.key) > 0 {
		header.Set(HeaderSignature, Sign(w.key, body))
	}
	_, err = w.t.do(ctx, "POST", w.url, header, body)
	return err
}

// Sign is the X-Tend-Signature value of body: "sha256=" followed by the
// hex HMAC-SHA256 of body under key.
func Sign(key, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
