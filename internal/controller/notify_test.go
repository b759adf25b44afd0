package controller

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
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
	"k8s.io/apimachinery/pkg/types"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// hookMessage is what the test reads of the generic webhook's JSON.
type hookMessage struct {
	Kind     string   `json:"kind"`
	Revision string   `json:"revision"`
	Subject  string   `json:"subject"`
	Message  string   `json:"message"`
	Changes  []string `json:"changes"`
	Error    string   `json:"error"`
	Link     string   `json:"link"`
	App      struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"app"`
	Stage struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"stage"`
}

// hookSink records signed generic webhook deliveries. While failing is
// set it answers 500 and records nothing.
type hookSink struct {
	t       *testing.T
	key     []byte
	mu      sync.Mutex
	msgs    []hookMessage
	srv     *httptest.Server
	failing atomic.Bool
	refused atomic.Int32
}

func newHookSink(t *testing.T, key string) *hookSink {
	s := &hookSink{t: t, key: []byte(key)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, s.key)
		mac.Write(body)
		if r.Header.Get("X-Tend-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			t.Errorf("delivery with a bad signature %q", r.Header.Get("X-Tend-Signature"))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if s.failing.Load() {
			s.refused.Add(1)
			http.Error(w, "down for the test", http.StatusInternalServerError)
			return
		}
		var m hookMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("delivery is not JSON: %v: %s", err, body)
		}
		s.mu.Lock()
		s.msgs = append(s.msgs, m)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// wait returns the first message after index from that cond accepts.
func (s *hookSink) wait(what string, from int, timeout time.Duration, cond func(hookMessage) bool) (hookMessage, int) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s.mu.Lock()
		for i := from; i < len(s.msgs); i++ {
			if cond(s.msgs[i]) {
				m := s.msgs[i]
				s.mu.Unlock()
				return m, i + 1
			}
		}
		all := append([]hookMessage(nil), s.msgs...)
		s.mu.Unlock()
		if time.Now().After(deadline) {
			var kinds []string
			for _, m := range all {
				kinds = append(kinds, m.Kind+": "+m.Message+" "+m.Error)
			}
			s.t.Fatalf("timed out after %s waiting for a notification: %s; got:\n  %s", timeout, what, strings.Join(kinds, "\n  "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func notifierSecret(name string, data map[string]string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, StringData: data}
}

// TestNotificationsTellWhatHappened runs an App through a sync, a broken
// commit, its fix, a hand edit, a prune and a degraded rollout, and checks
// what a signed generic webhook receives; a second Notifier whose endpoint
// hangs delays neither the syncs nor the first Notifier.
func TestNotificationsTellWhatHappened(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	sink := newHookSink(t, "s3cret-key")
	slowHits := make(chan struct{}, 100)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slowHits <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); slow.Close() })

	repo := newCtlRepo(t)
	rev1 := repo.commit("web: first version", map[string]string{
		"web/cm.yaml":  configMapYAML("web-config", "v1"),
		"web/old.yaml": configMapYAML("old", "x"),
	})
	e.create(t,
		notifierSecret("hook", map[string]string{"address": sink.srv.URL, "hmacKey": "s3cret-key"}),
		&tendv1.Notifier{ObjectMeta: metav1.ObjectMeta{Name: "hook"}, Spec: tendv1.NotifierSpec{
			Provider: "webhook", SecretRef: &tendv1.LocalObjectReference{Name: "hook"}, BaseURL: "https://tend.example.com/",
			AppSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "web"}},
		}},
		&tendv1.Notifier{ObjectMeta: metav1.ObjectMeta{Name: "slow"}, Spec: tendv1.NotifierSpec{Provider: "webhook", Address: slow.URL}},
		gitSource("repo", repo.URL),
		newApp("web", "repo", "web", e.Namespace, func(a *tendv1.App) {
			a.Labels = map[string]string{"team": "web"}
			a.Spec.Health.Timeout = metav1.Duration{Duration: 3 * time.Second}
		}),
	)

	m, next := sink.wait("SyncSucceeded of rev1", 0, 60*time.Second, func(m hookMessage) bool {
		return m.Kind == "SyncSucceeded" && m.Revision == rev1
	})
	if m.Subject != "web: first version" || m.App.Name != "web" || m.App.Namespace != e.Namespace {
		t.Errorf("message does not name the App and commit: %+v", m)
	}
	if m.Link != "https://tend.example.com/apps/"+e.Namespace+"/web" {
		t.Errorf("link = %q", m.Link)
	}
	if len(m.Changes) != 2 || !strings.Contains(strings.Join(m.Changes, ","), "ConfigMap "+e.Namespace+"/web-config created") {
		t.Errorf("changes = %q", m.Changes)
	}
	sink.wait("SyncStarted of rev1", 0, time.Second, func(m hookMessage) bool { return m.Kind == "SyncStarted" && m.Revision == rev1 })
	// The slow endpoint was asked and hangs; the sync and the other
	// Notifier went on regardless.
	select {
	case <-slowHits:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow Notifier was never called")
	}

	// A broken commit: told once, with the file and the commit.
	rev2 := repo.commit("web: break it", map[string]string{"web/cm.yaml": "kind: ConfigMap\nmetadata: [not, a, map\n"})
	m, next = sink.wait("SyncFailed of rev2", next, 30*time.Second, func(m hookMessage) bool { return m.Kind == "SyncFailed" && m.Revision == rev2 })
	if !strings.Contains(m.Error, "cm.yaml") || m.Subject != "web: break it" {
		t.Errorf("failure does not name the file and commit: %+v", m)
	}
	// The fix restores what is applied: no sync is needed, but it is a
	// recovery.
	rev3 := repo.commit("web: fix it", map[string]string{"web/cm.yaml": configMapYAML("web-config", "v1")})
	m, next = sink.wait("recovery at rev3", next, 30*time.Second, func(m hookMessage) bool { return m.Kind == "SyncSucceeded" && m.Revision == rev3 })
	if !strings.Contains(m.Message, "recovered") {
		t.Errorf("recovery message = %q", m.Message)
	}

	// A hand edit: drift detected, then corrected (selfHeal).
	patch := []byte(`{"data":{"value":"edited"}}`)
	if _, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Patch(ctx, "web-config", types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	m, next = sink.wait("DriftDetected", next, 30*time.Second, func(m hookMessage) bool { return m.Kind == "DriftDetected" })
	if len(m.Changes) != 1 || !strings.Contains(m.Changes[0], "web-config") {
		t.Errorf("drift changes = %q", m.Changes)
	}
	sink.wait("DriftCorrected", next, 30*time.Second, func(m hookMessage) bool { return m.Kind == "DriftCorrected" })

	// Removing a file prunes its object.
	rev4 := repo.commit("web: drop old", map[string]string{"web/old.yaml": ""})
	m, next = sink.wait("Pruned", next, 30*time.Second, func(m hookMessage) bool { return m.Kind == "Pruned" && m.Revision == rev4 })
	if len(m.Changes) != 1 || !strings.Contains(m.Changes[0], "old pruned") {
		t.Errorf("pruned = %q", m.Changes)
	}

	// Pods that never become ready: health degrades; a fix recovers it.
	rev5 := repo.commit("web: bad rollout", map[string]string{"web/deploy.yaml": deploymentYAML("web", "web:bad", "tend.dev/kwok-pod: not-ready")})
	m, next = sink.wait("HealthDegraded", next, 60*time.Second, func(m hookMessage) bool { return m.Kind == "HealthDegraded" })
	if m.Revision != rev5 || !strings.Contains(m.Error, "Deployment") {
		t.Errorf("degraded message = %+v", m)
	}
	repo.commit("web: good rollout", map[string]string{"web/deploy.yaml": deploymentYAML("web", "web:good", "")})
	sink.wait("HealthRecovered", next, 60*time.Second, func(m hookMessage) bool { return m.Kind == "HealthRecovered" })

	// The Notifier's status counts what it sent.
	var n tendv1.Notifier
	eventually(t, "Notifier status counts deliveries", 10*time.Second, func() bool {
		if err := e.c.Get(ctx, types.NamespacedName{Namespace: e.Namespace, Name: "hook"}, &n); err != nil {
			return false
		}
		return n.Status.Sent >= 8 && meta.IsStatusConditionTrue(n.Status.Conditions, tendv1.ConditionReady)
	})
	if n.Status.Failed != 0 || n.Status.LastSentAt == nil {
		t.Errorf("status = %+v", n.Status)
	}
}

// TestNotifierWithoutItsSecretSaysSo: a Notifier whose Secret is missing
// is not Ready, and the message names the Secret.
func TestNotifierWithoutItsSecretSaysSo(t *testing.T) {
	e := startController(t)
	e.create(t, &tendv1.Notifier{ObjectMeta: metav1.ObjectMeta{Name: "chat"}, Spec: tendv1.NotifierSpec{
		Provider: "discord", SecretRef: &tendv1.LocalObjectReference{Name: "discord-url"},
	}})
	var n tendv1.Notifier
	eventually(t, "Notifier reports the missing Secret", 20*time.Second, func() bool {
		if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: e.Namespace, Name: "chat"}, &n); err != nil {
			return false
		}
		c := meta.FindStatusCondition(n.Status.Conditions, tendv1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "InvalidConfig" && strings.Contains(c.Message, `"discord-url"`)
	})
}
