package notify

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// recorder is a Provider that records messages and answers with the
// errors queued in fail. With a timeline, it adds each attempt's answer
// to it.
type recorder struct {
	mu       sync.Mutex
	msgs     []Message
	attempts int
	fail     []error
	timeline *timeline
}

func (r *recorder) Send(ctx context.Context, m Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	if len(r.fail) > 0 {
		err := r.fail[0]
		r.fail = r.fail[1:]
		r.timeline.add("send: " + err.Error())
		return err
	}
	r.msgs = append(r.msgs, m)
	r.timeline.add("send: ok")
	return nil
}

func (r *recorder) sent() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.msgs...)
}

// timeline is an ordered record of what a test saw: a provider's answers
// and the retries the dispatcher logged. A nil timeline records nothing.
type timeline struct {
	mu     sync.Mutex
	events []string
}

func (l *timeline) add(e string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *timeline) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.events, " | ")
}

// logger returns a logger that adds to the timeline each retry the
// dispatcher announces, with the delay it chose ("retry in 1.5s").
func (l *timeline) logger() *slog.Logger { return slog.New(retryHandler{l}) }

type retryHandler struct{ l *timeline }

func (h retryHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h retryHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h retryHandler) WithGroup(string) slog.Handler            { return h }

func (h retryHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "notification not delivered; retrying" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "in" {
			h.l.add("retry in " + a.Value.String())
		}
		return true
	})
	return nil
}

type dispatchEnv struct {
	*testenv.Env
	c    client.Client
	d    *Dispatcher
	stop func()
}

// startDispatcher runs a Dispatcher against the real API server; with
// providers, each Notifier's provider is the one for its address.
func startDispatcher(t *testing.T, opts Options, providers map[string]Provider) *dispatchEnv {
	t.Helper()
	env := testenv.New(t)
	testenv.InstallCRDs(t, env.Config)
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := tendv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	e := &dispatchEnv{Env: env, c: c}
	e.d, e.stop = e.run(t, opts, providers)
	return e
}

// run starts another Dispatcher on the environment's API server; stop
// stops it (as the test's end does).
func (e *dispatchEnv) run(t *testing.T, opts Options, providers map[string]Provider) (d *Dispatcher, stop func()) {
	t.Helper()
	opts.Client = e.c
	opts.flushEvery = 50 * time.Millisecond
	// Other tests' outboxes are theirs.
	opts.Namespaces = []string{e.Namespace}
	if providers != nil {
		opts.NewProvider = func(cfg Config) (Provider, error) {
			if _, err := New(cfg); err != nil {
				return nil, err // the real validation still applies
			}
			p, ok := providers[cfg.Address]
			if !ok {
				t.Errorf("no test provider for address %q", cfg.Address)
				return &recorder{}, nil
			}
			return p, nil
		}
	}
	d = NewDispatcher(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Start(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return d, stop
}

func (e *dispatchEnv) notifier(t *testing.T, name, address string, mutate func(*tendv1.NotifierSpec)) {
	t.Helper()
	n := &tendv1.Notifier{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.Namespace},
		Spec: tendv1.NotifierSpec{Provider: "webhook", Address: address}}
	if mutate != nil {
		mutate(&n.Spec)
	}
	if err := e.c.Create(context.Background(), n); err != nil {
		t.Fatal(err)
	}
}

func (e *dispatchEnv) event(kind Kind, app, rev string) Event {
	return Event{Kind: kind, AppNamespace: e.Namespace, AppName: app, Revision: rev, Labels: map[string]string{"team": "web"}}
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDispatchRetriesHonouringRetryAfter: after a 429 the retry waits what
// the provider asked for (Retry-After), after a 503 the backoff. What the
// dispatcher chose is read from its log, in order with the provider's
// answers: how long it really slept is the timer's business, not the test's.
func TestDispatchRetriesHonouringRetryAfter(t *testing.T) {
	tl := &timeline{}
	p := &recorder{timeline: tl, fail: []error{&HTTPError{Status: 429, RetryAfter: 1500 * time.Millisecond}, &HTTPError{Status: 503}}}
	e := startDispatcher(t, Options{Backoff: 100 * time.Millisecond, Log: tl.logger()}, map[string]Provider{"https://hook.test/a": p})
	e.notifier(t, "a", "https://hook.test/a", nil)
	e.d.Publish(e.event(SyncFailed, "web", "abc"))
	waitFor(t, "delivery after two retries", 10*time.Second, func() bool { return len(p.sent()) == 1 })
	// The Retry-After, then the backoff: 100 ms doubled once, the second
	// attempt's.
	want := "send: HTTP 429 Too Many Requests | retry in 1.5s | send: HTTP 503 Service Unavailable | retry in 200ms | send: ok"
	if got := tl.String(); got != want {
		t.Errorf("attempts and retries:\n got %s\nwant %s", got, want)
	}
	var n tendv1.Notifier
	waitFor(t, "status counts the delivery", 5*time.Second, func() bool {
		_ = e.c.Get(context.Background(), types.NamespacedName{Namespace: e.Namespace, Name: "a"}, &n)
		return n.Status.Sent == 1
	})
	if n.Status.Failed != 0 || !meta.IsStatusConditionTrue(n.Status.Conditions, tendv1.ConditionReady) {
		t.Errorf("status = %+v", n.Status)
	}
}

func TestDispatchFailureReachesStatus(t *testing.T) {
	p := &recorder{fail: []error{&HTTPError{Status: 500, Body: "boom"}, &HTTPError{Status: 502}, &HTTPError{Status: 404, Body: "Unknown Webhook"}}}
	e := startDispatcher(t, Options{Attempts: 2, Backoff: 10 * time.Millisecond}, map[string]Provider{"https://hook.test/f": p})
	e.notifier(t, "f", "https://hook.test/f", nil)
	e.d.Publish(e.event(SyncFailed, "web", "r1"))
	var n tendv1.Notifier
	waitFor(t, "a failed delivery in status", 10*time.Second, func() bool {
		_ = e.c.Get(context.Background(), types.NamespacedName{Namespace: e.Namespace, Name: "f"}, &n)
		return n.Status.Failed == 1
	})
	c := meta.FindStatusCondition(n.Status.Conditions, tendv1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "DeliveryFailed" || !strings.Contains(n.Status.LastError, "gave up after 2 attempts") || n.Status.LastFailureAt == nil {
		t.Errorf("status after giving up = %+v", n.Status)
	}
	// A 404 is not retried: one attempt, one more failure.
	e.d.Publish(e.event(SyncFailed, "web", "r2"))
	waitFor(t, "second failure", 10*time.Second, func() bool {
		_ = e.c.Get(context.Background(), types.NamespacedName{Namespace: e.Namespace, Name: "f"}, &n)
		return n.Status.Failed == 2
	})
	p.mu.Lock()
	attempts := p.attempts
	p.mu.Unlock()
	if attempts != 3 || !strings.Contains(n.Status.LastError, "404") {
		t.Errorf("attempts = %d (want 2 + 1), last error %q", attempts, n.Status.LastError)
	}
}

func TestDispatchDedupesAndSelects(t *testing.T) {
	all, errs, web := &recorder{}, &recorder{}, &recorder{}
	e := startDispatcher(t, Options{}, map[string]Provider{"https://hook.test/all": all, "https://hook.test/errors": errs, "https://hook.test/web": web})
	e.notifier(t, "all", "https://hook.test/all", nil)
	e.notifier(t, "errors", "https://hook.test/errors", func(s *tendv1.NotifierSpec) { s.Severity = "error" })
	e.notifier(t, "web", "https://hook.test/web", func(s *tendv1.NotifierSpec) {
		s.AppSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "web"}}
		s.Events = []tendv1.NotifierEvent{"SyncFailed"}
	})
	// Let the cache see the three Notifiers.
	waitFor(t, "Notifiers listed", 5*time.Second, func() bool {
		var l tendv1.NotifierList
		return e.c.List(context.Background(), &l, client.InNamespace(e.Namespace)) == nil && len(l.Items) == 3
	})
	failed := e.event(SyncFailed, "web", "r1")
	failed.Error = "apply: boom"
	e.d.Publish(failed)
	e.d.Publish(failed) // the same again: deduplicated
	e.d.Publish(e.event(SyncSucceeded, "web", "r2"))
	other := e.event(HookFailed, "db", "r1")
	other.Labels = map[string]string{"team": "data"}
	e.d.Publish(other)
	hook := e.event(HookFailed, "web", "r3")
	e.d.Publish(hook)
	// Events are routed in order and each Notifier's messages are sent in
	// order: once this last one, selected by all three, has arrived,
	// everything published before it has been delivered or dropped.
	last := e.event(SyncFailed, "web", "r4")
	last.Error = "the last event"
	e.d.Publish(last)
	arrived := func(r *recorder) bool {
		for _, m := range r.sent() {
			if m.Event.Revision == "r4" {
				return true
			}
		}
		return false
	}
	waitFor(t, "the last event at every Notifier", 10*time.Second, func() bool { return arrived(all) && arrived(errs) && arrived(web) })
	kinds := func(r *recorder) string {
		var out []string
		for _, m := range r.sent() {
			out = append(out, string(m.Event.Kind)+"/"+m.Event.AppName)
		}
		return strings.Join(out, ",")
	}
	if got := kinds(all); got != "SyncFailed/web,SyncSucceeded/web,HookFailed/db,HookFailed/web,SyncFailed/web" {
		t.Errorf("all got %s", got)
	}
	if got := kinds(errs); got != "SyncFailed/web,HookFailed/db,HookFailed/web,SyncFailed/web" {
		t.Errorf("errors-only got %s", got)
	}
	// SyncFailed includes HookFailed; the db App is not selected.
	if got := kinds(web); got != "SyncFailed/web,HookFailed/web,SyncFailed/web" {
		t.Errorf("web SyncFailed got %s", got)
	}
}

func TestDispatchFoldsAFlappingApp(t *testing.T) {
	p := &recorder{}
	e := startDispatcher(t, Options{FlapThreshold: 2, FlapWindow: 1500 * time.Millisecond}, map[string]Provider{"https://hook.test/flap": p})
	e.notifier(t, "flap", "https://hook.test/flap", nil)
	waitFor(t, "Notifier listed", 5*time.Second, func() bool {
		var l tendv1.NotifierList
		return e.c.List(context.Background(), &l, client.InNamespace(e.Namespace)) == nil && len(l.Items) == 1
	})
	for i := 0; i < 6; i++ {
		k := HealthDegraded
		if i%2 == 1 {
			k = HealthRecovered
		}
		ev := e.event(k, "web", "r1")
		ev.Error = strings.Repeat("x", i) // distinct events: no dedupe
		e.d.Publish(ev)
	}
	// Two degradations (the threshold) and their recoveries are sent; the
	// third degradation starts the fold.
	waitFor(t, "four messages and a summary", 10*time.Second, func() bool { return len(p.sent()) == 5 })
	msgs := p.sent()
	for i, m := range msgs[:4] {
		if m.Folded != 0 || m.Event.Error != strings.Repeat("x", i) {
			t.Errorf("message %d = %+v, want event %d unfolded", i, m, i)
		}
	}
	sum := msgs[4]
	if sum.Folded != 2 || !strings.Contains(sum.Summary, "flapping") || !strings.Contains(sum.Summary, "1× HealthDegraded") || sum.Event.Kind != HealthRecovered {
		t.Errorf("summary = %+v", sum)
	}
	// That the summary waits for the window's end is a matter of time:
	// without a clock the dispatcher lets tests set, it is not asserted.
}

func TestPublishNeverBlocks(t *testing.T) {
	d := NewDispatcher(Options{QueueSize: 4})
	// Nothing reads the queue: a Publish that blocked would never return.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 100; i++ {
			d.Publish(Event{Kind: SyncStarted, AppNamespace: "ns", AppName: "a"})
		}
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Publish blocked on a dispatcher that is not running")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dropped != 96 {
		t.Errorf("dropped = %d, want 96", d.dropped)
	}
}

func TestResolveConfigReadsTheSecret(t *testing.T) {
	e := startDispatcher(t, Options{}, nil)
	ctx := context.Background()
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: e.Namespace},
		StringData: map[string]string{"address": "https://discord.test/api/webhooks/1/x", "token": "tok", "hmacKey": "k"}}
	if err := e.c.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	n := &tendv1.Notifier{ObjectMeta: metav1.ObjectMeta{Name: "n", Namespace: e.Namespace},
		Spec: tendv1.NotifierSpec{Provider: "discord", Address: "https://ignored.test", SecretRef: &tendv1.LocalObjectReference{Name: "creds"}}}
	cfg, err := ResolveConfig(ctx, e.c, n)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Address != "https://discord.test/api/webhooks/1/x" || cfg.Token != "tok" || string(cfg.HMACKey) != "k" {
		t.Errorf("config = %+v", cfg)
	}
	n.Spec.SecretRef.Name = "missing"
	if _, err := ResolveConfig(ctx, e.c, n); err == nil || !strings.Contains(err.Error(), `Secret "missing" (spec.secretRef) not found`) {
		t.Errorf("missing Secret: %v", err)
	}
}

// A real HTTP provider through the dispatcher: a 429 answer's Retry-After
// header is honoured end to end.
func TestDispatchHTTP429(t *testing.T) {
	tl := &timeline{}
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			tl.add("answer 429, Retry-After: 1")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		tl.add("answer 204")
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	// A backoff unlike the Retry-After, so that the log tells them apart.
	env := startDispatcher(t, Options{Backoff: 50 * time.Millisecond, Log: tl.logger()}, nil)
	env.notifier(t, "h", srv.URL, nil)
	env.d.Publish(env.event(SyncSucceeded, "web", "r1"))
	waitFor(t, "retried delivery", 10*time.Second, func() bool { return hits.Load() == 2 })
	if got, want := tl.String(), "answer 429, Retry-After: 1 | retry in 1s | answer 204"; got != want {
		t.Errorf("requests and retries:\n got %s\nwant %s", got, want)
	}
}
