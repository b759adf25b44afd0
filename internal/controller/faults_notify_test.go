package controller

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
)

// failingEndpoint is a notification endpoint that never accepts a
// message: it answers with answer, or, when answer is nil, hangs until the
// request is given up. hits counts the requests.
type failingEndpoint struct {
	srv  *httptest.Server
	hits atomic.Int64
}

func newFailingEndpoint(t *testing.T, answer func(http.ResponseWriter)) *failingEndpoint {
	t.Helper()
	f := &failingEndpoint{}
	release := make(chan struct{})
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		if answer != nil {
			answer(w)
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); f.srv.Close() })
	return f
}

// TestNotificationEndpointsFailingRepeatedly: Notifiers whose endpoints
// answer 429, answer 500 or hang, for every message: the App syncs every
// new commit regardless; each message is tried Options.Notify.Attempts
// times and no more; each Notifier's status counts the failures and its
// Ready condition says why (DeliveryFailed, naming the answer or the
// timeout).
func TestNotificationEndpointsFailingRepeatedly(t *testing.T) {
	const attempts = 3
	e := startControllerWith(t, func(o *Options) {
		o.Notify.Attempts = attempts
		o.Notify.Backoff = 50 * time.Millisecond
		o.Notify.MaxBackoff = 100 * time.Millisecond
		o.Notify.SendTimeout = time.Second
	})
	endpoints := map[string]*failingEndpoint{
		"limited": newFailingEndpoint(t, func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		}),
		"broken": newFailingEndpoint(t, func(w http.ResponseWriter) {
			http.Error(w, "boom", http.StatusInternalServerError)
		}),
		"hung": newFailingEndpoint(t, nil),
	}
	wantError := map[string]string{
		"limited": "HTTP 429 Too Many Requests",
		"broken":  "HTTP 500 Internal Server Error",
		"hung":    "context deadline exceeded",
	}
	for name, ep := range endpoints {
		e.create(t, &tendv1.Notifier{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: tendv1.NotifierSpec{Provider: "webhook", Address: ep.srv.URL}})
	}
	repo := newCtlRepo(t)
	var revs []string
	revs = append(revs, repo.commit("v1", map[string]string{"app/cm.yaml": configMapYAML("cfg", "v1")}))
	e.create(t, gitSource("repo", repo.URL), newApp("app", "repo", "app", e.Namespace))
	e.waitApp(t, "app", "synced at v1", 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Revision == revs[0] && a.Status.Sync == tendv1.SyncSynced
	})
	// Every Notifier is failing by now or soon; the App goes on syncing.
	for i := 2; i <= 3; i++ {
		rev := repo.commit(fmt.Sprintf("v%d", i), map[string]string{"app/cm.yaml": configMapYAML("cfg", fmt.Sprintf("v%d", i))})
		revs = append(revs, rev)
		e.waitApp(t, "app", "synced at "+rev+" while every Notifier fails", 60*time.Second, func(a *tendv1.App) bool {
			return a.Status.Revision == rev && a.Status.Sync == tendv1.SyncSynced
		})
	}
	cm, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(context.Background(), "cfg", metav1.GetOptions{})
	if err != nil || cm.Data["value"] != "v3" {
		t.Fatalf("ConfigMap cfg = %v %v, want v3 applied", cm.Data, err)
	}

	for name, ep := range endpoints {
		// Each message given up was tried exactly attempts times: seen
		// between two messages (a Notifier sends one at a time), the
		// requests are attempts times the failures counted.
		var n tendv1.Notifier
		var hits int64
		if !testenv.Within(90*time.Second, func() bool {
			if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: e.Namespace, Name: name}, &n); err != nil {
				return false
			}
			hits = ep.hits.Load()
			return n.Status.Failed >= 2 && hits == attempts*n.Status.Failed
		}) {
			t.Fatalf("Notifier %s: %d requests for %d failed messages, want %d attempts each", name, hits, n.Status.Failed, attempts)
		}
		ready := meta.FindStatusCondition(n.Status.Conditions, tendv1.ConditionReady)
		if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != "DeliveryFailed" {
			t.Errorf("Notifier %s Ready = %+v, want False for DeliveryFailed", name, ready)
			continue
		}
		t.Logf("Notifier %s: Ready %s: %s (failed %d)", name, ready.Reason, ready.Message, n.Status.Failed)
		for _, s := range []string{fmt.Sprintf("gave up after %d attempts", attempts), wantError[name]} {
			if !strings.Contains(ready.Message, s) || !strings.Contains(n.Status.LastError, s) {
				t.Errorf("Notifier %s: Ready message %q / lastError %q does not say %q", name, ready.Message, n.Status.LastError, s)
			}
		}
		if n.Status.Sent != 0 || n.Status.LastFailureAt == nil {
			t.Errorf("Notifier %s status: sent %d, lastFailureAt %v", name, n.Status.Sent, n.Status.LastFailureAt)
		}
	}
}
