package apply_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/testenv"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// TestMaxInflightBoundsAppliesAcrossSyncs: however many Apps sync at once,
// no more than MaxInflight applies are in flight to the cluster.
func TestMaxInflightBoundsAppliesAcrossSyncs(t *testing.T) {
	env := testenv.New(t)
	f := newEngineFixture(t, env, &apply.SecretStore{Client: env.Clientset})
	var now, peak atomic.Int32
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method != http.MethodPatch {
				return rt.RoundTrip(r)
			}
			n := now.Add(1)
			defer now.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(20 * time.Millisecond) // long enough to overlap
			return rt.RoundTrip(r)
		})
	})
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.engine.Dynamic = dyn
	f.engine.Concurrency = 8
	f.engine.MaxInflight = 3

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for a := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var docs []string
			for i := range 6 {
				docs = append(docs, configMap(fmt.Sprintf("app%d-cm%d", a, i), "v", ""))
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := f.engine.Sync(ctx, apply.Request{App: apply.AppRef{Namespace: env.Namespace, Name: fmt.Sprintf("app%d", a)}, Objects: f.objs(t, docs...), HealthTimeout: time.Minute})
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
	if got := peak.Load(); got > 3 || got < 2 {
		t.Errorf("peak applies in flight = %d, want at most MaxInflight (3) and more than one (4 Apps x 6 objects, 8 per step)", got)
	}
}
