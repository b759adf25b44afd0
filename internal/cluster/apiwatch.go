package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// What can change the set of APIs a cluster serves: a CustomResourceDefinition
// (its served versions) and an APIService (an aggregated API, and every
// built-in group version, which the apiserver registers as one).
var apiKinds = []schema.GroupVersionResource{
	{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"},
	{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"},
}

// apiWatchSyncTimeout bounds how long the first HelmCluster call waits for
// the watches' first lists.
const apiWatchSyncTimeout = 30 * time.Second

// apiWatch tells when the set of APIs a cluster serves may have changed,
// from metadata-only watches of CustomResourceDefinitions and APIServices,
// so that Helm's capabilities are discovered again only then: an unchanged
// cluster costs no discovery request. Every change of one of these objects
// (created, deleted, or updated: a CRD's served versions are in its spec,
// its Established condition in its status), and every failure of a watch
// (an apiserver restarting, say for an upgrade, which may change its
// version), counts as a change.
type apiWatch struct {
	changes atomic.Int64
	started atomic.Bool // the first lists are done; later failures are logged here
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu        sync.Mutex
	forbidden error // the watches may not list: the caller polls instead
	firstErr  error // the first failure before the first lists
}

// errAPIWatchForbidden marks a start that failed because the kinds may not
// be listed (or are not served): trying again will not help.
var errAPIWatchForbidden = errors.New("may not list and watch the cluster's API definitions")

// startAPIWatch starts the watches and waits for their first lists. It
// returns an error, and no watch, when they cannot list: one satisfying
// errors.Is(err, errAPIWatchForbidden) when RBAC forbids it or the cluster
// does not serve these kinds, another when the cluster did not answer. The
// caller falls back to rediscovering periodically.
func startAPIWatch(cfg *rest.Config, log *slog.Logger) (*apiWatch, error) {
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &apiWatch{cancel: cancel}
	failed := make(chan struct{})
	var failOnce sync.Once
	var synced []cache.InformerSynced
	for _, gvr := range apiKinds {
		inf := metadatainformer.NewFilteredMetadataInformer(mc, gvr, "", 0, nil, nil).Informer()
		// Only names and versions matter: kubectl's last-applied
		// annotation can hold a whole CRD.
		_ = inf.SetTransform(func(o any) (any, error) {
			if m, ok := o.(*metav1.PartialObjectMetadata); ok {
				m.Annotations, m.ManagedFields, m.Labels, m.OwnerReferences = nil, nil, nil, nil
			}
			return o, nil
		})
		_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
			w.changes.Add(1) // events may have been missed
			if !w.started.Load() {
				// Before the first lists, any failure ends the wait:
				// a render should not wait on an unreachable cluster.
				w.mu.Lock()
				if w.firstErr == nil {
					w.firstErr = fmt.Errorf("list and watch %s: %w", gvr.GroupResource(), err)
				}
				w.mu.Unlock()
				failOnce.Do(func() { close(failed) })
			}
			if apierrors.IsForbidden(err) || apierrors.IsNotFound(err) {
				w.mu.Lock()
				first := w.forbidden == nil
				if first {
					w.forbidden = fmt.Errorf("list and watch %s: %w", gvr.GroupResource(), err)
				}
				w.mu.Unlock()
				if first && w.started.Load() {
					log.Warn("cannot watch the cluster's API definitions; Helm capabilities are discovered again every few minutes instead", "resource", gvr.GroupResource().String(), "error", err)
				}
			}
		})
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(any) { w.changes.Add(1) },
			UpdateFunc: func(old, cur any) {
				o, ok1 := old.(*metav1.PartialObjectMetadata)
				n, ok2 := cur.(*metav1.PartialObjectMetadata)
				if !ok1 || !ok2 || o.ResourceVersion != n.ResourceVersion {
					w.changes.Add(1)
				}
			},
			DeleteFunc: func(any) { w.changes.Add(1) },
		}); err != nil {
			cancel()
			return nil, err
		}
		synced = append(synced, inf.HasSynced)
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			inf.RunWithContext(ctx)
		}()
	}
	stop, waited := make(chan struct{}), make(chan struct{})
	defer close(waited)
	go func() {
		t := time.NewTimer(apiWatchSyncTimeout)
		defer t.Stop()
		select {
		case <-failed:
		case <-t.C:
		case <-waited:
		}
		close(stop)
	}()
	if !cache.WaitForCacheSync(stop, synced...) {
		w.stop()
		if err := w.failure(); err != nil {
			return nil, fmt.Errorf("%w: %w", errAPIWatchForbidden, err)
		}
		w.mu.Lock()
		err := w.firstErr
		w.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return nil, errors.New("the watches of CustomResourceDefinitions and APIServices did not list within " + apiWatchSyncTimeout.String())
	}
	w.started.Store(true)
	return w, nil
}

// count is the number of changes seen so far: a different count means the
// cluster's APIs may have changed.
func (w *apiWatch) count() int64 { return w.changes.Load() }

// failure is why the watches cannot list, if they cannot.
func (w *apiWatch) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.forbidden
}

// stop ends the watches and waits for them.
func (w *apiWatch) stop() {
	w.cancel()
	w.wg.Wait()
}
