package controller

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/notify"
	"github.com/tend-gitops/tend/internal/testenv"
)

const badConfigMapYAML = `apiVersion: v1
kind: ConfigMap
metadata: {name: bad}
data: {value: {not: a string}}
`

// TestRestartKeepsWhatWasTold kills the controller process (SIGKILL)
// between a sync failure and its recovery. What was told and the retry
// count live in the App's status, so the Notifier receives exactly one
// failure message and one recovery, and the retry backoff continues where
// it was instead of starting over.
func TestRestartKeepsWhatWasTold(t *testing.T) {
	env := testenv.New(t)
	testenv.InstallCRDs(t, env.Config)
	bin := buildTend(t)
	ctx := context.Background()
	c, err := client.New(env.Config, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ns := env.Namespace
	sink := newHookSink(t, "k3y")
	repo := newCtlRepo(t)
	rev1 := repo.commit("good", map[string]string{"app/a.yaml": configMapYAML("a", "1")})

	first := startTend(t, env, bin, "first")
	cleanupApps(t, c, ns)
	const base = 10 * time.Second
	for _, o := range []client.Object{
		notifierSecret("hook", map[string]string{"address": sink.srv.URL, "hmacKey": "k3y"}),
		&tendv1.Notifier{ObjectMeta: metav1.ObjectMeta{Name: "hook"}, Spec: tendv1.NotifierSpec{Provider: "webhook", SecretRef: &tendv1.LocalObjectReference{Name: "hook"}}},
		gitSource("repo", repo.URL),
		newApp("web", "repo", "app", ns, func(a *tendv1.App) {
			a.Spec.Sync.Retry = &tendv1.RetryPolicy{Backoff: metav1.Duration{Duration: base}, MaxBackoff: metav1.Duration{Duration: 10 * base}}
		}),
	} {
		o.SetNamespace(ns)
		if err := c.Create(ctx, o); err != nil {
			t.Fatalf("create %T: %v", o, err)
		}
	}
	e := &ctlEnv{Env: env, c: c}
	e.waitApp(t, "web", "Synced at "+rev1, 90*time.Second, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncSynced && a.Status.Revision == rev1
	})

	// A revision the API server rejects: told once, retried with backoff.
	rev2 := repo.commit("broken", map[string]string{"app/bad.yaml": badConfigMapYAML})
	_, next := sink.wait("the failure of "+rev2, 0, time.Minute, func(m hookMessage) bool {
		return m.Kind == "SyncFailed" && m.Revision == rev2
	})
	failedSyncs := func(n int) func(*tendv1.App) bool {
		return func(a *tendv1.App) bool {
			got, _ := failuresOf(a, rev2)
			return got >= n
		}
	}
	e.waitApp(t, "web", "2 failed syncs of "+rev2, 2*time.Minute, failedSyncs(2))

	// The controller dies; another process takes over.
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.cmd.Wait()
	startTend(t, env, bin, "second")

	a := e.waitApp(t, "web", "3 failed syncs of "+rev2, 2*time.Minute, failedSyncs(3))
	h := a.Status.History
	prevEnd := h[1].StartedAt.Add(h[1].Duration.Duration)
	if wait := backoff(a, 2); h[0].StartedAt.Time.Before(prevEnd.Add(wait - time.Second)) {
		t.Errorf("after the restart the retry started at %s, %s after the previous failure ended; the backoff after 2 failures is %s (it started over)",
			h[0].StartedAt.Format(time.RFC3339), h[0].StartedAt.Sub(prevEnd), wait)
	}

	// The fix: one recovery message.
	rev3 := repo.commit("fixed", map[string]string{"app/bad.yaml": ""})
	sink.wait("the recovery at "+rev3, next, 2*time.Minute, func(m hookMessage) bool {
		return m.Kind == "SyncSucceeded" && m.Revision == rev3 && strings.Contains(m.Message, "recovered")
	})
	sink.mu.Lock()
	defer sink.mu.Unlock()
	failures, recoveries := 0, 0
	for _, m := range sink.msgs {
		switch {
		case m.Kind == "SyncFailed":
			failures++
		case m.Kind == "SyncSucceeded" && strings.Contains(m.Message, "recovered"):
			recoveries++
		}
	}
	if failures != 1 || recoveries != 1 {
		var all []string
		for _, m := range sink.msgs {
			all = append(all, m.Kind+" "+shortRev(m.Revision)+": "+m.Message)
		}
		t.Errorf("%d failure and %d recovery messages, want exactly 1 of each:\n  %s", failures, recoveries, strings.Join(all, "\n  "))
	}
}

// TestRestartDeliversQueuedNotifications kills the controller process
// (SIGKILL) while a failure notification waits for a failing webhook: the
// message, kept in the Notifier's outbox, is delivered exactly once by
// the next process when the webhook is back, and the recovery after it
// exactly once.
func TestRestartDeliversQueuedNotifications(t *testing.T) {
	env := testenv.New(t)
	testenv.InstallCRDs(t, env.Config)
	bin := buildTend(t)
	ctx := context.Background()
	c, err := client.New(env.Config, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ns := env.Namespace
	sink := newHookSink(t, "k3y")
	repo := newCtlRepo(t)
	rev1 := repo.commit("good", map[string]string{"app/a.yaml": configMapYAML("a", "1")})

	first := startTend(t, env, bin, "first")
	cleanupApps(t, c, ns)
	for _, o := range []client.Object{
		notifierSecret("hook", map[string]string{"address": sink.srv.URL, "hmacKey": "k3y"}),
		&tendv1.Notifier{ObjectMeta: metav1.ObjectMeta{Name: "hook"}, Spec: tendv1.NotifierSpec{Provider: "webhook", SecretRef: &tendv1.LocalObjectReference{Name: "hook"}}},
		gitSource("repo", repo.URL),
		newApp("web", "repo", "app", ns),
	} {
		o.SetNamespace(ns)
		if err := c.Create(ctx, o); err != nil {
			t.Fatalf("create %T: %v", o, err)
		}
	}
	e := &ctlEnv{Env: env, c: c}
	e.waitApp(t, "web", "Synced at "+rev1, 90*time.Second, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncSynced && a.Status.Revision == rev1
	})
	_, next := sink.wait("the sync of "+rev1, 0, time.Minute, func(m hookMessage) bool {
		return m.Kind == "SyncSucceeded" && m.Revision == rev1
	})

	// The webhook fails; a revision the API server rejects is told, and
	// the message waits in the Notifier's outbox while it is retried.
	sink.failing.Store(true)
	rev2 := repo.commit("broken", map[string]string{"app/bad.yaml": badConfigMapYAML})
	outbox := types.NamespacedName{Namespace: ns, Name: notify.OutboxName("hook")}
	testenv.Eventually(t, "the failure of "+rev2+" in the outbox "+outbox.String(), 2*time.Minute, func() bool {
		var cm corev1.ConfigMap
		if err := c.Get(ctx, outbox, &cm); err != nil {
			return false
		}
		for _, v := range cm.Data {
			if strings.Contains(v, `"kind":"SyncFailed"`) && strings.Contains(v, rev2) {
				return true
			}
		}
		return false
	})

	// The controller dies before the webhook recovers; another process
	// takes over once it has.
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.cmd.Wait()
	sink.failing.Store(false)
	startTend(t, env, bin, "second")
	_, next = sink.wait("the failure of "+rev2+", told before the restart", next, 2*time.Minute, func(m hookMessage) bool {
		return m.Kind == "SyncFailed" && m.Revision == rev2
	})

	// The fix: one recovery message, after which a repeated failure
	// message (sent in order before it) would have arrived.
	rev3 := repo.commit("fixed", map[string]string{"app/bad.yaml": ""})
	sink.wait("the recovery at "+rev3, next, 2*time.Minute, func(m hookMessage) bool {
		return m.Kind == "SyncSucceeded" && m.Revision == rev3 && strings.Contains(m.Message, "recovered")
	})
	testenv.Eventually(t, "the outbox "+outbox.String()+" deleted once delivered", time.Minute, func() bool {
		return apierrors.IsNotFound(c.Get(ctx, outbox, &corev1.ConfigMap{}))
	})
	sink.mu.Lock()
	defer sink.mu.Unlock()
	failures, recoveries := 0, 0
	for _, m := range sink.msgs {
		switch {
		case m.Kind == "SyncFailed":
			failures++
		case m.Kind == "SyncSucceeded" && strings.Contains(m.Message, "recovered"):
			recoveries++
		}
	}
	if failures != 1 || recoveries != 1 || sink.refused.Load() == 0 {
		var all []string
		for _, m := range sink.msgs {
			all = append(all, m.Kind+" "+shortRev(m.Revision)+": "+m.Message)
		}
		t.Errorf("%d failure and %d recovery messages (%d refused while failing), want exactly 1 of each:\n  %s", failures, recoveries, sink.refused.Load(), strings.Join(all, "\n  "))
	}
}
