package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// The outbox of a Notifier is a ConfigMap in its namespace, owned by it,
// holding the messages not delivered at their first attempt, so that a
// restarted or failed-over controller sends them. It is written only
// while a provider fails (at most once per Notifier per flush interval)
// and deleted when it empties; a Notifier whose messages go out at the
// first attempt never has one.
const (
	// LabelOutbox marks outbox ConfigMaps; the value is "notifier".
	LabelOutbox = "tend.dev/outbox"
	// outboxKey is the ConfigMap key holding the messages as a JSON array,
	// oldest first.
	outboxKey = "messages.json"
	// outboxFieldOwner writes outboxes (server-side apply).
	outboxFieldOwner = "tend-notify"
	// maxOutboxBytes bounds an outbox's JSON (a ConfigMap holds at most
	// 1 MiB): the newest messages that fit are kept, the older ones wait
	// in memory only.
	maxOutboxBytes = 512 << 10
)

// OutboxName is the name of Notifier notifier's outbox ConfigMap.
func OutboxName(notifier string) string {
	const prefix = "tend-outbox-"
	name := prefix + notifier
	if len(name) <= 253 {
		return name
	}
	sum := sha256.Sum256([]byte(notifier))
	return name[:253-17] + "-" + hex.EncodeToString(sum[:8])
}

// outboxEntry is one message in an outbox: the event's fields a provider
// needs to send it again. Events never carry Secret values; a repository
// URL loses any credentials it embeds.
type outboxEntry struct {
	Kind     Kind      `json:"kind"`
	Severity Severity  `json:"severity,omitempty"`
	Time     time.Time `json:"time"`
	App      string    `json:"app"`
	// Source and SourceType name the Source of a Source event.
	Source     string            `json:"source,omitempty"`
	SourceType string            `json:"sourceType,omitempty"`
	Stage      string            `json:"stage,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	Revision   string            `json:"revision,omitempty"`
	Subject    string            `json:"subject,omitempty"`
	RepoURL    string            `json:"repoURL,omitempty"`
	Message    string            `json:"message,omitempty"`
	Changes    []string          `json:"changes,omitempty"`
	Error      string            `json:"error,omitempty"`
	Summary    string            `json:"summary,omitempty"`
	Folded     int               `json:"folded,omitempty"`
	Link       string            `json:"link,omitempty"`
}

func entryOf(m Message) outboxEntry {
	e := m.Event
	return outboxEntry{
		Kind: e.Kind, Severity: e.Severity, Time: e.Time, App: e.AppName, Source: e.SourceName, SourceType: e.SourceType, Stage: e.StageName, Metadata: m.Metadata,
		Revision: e.Revision, Subject: e.Subject, RepoURL: withoutUserinfo(e.RepoURL),
		Message: e.Message, Changes: e.Changes, Error: e.Error,
		Summary: m.Summary, Folded: m.Folded, Link: m.Link,
	}
}

func (o outboxEntry) message(namespace string) Message {
	sev := o.Severity
	if sev == "" {
		sev = SeverityOf(o.Kind)
	}
	return Message{
		Event: Event{
			Kind: o.Kind, Severity: sev, Time: o.Time, AppNamespace: namespace, AppName: o.App, SourceName: o.Source, SourceType: o.SourceType, StageName: o.Stage,
			Revision: o.Revision, Subject: o.Subject, RepoURL: o.RepoURL,
			Message: o.Message, Changes: o.Changes, Error: o.Error,
		},
		Summary: o.Summary, Folded: o.Folded, Link: o.Link, Metadata: o.Metadata,
	}
}

func withoutUserinfo(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = nil
	return u.String()
}

// encodeOutbox returns the JSON of the newest messages (kept oldest
// first) whose encoding fits in limit bytes, and how many older ones did
// not fit.
func encodeOutbox(msgs []Message, limit int) (string, int, error) {
	encoded := make([][]byte, len(msgs))
	size, first := 2, len(msgs) // "[" and "]"
	for i := len(msgs) - 1; i >= 0; i-- {
		b, err := json.Marshal(entryOf(msgs[i]))
		if err != nil {
			return "", 0, err
		}
		if size+len(b)+1 > limit {
			break
		}
		encoded[i], size, first = b, size+len(b)+1, i
	}
	out := make([]byte, 0, size)
	out = append(out, '[')
	for i := first; i < len(msgs); i++ {
		if i > first {
			out = append(out, ',')
		}
		out = append(out, encoded[i]...)
	}
	out = append(out, ']')
	return string(out), first, nil
}

// decodeOutbox returns the messages of an outbox in namespace.
func decodeOutbox(namespace, data string) ([]Message, error) {
	var entries []outboxEntry
	if err := json.Unmarshal([]byte(data), &entries); err != nil {
		return nil, err
	}
	msgs := make([]Message, 0, len(entries))
	for _, e := range entries {
		if e.Kind == "" || e.App == "" {
			return nil, fmt.Errorf("message without kind or app: %+v", e)
		}
		msgs = append(msgs, e.message(namespace))
	}
	return msgs, nil
}

// writeOutbox makes Notifier key's outbox hold msgs: applied while there
// are any, deleted when there are none. A Notifier that is gone has no
// outbox to write (its ConfigMap goes with it).
func (d *Dispatcher) writeOutbox(ctx context.Context, key types.NamespacedName, msgs []Message) error {
	name := OutboxName(key.Name)
	if len(msgs) == 0 {
		cm := &corev1.ConfigMap{}
		cm.Namespace, cm.Name = key.Namespace, name
		if err := d.opts.Client.Delete(ctx, cm); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete outbox ConfigMap %s/%s of notifier %s: %w", key.Namespace, name, key, err)
		}
		return nil
	}
	var n tendv1.Notifier
	if err := d.opts.Client.Get(ctx, key, &n); err != nil {
		return client.IgnoreNotFound(err)
	}
	data, left, err := encodeOutbox(msgs, maxOutboxBytes)
	if err != nil {
		return fmt.Errorf("encode outbox of notifier %s: %w", key, err)
	}
	if left > 0 {
		d.opts.Log.Warn("notification outbox full; the oldest messages are kept in memory only", "notifier", key.String(), "messages", len(msgs), "notKept", left)
	}
	cm := corev1ac.ConfigMap(name, key.Namespace).
		WithLabels(map[string]string{LabelOutbox: "notifier"}).
		WithOwnerReferences(metav1ac.OwnerReference().
			WithAPIVersion(tendv1.GroupVersion.String()).WithKind("Notifier").
			WithName(n.Name).WithUID(n.UID).WithController(true)).
		WithData(map[string]string{outboxKey: data})
	if err := d.opts.Client.Apply(ctx, cm, client.FieldOwner(outboxFieldOwner), client.ForceOwnership); err != nil {
		if apierrors.IsNotFound(err) {
			return nil // the namespace is going away
		}
		return fmt.Errorf("write outbox ConfigMap %s/%s of notifier %s: %w", key.Namespace, name, key, err)
	}
	return nil
}

// loadOutboxes queues again the messages of every outbox of a Notifier
// that still exists, in the namespaces the dispatcher serves, and
// remembers them for deduplication. It runs before any new event is
// routed.
func (d *Dispatcher) loadOutboxes(ctx context.Context) error {
	namespaces := d.opts.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1NamespaceAll}
	}
	for _, ns := range namespaces {
		var list corev1.ConfigMapList
		if err := d.opts.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{LabelOutbox: "notifier"}); err != nil {
			return fmt.Errorf("list notification outboxes (ConfigMaps labelled %s): %w", LabelOutbox, err)
		}
		for i := range list.Items {
			d.loadOutbox(ctx, &list.Items[i])
		}
	}
	return nil
}

const metav1NamespaceAll = ""

func (d *Dispatcher) loadOutbox(ctx context.Context, cm *corev1.ConfigMap) {
	var owner string
	var uid types.UID
	for _, ref := range cm.OwnerReferences {
		if ref.Kind == "Notifier" && ref.Controller != nil && *ref.Controller {
			owner, uid = ref.Name, ref.UID
		}
	}
	if owner == "" {
		return
	}
	key := types.NamespacedName{Namespace: cm.Namespace, Name: owner}
	var n tendv1.Notifier
	if err := d.opts.Client.Get(ctx, key, &n); err != nil || n.UID != uid {
		return // gone: the garbage collector deletes its outbox
	}
	msgs, err := decodeOutbox(cm.Namespace, cm.Data[outboxKey])
	if err != nil {
		d.opts.Log.Warn("notification outbox unreadable; it is replaced by what is queued now", "notifier", key.String(), "configMap", cm.Name, "error", err)
	}
	q := d.queueOf(ctx, key)
	q.mu.Lock()
	if err != nil {
		q.dirty = true
	}
	q.mu.Unlock()
	name := key.String()
	for _, m := range msgs {
		dl := delivery{msg: m, durable: true}
		if m.Folded == 0 {
			dl.dedup = dedupeKey(name, m.Event)
			d.mu.Lock()
			d.sent[dl.dedup] = m.Event.Time
			d.mu.Unlock()
		}
		d.enqueue(ctx, key, dl)
	}
	d.opts.Log.Info("notifications restored from the outbox", "notifier", name, "messages", len(msgs))
}

// durable returns the queue's durable messages, in flight first.
func (q *queue) durableMessages(all bool) []Message {
	var msgs []Message
	if q.inflight != nil && (all || q.inflight.durable) {
		msgs = append(msgs, q.inflight.msg)
	}
	for _, it := range q.items {
		if all || it.durable {
			msgs = append(msgs, it.msg)
		}
	}
	return msgs
}

// flushOutboxes writes the outbox of each Notifier whose durable messages
// changed, one write per Notifier at a time; a failed write is tried
// again at the next flush.
func (d *Dispatcher) flushOutboxes() {
	d.mu.Lock()
	ctx := d.ctx
	queues := make(map[types.NamespacedName]*queue, len(d.queues))
	for k, q := range d.queues {
		queues[k] = q
	}
	d.mu.Unlock()
	if ctx == nil || ctx.Err() != nil {
		return
	}
	for key, q := range queues {
		q.mu.Lock()
		if !q.dirty || q.writing {
			q.mu.Unlock()
			continue
		}
		msgs := q.durableMessages(false)
		q.dirty, q.writing = false, true
		q.mu.Unlock()
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			err := d.writeOutbox(ctx, key, msgs)
			q.mu.Lock()
			q.writing = false
			if err != nil {
				q.dirty = true
			}
			q.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				d.opts.Log.Warn("writing notification outbox", "notifier", key.String(), "error", err)
			}
		}()
	}
}

// persistOnStop, when the dispatcher stops, keeps every message not yet
// delivered (the one in flight included) in its Notifier's outbox, for
// the next leader.
func (d *Dispatcher) persistOnStop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	for key, q := range d.queues {
		q.mu.Lock()
		msgs := q.durableMessages(true)
		write := q.dirty || len(msgs) > 0
		q.mu.Unlock()
		if !write {
			continue
		}
		if err := d.writeOutbox(ctx, key, msgs); err != nil {
			d.opts.Log.Warn("notifications not delivered before stopping are lost", "notifier", key.String(), "messages", len(msgs), "error", err)
		}
	}
}
