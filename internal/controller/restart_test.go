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

// restartFixture is a tend process (first) syncing App web from repo, with
// a webhook Notifier "hook" reporting to sink.
type restartFixture struct {
	*ctlEnv
	bin   string
	ns    string
	sink  *hookSink
	repo  *ctlRepo
	first *tendProcess
	rev1  string
}

// newRestartFixture starts the first tend process and waits for web to be
// Synced at the repository's first commit; opts change the App.
func newRestartFixture(t *testing.T, opts ...func(*tendv1.App)) *restartFixture {
	t.Helper()
	env := testenv.New(t)
	testenv.InstallCRDs(t, env.Config)
	bin := buildTend(t)
	c, err := client.New(env.Config, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	f := &restartFixture{ctlEnv: &ctlEnv{Env: env, c: c}, bin: bin, ns: env.Namespace, sink: newHookSink(t, "k3y"), repo: newCtlRepo(t)}
	f.rev1 = f.repo.commit("good", map[string]string{"app/a.yaml": configMapYAML("a", "1")})
	f.first = startTend(t, env, bin, "first")
	cleanupApps(t, c, f.ns)
	for _, o := range []client.Object{
		notifierSecret("hook", map[string]string{"address": f.sink.srv.URL, "hmacKey": "k3y"}),
		&tendv1.Notifier{ObjectMeta: metav1.ObjectMeta{Name: "hook"}, Spec: tendv1.NotifierSpec{Provider: "webhook", SecretRef: &tendv1.LocalObjectReference{Name: "hook"}}},
		gitSource("repo", f.repo.URL),
		newApp("web", "repo", "app", f.ns, opts...),
	} {
		o.SetNamespace(f.ns)
		if err := c.Create(context.Background(), o); err != nil {
			t.Fatalf("create %T: %v", o, err)
		}
	}
	f.waitApp(t, "web", "Synced at "+f.rev1, 90*time.Second, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncSynced && a.Status.Revision == f.rev1
	})
	return f
}

// restart kills the first process (SIGKILL) and starts another.
func (f *restartFixture) restart(t *testing.T, before func()) {
	t.Helper()
	if err := f.first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = f.first.cmd.Wait()
	if before != nil {
		before()
	}
	startTend(t, f.Env, f.bin, "second")
}

// checkOneFailureOneRecovery fails t unless the sink received exactly one
// SyncFailed and one recovery message (and, with mustRefuse, refused some
// while failing).
func (f *restartFixture) checkOneFailureOneRecovery(t *testing.T, mustRefuse bool) {
	t.Helper()
	sink := f.sink
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
	if failures != 1 || recoveries != 1 || (mustRefuse && sink.refused.Load() == 0) {
		var all []string
		for _, m := range sink.msgs {
			all = append(all, m.Kind+" "+shortRev(m.Revision)+": "+m.Message)
		}
		t.Errorf("%d failure and %d recovery messages (%d refused while failing), want exactly 1 of each:\n  %s", failures, recoveries, sink.refused.Load(), strings.Join(all, "\n  "))
	}
}

// TestRestartKeepsWhatWasTold kills the controller process (SIGKILL)
// between a sync failure and its recovery. What was told and the retry
// count live in the App's status, so the Notifier receives exactly one
// failure message and one recovery, and the retry backoff continues where
// it was instead of starting over.
func TestRestartKeepsWhatWasTold(t *testing.T) {
	const base = 10 * time.Second
	f := newRestartFixture(t, func(a *tendv1.App) {
		a.Spec.Sync.Retry = &tendv1.RetryPolicy{Backoff: metav1.Duration{Duration: base}, MaxBackoff: metav1.Duration{Duration: 10 * base}}
	})

	// A revision the API server rejects: told once, retried with backoff.
	rev2 := f.repo.commit("broken", map[string]string{"app/bad.yaml": badConfigMapYAML})
	_, next := f.sink.wait("the failure of "+rev2, 0, time.Minute, func(m hookMessage) bool {
		return m.Kind == "SyncFailed" && m.Revision == rev2
	})
	failedSyncs := func(n int) func(*tendv1.App) bool {
		return func(a *tendv1.App) bool {
			got, _ := failuresOf(a, rev2)
			return got >= n
		}
	}
	f.waitApp(t, "web", "2 failed syncs of "+rev2, 2*time.Minute, failedSyncs(2))

	// The controller dies; another process takes over.
	f.restart(t, nil)

	a := f.waitApp(t, "web", "3 failed syncs of "+rev2, 2*time.Minute, failedSyncs(3))
	h := a.Status.History
	prevEnd := h[1].StartedAt.Add(h[1].Duration.Duration)
	if wait := backoff(a, 2); h[0].StartedAt.Time.Before(prevEnd.Add(wait - time.Second)) {
		t.Errorf("after the restart the retry started at %s, %s after the previous failure ended; the backoff after 2 failures is %s (it started over)",
			h[0].StartedAt.Format(time.RFC3339), h[0].StartedAt.Sub(prevEnd), wait)
	}

	// The fix: one recovery message.
	rev3 := f.repo.commit("fixed", map[string]string{"app/bad.yaml": ""})
	f.sink.wait("the recovery at "+rev3, next, 2*time.Minute, func(m hookMessage) bool {
		return m.Kind == "SyncSucceeded" && m.Revision == rev3 && strings.Contains(m.Message, "recovered")
	})
	f.checkOneFailureOneRecovery(t, false)
}

// TestRestartDeliversQueuedNotifications kills the controller process
// (SIGKILL) while a failure notification waits for a failing webhook: the
// message, kept in the Notifier's outbox, is delivered exactly once by
// the next process when the webhook is back, and the recovery after it
// exactly once.
func TestRestartDeliversQueuedNotifications(t *testing.T) {
	f := newRestartFixture(t)
	ctx := context.Background()
	_, next := f.sink.wait("the sync of "+f.rev1, 0, time.Minute, func(m hookMessage) bool {
		return m.Kind == "SyncSucceeded" && m.Revision == f.rev1
	})

	// The webhook fails; a revision the API server rejects is told, and
	// the message waits in the Notifier's outbox while it is retried.
	f.sink.failing.Store(true)
	rev2 := f.repo.commit("broken", map[string]string{"app/bad.yaml": badConfigMapYAML})
	outbox := types.NamespacedName{Namespace: f.ns, Name: notify.OutboxName("hook")}
	testenv.Eventually(t, "the failure of "+rev2+" in the outbox "+outbox.String(), 2*time.Minute, func() bool {
		var cm corev1.ConfigMap
		if err := f.c.Get(ctx, outbox, &cm); err != nil {
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
	f.restart(t, func() { f.sink.failing.Store(false) })
	_, next = f.sink.wait("the failure of "+rev2+", told before the restart", next, 2*time.Minute, func(m hookMessage) bool {
		return m.Kind == "SyncFailed" && m.Revision == rev2
	})

	// The fix: one recovery message, after which a repeated failure
	// message (sent in order before it) would have arrived.
	rev3 := f.repo.commit("fixed", map[string]string{"app/bad.yaml": ""})
	f.sink.wait("the recovery at "+rev3, next, 2*time.Minute, func(m hookMessage) bool {
		return m.Kind == "SyncSucceeded" && m.Revision == rev3 && strings.Contains(m.Message, "recovered")
	})
	testenv.Eventually(t, "the outbox "+outbox.String()+" deleted once delivered", time.Minute, func() bool {
		return apierrors.IsNotFound(f.c.Get(ctx, outbox, &corev1.ConfigMap{}))
	})
	f.checkOneFailureOneRecovery(t, true)
}
