package apply_test

import (
	"context"
	"fmt"
	"net/http"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/health"
	"github.com/tend-gitops/tend/internal/testenv"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// TestMaxInflightBoundsAppliesAcrossSyncs: however many Apps sync at once,
// no more than MaxInflight applies are in flight to the cluster.
func TestMaxInflightBoundsAppliesAcrossSyncs(t *testing.T) {
	env := testenv.New(t)
	f := newEngineFixture(t, env, &apply.SecretStore{Client: env.Clientset})
	var now, peak atomic.Int32
	slowApplies(t, f, env, func(*http.Request) (done func()) {
		n := now.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		return func() { now.Add(-1) }
	})
	f.engine.Concurrency = 8
	f.engine.MaxInflight = 3

	syncApps(t, f, env, 4, 6, nil)
	if got := peak.Load(); got > 3 || got < 2 {
		t.Errorf("peak applies in flight = %d, want at most MaxInflight (3) and more than one (4 Apps x 6 objects, 8 per step)", got)
	}
}

// TestMaxSyncsBoundsSyncsAtOnce: however many Apps sync at once, no more
// than MaxSyncs of them apply at the same time.
func TestMaxSyncsBoundsSyncsAtOnce(t *testing.T) {
	env := testenv.New(t)
	f := newEngineFixture(t, env, &apply.SecretStore{Client: env.Clientset})
	var mu sync.Mutex
	inflight := map[string]int{} // App -> applies in flight
	peak := 0
	slowApplies(t, f, env, func(r *http.Request) (done func()) {
		app, _, _ := strings.Cut(path.Base(r.URL.Path), "-") // objects are named <app>-cm<i>
		mu.Lock()
		inflight[app]++
		peak = max(peak, len(inflight))
		mu.Unlock()
		return func() {
			mu.Lock()
			if inflight[app]--; inflight[app] == 0 {
				delete(inflight, app)
			}
			mu.Unlock()
		}
	})
	f.engine.MaxSyncs = 2

	var started atomic.Int32
	syncApps(t, f, env, 6, 3, func() { started.Add(1) })
	if got := started.Load(); got != 6 {
		t.Errorf("Started called %d times for 6 syncs", got)
	}
	if peak > 2 || peak < 2 {
		t.Errorf("Apps applying at once: %d, want MaxSyncs (2) and more than one (6 Apps x 3 objects)", peak)
	}
}

// neverHealthy reports one named object Progressing for ever.
type neverHealthy string

func (n neverHealthy) Check(obj *unstructured.Unstructured) health.Result {
	if obj.GetName() == string(n) {
		return health.Result{State: health.Progressing, Message: "waiting for ever"}
	}
	return health.Result{State: health.Healthy}
}

// TestWaitingSyncGivesItsTurnUp: a sync waiting for health does not keep
// others from syncing, even with a single turn.
func TestWaitingSyncGivesItsTurnUp(t *testing.T) {
	env := testenv.New(t)
	f := newEngineFixture(t, env, &apply.SecretStore{Client: env.Clientset})
	f.engine.MaxSyncs = 1

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	slow := make(chan error, 1)
	go func() {
		_, err := f.engine.Sync(ctx, apply.Request{
			App: apply.AppRef{Namespace: env.Namespace, Name: "slow"}, Objects: f.objs(t, configMap("slow-cm", "v", "")),
			Health: neverHealthy("slow-cm"), WaitHealthy: true, HealthTimeout: 20 * time.Second,
		})
		slow <- err
	}()
	// Let the slow sync apply and start waiting.
	waitFor(t, "the slow App's ConfigMap applied", func() bool {
		_, err := env.Clientset.CoreV1().ConfigMaps(env.Namespace).Get(ctx, "slow-cm", metav1.GetOptions{})
		return err == nil
	})

	start := time.Now()
	if _, err := f.engine.Sync(ctx, apply.Request{
		App: apply.AppRef{Namespace: env.Namespace, Name: "quick"}, Objects: f.objs(t, configMap("quick-cm", "v", "")),
		HealthTimeout: time.Minute,
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-slow:
		t.Fatalf("the slow sync ended before the quick one (%v); it should still be waiting for health", err)
	default:
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the quick sync took %s while the other waited for health", took)
	}
	if err := <-slow; err == nil || !strings.Contains(err.Error(), "not healthy after") {
		t.Errorf("slow sync: %v, want its health timeout", err)
	}
}

// syncApps syncs apps Apps of objects ConfigMaps each (app<a>-cm<i>) at
// once and fails t if any sync fails. started, when set, is each
// Request's Started.
func syncApps(t *testing.T, f *fixture, env *testenv.Env, apps, objects int, started func()) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, apps)
	for a := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var docs []string
			for i := range objects {
				docs = append(docs, configMap(fmt.Sprintf("app%d-cm%d", a, i), "v", ""))
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := f.engine.Sync(ctx, apply.Request{
				App: apply.AppRef{Namespace: env.Namespace, Name: fmt.Sprintf("app%d", a)}, Objects: f.objs(t, docs...),
				HealthTimeout: time.Minute, Started: started,
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// slowApplies makes f's engine send its applies (PATCH) through a
// transport that calls seen before each, holds it 20 ms so that applies
// overlap, and calls what seen returned once it is answered.
func slowApplies(t *testing.T, f *fixture, env *testenv.Env, seen func(*http.Request) (done func())) {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method != http.MethodPatch {
				return rt.RoundTrip(r)
			}
			defer seen(r)()
			time.Sleep(20 * time.Millisecond)
			return rt.RoundTrip(r)
		})
	})
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.engine.Dynamic = dyn
}
