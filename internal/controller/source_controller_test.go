package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
)

func TestSourceKeepsLastGoodArtifact(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	repo := newCtlRepo(t)
	rev := repo.commit("cm", map[string]string{"app/cm.yaml": configMapYAML("cfg", "v1")})
	e.create(t, gitSource("repo", repo.URL), newApp("app", "repo", "app", e.Namespace))
	e.waitApp(t, "app", "synced", 60*time.Second, func(a *tendv1.App) bool { return a.Status.Revision == rev && a.Status.Health == "Healthy" })

	// The git server goes away: fetches fail, the artifact stays.
	repo.srv.Close()
	var src tendv1.Source
	eventually(t, "fetch failure reported", 30*time.Second, func() bool {
		if err := e.c.Get(ctx, types.NamespacedName{Namespace: e.Namespace, Name: "repo"}, &src); err != nil {
			return false
		}
		for _, c := range src.Status.Conditions {
			if c.Type == tendv1.ConditionReady && c.Status == metav1.ConditionFalse && c.Reason == ReasonFetchFailed {
				return true
			}
		}
		return false
	})
	ready := src.Status.Conditions[0]
	for _, c := range src.Status.Conditions {
		if c.Type == tendv1.ConditionReady {
			ready = c
		}
	}
	if !strings.Contains(ready.Message, "still serving revision "+rev) {
		t.Errorf("Ready message does not say the last revision is kept: %q", ready.Message)
	}
	if src.Status.Artifact == nil || src.Status.Artifact.Revision != rev {
		t.Fatalf("artifact lost after a failed fetch: %+v", src.Status.Artifact)
	}
	if a := e.app(t, "app"); a.Status.Sync != tendv1.SyncSynced || a.Status.Revision != rev {
		t.Errorf("App affected by the failed fetch: %s %s", a.Status.Sync, a.Status.Revision)
	}
}

func TestFailedSyncRetriesWithBackoffUpToTheLimit(t *testing.T) {
	e := startController(t)
	repo := newCtlRepo(t)
	repo.commit("bad", map[string]string{
		"app/svc.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\nspec:\n  ports: [{port: 99999}]\n",
	})
	e.create(t, gitSource("repo", repo.URL), newApp("app", "repo", "app", e.Namespace, func(a *tendv1.App) {
		a.Spec.Sync.Retry = &tendv1.RetryPolicy{Limit: 2, Backoff: metav1.Duration{Duration: 500 * time.Millisecond}, MaxBackoff: metav1.Duration{Duration: 5 * time.Second}}
	}))
	a := e.waitApp(t, "app", "retry limit reached", 60*time.Second, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionReady)
		return c != nil && c.Reason == ReasonRetryLimit
	})
	var failed []tendv1.SyncRecord
	for _, h := range a.Status.History {
		if h.Result == "Failed" {
			failed = append(failed, h)
		}
	}
	if len(failed) != 3 { // the first attempt and two retries
		t.Fatalf("failed syncs = %d, want 3: %+v", len(failed), a.Status.History)
	}
	if !strings.Contains(failed[0].Message, "99999") || !strings.Contains(readyMessage(a), "99999") {
		t.Errorf("the server's message is not reported: %q / %q", failed[0].Message, readyMessage(a))
	}
	// The limit holds until a new revision or `tend sync`; a change of the
	// App's spec makes it reconcile, and its status (observedGeneration)
	// shows when it did. A sync it started would have been recorded in the
	// history before that status (an App's status waits for its sync).
	entries := len(a.Status.History)
	changed := e.app(t, "app")
	orig := changed.DeepCopy()
	changed.Spec.Sync.Interval = metav1.Duration{Duration: time.Hour}
	if err := e.c.Patch(context.Background(), changed, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
	gen := changed.Generation
	after := e.waitApp(t, "app", "the changed spec reconciled", 60*time.Second, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionReady)
		return a.Status.ObservedGeneration == gen && c != nil && c.ObservedGeneration == gen
	})
	if c := condition(after, tendv1.ConditionReady); c.Reason != ReasonRetryLimit || len(after.Status.History) != entries {
		t.Errorf("retried after the limit: Ready %s (%s), %d history entries, was %d", c.Reason, c.Message, len(after.Status.History), entries)
	}
}

// TestRetryBackoffGrows: the delay before each retry of a failed sync
// doubles from spec.sync.retry.backoff up to maxBackoff.
func TestRetryBackoffGrows(t *testing.T) {
	app := newApp("app", "repo", "app", "ns", func(a *tendv1.App) {
		a.Spec.Sync.Retry = &tendv1.RetryPolicy{Limit: 10, Backoff: metav1.Duration{Duration: 500 * time.Millisecond}, MaxBackoff: metav1.Duration{Duration: 5 * time.Second}}
	})
	var got []string
	for n := 1; n <= 6; n++ {
		got = append(got, backoff(app, n).String())
	}
	if got, want := strings.Join(got, " "), "500ms 1s 2s 4s 5s 5s"; got != want {
		t.Errorf("backoffs = %s, want %s", got, want)
	}
	if got, want := backoff(newApp("app", "repo", "app", "ns"), 1), 5*time.Second; got != want {
		t.Errorf("default first backoff = %s, want %s", got, want)
	}
}

// TestSourcePicksUpFixedCredentialsAtOnce: a Source whose credentials
// Secret holds the wrong password is Stalled; correcting the Secret fetches
// again at once, though the Source's interval is an hour and the Source
// itself did not change (its Secret is watched, refs.go).
func TestSourcePicksUpFixedCredentialsAtOnce(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	repo := testenv.NewGitRepo(t, map[string]string{"app/cm.yaml": configMapYAML("cfg", "v1")}, testenv.GitBasicAuth("tend", "s3cret"))
	src := gitSource("repo", repo.URL)
	src.Spec.Git.SecretRef = &tendv1.LocalObjectReference{Name: "git-creds"}
	src.Spec.Interval = metav1.Duration{Duration: time.Hour}
	e.create(t,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "git-creds"}, StringData: map[string]string{"username": "tend", "password": "wrong"}},
		src,
	)
	waitSource(t, e, "repo", "Stalled by the rejected credentials", func(s *tendv1.Source) bool {
		c := meta.FindStatusCondition(s.Status.Conditions, tendv1.ConditionStalled)
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == ReasonFetchFailed
	})

	var sec corev1.Secret
	if err := e.c.Get(ctx, types.NamespacedName{Namespace: e.Namespace, Name: "git-creds"}, &sec); err != nil {
		t.Fatal(err)
	}
	sec.Data["password"] = []byte("s3cret")
	if err := e.c.Update(ctx, &sec); err != nil {
		t.Fatal(err)
	}
	s := waitSource(t, e, "repo", "Ready once its Secret is corrected", func(s *tendv1.Source) bool {
		return meta.IsStatusConditionTrue(s.Status.Conditions, tendv1.ConditionReady)
	})
	if s.Status.Artifact == nil || s.Status.Artifact.Revision != repo.Head() {
		t.Errorf("artifact = %+v, want revision %s", s.Status.Artifact, repo.Head())
	}
	if c := meta.FindStatusCondition(s.Status.Conditions, tendv1.ConditionStalled); c != nil {
		t.Errorf("still Stalled: %+v", c)
	}
	if st := e.ctrl.Refs.Stats(); st.Watches != 1 {
		t.Errorf("refs = %+v, want the one Secret watched", st)
	}
	if err := e.c.Delete(ctx, s); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Secret's watch stopped once the Source was deleted", 30*time.Second, func() bool {
		return e.ctrl.Refs.Stats().Watches == 0
	})
}

// An Argo CD repository Secret serves as a Source's credentials as it is:
// its "sshPrivateKey" is the SSH key; without known_hosts the error says
// where Argo CD kept them.
func TestGitAuthReadsArgoCDRepositorySecrets(t *testing.T) {
	env := testenv.New(t)
	c, err := client.New(env.Config, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	src := gitSource("repo", "ssh://git@git.example.com/platform.git")
	src.Namespace = env.Namespace
	src.Spec.Git.SecretRef = &tendv1.LocalObjectReference{Name: "repo-platform"}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "repo-platform", Namespace: env.Namespace, Labels: map[string]string{"argocd.argoproj.io/secret-type": "repository"}},
		StringData: map[string]string{"type": "git", "url": "ssh://git@git.example.com/platform.git", "sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nkey\n"},
	}
	if err := c.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	if _, err := GitAuth(ctx, c, src); err == nil || !strings.Contains(err.Error(), "known_hosts") || !strings.Contains(err.Error(), "argocd-ssh-known-hosts-cm") {
		t.Errorf("without known_hosts: %v", err)
	}
	sec.StringData = map[string]string{"known_hosts": "git.example.com ssh-ed25519 AAAA\n"}
	if err := c.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	a, err := GitAuth(ctx, c, src)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(a.SSHPrivateKey), "OPENSSH PRIVATE KEY") || len(a.SSHKnownHosts) == 0 {
		t.Errorf("auth from the Argo CD Secret: key %d bytes, known_hosts %d bytes", len(a.SSHPrivateKey), len(a.SSHKnownHosts))
	}
}
