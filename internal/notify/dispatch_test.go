package notify

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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
// errors queued in fail.
type recorder struct {
	mu    sync.Mutex
	msgs  []Message
	times []time.Time
	fail  []error
	delay time.Duration
}

func (r *recorder) Send(ctx context.Context, m Message) error {
	if r.delay > 0 {
		select {
		case <-time.After(r.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.times = append(r.times, time.Now())
	if len(r.fail) > 0 {
		err := r.fail[0]
		r.fail = r.fail[1:]
		return err
	}
	r.msgs = append(r.msgs, m)
	return nil
}

func (r *recorder) sent() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.msgs...)
}

type dispatchEnv struct {
	*testenv.Env
	c client.Client
	d *Dispatcher
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
	opts.Client = c
	opts.flushEvery = 50 * time.Millisecond
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
	d := NewDispatcher(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &dispatchEnv{Env: env, c: c, d: d}
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

func TestDispatchRetriesHonouringRetryAfter(t *testing.T) {
	p := &recorder{fail: []error{&HTTPError{Status: 429, RetryAfter: 1500 * time.Millisecond}, &HTTPError{Status: 503}}}
	e := startDispatcher(t, Options{Backoff: 100 * time.Millisecond}, map[string]Provider{"https://hook.test/a": p})
	e.notifier(t, "a", "https://hook.test/a", nil)
	e.d.Publish(e.event(SyncFailed, "web", "abc"))
	waitFor(t, "delivery after two retries", 10*time.Second, func() bool { return len(p.sent()) == 1 })
	p.mu.Lock()
	times := p.times
	p.mu.Unlock()
	if len(times) != 3 {
		t.Fatalf("attempts = %d, want 3", len(times))
	}
	if gap := times[1].Sub(times[0]); gap < 1400*time.Millisecond {
		t.Errorf("retried %s after a 429 with Retry-After 1.5s", gap)
	}
	if gap := times[2].Sub(times[1]); gap < 100*time.Millisecond || gap > 1400*time.Millisecond {
		t.Errorf("retried %s after a 503, want the 100ms backoff", gap)
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
	attempts := len(p.times)
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
	waitFor(t, "deliveries", 10*time.Second, func() bool { return len(all.sent()) == 4 && len(errs.sent()) == 3 && len(web.sent()) == 2 })
	time.Sleep(300 * time.Millisecond) // nothing more arrives
	kinds := func(r *recorder) string {
		var out []string
		for _, m := range r.sent() {
			out = append(out, string(m.Event.Kind)+"/"+m.Event.AppName)
		}
		return strings.Join(out, ",")
	}
	if got := kinds(all); got != "SyncFailed/web,SyncSucceeded/web,HookFailed/db,HookFailed/web" {
		t.Errorf("all got %s", got)
	}
	if got := kinds(errs); got != "SyncFailed/web,HookFailed/db,HookFailed/web" {
		t.Errorf("errors-only got %s", got)
	}
	// SyncFailed includes HookFailed; the db App is not selected.
	if got := kinds(web); got != "SyncFailed/web,HookFailed/web" {
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
	start := time.Now()
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
	if waited := time.Since(start); waited < 1400*time.Millisecond {
		t.Errorf("summary sent after %s, before the window ended", waited)
	}
}

func TestPublishNeverBlocks(t *testing.T) {
	d := NewDispatcher(Options{QueueSize: 4})
	start := time.Now()
	for i := 0; i < 100; i++ {
		d.Publish(Event{Kind: SyncStarted, AppNamespace: "ns", AppName: "a"})
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("publishing to a dispatcher that is not running took %s", took)
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
	var mu sync.Mutex
	var hits []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits = append(hits, time.Now())
		first := len(hits) == 1
		mu.Unlock()
		if first {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	env := startDispatcher(t, Options{}, nil)
	env.notifier(t, "h", srv.URL, nil)
	env.d.Publish(env.event(SyncSucceeded, "web", "r1"))
	waitFor(t, "retried delivery", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(hits) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	if gap := hits[1].Sub(hits[0]); gap < 900*time.Millisecond {
		t.Errorf("retried after %s despite Retry-After: 1", gap)
	}
}
