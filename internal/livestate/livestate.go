// Package livestate owns tend's view of a cluster: a watch-based cache of the
// objects of only the kinds some App manages, never of every kind the cluster
// serves.
//
// Steady state must cost nothing (no polling, no dry-run), so the engine
// learns about drift from watch events delivered to a Handler, and detects it
// by comparing ownership fingerprints (see Fingerprint) instead of diffing
// whole objects. Memory matters as much: tend aims to stay under 150 MiB with
// 10,000 managed objects, so every object is trimmed before it is stored:
//
//   - managedFields entries of managers other than tend (and Options.KeepManagers)
//     are dropped, and tend's own apply entry keeps only the fingerprint of
//     its field set, not the set;
//   - the kubectl.kubernetes.io/last-applied-configuration annotation is dropped;
//   - every value of a Secret's data and stringData is replaced by a keyed
//     hash of the value (see HashSecretValue). Secret plaintext never stays in
//     the cache; the engine compares hashes;
//   - the trimmed object is stored encoded as JSON, not as nested maps, and
//     decoded on each read (Get, List, a Handler call).
//
// Status is kept: health checks need it. Measured on the local control plane
// with ConfigMaps, Secrets and Deployments in equal numbers, trimming takes a
// cached object from about 10.4 KB (a plain dynamic informer) to about 4.5 KB
// as maps. Stored as JSON, a Deployment, ConfigMap, Service and Secret as the
// API server returns them take 0.8 KB each on average instead of 3.6 KB as
// trimmed maps (see packed).
//
// Objects returned by Get and List may be shared with the cache and with
// other callers (an observed object is). Callers must not modify them;
// DeepCopy first.
package livestate

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// DefaultFieldManager is the field manager tend applies with.
const DefaultFieldManager = "tend"

// OwnerAnnotation is set on every object tend applies, to
// "<appNamespace>/<appName>".
const OwnerAnnotation = "tend.dev/owner"

// LastAppliedAnnotation is kubectl's client-side apply record. It holds a
// full copy of the object (for Secrets, its data), so the cache drops it.
const LastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// ErrKindNotServed is wrapped by the error Watch returns for a kind the
// cluster does not serve (yet): no REST mapping, or the list returns 404, for
// example a custom resource whose CRD is missing or not yet Established.
// Check with errors.Is.
var ErrKindNotServed = errors.New("kind not served by the cluster")

// ErrClosed is returned by Watch after Close.
var ErrClosed = errors.New("live state cache closed")

// Handler is told about every change to an object of a watched kind.
//
// OnChange is called with old nil for an add and new nil for a delete. Calls
// for one kind are sequential; calls for different kinds run concurrently,
// so an implementation must be safe for concurrent use and should return
// quickly (queue work instead of doing it). The objects are shared with the
// cache and must not be modified.
type Handler interface {
	OnChange(gvk schema.GroupVersionKind, old, new *unstructured.Unstructured)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(gvk schema.GroupVersionKind, old, new *unstructured.Unstructured)

// OnChange calls f.
func (f HandlerFunc) OnChange(gvk schema.GroupVersionKind, old, new *unstructured.Unstructured) {
	f(gvk, old, new)
}

var _ Handler = HandlerFunc(nil)

// Options configure a Cache. The zero value is ready to use.
type Options struct {
	// Logger receives watch errors. The zero value discards them.
	Logger logr.Logger
	// FieldManager is the manager whose managedFields entries are kept.
	// Defaults to DefaultFieldManager.
	FieldManager string
	// KeepManagers are further managers whose managedFields entries are
	// kept, for example those named by ignore rules (diff.IgnoreRule
	// Managers): without their entries those rules cannot see which fields
	// those managers own. Every other manager's entry is dropped.
	KeepManagers []string
	// KeepOwnFieldSet keeps the field set of FieldManager's apply entry.
	// By default the cache stores only its fingerprint in its place (see
	// Fingerprint), which saves about 40% of the memory of a cached
	// Deployment. Without the field set, diff.Compare cannot show fields
	// tend applied before and no longer declares; pass it an object read
	// from the API server for that.
	KeepOwnFieldSet bool
	// Transform, when set, is called on every object after the cache's own
	// trimming and before the object is stored. It may modify the object in
	// place, must be idempotent and must be safe for concurrent use.
	Transform func(gvk schema.GroupVersionKind, obj *unstructured.Unstructured)
}

// Cache is a per-cluster cache of the objects of the kinds passed to Watch.
// It is safe for concurrent use. There is no periodic resync: changes arrive
// only as watch events.
type Cache struct {
	client        dynamic.Interface
	mapper        meta.RESTMapper
	log           logr.Logger
	fm            string          // Options.FieldManager
	keep          map[string]bool // managers whose managedFields entries stay
	keepOwnFields bool            // Options.KeepOwnFieldSet
	xform         func(schema.GroupVersionKind, *unstructured.Unstructured)

	mu       sync.RWMutex
	kinds    map[schema.GroupVersionKind]*kind
	handlers []Handler
	closed   bool
}

// New returns a Cache for the cluster cfg points at. mapper resolves kinds to
// resources; it should find kinds added after New (for example
// controller-runtime's dynamic REST mapper), or CRDs created later are
// reported as not served.
func New(cfg *rest.Config, mapper meta.RESTMapper, opts Options) (*Cache, error) {
	if mapper == nil {
		return nil, errors.New("livestate: a REST mapper is required")
	}
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("livestate: dynamic client: %w", err)
	}
	fm := opts.FieldManager
	if fm == "" {
		fm = DefaultFieldManager
	}
	keep := map[string]bool{fm: true}
	for _, m := range opts.KeepManagers {
		keep[m] = true
	}
	return &Cache{
		client:        client,
		mapper:        mapper,
		log:           opts.Logger,
		fm:            fm,
		keep:          keep,
		keepOwnFields: opts.KeepOwnFieldSet,
		xform:         opts.Transform,
		kinds:         map[schema.GroupVersionKind]*kind{},
	}, nil
}

// kind is the watch of one GroupVersionKind.
type kind struct {
	gvk        schema.GroupVersionKind
	namespaced bool
	informer   cache.SharedIndexInformer
	cancel     context.CancelFunc
	stopped    chan struct{} // closed when the informer has returned
	fatal      chan struct{} // closed when the initial list failed for good

	mu       sync.Mutex
	lastErr  error
	observed map[string]*unstructured.Unstructured // see Observe
}

// Watch starts caching every object of gvk in all namespaces and returns once
// the cache holds the complete initial list. It is idempotent: watching a
// watched kind only waits for it to be synced.
//
// ctx bounds only the wait; the watch runs until Stop or Close. If ctx ends
// before the initial list arrives, the kind is not watched and the error
// wraps ctx.Err() and the last list error. A kind the cluster does not serve
// gives an error wrapping ErrKindNotServed.
func (c *Cache) Watch(ctx context.Context, gvk schema.GroupVersionKind) error {
	k, err := c.start(gvk)
	if err != nil {
		return err
	}
	if k.informer.HasSynced() {
		return nil
	}
	select {
	case <-k.informer.HasSyncedChecker().Done():
		return nil
	case <-k.fatal:
		c.stopKind(k)
		return fmt.Errorf("watch %s: %w", gvk, k.err())
	case <-k.stopped:
		return fmt.Errorf("watch %s: stopped before the initial list completed", gvk)
	case <-ctx.Done():
		c.stopKind(k)
		if err := k.err(); err != nil {
			return fmt.Errorf("watch %s: initial list: %w (last error: %w)", gvk, ctx.Err(), err)
		}
		return fmt.Errorf("watch %s: initial list: %w", gvk, ctx.Err())
	}
}

// start returns the kind's watch, starting it if needed.
func (c *Cache) start(gvk schema.GroupVersionKind) (*kind, error) {
	if k, closed := c.lookup(gvk); closed {
		return nil, ErrClosed
	} else if k != nil {
		return k, nil
	}
	// Map outside the lock: a mapper may call discovery.
	mapping, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		return nil, fmt.Errorf("watch %s: %w: %w", gvk, ErrKindNotServed, err)
	}
	if err != nil {
		return nil, fmt.Errorf("watch %s: map to a resource: %w", gvk, err)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if k := c.kinds[gvk]; k != nil {
		return k, nil
	}
	k, err := c.newKind(gvk, mapping)
	if err != nil {
		return nil, err
	}
	c.kinds[gvk] = k
	ctx, cancel := context.WithCancel(context.Background())
	k.cancel = cancel
	go func() {
		defer close(k.stopped)
		k.informer.RunWithContext(ctx)
	}()
	return k, nil
}

func (c *Cache) newKind(gvk schema.GroupVersionKind, mapping *meta.RESTMapping) (*kind, error) {
	k := &kind{
		gvk:        gvk,
		namespaced: mapping.Scope.Name() == meta.RESTScopeNameNamespace,
		stopped:    make(chan struct{}),
		fatal:      make(chan struct{}),
		observed:   map[string]*unstructured.Unstructured{},
	}
	res := c.client.Resource(mapping.Resource)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return res.List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return res.Watch(ctx, opts)
		},
	}
	k.informer = cache.NewSharedIndexInformerWithOptions(
		cache.ToListWatcherWithWatchListSemantics(lw, c.client),
		&unstructured.Unstructured{},
		cache.SharedIndexInformerOptions{
			Indexers:          cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc},
			ObjectDescription: mapping.Resource.String(),
		},
	)
	if err := k.informer.SetTransform(func(obj any) (any, error) {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			c.trim(gvk, u)
			return pack(u)
		}
		return obj, nil // already packed: transforms must be idempotent
	}); err != nil {
		return nil, fmt.Errorf("watch %s: %w", gvk, err)
	}
	if err := k.informer.SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
		c.watchError(k, err)
	}); err != nil {
		return nil, fmt.Errorf("watch %s: %w", gvk, err)
	}
	if _, err := k.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.event(k, nil, obj) },
		UpdateFunc: func(old, obj any) { c.event(k, old, obj) },
		DeleteFunc: func(obj any) { c.event(k, obj, nil) },
	}); err != nil {
		return nil, fmt.Errorf("watch %s: %w", gvk, err)
	}
	return k, nil
}

// watchError records a list or watch failure. Before the initial list, a
// failure that retrying will not fix (the resource is gone, or tend may not
// list it) ends Watch at once instead of at its deadline.
func (c *Cache) watchError(k *kind, err error) {
	k.mu.Lock()
	k.lastErr = err
	k.mu.Unlock()
	if k.informer.HasSynced() {
		c.log.Error(err, "Watch failed; retrying", "kind", k.gvk.String())
		return
	}
	// Watch returns this error if it is the last one; log it quietly.
	c.log.V(1).Info("Initial list failed; retrying", "kind", k.gvk.String(), "error", err.Error())
	if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) ||
		apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
		select {
		case <-k.fatal:
		default:
			close(k.fatal)
		}
	}
}

// err is the last list or watch error, wrapping ErrKindNotServed when the
// resource is not found.
func (k *kind) err() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.lastErr == nil {
		return nil
	}
	if apierrors.IsNotFound(k.lastErr) || apierrors.IsMethodNotSupported(k.lastErr) {
		return fmt.Errorf("%w: %w", ErrKindNotServed, k.lastErr)
	}
	return k.lastErr
}

// event forwards an informer notification to the handlers.
func (c *Cache) event(k *kind, oldObj, newObj any) {
	// A relist replays unchanged objects as updates; they are not changes.
	if oldObj != nil && newObj != nil {
		if o, ok := oldObj.(*packed); ok {
			if n, ok := newObj.(*packed); ok && o.resourceVersion == n.resourceVersion {
				return
			}
		}
	}
	var old, nu *unstructured.Unstructured
	if oldObj != nil {
		old = c.unpack(oldObj)
	}
	if newObj != nil {
		nu = c.unpack(newObj)
	}
	if old == nil && nu == nil {
		return
	}
	seen := nu
	if seen == nil {
		seen = old
	}
	k.forget(seen)

	c.mu.RLock()
	hs := c.handlers
	c.mu.RUnlock()
	for _, h := range hs {
		h.OnChange(k.gvk, old, nu)
	}
}

// AddHandler registers h for changes of every watched kind. A handler added
// after a kind's initial list does not see that list replayed; add handlers
// before the first Watch to receive every object as an add.
func (c *Cache) AddHandler(h Handler) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Copy on write: event reads the slice without holding the lock.
	c.handlers = append(c.handlers[:len(c.handlers):len(c.handlers)], h)
}

// Get returns the cached object, or false when it is not cached (absent, or
// its kind not watched). namespace is ignored for cluster-scoped kinds. The
// object may be shared: callers must not modify it (DeepCopy first).
func (c *Cache) Get(gvk schema.GroupVersionKind, namespace, name string) (*unstructured.Unstructured, bool) {
	k, _ := c.lookup(gvk)
	if k == nil {
		return nil, false
	}
	key := k.key(namespace, name)
	var stored *packed
	if item, ok, _ := k.informer.GetIndexer().GetByKey(key); ok {
		stored, _ = item.(*packed)
	}
	if o := k.newerObserved(key, stored); o != nil {
		return o, true
	}
	if stored == nil {
		return nil, false
	}
	obj := c.unpack(stored)
	return obj, obj != nil
}

// List returns the cached objects of gvk in namespace ("" for all, ignored
// for cluster-scoped kinds) whose labels match selector (nil matches all), in
// no particular order. The objects are shared: callers must not modify them.
func (c *Cache) List(gvk schema.GroupVersionKind, namespace string, selector labels.Selector) []*unstructured.Unstructured {
	k, _ := c.lookup(gvk)
	if k == nil {
		return nil
	}
	if !k.namespaced {
		namespace = ""
	}
	indexer := k.informer.GetIndexer()
	var items []any
	if namespace != "" {
		items, _ = indexer.ByIndex(cache.NamespaceIndex, namespace)
	} else {
		items = indexer.List()
	}
	match := func(u *unstructured.Unstructured) bool {
		return selector == nil || selector.Matches(labels.Set(u.GetLabels()))
	}

	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]*unstructured.Unstructured, 0, len(items))
	var seen map[string]bool
	if len(k.observed) > 0 {
		seen = make(map[string]bool, len(k.observed))
	}
	for _, item := range items {
		p, ok := item.(*packed)
		if !ok {
			continue
		}
		var u *unstructured.Unstructured
		if len(k.observed) > 0 {
			key := k.key(p.namespace, p.name)
			seen[key] = true
			if o := k.observed[key]; o != nil && newerVersion(o.GetResourceVersion(), p.resourceVersion) {
				u = o
			}
		}
		if u == nil {
			if u = c.unpack(p); u == nil {
				continue
			}
		}
		if match(u) {
			out = append(out, u)
		}
	}
	for key, o := range k.observed {
		if seen[key] || (namespace != "" && o.GetNamespace() != namespace) {
			continue
		}
		if match(o) {
			out = append(out, o)
		}
	}
	return out
}

// Counts returns the number of cached objects per watched kind.
func (c *Cache) Counts() map[schema.GroupVersionKind]int {
	c.mu.RLock()
	kinds := make([]*kind, 0, len(c.kinds))
	for _, k := range c.kinds {
		kinds = append(kinds, k)
	}
	c.mu.RUnlock()
	out := make(map[schema.GroupVersionKind]int, len(kinds))
	for _, k := range kinds {
		keys := k.informer.GetIndexer().ListKeys()
		n := len(keys)
		k.mu.Lock()
		if len(k.observed) > 0 {
			stored := make(map[string]bool, len(keys))
			for _, key := range keys {
				stored[key] = true
			}
			for key := range k.observed {
				if !stored[key] {
					n++
				}
			}
		}
		k.mu.Unlock()
		out[k.gvk] = n
	}
	return out
}

// Watched reports whether gvk is being watched (it may still be syncing).
func (c *Cache) Watched(gvk schema.GroupVersionKind) bool {
	k, _ := c.lookup(gvk)
	return k != nil
}

// Stop ends the watch of gvk and drops its objects. Handlers may still see
// an event that was already being delivered. Stopping a kind that is not
// watched does nothing.
func (c *Cache) Stop(gvk schema.GroupVersionKind) {
	k, _ := c.lookup(gvk)
	if k != nil {
		c.stopKind(k)
	}
}

// stopKind stops k and forgets it, unless it was already replaced.
func (c *Cache) stopKind(k *kind) {
	c.mu.Lock()
	if c.kinds[k.gvk] == k {
		delete(c.kinds, k.gvk)
	}
	c.mu.Unlock()
	k.cancel()
}

// Close stops every watch. Watch fails with ErrClosed afterwards.
func (c *Cache) Close() {
	c.mu.Lock()
	kinds := c.kinds
	c.kinds = map[schema.GroupVersionKind]*kind{}
	c.closed = true
	c.mu.Unlock()
	for _, k := range kinds {
		k.cancel()
	}
	for _, k := range kinds {
		<-k.stopped
	}
}

func (c *Cache) lookup(gvk schema.GroupVersionKind) (k *kind, closed bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.kinds[gvk], c.closed
}

// key is the informer store key of an object.
func (k *kind) key(namespace, name string) string {
	if !k.namespaced || namespace == "" {
		return name
	}
	return namespace + "/" + name
}
