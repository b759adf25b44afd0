package controller

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
)

func TestManualSyncWaitsForRequest(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	repo := newCtlRepo(t)
	rev := repo.commit("cm", map[string]string{"app/cm.yaml": configMapYAML("manual", "x")})
	e.create(t, gitSource("repo", repo.URL), newApp("app", "repo", "app", e.Namespace, func(a *tendv1.App) {
		a.Spec.Sync.Manual = true
	}))
	a := e.waitApp(t, "app", "OutOfSync, waiting for tend sync", 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncOutOfSync && strings.Contains(readyMessage(a), "tend sync app")
	})
	if len(a.Status.OutOfSync) != 1 || a.Status.OutOfSync[0].Name != "manual" {
		t.Errorf("outOfSync = %+v", a.Status.OutOfSync)
	}
	if _, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "manual", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("manual App applied without a request: %v", err)
	}
	// `tend sync` sets the request annotation.
	a.Annotations = map[string]string{AnnotationRequestedAt: time.Now().UTC().Format(time.RFC3339Nano)}
	if err := e.c.Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	a = e.waitApp(t, "app", "synced on request", 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncSynced && a.Status.Revision == rev && a.Status.LastHandledRequest != ""
	})
	if a.Status.History[0].Message != "requested sync" {
		t.Errorf("history message = %q", a.Status.History[0].Message)
	}
}

func TestSlowAppDoesNotBlockOthers(t *testing.T) {
	// One worker and one sync turn: the fast App syncs only if the slow
	// App's sync holds neither while it waits for health, and only once
	// that sync has given its turn up, that is, after it applied what it
	// applies before waiting.
	e := startControllerWith(t, func(o *Options) { o.AppWorkers, o.MaxConcurrentSyncs = 1, 1 })
	ctx := context.Background()
	repo := newCtlRepo(t)
	repo.commit("apps", map[string]string{
		// slow: wave 0 never becomes healthy, so its sync waits on health.
		"slow/deploy.yaml": deploymentYAML("slow", "slow:1", "tend.dev/kwok-pod: not-ready"),
		"slow/later.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: slow-later\n  annotations: {tend.dev/wave: \"1\"}\ndata: {a: b}\n",
		"fast/cm.yaml":     configMapYAML("fast", "x"),
	})
	e.create(t, gitSource("repo", repo.URL), newApp("slow", "repo", "slow", e.Namespace))
	slow := e.waitApp(t, "slow", "slow App syncing", 60*time.Second, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionReconciling)
		return c != nil && c.Status == metav1.ConditionTrue
	})
	// A sync that runs on gets the status it started from written with
	// the syncing condition (a short one writes only its outcome).
	if slow.Status.Sync != tendv1.SyncOutOfSync || len(slow.Status.OutOfSync) != 2 {
		t.Errorf("syncing App: sync %q, outOfSync %v; want OutOfSync with its 2 objects", slow.Status.Sync, slow.Status.OutOfSync)
	}
	e.create(t, newApp("fast", "repo", "fast", e.Namespace))
	e.waitApp(t, "fast", "fast App synced while slow waits", 30*time.Second, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncSynced && a.Status.Health == "Healthy"
	})
	if _, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "slow-later", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("slow App's wave 1 applied although wave 0 is not healthy: %v", err)
	}
	if c := condition(e.app(t, "slow"), tendv1.ConditionReconciling); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("the slow App's sync ended (Reconciling %v); it should still wait for wave 0", c)
	}
}

func TestMetricsAndProbes(t *testing.T) {
	metrics, probes := freeAddr(t), freeAddr(t)
	e := startControllerWith(t, func(o *Options) {
		o.MetricsAddr, o.ProbeAddr = metrics, probes
		o.Version, o.Commit = "v9.8.7-metrics", "c0ffee"
	})
	repo := newCtlRepo(t)
	repo.commit("cm", map[string]string{"app/cm.yaml": configMapYAML("m", "x")})
	e.create(t, gitSource("repo", repo.URL), newApp("app", "repo", "app", e.Namespace))
	e.waitApp(t, "app", "synced", 60*time.Second, func(a *tendv1.App) bool { return a.Status.Sync == tendv1.SyncSynced && a.Status.Health == "Healthy" })
	for _, path := range []string{"/healthz", "/readyz"} {
		if body := httpGet(t, "http://"+probes+path); !strings.Contains(body, "ok") {
			t.Errorf("%s answered %q", path, body)
		}
	}
	var body string
	eventually(t, "metrics", 20*time.Second, func() bool {
		body = httpGet(t, "http://"+metrics+"/metrics")
		return strings.Contains(body, `tend_apps{health="Healthy",sync="Synced"}`)
	})
	for _, want := range []string{
		`tend_syncs_total{result="Succeeded"}`,
		"tend_sync_duration_seconds_bucket",
		`tend_source_fetch_duration_seconds_count{result="Succeeded"}`,
		"tend_render_duration_seconds_count",
		`tend_api_requests_total{cluster="in-cluster",verb="PATCH"}`,
		`tend_live_objects{cluster="in-cluster",group="",kind="ConfigMap"}`,
		`controller_runtime_reconcile_time_seconds_count{controller="app"}`,
		`tend_build_info{commit="c0ffee",goversion="` + runtime.Version() + `",version="v9.8.7-metrics"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	var body string
	eventually(t, "GET "+url, 20*time.Second, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = fmt.Sprintf("%d %s", resp.StatusCode, b)
		return resp.StatusCode == http.StatusOK
	})
	return body
}

// TestRestartKeepsDriftReportedWithoutSelfHeal: a hand edit made while the
// controller is down is reported after the restart, not undone, when the
// App does not self-heal.
func TestRestartKeepsDriftReportedWithoutSelfHeal(t *testing.T) {
	env := testenv.New(t)
	testenv.InstallCRDs(t, env.Config)
	ctx := context.Background()
	c, err := client.New(env.Config, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	start := func() func() {
		cctx, cancel := context.WithCancel(context.Background())
		ctl, err := New(cctx, Options{Config: env.Config, DataDir: t.TempDir(), MetricsAddr: "0", ProbeAddr: "0", Namespaces: []string{env.Namespace}})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- ctl.Start(cctx) }()
		return func() { cancel(); <-done }
	}
	e := &ctlEnv{Env: env, c: c}
	repo := newCtlRepo(t)
	repo.commit("cms", map[string]string{"app/cm.yaml": configMapYAML("cfg", "from-git"), "app/other.yaml": configMapYAML("other", "from-git")})
	stop := start()
	e.create(t, gitSource("repo", repo.URL), newApp("app", "repo", "app", env.Namespace, func(a *tendv1.App) {
		a.Spec.Sync.SelfHeal = false
		a.Spec.Sync.Prune = false
	}))
	e.waitApp(t, "app", "synced", 60*time.Second, func(a *tendv1.App) bool { return a.Status.Sync == tendv1.SyncSynced && a.Status.Health == "Healthy" })
	stop()

	edit := func(name string) {
		t.Helper()
		patch := []byte(`{"data":{"value":"edited by hand"}}`)
		if _, err := env.Clientset.CoreV1().ConfigMaps(env.Namespace).Patch(ctx, name, "application/merge-patch+json", patch, metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
			t.Fatal(err)
		}
	}
	// drifted: the App reports exactly these ConfigMaps out of sync, left
	// alone for want of selfHeal, and is not syncing.
	drifted := func(names ...string) func(*tendv1.App) bool {
		return func(a *tendv1.App) bool {
			if c := condition(a, tendv1.ConditionReconciling); c != nil && c.Status == metav1.ConditionTrue {
				return false
			}
			if a.Status.Sync != tendv1.SyncOutOfSync || !strings.Contains(readyMessage(a), "selfHeal") || len(a.Status.OutOfSync) != len(names) {
				return false
			}
			for _, r := range a.Status.OutOfSync {
				if r.Kind != "ConfigMap" || !slices.Contains(names, r.Name) {
					return false
				}
			}
			return true
		}
	}
	edit("cfg")
	stop = start()
	defer stop()
	e.waitApp(t, "app", "drift of cfg reported after restart", 60*time.Second, drifted("cfg"))
	// A second hand edit, after the restart: once it is reported too, the
	// controller has reconciled the App again since it reported cfg, with
	// no sync running (a sync it had started would have ended first: an
	// App's reconciles wait for its sync).
	edit("other")
	e.waitApp(t, "app", "drift of cfg and other reported", 60*time.Second, drifted("cfg", "other"))
	for _, name := range []string{"cfg", "other"} {
		cm, err := env.Clientset.CoreV1().ConfigMaps(env.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil || cm.Data["value"] != "edited by hand" {
			t.Fatalf("hand edit of %s undone without selfHeal after a restart: %v %v", name, cm.Data, err)
		}
	}
}
