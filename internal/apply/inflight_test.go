package apply_test

import (
	"context"
	"errors"
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
	// Applies are held until 3 are in flight at once: the bound is
	// reached, and what a broken bound lets through piles up meanwhile.
	holdApplies(t, f, env, func(*http.Request) (done func(), open bool) {
		n := now.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		return func() { now.Add(-1) }, n >= 3
	})
	f.engine.Concurrency = 8
	f.engine.MaxInflight = 3

	syncApps(t, f, env, 4, 6, nil)
	if got := peak.Load(); got != 3 {
		t.Errorf("peak applies in flight = %d, want MaxInflight (3) (4 Apps x 6 objects, 8 per step)", got)
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
	// Applies are held until 2 Apps apply at once (see
	// TestMaxInflightBoundsAppliesAcrossSyncs).
	holdApplies(t, f, env, func(r *http.Request) (done func(), open bool) {
		app, _, _ := strings.Cut(path.Base(r.URL.Path), "-") // objects are named <app>-cm<i>
		mu.Lock()
		inflight[app]++
		peak = max(peak, len(inflight))
		open = len(inflight) >= 2
		mu.Unlock()
		return func() {
			mu.Lock()
			if inflight[app]--; inflight[app] == 0 {
				delete(inflight, app)
			}
			mu.Unlock()
		}, open
	})
	f.engine.MaxSyncs = 2

	var started atomic.Int32
	syncApps(t, f, env, 6, 3, func() { started.Add(1) })
	if got := started.Load(); got != 6 {
		t.Errorf("Started called %d times for 6 syncs", got)
	}
	if peak != 2 {
		t.Errorf("Apps applying at once: %d, want MaxSyncs (2) (6 Apps x 3 objects)", peak)
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
// others from syncing, even with a single turn. The waiting sync would
// wait for ever; the quick one must finish while it does.
func TestWaitingSyncGivesItsTurnUp(t *testing.T) {
	env := testenv.New(t)
	f := newEngineFixture(t, env, &apply.SecretStore{Client: env.Clientset})
	f.engine.MaxSyncs = 1

	slowCtx, stopSlow := context.WithTimeout(context.Background(), 5*time.Minute)
	defer stopSlow()
	slow := make(chan error, 1)
	go func() {
		_, err := f.engine.Sync(slowCtx, apply.Request{
			App: apply.AppRef{Namespace: env.Namespace, Name: "slow"}, Objects: f.objs(t, configMap("slow-cm", "v", "")),
			Health: neverHealthy("slow-cm"), WaitHealthy: true, HealthTimeout: time.Hour,
		})
		slow <- err
	}()
	// Let the slow sync apply and start waiting.
	waitFor(t, "the slow App's ConfigMap applied", func() bool {
		_, err := env.Clientset.CoreV1().ConfigMaps(env.Namespace).Get(slowCtx, "slow-cm", metav1.GetOptions{})
		return err == nil
	})

	// Without a turn, the quick sync would wait as long as the slow one
	// (an hour); the minute is only how long the test gives up after.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := f.engine.Sync(ctx, apply.Request{
		App: apply.AppRef{Namespace: env.Namespace, Name: "quick"}, Objects: f.objs(t, configMap("quick-cm", "v", "")),
		HealthTimeout: time.Minute,
	}); err != nil {
		t.Fatalf("quick sync while the slow one waits for health: %v", err)
	}
	// The slow sync was still waiting: only the test ends it.
	stopSlow()
	err := <-slow
	var se *apply.SyncError
	if !errors.As(err, &se) || !errors.Is(err, context.Canceled) {
		t.Errorf("slow sync: %v, want it stopped in its step (waiting for slow-cm's health)", err)
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

// holdApplies makes f's engine send its applies (PATCH) through a
// transport that calls seen before each and calls what seen returned once
// it is answered. Applies are held until seen reports open; from then on,
// every apply goes through. A test that ends has seen its condition met.
func holdApplies(t *testing.T, f *fixture, env *testenv.Env, seen func(*http.Request) (done func(), open bool)) {
	t.Helper()
	opened := make(chan struct{})
	var once sync.Once
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method != http.MethodPatch {
				return rt.RoundTrip(r)
			}
			done, open := seen(r)
			defer done()
			if open {
				once.Do(func() { close(opened) })
			}
			select {
			case <-opened:
			case <-r.Context().Done():
				return nil, r.Context().Err()
			}
			return rt.RoundTrip(r)
		})
	})
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.engine.Dynamic = dyn
}
