package notify

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
)

// Behaviour tests of Notifier spec and status fields (see
// api/v1alpha1/testdata/field-tests.yaml).

// appsOf lists "App/revision" of what r was sent, in order.
func appsOf(r *recorder) string {
	var out []string
	for _, m := range r.sent() {
		out = append(out, m.Event.AppName+"/"+m.Event.Revision)
	}
	return strings.Join(out, ",")
}

// received reports whether r was sent the event of app at rev.
func received(r *recorder, app, rev string) bool {
	for _, m := range r.sent() {
		if m.Event.AppName == app && m.Event.Revision == rev {
			return true
		}
	}
	return false
}

// waitNotifiers waits until the API server lists n Notifiers in the test's
// namespace.
func (e *dispatchEnv) waitNotifiers(t *testing.T, n int) {
	t.Helper()
	waitFor(t, "Notifiers listed", 5*time.Second, func() bool {
		var l tendv1.NotifierList
		return e.c.List(context.Background(), &l, client.InNamespace(e.Namespace)) == nil && len(l.Items) == n
	})
}

// labelled is an event of app with the label team=team.
func (e *dispatchEnv) labelled(app, team, rev string) Event {
	ev := e.event(SyncSucceeded, app, rev)
	ev.Labels = map[string]string{"team": team}
	return ev
}

// TestNotifierAppSelectorMatchExpressions: a Notifier's appSelector
// selects Apps by its matchExpressions, each with its key, operator and
// values.
func TestNotifierAppSelectorMatchExpressions(t *testing.T) {
	in, notIn, exists := &recorder{}, &recorder{}, &recorder{}
	e := startDispatcher(t, Options{}, map[string]Provider{"https://hook.test/in": in, "https://hook.test/notin": notIn, "https://hook.test/exists": exists})
	selector := func(key string, op metav1.LabelSelectorOperator, values ...string) func(*tendv1.NotifierSpec) {
		return func(s *tendv1.NotifierSpec) {
			s.AppSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}}
		}
	}
	e.notifier(t, "in", "https://hook.test/in", selector("team", metav1.LabelSelectorOpIn, "web", "ops"))
	e.notifier(t, "notin", "https://hook.test/notin", selector("team", metav1.LabelSelectorOpNotIn, "web"))
	e.notifier(t, "exists", "https://hook.test/exists", selector("tier", metav1.LabelSelectorOpExists))
	e.waitNotifiers(t, 3)

	e.d.Publish(e.labelled("web", "web", "r1"))
	e.d.Publish(e.labelled("db", "data", "r1"))
	tiered := e.labelled("cache", "data", "r1")
	tiered.Labels["tier"] = "backend"
	e.d.Publish(tiered)
	// Selected by all three: once it has arrived everywhere, everything
	// published before it has been delivered or dropped.
	last := e.labelled("ops", "ops", "last")
	last.Labels["tier"] = "frontend"
	e.d.Publish(last)
	waitFor(t, "the last event at every Notifier", 10*time.Second, func() bool {
		return received(in, "ops", "last") && received(notIn, "ops", "last") && received(exists, "ops", "last")
	})
	for _, tc := range []struct {
		name string
		r    *recorder
		want string
	}{
		{"team In (web, ops)", in, "web/r1,ops/last"},
		{"team NotIn (web)", notIn, "db/r1,cache/r1,ops/last"},
		{"tier Exists", exists, "cache/r1,ops/last"},
	} {
		if got := appsOf(tc.r); got != tc.want {
			t.Errorf("%s: sent %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestNotifierDedupeWindow: a Notifier's dedupeWindow decides how long the
// same event is not sent again; without it the dispatcher's default
// applies (here a nanosecond, so every repeat is sent).
func TestNotifierDedupeWindow(t *testing.T) {
	long, dflt := &recorder{}, &recorder{}
	e := startDispatcher(t, Options{DefaultDedupeWindow: time.Nanosecond}, map[string]Provider{"https://hook.test/long": long, "https://hook.test/default": dflt})
	e.notifier(t, "long", "https://hook.test/long", func(s *tendv1.NotifierSpec) { s.DedupeWindow = metav1.Duration{Duration: time.Hour} })
	e.notifier(t, "default", "https://hook.test/default", nil)
	e.waitNotifiers(t, 2)

	failed := e.event(SyncFailed, "web", "r1")
	failed.Error = "apply: boom"
	e.d.Publish(failed)
	waitFor(t, "the first failure at both", 10*time.Second, func() bool { return received(long, "web", "r1") && received(dflt, "web", "r1") })
	e.d.Publish(failed) // the same again
	e.d.Publish(e.event(SyncSucceeded, "web", "r2"))
	waitFor(t, "the last event at both", 10*time.Second, func() bool { return received(long, "web", "r2") && received(dflt, "web", "r2") })
	if got, want := appsOf(long), "web/r1,web/r2"; got != want {
		t.Errorf("with dedupeWindow 1h: sent %s, want %s (the repeat deduplicated)", got, want)
	}
	if got, want := appsOf(dflt), "web/r1,web/r1,web/r2"; got != want {
		t.Errorf("with the default window: sent %s, want %s", got, want)
	}
}

// TestNotifierSuspend: a suspended Notifier is sent nothing; once resumed,
// it is sent what is published after, and nothing held from before.
func TestNotifierSuspend(t *testing.T) {
	on, off := &recorder{}, &recorder{}
	e := startDispatcher(t, Options{}, map[string]Provider{"https://hook.test/on": on, "https://hook.test/off": off})
	e.notifier(t, "on", "https://hook.test/on", nil)
	e.notifier(t, "off", "https://hook.test/off", func(s *tendv1.NotifierSpec) { s.Suspend = true })
	e.waitNotifiers(t, 2)

	e.d.Publish(e.event(SyncSucceeded, "web", "r1"))
	e.d.Publish(e.event(SyncSucceeded, "web", "r2"))
	waitFor(t, "r2 at the Notifier that is not suspended", 10*time.Second, func() bool { return received(on, "web", "r2") })

	var n tendv1.Notifier
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: e.Namespace, Name: "off"}, &n); err != nil {
		t.Fatal(err)
	}
	orig := n.DeepCopy()
	n.Spec.Suspend = false
	if err := e.c.Patch(context.Background(), &n, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
	e.d.Publish(e.event(SyncSucceeded, "web", "r3"))
	// Each Notifier's messages are sent in order: r1 and r2, had they been
	// queued for it, would arrive before r3.
	waitFor(t, "r3 at the resumed Notifier", 10*time.Second, func() bool { return received(off, "web", "r3") })
	if got, want := appsOf(off), "web/r3"; got != want {
		t.Errorf("the Notifier suspended during r1 and r2 was sent %s, want %s", got, want)
	}
}

// TestNotifierLastFailureAt: status.lastFailureAt tells when a delivery
// last failed.
func TestNotifierLastFailureAt(t *testing.T) {
	p := &recorder{fail: []error{&HTTPError{Status: 404, Body: "Unknown Webhook"}, &HTTPError{Status: 404, Body: "Unknown Webhook"}}}
	e := startDispatcher(t, Options{Attempts: 1}, map[string]Provider{"https://hook.test/f": p})
	e.notifier(t, "f", "https://hook.test/f", nil)
	e.waitNotifiers(t, 1)
	get := func(failed int64) tendv1.Notifier {
		t.Helper()
		var n tendv1.Notifier
		waitFor(t, "a failed delivery in status", 10*time.Second, func() bool {
			_ = e.c.Get(context.Background(), types.NamespacedName{Namespace: e.Namespace, Name: "f"}, &n)
			return n.Status.Failed == failed
		})
		return n
	}
	before := metav1.NewTime(time.Now().Truncate(time.Second))
	e.d.Publish(e.event(SyncFailed, "web", "r1"))
	n := get(1)
	if n.Status.LastFailureAt == nil || n.Status.LastFailureAt.Before(&before) {
		t.Fatalf("lastFailureAt = %v after a failure at or after %s", n.Status.LastFailureAt, before)
	}
	first := *n.Status.LastFailureAt

	e.d.Publish(e.event(SyncSucceeded, "web", "r2")) // the provider answers 404 again
	n = get(2)
	if n.Status.LastFailureAt == nil || n.Status.LastFailureAt.Before(&first) {
		t.Errorf("lastFailureAt = %v after a second failure, was %s", n.Status.LastFailureAt, first)
	}
}

// TestNotifierApps: a Notifier's apps sends only the named Apps' events,
// and with appSelector an App must match both.
func TestNotifierApps(t *testing.T) {
	named, both := &recorder{}, &recorder{}
	e := startDispatcher(t, Options{}, map[string]Provider{"https://hook.test/named": named, "https://hook.test/both": both})
	e.notifier(t, "named", "https://hook.test/named", func(s *tendv1.NotifierSpec) { s.Apps = []string{"web", "ops"} })
	e.notifier(t, "both", "https://hook.test/both", func(s *tendv1.NotifierSpec) {
		s.Apps = []string{"web", "db", "ops"}
		s.AppSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "web"}}
	})
	e.waitNotifiers(t, 2)

	e.d.Publish(e.labelled("web", "web", "r1"))
	e.d.Publish(e.labelled("db", "data", "r1"))
	e.d.Publish(e.labelled("cache", "web", "r1"))
	// Selected by both: once it has arrived at both, everything published
	// before it has been delivered or dropped.
	e.d.Publish(e.labelled("ops", "web", "last"))
	waitFor(t, "the last event at both Notifiers", 10*time.Second, func() bool {
		return received(named, "ops", "last") && received(both, "ops", "last")
	})
	if got, want := appsOf(named), "web/r1,ops/last"; got != want {
		t.Errorf("apps [web ops]: sent %s, want %s", got, want)
	}
	if got, want := appsOf(both), "web/r1,ops/last"; got != want {
		t.Errorf("apps [web db ops] and team=web: sent %s, want %s", got, want)
	}
}

// sourceEvent is a Source's event in the test's namespace.
func (e *dispatchEnv) sourceEvent(kind Kind, source, typ, msg string, labels map[string]string) Event {
	return Event{Kind: kind, AppNamespace: e.Namespace, SourceName: source, SourceType: typ, Labels: labels, Message: msg, Revision: msg}
}

// objectsOf lists "object:message" of what r was sent, in order.
func objectsOf(r *recorder) string {
	var out []string
	for _, m := range r.sent() {
		out = append(out, m.Event.Object()[strings.Index(m.Event.Object(), "/")+1:]+":"+m.Event.Message)
	}
	return strings.Join(out, ",")
}

// TestNotifierSources: spec.sources sends the fetch failures and new
// revisions of the Sources it selects by name, type and labels (and with
// it alone, no App event); inclusionList and exclusionList filter every
// event by its message or error; metadata rides along with each message.
func TestNotifierSources(t *testing.T) {
	byName, byType, bySelector, lists, apps := &recorder{}, &recorder{}, &recorder{}, &recorder{}, &recorder{}
	e := startDispatcher(t, Options{}, map[string]Provider{"https://hook.test/name": byName, "https://hook.test/type": byType,
		"https://hook.test/selector": bySelector, "https://hook.test/lists": lists, "https://hook.test/apps": apps})
	e.notifier(t, "name", "https://hook.test/name", func(s *tendv1.NotifierSpec) {
		s.Sources = &tendv1.NotifierSources{Names: []string{"fleet"}}
		s.Metadata = map[string]string{"cluster": "prod"}
	})
	e.notifier(t, "type", "https://hook.test/type", func(s *tendv1.NotifierSpec) {
		s.Sources = &tendv1.NotifierSources{Types: []tendv1.SourceType{tendv1.SourceTypeHelm}}
		s.AppSelector = &metav1.LabelSelector{}
	})
	e.notifier(t, "selector", "https://hook.test/selector", func(s *tendv1.NotifierSpec) {
		s.Sources = &tendv1.NotifierSources{Selector: &metav1.LabelSelector{
			MatchLabels:      map[string]string{"tier": "infra"},
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpIn, Values: []string{"ops"}}},
		}}
	})
	e.notifier(t, "lists", "https://hook.test/lists", func(s *tendv1.NotifierSpec) {
		s.Sources = &tendv1.NotifierSources{}
		s.InclusionList = []string{"^fetched", "timeout"}
		s.ExclusionList = []string{"skip-me"}
	})
	e.notifier(t, "apps", "https://hook.test/apps", nil)
	e.waitNotifiers(t, 5)

	infra := map[string]string{"tier": "infra", "team": "ops"}
	e.d.Publish(e.sourceEvent(NewRevision, "fleet", "git", "fetched a1", nil))
	e.d.Publish(e.sourceEvent(NewRevision, "charts", "helm", "fetched b1", infra))
	e.d.Publish(e.sourceEvent(FetchFailed, "fleet", "git", "fetched nothing: skip-me", nil))
	ff := e.sourceEvent(FetchFailed, "other", "oci", "fetch failed", map[string]string{"tier": "infra", "team": "web"})
	ff.Error = "dial: i/o timeout"
	e.d.Publish(ff)
	e.d.Publish(e.labelled("web", "web", "r1"))
	// Selected by every Notifier: once it has arrived everywhere, what
	// was published before has been delivered or dropped.
	last := e.sourceEvent(NewRevision, "fleet", "helm", "fetched last", infra)
	e.d.Publish(last)
	testenv.Eventually(t, "the last event at every Notifier", 10*time.Second, func() bool {
		for _, r := range []*recorder{byName, byType, bySelector, lists} {
			if !strings.Contains(objectsOf(r), "fleet:fetched last") {
				return false
			}
		}
		return received(apps, "web", "r1")
	})
	for _, tc := range []struct {
		name string
		r    *recorder
		want string
	}{
		{"names [fleet]", byName, "fleet:fetched a1,fleet:fetched nothing: skip-me,fleet:fetched last"},
		{"types [helm], appSelector {}", byType, "charts:fetched b1,web:,fleet:fetched last"},
		{"selector tier=infra, team in (ops)", bySelector, "charts:fetched b1,fleet:fetched last"},
		{"inclusionList [^fetched timeout], exclusionList [skip-me]", lists, "fleet:fetched a1,charts:fetched b1,other:fetch failed,fleet:fetched last"},
		{"no sources", apps, "web:"},
	} {
		if got := objectsOf(tc.r); got != tc.want {
			t.Errorf("%s: sent %s, want %s", tc.name, got, tc.want)
		}
	}
	if m := byName.sent()[0]; m.Metadata["cluster"] != "prod" {
		t.Errorf("metadata of a message: %v, want cluster=prod", m.Metadata)
	}
	if p := payloadOf(byName.sent()[0]); p.Source.Name != "fleet" || p.Source.Type != "git" || p.App.Name != "" || p.Metadata["cluster"] != "prod" {
		t.Errorf("webhook payload of a Source event: %+v", p)
	}
}

// TestNotifierStages: spec.stages sends the promotion events of the
// Stages it selects by name and labels (and with it alone, no App or
// Source event); a Notifier without it sends none of them.
func TestNotifierStages(t *testing.T) {
	byName, bySelector, apps := &recorder{}, &recorder{}, &recorder{}
	e := startDispatcher(t, Options{}, map[string]Provider{"https://hook.test/name": byName, "https://hook.test/selector": bySelector, "https://hook.test/apps": apps})
	e.notifier(t, "name", "https://hook.test/name", func(s *tendv1.NotifierSpec) {
		s.Stages = &tendv1.NotifierStages{Names: []string{"prod"}}
	})
	e.notifier(t, "selector", "https://hook.test/selector", func(s *tendv1.NotifierSpec) {
		s.Stages = &tendv1.NotifierStages{Selector: &metav1.LabelSelector{
			MatchLabels:      map[string]string{"pipeline": "web"},
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"test"}}},
		}}
	})
	e.notifier(t, "apps", "https://hook.test/apps", nil)
	e.waitNotifiers(t, 3)

	stage := func(kind Kind, name, msg string, labels map[string]string) Event {
		return Event{Kind: kind, AppNamespace: e.Namespace, StageName: name, Labels: labels, Message: msg}
	}
	web := map[string]string{"pipeline": "web"}
	e.d.Publish(stage(Promoted, "dev", "dev promoted", web))
	e.d.Publish(stage(Promoted, "test", "test promoted", map[string]string{"pipeline": "web", "tier": "test"}))
	e.d.Publish(stage(WaitingForApproval, "prod", "prod waits", nil))
	e.d.Publish(e.sourceEvent(NewRevision, "fleet", "git", "fetched a1", web))
	e.d.Publish(e.labelled("web", "web", "r1"))
	last := stage(VerificationFailed, "prod", "prod failed", web)
	e.d.Publish(last)
	testenv.Eventually(t, "the last event at both Stage Notifiers", 10*time.Second, func() bool {
		return strings.Contains(objectsOf(byName), "prod:prod failed") && strings.Contains(objectsOf(bySelector), "prod:prod failed") && received(apps, "web", "r1")
	})
	for _, tc := range []struct {
		name string
		r    *recorder
		want string
	}{
		{"names [prod]", byName, "prod:prod waits,prod:prod failed"},
		{"selector pipeline=web, tier notin (test)", bySelector, "dev:dev promoted,prod:prod failed"},
		{"no stages", apps, "web:"},
	} {
		if got := objectsOf(tc.r); got != tc.want {
			t.Errorf("%s: sent %s, want %s", tc.name, got, tc.want)
		}
	}
	if p := payloadOf(byName.sent()[0]); p.Stage.Name != "prod" || p.App.Name != "" || p.Kind != WaitingForApproval || p.Severity != Warning {
		t.Errorf("webhook payload of a Stage event: %+v", p)
	}
}
