package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	corev1 "k8s.io/api/core/v1"

	"github.com/tend-gitops/tend/internal/testenv"
)

func TestOutboxEncodingKeepsTheNewestThatFit(t *testing.T) {
	at := time.Date(2026, 12, 5, 9, 0, 0, 123, time.UTC)
	full := Message{
		Event: Event{Kind: SyncFailed, Severity: Error, Time: at, AppNamespace: "team", AppName: "web",
			Labels: map[string]string{"team": "web"}, Revision: "0123456789abcdef0123456789abcdef01234567", Subject: "fix it",
			RepoURL: "https://user:s3cret@git.example.com/org/repo.git", Message: "sync of 0123 failed",
			Changes: []string{"ConfigMap team/a configured"}, Error: "apply: boom"},
		Summary: "web is flapping", Folded: 3, Link: "https://tend.example.com/apps/team/web",
	}
	data, left, err := encodeOutbox([]Message{full}, maxOutboxBytes)
	if err != nil || left != 0 {
		t.Fatalf("encode: left %d, %v", left, err)
	}
	if strings.Contains(data, "s3cret") {
		t.Errorf("the outbox holds the credentials of the repository URL: %s", data)
	}
	got, err := decodeOutbox("team", data)
	if err != nil {
		t.Fatal(err)
	}
	want := full
	want.Event.Labels = nil // only selection reads them, and it is done
	want.Event.RepoURL = "https://git.example.com/org/repo.git"
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Errorf("decoded\n %+v\nwant\n %+v", got, want)
	}

	// Over the limit: the newest messages are kept, oldest first.
	var msgs []Message
	for _, r := range []string{"r1", "r2", "r3"} {
		msgs = append(msgs, Message{Event: Event{Kind: SyncFailed, Time: at, AppName: "web", Revision: r, Error: strings.Repeat("x", 100)}})
	}
	one, _, _ := encodeOutbox(msgs[:1], maxOutboxBytes)
	data, left, err = encodeOutbox(msgs, 2*len(one))
	if err != nil {
		t.Fatal(err)
	}
	got, err = decodeOutbox("team", data)
	if err != nil {
		t.Fatal(err)
	}
	if left != 1 || len(got) != 2 || got[0].Event.Revision != "r2" || got[1].Event.Revision != "r3" {
		t.Errorf("with room for two: left %d, kept %d: %s", left, len(got), data)
	}
	if _, err := decodeOutbox("team", `[{"kind":"SyncFailed"}]`); err == nil {
		t.Error("a message without its App decoded")
	}
}

// hookSink is a generic webhook endpoint on loopback that answers 500
// while failing is set, and records what it accepted.
type hookSink struct {
	*httptest.Server
	failing  atomic.Bool
	mu       sync.Mutex
	accepted []WebhookPayload
}

func newHookSink(t *testing.T) *hookSink {
	s := &hookSink{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.failing.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		var p WebhookPayload
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.accepted = append(s.accepted, p)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.Close)
	return s
}

// count is how many messages of revision rev were accepted.
func (s *hookSink) count(rev string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, p := range s.accepted {
		if p.Revision == rev {
			n++
		}
	}
	return n
}

// outboxWatch records the revisions each write of a namespace's outboxes
// held ("-" for a deletion), in order, as the API server tells them.
type outboxWatch struct {
	mu     sync.Mutex
	writes []string
}

func watchOutboxes(t *testing.T, e *dispatchEnv) *outboxWatch {
	t.Helper()
	w, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Watch(context.Background(), metav1.ListOptions{LabelSelector: LabelOutbox + "=notifier"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	ow := &outboxWatch{}
	go func() {
		for ev := range w.ResultChan() {
			cm, ok := ev.Object.(*corev1.ConfigMap)
			if !ok {
				continue
			}
			rec := "-"
			if ev.Type != watch.Deleted {
				msgs, err := decodeOutbox(cm.Namespace, cm.Data[outboxKey])
				if err != nil {
					rec = "unreadable: " + err.Error()
				} else {
					var revs []string
					for _, m := range msgs {
						revs = append(revs, m.Event.Revision)
					}
					rec = strings.Join(revs, ",")
				}
			}
			ow.mu.Lock()
			ow.writes = append(ow.writes, rec)
			ow.mu.Unlock()
		}
	}()
	return ow
}

func (ow *outboxWatch) String() string {
	ow.mu.Lock()
	defer ow.mu.Unlock()
	return strings.Join(ow.writes, " | ")
}

func (ow *outboxWatch) last() string {
	ow.mu.Lock()
	defer ow.mu.Unlock()
	if len(ow.writes) == 0 {
		return ""
	}
	return ow.writes[len(ow.writes)-1]
}

// TestOutboxHoldsWhatWasNotDeliveredAtFirst: a message delivered at its
// first attempt is never written anywhere; one the provider fails is
// kept in the Notifier's outbox with those queued behind it, and the
// outbox goes when they are delivered.
func TestOutboxHoldsWhatWasNotDeliveredAtFirst(t *testing.T) {
	sink := newHookSink(t)
	e := startDispatcher(t, Options{Attempts: 1000, Backoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}, nil)
	ow := watchOutboxes(t, e)
	e.notifier(t, "h", sink.URL, nil)

	e.d.Publish(e.event(SyncSucceeded, "web", "r1"))
	testenv.Eventually(t, "r1 delivered", 10*time.Second, func() bool { return sink.count("r1") == 1 })

	sink.failing.Store(true)
	e.d.Publish(e.event(SyncFailed, "web", "r2"))
	testenv.Eventually(t, "r2 in the outbox", 10*time.Second, func() bool { return ow.last() == "r2" })
	e.d.Publish(e.event(SyncSucceeded, "web", "r3"))
	testenv.Eventually(t, "r3 queued behind it in the outbox", 10*time.Second, func() bool { return ow.last() == "r2,r3" })

	sink.failing.Store(false)
	testenv.Eventually(t, "r2 and r3 delivered", 10*time.Second, func() bool { return sink.count("r2") == 1 && sink.count("r3") == 1 })
	testenv.Eventually(t, "the outbox deleted", 10*time.Second, func() bool { return ow.last() == "-" })
	// r1 never reached the outbox: the first write held r2 alone.
	if got := ow.String(); !strings.HasPrefix(got, "r2 | r2,r3 | ") || strings.Contains(got, "r1") {
		t.Errorf("outbox writes: %s; want r2, then r2,r3, then r3 and/or a deletion, and never r1", got)
	}
	_, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(context.Background(), OutboxName("h"), metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("outbox after delivery: %v, want NotFound", err)
	}
}

// TestOutboxIsSentAfterARestart: a message the provider failed, kept in
// the outbox, is delivered exactly once by the next dispatcher, before
// new events, and a new copy of the same event is deduplicated.
func TestOutboxIsSentAfterARestart(t *testing.T) {
	sink := newHookSink(t)
	sink.failing.Store(true)
	opts := Options{Attempts: 1000, Backoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	e := startDispatcher(t, opts, nil)
	ow := watchOutboxes(t, e)
	e.notifier(t, "h", sink.URL, nil)
	failed := e.event(SyncFailed, "web", "r1")
	failed.Error = "apply: boom"
	e.d.Publish(failed)
	testenv.Eventually(t, "r1 in the outbox", 10*time.Second, func() bool { return ow.last() == "r1" })

	// The dispatcher stops (the controller's restart test kills the
	// process instead); the next one starts with the sink fixed.
	e.stop()
	sink.failing.Store(false)
	d2, _ := e.run(t, opts, nil)
	d2.Publish(e.event(SyncSucceeded, "web", "r2"))
	testenv.Eventually(t, "r2 delivered", 10*time.Second, func() bool { return sink.count("r2") == 1 })
	// The same event again, within its dedupe window: not sent. The
	// Notifier's messages go in order, so once r3 is in, so would it be.
	d2.Publish(failed)
	d2.Publish(e.event(SyncSucceeded, "web", "r3"))
	testenv.Eventually(t, "r3 delivered", 10*time.Second, func() bool { return sink.count("r3") == 1 })
	sink.mu.Lock()
	order := []string{}
	for _, p := range sink.accepted {
		order = append(order, p.Revision)
	}
	sink.mu.Unlock()
	if got := strings.Join(order, ","); got != "r1,r2,r3" {
		t.Errorf("delivered %s, want r1 (restored, once) before r2 and r3", got)
	}
	testenv.Eventually(t, "the outbox deleted", 10*time.Second, func() bool { return ow.last() == "-" })
}
