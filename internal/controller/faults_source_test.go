package controller

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
)

// Faults of the git server an App's Source fetches from (docs/reliability.md):
// while the server is down, slow or answers garbage, the App keeps its last
// good state, the Source's Ready condition says why, and the next commit is
// applied once the server is healthy again, with no help.

// gitFront stands between tend and a test repository's server, on an
// address of its own that stays the same while it is stopped and started,
// so that "down" is a refused connection and recovery needs no change of
// the Source. While garbage is set it answers every request 200 with junk.
type gitFront struct {
	t       *testing.T
	addr    string
	target  *url.URL
	srv     *http.Server
	garbage atomic.Bool
	// URL is the repository's clone URL through the front.
	URL string
}

func newGitFront(t *testing.T, repo *testenv.GitRepo) *gitFront {
	t.Helper()
	target, err := url.Parse(repo.Server.URL)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &gitFront{t: t, addr: l.Addr().String(), target: target}
	f.URL = "http://" + f.addr + "/repo.git"
	f.serve(l)
	t.Cleanup(func() { _ = f.srv.Close() })
	return f
}

func (f *gitFront) serve(l net.Listener) {
	proxy := httputil.NewSingleHostReverseProxy(f.target)
	f.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.garbage.Load() {
			w.Header().Set("Content-Type", "application/x-git-upload-pack-advertisement")
			_, _ = w.Write([]byte("\x00\xff<html>junk \x13\x37 not a git server</html>\n"))
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = f.srv.Serve(l) }()
}

// stop closes the listener and every connection: connections are refused.
func (f *gitFront) stop() {
	f.t.Helper()
	if err := f.srv.Close(); err != nil {
		f.t.Fatal(err)
	}
}

// start listens on the same address again.
func (f *gitFront) start() {
	f.t.Helper()
	l, err := net.Listen("tcp", f.addr)
	if err != nil {
		f.t.Fatalf("listen on %s again: %v", f.addr, err)
	}
	f.serve(l)
}

// gitFaultFixture is an App "app" synced from Source "repo" at rev1, which
// holds the ConfigMap cfg with value v1.
type gitFaultFixture struct {
	e    *ctlEnv
	repo *ctlRepo
	rev1 string
	// rv is cfg's resourceVersion at rev1.
	rv string
}

func newGitFaultFixture(t *testing.T, repo *testenv.GitRepo, url string, timeout time.Duration) *gitFaultFixture {
	t.Helper()
	e := startController(t)
	f := &gitFaultFixture{e: e, repo: &ctlRepo{GitRepo: repo, srv: repo.Server, t: t}}
	f.rev1 = f.repo.commit("cfg v1", map[string]string{"app/cm.yaml": configMapYAML("cfg", "v1")})
	src := gitSource("repo", url)
	src.Spec.Timeout = metav1.Duration{Duration: timeout}
	e.create(t, src, newApp("app", "repo", "app", e.Namespace))
	e.waitApp(t, "app", "synced at "+f.rev1, 90*time.Second, func(a *tendv1.App) bool {
		return a.Status.Revision == f.rev1 && a.Status.Sync == tendv1.SyncSynced
	})
	f.rv = f.configMap(t)
	return f
}

// configMap returns cfg's resourceVersion, failing unless its value is v1
// (what the last good revision holds).
func (f *gitFaultFixture) configMap(t *testing.T) string {
	t.Helper()
	cm, err := f.e.Clientset.CoreV1().ConfigMaps(f.e.Namespace).Get(context.Background(), "cfg", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cm.Data["value"], "v1"; got != want {
		t.Fatalf("ConfigMap cfg value = %q, want %q (the last good revision's)", got, want)
	}
	return cm.ResourceVersion
}

// failing waits until the Source's Ready condition is False for
// FetchFailed with a message holding each of want, then checks that the
// App, the Source's artifact and the ConfigMap are still at rev1.
func (f *gitFaultFixture) failing(t *testing.T, want ...string) *metav1.Condition {
	t.Helper()
	src := waitSource(t, f.e, "repo", "Ready False for FetchFailed", func(s *tendv1.Source) bool {
		c := meta.FindStatusCondition(s.Status.Conditions, tendv1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == ReasonFetchFailed
	})
	ready := meta.FindStatusCondition(src.Status.Conditions, tendv1.ConditionReady)
	for _, w := range append(want, "still serving revision "+f.rev1) {
		if !strings.Contains(ready.Message, w) {
			t.Errorf("Source Ready message %q does not say %q", ready.Message, w)
		}
	}
	if src.Status.Artifact == nil || src.Status.Artifact.Revision != f.rev1 {
		t.Errorf("Source artifact = %+v, want revision %s kept", src.Status.Artifact, f.rev1)
	}
	if a := f.e.app(t, "app"); a.Status.Revision != f.rev1 || a.Status.Sync != tendv1.SyncSynced {
		t.Errorf("App moved while its Source failed: revision %s, sync %s; want %s, Synced", a.Status.Revision, a.Status.Sync, f.rev1)
	}
	if rv := f.configMap(t); rv != f.rv {
		t.Errorf("ConfigMap cfg was written while the Source failed: resourceVersion %s, was %s", rv, f.rv)
	}
	return ready
}

// recovers waits until the App applied rev2, with cfg at v2, and the
// Source is Ready again.
func (f *gitFaultFixture) recovers(t *testing.T, rev2 string) {
	t.Helper()
	f.e.waitApp(t, "app", "synced at "+rev2+" after the server recovered", 90*time.Second, func(a *tendv1.App) bool {
		return a.Status.Revision == rev2 && a.Status.Sync == tendv1.SyncSynced
	})
	cm, err := f.e.Clientset.CoreV1().ConfigMaps(f.e.Namespace).Get(context.Background(), "cfg", metav1.GetOptions{})
	if err != nil || cm.Data["value"] != "v2" {
		t.Fatalf("ConfigMap cfg after recovery: %v %v, want value v2", cm.Data, err)
	}
	waitSource(t, f.e, "repo", "Ready again", func(s *tendv1.Source) bool {
		return meta.IsStatusConditionTrue(s.Status.Conditions, tendv1.ConditionReady)
	})
}

// TestGitServerDownKeepsLastGoodState: connections to the git server are
// refused; a commit pushed meanwhile is applied once it listens again.
func TestGitServerDownKeepsLastGoodState(t *testing.T) {
	repo := testenv.NewGitRepo(t, nil)
	front := newGitFront(t, repo)
	f := newGitFaultFixture(t, repo, front.URL, 30*time.Second)

	front.stop()
	rev2 := f.repo.commit("cfg v2", map[string]string{"app/cm.yaml": configMapYAML("cfg", "v2")})
	f.failing(t, "cannot reach "+front.addr, "Couldn't connect to server")
	if w := warnings(t, f.e, "Source", "repo"); len(w) == 0 || !strings.Contains(w[0], ReasonFetchFailed+": cannot reach "+front.addr) {
		t.Errorf("no FetchFailed warning event naming the host: %q", w)
	}

	front.start()
	f.recovers(t, rev2)
}

// TestGitServerSlowTimesOut: a server that takes longer per request than
// the Source's timeout fails the fetch with a message saying so; the
// fetches in flight end with the timeout (the server sees its requests
// cancelled), and once the server is fast again the next commit is
// applied.
func TestGitServerSlowTimesOut(t *testing.T) {
	var slow atomic.Bool
	var cancelled atomic.Int64
	repo := testenv.NewGitRepo(t, nil, testenv.GitRequestHook(func(r *http.Request) {
		if !slow.Load() {
			return
		}
		select {
		case <-time.After(20 * time.Second):
		case <-r.Context().Done():
			cancelled.Add(1)
		}
	}))
	f := newGitFaultFixture(t, repo, repo.URL, 2*time.Second)

	slow.Store(true)
	rev2 := f.repo.commit("cfg v2", map[string]string{"app/cm.yaml": configMapYAML("cfg", "v2")})
	f.failing(t, "timed out after 2s", "the server did not answer in time")
	if cancelled.Load() == 0 {
		t.Error("the server saw no request given up: a timed-out fetch left its request hanging")
	}

	slow.Store(false)
	f.recovers(t, rev2)
}

// TestGitServerGarbageIsReported: a server (or a proxy in front of it)
// that answers 200 with bytes that are not git's protocol fails the fetch
// with a message that says so, in plain text: no junk bytes in the
// condition.
func TestGitServerGarbageIsReported(t *testing.T) {
	repo := testenv.NewGitRepo(t, nil)
	front := newGitFront(t, repo)
	f := newGitFaultFixture(t, repo, front.URL, 30*time.Second)

	front.garbage.Store(true)
	rev2 := f.repo.commit("cfg v2", map[string]string{"app/cm.yaml": configMapYAML("cfg", "v2")})
	ready := f.failing(t, front.addr+" did not answer as a git server")
	if strings.ContainsAny(ready.Message, "\x00\x13\ufffd") {
		t.Errorf("Ready message carries the server's junk bytes: %q", ready.Message)
	}
	src := waitSource(t, f.e, "repo", "not Stalled", func(*tendv1.Source) bool { return true })
	if meta.IsStatusConditionTrue(src.Status.Conditions, tendv1.ConditionStalled) {
		t.Errorf("Source Stalled for a server fault, which retrying may fix: %+v", src.Status.Conditions)
	}

	front.garbage.Store(false)
	f.recovers(t, rev2)
}

// TestGitForcePushAppliesRewrittenHistory: the branch is force-pushed to
// a history without the commit the App last applied. tend follows the
// branch: what only the dropped commit added is pruned and what it changed
// goes back, though the dropped commit is gone from the server.
func TestGitForcePushAppliesRewrittenHistory(t *testing.T) {
	repo := testenv.NewGitRepo(t, nil)
	f := newGitFaultFixture(t, repo, repo.URL, 30*time.Second)
	ctx := context.Background()

	dropped := f.repo.commit("cfg v3 and extra", map[string]string{
		"app/cm.yaml":    configMapYAML("cfg", "v3"),
		"app/extra.yaml": configMapYAML("extra", "x"),
	})
	f.e.waitApp(t, "app", "synced at the commit to be dropped", 90*time.Second, func(a *tendv1.App) bool {
		return a.Status.Revision == dropped && a.Status.Sync == tendv1.SyncSynced
	})

	f.repo.Git("reset", "-q", "--hard", f.rev1)
	rev2 := f.repo.commit("cfg v2", map[string]string{"app/cm.yaml": configMapYAML("cfg", "v2")})
	// The dropped commit leaves the served repository altogether.
	f.repo.Git("-C", f.repo.BareDir, "reflog", "expire", "--expire=now", "--all")
	f.repo.Git("-C", f.repo.BareDir, "gc", "-q", "--prune=now")
	f.recovers(t, rev2)
	testenv.Eventually(t, "extra (only in the dropped commit) pruned", 30*time.Second, func() bool {
		_, err := f.e.Clientset.CoreV1().ConfigMaps(f.e.Namespace).Get(ctx, "extra", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	a := f.e.app(t, "app")
	if len(a.Status.History) == 0 || a.Status.History[0].Revision != rev2 || a.Status.History[0].Result != "Succeeded" {
		t.Errorf("latest history entry is not a successful sync of %s: %+v", rev2, a.Status.History)
	}
}
