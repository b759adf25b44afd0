package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/refwatch"
)

// Options configure a Dispatcher. Zero values are sane defaults.
type Options struct {
	// Client reads Notifiers and writes their status.
	Client client.Client
	// Refs, when set, serves reads of Notifiers' Secrets from their
	// watches (the Reconciler keeps them); nil reads them with Client.
	Refs *refwatch.Watcher
	Log  *slog.Logger
	// Metrics registers tend_notifications_total (nil: not registered).
	Metrics prometheus.Registerer
	// QueueSize bounds events waiting to be routed and messages waiting
	// per Notifier (1024 and 256); beyond that the oldest are dropped.
	QueueSize, NotifierQueueSize int
	// Attempts per message (5) and the backoff between them (1 s doubling
	// to 1 min), unless the provider says when to retry.
	Attempts            int
	Backoff, MaxBackoff time.Duration
	// MaxRetryAfter is the longest Retry-After honoured (5 min).
	MaxRetryAfter time.Duration
	// SendTimeout bounds one delivery attempt (30 s).
	SendTimeout time.Duration
	// An App flaps when it goes wrong (an event of warning or error
	// severity) more than FlapThreshold times for one Notifier within
	// FlapWindow (5 in 10 min): its later events, recoveries included, are
	// folded into one summary sent when the window ends. A busy App that
	// does not keep failing is never folded.
	FlapThreshold int
	FlapWindow    time.Duration
	// DefaultDedupeWindow applies when spec.dedupeWindow is unset (10 min).
	DefaultDedupeWindow time.Duration
	// NewProvider builds providers (default New).
	NewProvider func(Config) (Provider, error)
	// Namespaces, when set, are the only namespaces whose outboxes are
	// loaded at start (the controller's --namespaces).
	Namespaces []string

	statusRetries int
	flushEvery    time.Duration
}

// Dispatcher routes App and Source events to the Notifiers that select them and
// delivers each message asynchronously: Publish never blocks, a slow or
// failing provider delays only its own Notifier's queue.
type Dispatcher struct {
	opts    Options
	in      chan Event
	metrics *prometheus.CounterVec

	mu      sync.Mutex
	queues  map[types.NamespacedName]*queue
	sent    map[string]time.Time // dedupe key -> last sent
	flaps   map[string]*flap     // notifier|app -> recent messages
	ctx     context.Context
	wg      sync.WaitGroup
	dropped int
}

type queue struct {
	mu      sync.Mutex
	items   []delivery
	wake    chan struct{}
	dropped int
	// inflight is the message being delivered; retrying is set once its
	// first attempt failed.
	inflight *delivery
	retrying bool
	// dirty: the durable messages changed since the outbox was last
	// written; writing: a write is under way.
	dirty, writing bool
}

// delivery is a queued message. A durable one is kept in the Notifier's
// outbox until it is delivered or given up on: it was not delivered at
// its first attempt, waited behind one that was not, or was restored
// from the outbox.
type delivery struct {
	msg     Message
	dedup   string
	durable bool
}

// flap counts the times an App went wrong, for one Notifier, in the
// current window, and what was folded since it started flapping.
type flap struct {
	start   time.Time
	count   int
	folded  []Event
	due     time.Time
	baseURL string
}

// NewDispatcher returns a Dispatcher; Start runs it.
func NewDispatcher(opts Options) *Dispatcher {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	setDefault := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 1024
	}
	if opts.NotifierQueueSize <= 0 {
		opts.NotifierQueueSize = 256
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 5
	}
	if opts.FlapThreshold <= 0 {
		opts.FlapThreshold = 5
	}
	if opts.statusRetries <= 0 {
		opts.statusRetries = 5
	}
	setDefault(&opts.Backoff, time.Second)
	setDefault(&opts.MaxBackoff, time.Minute)
	setDefault(&opts.MaxRetryAfter, 5*time.Minute)
	setDefault(&opts.SendTimeout, 30*time.Second)
	setDefault(&opts.FlapWindow, 10*time.Minute)
	setDefault(&opts.DefaultDedupeWindow, 10*time.Minute)
	setDefault(&opts.flushEvery, time.Second)
	if opts.NewProvider == nil {
		opts.NewProvider = New
	}
	d := &Dispatcher{
		opts:   opts,
		in:     make(chan Event, opts.QueueSize),
		queues: map[types.NamespacedName]*queue{},
		sent:   map[string]time.Time{},
		flaps:  map[string]*flap{},
		metrics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tend_notifications_total",
			Help: "Notification messages by Notifier and result (sent, failed, dropped, deduplicated, folded).",
		}, []string{"notifier", "result"}),
	}
	if opts.Metrics != nil {
		if err := opts.Metrics.Register(d.metrics); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				d.metrics = are.ExistingCollector.(*prometheus.CounterVec)
			} else {
				opts.Log.Warn("notification metrics not registered", "error", err)
			}
		}
	}
	return d
}

// Publish hands an event to the dispatcher. It never blocks: when the
// queue is full the event is dropped and counted.
func (d *Dispatcher) Publish(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.Severity == "" {
		e.Severity = SeverityOf(e.Kind)
	}
	select {
	case d.in <- e:
	default:
		d.mu.Lock()
		d.dropped++
		d.mu.Unlock()
		d.metrics.WithLabelValues("", "dropped").Inc()
	}
}

// NeedLeaderElection: only the leader reconciles Apps, so only it has
// events to send.
func (d *Dispatcher) NeedLeaderElection() bool { return true }

// Start routes and delivers until ctx ends (manager.Runnable).
func (d *Dispatcher) Start(ctx context.Context) error {
	d.mu.Lock()
	d.ctx = ctx
	d.mu.Unlock()
	tick := time.NewTicker(d.opts.flushEvery)
	defer tick.Stop()
	// Messages that waited in an outbox go before any new event.
	if err := d.loadOutboxes(ctx); err != nil {
		d.opts.Log.Warn("notifications waiting from before a restart are not sent", "error", err)
	}
	for {
		select {
		case <-ctx.Done():
			d.wg.Wait()
			d.persistOnStop()
			return nil
		case e := <-d.in:
			d.route(ctx, e)
		case now := <-tick.C:
			d.flush(now)
		}
	}
}

// route finds the Notifiers selecting e and queues a message for each.
func (d *Dispatcher) route(ctx context.Context, e Event) {
	var list tendv1.NotifierList
	if err := d.opts.Client.List(ctx, &list, client.InNamespace(e.AppNamespace)); err != nil {
		d.opts.Log.Warn("listing Notifiers", "namespace", e.AppNamespace, "error", err)
		return
	}
	now := time.Now()
	for i := range list.Items {
		n := &list.Items[i]
		if !Selects(n, e) {
			continue
		}
		key := types.NamespacedName{Namespace: n.Namespace, Name: n.Name}
		name := key.String()
		window := n.Spec.DedupeWindow.Duration
		if window <= 0 {
			window = d.opts.DefaultDedupeWindow
		}
		dk := dedupeKey(name, e)
		fk := name + "|" + e.Object()
		d.mu.Lock()
		if last, ok := d.sent[dk]; ok && now.Sub(last) < window {
			d.mu.Unlock()
			d.metrics.WithLabelValues(name, "deduplicated").Inc()
			continue
		}
		d.sent[dk] = now
		f := d.flaps[fk]
		if f == nil || now.Sub(f.start) >= d.opts.FlapWindow && len(f.folded) == 0 {
			f = &flap{start: now}
			d.flaps[fk] = f
		}
		sev := e.Severity
		if sev == "" {
			sev = SeverityOf(e.Kind)
		}
		if sev.Rank() >= Warning.Rank() {
			f.count++
		}
		if f.count > d.opts.FlapThreshold && e.Kind != SyncStarted {
			// Flapping: fold into one summary sent when the window ends.
			f.folded = append(f.folded, e)
			f.baseURL = n.Spec.BaseURL
			if f.due.IsZero() {
				f.due = f.start.Add(d.opts.FlapWindow)
			}
			d.mu.Unlock()
			d.metrics.WithLabelValues(name, "folded").Inc()
			continue
		}
		d.mu.Unlock()
		d.enqueue(ctx, key, delivery{msg: Message{Event: e, Link: appLink(n.Spec.BaseURL, e), Metadata: n.Spec.Metadata}, dedup: dk})
	}
}

// Selects reports whether Notifier n wants event e: same namespace, not
// suspended, the App or Source matches the selectors, the kind is listed,
// the severity is at least the minimum and the message passes the
// inclusion and exclusion lists.
func Selects(n *tendv1.Notifier, e Event) bool {
	if n.Spec.Suspend || n.Namespace != e.AppNamespace {
		return false
	}
	switch {
	case e.SourceName != "":
		if !selectsSource(n.Spec.Sources, e) {
			return false
		}
	case e.StageName != "":
		if !selectsStage(n.Spec.Stages, e) {
			return false
		}
	case !selectsApp(n, e):
		return false
	}
	if len(n.Spec.Events) > 0 {
		found := false
		for _, k := range n.Spec.Events {
			// A failed hook fails the sync: SyncFailed includes HookFailed.
			if Kind(k) == e.Kind || Kind(k) == SyncFailed && e.Kind == HookFailed {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	min := Severity(n.Spec.Severity)
	if min == "" {
		min = Info
	}
	sev := e.Severity
	if sev == "" {
		sev = SeverityOf(e.Kind)
	}
	return sev.Rank() >= min.Rank() && passesLists(&n.Spec, e)
}

// selectsApp: an App event is sent for the Apps the Notifier names or
// selects; none when it selects Sources only.
func selectsApp(n *tendv1.Notifier, e Event) bool {
	if (n.Spec.Sources != nil || n.Spec.Stages != nil) && len(n.Spec.Apps) == 0 && n.Spec.AppSelector == nil {
		return false
	}
	if len(n.Spec.Apps) > 0 && !slices.Contains(n.Spec.Apps, e.AppName) {
		return false
	}
	if n.Spec.AppSelector != nil {
		sel, err := metav1LabelSelector(n)
		if err != nil || !sel.Matches(labels.Set(e.Labels)) {
			return false
		}
	}
	return true
}

// selectsSource: a Source event is sent when spec.sources selects the
// Source.
func selectsSource(s *tendv1.NotifierSources, e Event) bool {
	if s == nil {
		return false
	}
	if len(s.Names) > 0 && !slices.Contains(s.Names, e.SourceName) {
		return false
	}
	if len(s.Types) > 0 && !slices.Contains(s.Types, tendv1.SourceType(e.SourceType)) {
		return false
	}
	return selectorMatches(s.Selector, e.Labels)
}

// selectorMatches: a nil selector matches anything; an invalid one
// nothing.
func selectorMatches(s *metav1.LabelSelector, l map[string]string) bool {
	if s == nil {
		return true
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	return err == nil && sel.Matches(labels.Set(l))
}

// selectsStage: a Stage event is sent when spec.stages selects the Stage.
func selectsStage(s *tendv1.NotifierStages, e Event) bool {
	return s != nil && (len(s.Names) == 0 || slices.Contains(s.Names, e.StageName)) && selectorMatches(s.Selector, e.Labels)
}

// passesLists applies spec.inclusionList and spec.exclusionList to the
// event's message and error. An invalid expression matches nothing (the
// Notifier's Ready condition names it).
func passesLists(spec *tendv1.NotifierSpec, e Event) bool {
	matches := func(exprs []string) bool {
		for _, x := range exprs {
			re, err := compileRegexp(x)
			if err != nil {
				continue
			}
			if re.MatchString(e.Message) || e.Error != "" && re.MatchString(e.Error) {
				return true
			}
		}
		return false
	}
	if len(spec.InclusionList) > 0 && !matches(spec.InclusionList) {
		return false
	}
	return !matches(spec.ExclusionList)
}

// regexps caches compiled inclusion and exclusion expressions.
var regexps sync.Map // string -> *regexp.Regexp or error

func compileRegexp(x string) (*regexp.Regexp, error) {
	if v, ok := regexps.Load(x); ok {
		if re, ok := v.(*regexp.Regexp); ok {
			return re, nil
		}
		return nil, v.(error)
	}
	re, err := regexp.Compile(x)
	if err != nil {
		regexps.Store(x, err)
		return nil, err
	}
	regexps.Store(x, re)
	return re, nil
}

// dedupeKey identifies the same event for the same Notifier.
func dedupeKey(notifier string, e Event) string {
	return notifier + "|" + e.Object() + "|" + string(e.Kind) + "|" + e.Revision + "|" + e.Error
}

func appLink(base string, e Event) string {
	if base == "" || e.AppName == "" {
		return ""
	}
	return strings.TrimRight(base, "/") + "/apps/" + url.PathEscape(e.AppNamespace) + "/" + url.PathEscape(e.AppName)
}

// flush sends the summaries of flapping Apps whose window ended, and
// forgets old dedupe entries.
func (d *Dispatcher) flush(now time.Time) {
	type out struct {
		key types.NamespacedName
		msg Message
	}
	var due []out
	d.mu.Lock()
	for fk, f := range d.flaps {
		switch {
		case len(f.folded) > 0 && !now.Before(f.due):
			last := f.folded[len(f.folded)-1]
			notifier, _, _ := strings.Cut(fk, "|")
			ns, name, _ := strings.Cut(notifier, "/")
			due = append(due, out{types.NamespacedName{Namespace: ns, Name: name}, Message{
				Event:   last,
				Folded:  len(f.folded),
				Summary: flapSummary(f.folded, now.Sub(f.start)),
				Link:    appLink(f.baseURL, last),
			}})
			// A new window starts with the summary counted in it.
			d.flaps[fk] = &flap{start: now, count: 1}
		case len(f.folded) == 0 && now.Sub(f.start) >= d.opts.FlapWindow:
			delete(d.flaps, fk)
		}
	}
	for k, t := range d.sent {
		if now.Sub(t) > 24*time.Hour {
			delete(d.sent, k)
		}
	}
	ctx := d.ctx
	d.mu.Unlock()
	for _, o := range due {
		d.enqueue(ctx, o.key, delivery{msg: o.msg})
	}
	d.flushOutboxes()
}

// flapSummary says what a flapping App did in one line.
func flapSummary(evs []Event, over time.Duration) string {
	counts := map[Kind]int{}
	var order []Kind
	for _, e := range evs {
		if counts[e.Kind] == 0 {
			order = append(order, e.Kind)
		}
		counts[e.Kind]++
	}
	parts := make([]string, 0, len(order))
	for _, k := range order {
		parts = append(parts, fmt.Sprintf("%d× %s", counts[k], k))
	}
	last := evs[len(evs)-1]
	return fmt.Sprintf("%s is flapping: %d more events in %s (%s); the latest: %s",
		last.Object(), len(evs), over.Round(time.Second), strings.Join(parts, ", "), last.Kind)
}

// queueOf returns a Notifier's queue, starting its worker.
func (d *Dispatcher) queueOf(ctx context.Context, key types.NamespacedName) *queue {
	d.mu.Lock()
	defer d.mu.Unlock()
	q := d.queues[key]
	if q == nil {
		q = &queue{wake: make(chan struct{}, 1)}
		d.queues[key] = q
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.work(ctx, key, q)
		}()
	}
	return q
}

// enqueue adds a message to a Notifier's queue. Behind a message being
// retried it is durable.
func (d *Dispatcher) enqueue(ctx context.Context, key types.NamespacedName, m delivery) {
	q := d.queueOf(ctx, key)
	q.mu.Lock()
	if len(q.items) >= d.opts.NotifierQueueSize {
		if q.items[0].durable {
			q.dirty = true
		}
		q.items = q.items[1:]
		q.dropped++
		d.metrics.WithLabelValues(key.String(), "dropped").Inc()
	}
	if q.retrying && !m.durable {
		m.durable, q.dirty = true, true
	}
	q.items = append(q.items, m)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// work delivers one Notifier's messages in order.
func (d *Dispatcher) work(ctx context.Context, key types.NamespacedName, q *queue) {
	for {
		q.mu.Lock()
		if len(q.items) == 0 {
			q.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
				continue
			}
		}
		m := q.items[0]
		q.items = q.items[1:]
		q.inflight = &m
		q.mu.Unlock()
		err := d.deliver(ctx, key, m.msg, q.failedOnce)
		if err != nil && ctx.Err() != nil {
			return // stopping: the message stays in flight, persistOnStop keeps it
		}
		q.mu.Lock()
		if q.inflight.durable {
			q.dirty = true // delivered or given up: out of the outbox
		}
		q.inflight, q.retrying = nil, false
		q.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if err != nil && m.dedup != "" {
			// Not delivered: the same event may be tried again later.
			d.mu.Lock()
			delete(d.sent, m.dedup)
			d.mu.Unlock()
		}
		d.record(ctx, key, err)
	}
}

// failedOnce is told that the message in flight was not delivered at an
// attempt and will be retried: it and every message behind it become
// durable.
func (q *queue) failedOnce() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.retrying = true
	if q.inflight != nil && !q.inflight.durable {
		q.inflight.durable, q.dirty = true, true
	}
	for i := range q.items {
		if !q.items[i].durable {
			q.items[i].durable, q.dirty = true, true
		}
	}
}

// deliver sends one message with retries, calling retry before each
// retry.
func (d *Dispatcher) deliver(ctx context.Context, key types.NamespacedName, m Message, retry func()) error {
	wait := d.opts.Backoff
	var err error
	for attempt := 1; attempt <= d.opts.Attempts; attempt++ {
		var p Provider
		p, err = d.provider(ctx, key)
		if err != nil {
			return err // configuration: retrying will not help
		}
		sctx, cancel := context.WithTimeout(ctx, d.opts.SendTimeout)
		err = p.Send(sctx, m)
		cancel()
		if err == nil {
			return nil
		}
		var he *HTTPError
		var pe *PermanentError
		if errors.As(err, &he) && !he.Retryable() || errors.As(err, &pe) {
			return err
		}
		if attempt == d.opts.Attempts {
			break
		}
		delay := wait
		if he != nil && he.RetryAfter > 0 {
			delay = min(he.RetryAfter, d.opts.MaxRetryAfter)
		}
		if retry != nil {
			retry()
		}
		d.opts.Log.Info("notification not delivered; retrying", "notifier", key.String(), "object", m.Event.Object(), "attempt", attempt, "in", delay.String(), "error", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		wait = min(2*wait, d.opts.MaxBackoff)
	}
	return fmt.Errorf("gave up after %d attempts: %w", d.opts.Attempts, err)
}

// provider builds the Notifier's provider from its current spec and Secret.
func (d *Dispatcher) provider(ctx context.Context, key types.NamespacedName) (Provider, error) {
	var n tendv1.Notifier
	if err := d.opts.Client.Get(ctx, key, &n); err != nil {
		return nil, fmt.Errorf("reading notifier %s: %w", key, err)
	}
	cfg, err := ResolveConfig(ctx, readerFor(d.opts.Client, d.opts.Refs, &n), &n)
	if err != nil {
		return nil, err
	}
	return d.opts.NewProvider(cfg)
}

// record counts a delivery in metrics and the Notifier's status.
func (d *Dispatcher) record(ctx context.Context, key types.NamespacedName, err error) {
	result := "sent"
	if err != nil {
		result = "failed"
		d.opts.Log.Warn("notification failed", "notifier", key.String(), "error", err)
	}
	d.metrics.WithLabelValues(key.String(), result).Inc()
	if uerr := updateStatus(ctx, d.opts.Client, key, d.opts.statusRetries, func(st *tendv1.NotifierStatus, gen int64) {
		now := nowTime()
		if err == nil {
			st.Sent++
			st.LastSentAt = &now
			setReady(st, gen, true, "Delivered", "last message delivered at "+now.UTC().Format(time.RFC3339))
			return
		}
		st.Failed++
		st.LastFailureAt = &now
		st.LastError = err.Error()
		setReady(st, gen, false, "DeliveryFailed", err.Error())
	}); uerr != nil {
		d.opts.Log.Warn("updating Notifier status", "notifier", key.String(), "error", uerr)
	}
}
