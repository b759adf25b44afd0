// Package refwatch keeps in memory the Secrets and ConfigMaps that something
// references by name (an App's values and decryption keys, a Source's
// credentials, a Cluster's kubeconfig, a Notifier's webhook address), one
// watch per object, so that reading them again at every reconcile sends no
// request, and so that a change to one is known at once.
//
// Why one watch per object: an informer on every Secret in the cluster (Helm
// release records, tokens, certificates) would hold more memory than the
// rest of tend, and reading each referenced object at every reconcile costs
// a request per object per App per interval. A reference names one object,
// and the apiserver can watch exactly one: a list and watch in its namespace
// with the field selector metadata.name=NAME. A Watcher starts such a watch
// at the first read of an object, serves later reads from it, shares it
// between every owner that references the object, and stops it once no owner
// references it.
package refwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// Kind is the kind of a watched object.
type Kind string

// The kinds a Watcher watches.
const (
	Secret    Kind = "Secret"
	ConfigMap Kind = "ConfigMap"
)

// Ref names one watched object.
type Ref struct {
	Kind      Kind
	Namespace string
	Name      string
}

func (r Ref) String() string { return string(r.Kind) + " " + r.Namespace + "/" + r.Name }

// Owner is what references objects, an App or a Cluster say. The Watcher
// only compares owners; what the fields mean is the caller's business.
type Owner struct {
	Kind      string
	Namespace string
	Name      string
}

// Options configure a Watcher.
type Options struct {
	// Config reaches the apiserver (required). The Watcher's client asks
	// for protobuf and no compression: a gzip reader per watch stream costs
	// about 30 KiB, more than the rest of a watch.
	Config *rest.Config
	// OnChange, when set, is told about every change of a watched object
	// after its watch's first list (created, updated, deleted), with the
	// owners that reference it. It runs on the watch's goroutine and must
	// not block.
	OnChange func(ref Ref, owners []Owner)
	// SyncTimeout bounds how long the first read of an object waits for its
	// watch's first list (default 30 s).
	SyncTimeout time.Duration
	// Log, when set, gets a line when a watch starts and stops (names
	// only, never content).
	Log *slog.Logger
}

// ErrStopped is returned by Get once the Watcher is stopped.
var ErrStopped = errors.New("refwatch: stopped")

// Watcher watches the Secrets and ConfigMaps its owners read. Its zero value
// is not usable; create one with New.
type Watcher struct {
	opts   Options
	client kubernetes.Interface
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	reads  atomic.Int64
	starts atomic.Int64

	mu      sync.Mutex
	stopped bool
	watches map[Ref]*objWatch
	owned   map[Owner]map[Ref]struct{}
}

// New returns a Watcher; Stop (or the end of Start's context) ends its
// watches.
func New(opts Options) (*Watcher, error) {
	if opts.Config == nil {
		return nil, errors.New("refwatch: no Config")
	}
	cfg := rest.CopyConfig(opts.Config)
	cfg.DisableCompression = true
	cfg.ContentType = runtime.ContentTypeProtobuf
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("refwatch: %w", err)
	}
	if opts.SyncTimeout <= 0 {
		opts.SyncTimeout = 30 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Watcher{
		opts: opts, client: cs, ctx: ctx, cancel: cancel,
		watches: map[Ref]*objWatch{},
		owned:   map[Owner]map[Ref]struct{}{},
	}, nil
}

// Start waits for ctx to end and then stops the Watcher (a
// controller-runtime Runnable).
func (w *Watcher) Start(ctx context.Context) error {
	<-ctx.Done()
	w.Stop()
	return nil
}

// NeedLeaderElection says the Watcher runs on every replica: it watches
// only what is read, and only the leader reads.
func (w *Watcher) NeedLeaderElection() bool { return false }

// Stop ends every watch and waits for them to return.
func (w *Watcher) Stop() {
	w.mu.Lock()
	w.stopped = true
	w.watches = map[Ref]*objWatch{}
	w.owned = map[Owner]map[Ref]struct{}{}
	w.mu.Unlock()
	w.cancel()
	w.wg.Wait()
}

// Stats are a Watcher's counters.
type Stats struct {
	// Watches is how many objects are watched now.
	Watches int
	// Started counts the watches started so far.
	Started int64
	// Reads counts the reads served from a watch.
	Reads int64
}

// Stats returns the Watcher's counters.
func (w *Watcher) Stats() Stats {
	w.mu.Lock()
	n := len(w.watches)
	w.mu.Unlock()
	return Stats{Watches: n, Started: w.starts.Load(), Reads: w.reads.Load()}
}

// Get reads the Secret or ConfigMap key names into obj (a *corev1.Secret
// or *corev1.ConfigMap) for owner, and records that owner references it.
// The first read of an object starts its watch and waits for the watch's
// first list (at most SyncTimeout); later reads are served from memory. A
// missing object gives an error satisfying apierrors.IsNotFound (the watch
// goes on: its creation is a change). A watch that cannot list gives that
// failure, which is worth retrying later: the watch keeps trying meanwhile.
func (w *Watcher) Get(ctx context.Context, owner Owner, key types.NamespacedName, obj runtime.Object) error {
	ref := Ref{Namespace: key.Namespace, Name: key.Name}
	switch obj.(type) {
	case *corev1.Secret:
		ref.Kind = Secret
	case *corev1.ConfigMap:
		ref.Kind = ConfigMap
	default:
		return fmt.Errorf("refwatch: cannot watch a %T", obj)
	}
	for {
		ow, err := w.acquire(owner, ref)
		if err != nil {
			return err
		}
		cur, err := ow.wait(ctx, w.opts.SyncTimeout)
		if errors.Is(err, errWatchStopped) {
			continue // its last owner let go meanwhile: watch it again
		}
		if err != nil {
			return fmt.Errorf("watch %s: %w", ref, err)
		}
		if cur == nil {
			return apierrors.NewNotFound(corev1.Resource(resourceOf(ref.Kind)), ref.Name)
		}
		w.reads.Add(1)
		switch o := obj.(type) {
		case *corev1.Secret:
			cur.(*corev1.Secret).DeepCopyInto(o)
		case *corev1.ConfigMap:
			cur.(*corev1.ConfigMap).DeepCopyInto(o)
		}
		return nil
	}
}

// Keep says that owner now references exactly refs (what it read in its
// latest pass): watches of objects it no longer references, and that no
// other owner references, stop. Refs not watched yet are not started.
func (w *Watcher) Keep(owner Owner, refs []Ref) {
	keep := make(map[Ref]struct{}, len(refs))
	for _, r := range refs {
		keep[r] = struct{}{}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for ref := range w.owned[owner] {
		if _, ok := keep[ref]; !ok {
			w.release(owner, ref)
		}
	}
	owned := make(map[Ref]struct{}, len(keep))
	for ref := range keep {
		if ow := w.watches[ref]; ow != nil {
			ow.owners[owner] = struct{}{}
			owned[ref] = struct{}{}
		}
	}
	if len(owned) == 0 {
		delete(w.owned, owner)
	} else {
		w.owned[owner] = owned
	}
}

// Forget says owner references nothing any more (it was deleted).
func (w *Watcher) Forget(owner Owner) { w.Keep(owner, nil) }

// acquire returns ref's watch, started if needed, with owner among its
// owners.
func (w *Watcher) acquire(owner Owner, ref Ref) (*objWatch, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return nil, ErrStopped
	}
	ow := w.watches[ref]
	if ow == nil {
		ow = w.start(ref)
		w.watches[ref] = ow
	}
	ow.owners[owner] = struct{}{}
	if w.owned[owner] == nil {
		w.owned[owner] = map[Ref]struct{}{}
	}
	w.owned[owner][ref] = struct{}{}
	return ow, nil
}

// release drops owner from ref's owners, stopping the watch if it was the
// last one. w.mu is held.
func (w *Watcher) release(owner Owner, ref Ref) {
	ow := w.watches[ref]
	if ow == nil {
		return
	}
	delete(ow.owners, owner)
	if len(ow.owners) == 0 {
		delete(w.watches, ref)
		ow.cancel()
		w.opts.Log.Debug("stopped watching a referenced object", "kind", ref.Kind, "namespace", ref.Namespace, "name", ref.Name)
	}
}

// start starts ref's watch. w.mu is held.
func (w *Watcher) start(ref Ref) *objWatch {
	ctx, cancel := context.WithCancel(w.ctx)
	ow := &objWatch{
		w: w, ref: ref, owners: map[Owner]struct{}{}, cancel: cancel,
		done: make(chan struct{}), synced: make(chan struct{}), failed: make(chan struct{}),
	}
	sel := fields.OneTermEqualSelector("metadata.name", ref.Name).String()
	var (
		list     func(context.Context, metav1.ListOptions) (runtime.Object, error)
		watchFn  func(context.Context, metav1.ListOptions) (watch.Interface, error)
		expected runtime.Object
	)
	core := w.client.CoreV1()
	switch ref.Kind {
	case Secret:
		c := core.Secrets(ref.Namespace)
		list = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) }
		watchFn = c.Watch
		expected = &corev1.Secret{}
	default:
		c := core.ConfigMaps(ref.Namespace)
		list = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) }
		watchFn = c.Watch
		expected = &corev1.ConfigMap{}
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			l, err := list(ctx, o)
			ow.failure(err)
			return l, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			wi, err := watchFn(ctx, o)
			if o.SendInitialEvents == nil || utilnet.IsConnectionRefused(err) || apierrors.IsTooManyRequests(err) {
				// A streaming list the server refuses for other reasons
				// falls back to a plain list, whose failure counts.
				ow.failure(err)
			}
			return wi, err
		},
	}
	r := cache.NewReflectorWithOptions(cache.ToListWatcherWithWatchListSemantics(lw, w.client), expected, (*store)(ow),
		cache.ReflectorOptions{Name: "refwatch", TypeDescription: ref.String()})
	w.starts.Add(1)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer close(ow.done)
		r.RunWithContext(ctx)
	}()
	w.opts.Log.Debug("watching a referenced object", "kind", ref.Kind, "namespace", ref.Namespace, "name", ref.Name)
	return ow
}

// changed tells OnChange about a change of ref.
func (w *Watcher) changed(ow *objWatch) {
	if w.opts.OnChange == nil {
		return
	}
	w.mu.Lock()
	owners := make([]Owner, 0, len(ow.owners))
	for o := range ow.owners {
		owners = append(owners, o)
	}
	w.mu.Unlock()
	if len(owners) > 0 {
		w.opts.OnChange(ow.ref, owners)
	}
}

func resourceOf(k Kind) string {
	if k == Secret {
		return "secrets"
	}
	return "configmaps"
}

// errWatchStopped: the watch stopped before its first list.
var errWatchStopped = errors.New("watch stopped")

// objWatch is the watch of one object.
type objWatch struct {
	w      *Watcher
	ref    Ref
	owners map[Owner]struct{} // guarded by w.mu
	cancel context.CancelFunc
	done   chan struct{} // closed when the reflector has returned

	mu       sync.Mutex
	isSynced bool
	synced   chan struct{} // closed at the first complete list
	failed   chan struct{} // closed (and replaced) at each failure before it
	err      error         // the last failure before the first list
	obj      runtime.Object
	version  string
}

// wait waits for the first list and returns the object (nil: it does not
// exist).
func (ow *objWatch) wait(ctx context.Context, timeout time.Duration) (runtime.Object, error) {
	ow.mu.Lock()
	synced, failed, err, obj := ow.isSynced, ow.failed, ow.err, ow.obj
	ow.mu.Unlock()
	if synced {
		return obj, nil
	}
	if err != nil {
		// The last attempt failed and the watch is backing off: so should
		// the caller.
		return nil, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ow.synced:
		ow.mu.Lock()
		defer ow.mu.Unlock()
		return ow.obj, nil
	case <-failed:
		ow.mu.Lock()
		defer ow.mu.Unlock()
		return nil, ow.err
	case <-ow.done:
		return nil, errWatchStopped
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, fmt.Errorf("no answer from the apiserver within %s", timeout)
	}
}

// failure records a list or watch error before the first list.
func (ow *objWatch) failure(err error) {
	if err == nil {
		return
	}
	ow.mu.Lock()
	defer ow.mu.Unlock()
	if ow.isSynced {
		return // reads go on from memory; the reflector retries
	}
	ow.err = err
	close(ow.failed)
	ow.failed = make(chan struct{})
}

// set makes obj (nil: none) the watched object and reports whether that
// changed it after the first list.
func (ow *objWatch) set(obj any, sync bool) {
	var cur runtime.Object
	version := ""
	if o, ok := obj.(runtime.Object); ok && obj != nil {
		m, err := metaOf(o)
		if err == nil && m.GetName() == ow.ref.Name {
			trim(m)
			cur, version = o, m.GetResourceVersion()
		}
	}
	ow.mu.Lock()
	was, wasVersion, wasSynced := ow.obj != nil, ow.version, ow.isSynced
	ow.obj, ow.version = cur, version
	if sync && !ow.isSynced {
		ow.isSynced = true
		close(ow.synced)
	}
	ow.mu.Unlock()
	if wasSynced && (was != (cur != nil) || wasVersion != version) {
		ow.w.changed(ow)
	}
}

func metaOf(o runtime.Object) (metav1.Object, error) {
	switch t := o.(type) {
	case *corev1.Secret:
		return t, nil
	case *corev1.ConfigMap:
		return t, nil
	}
	return nil, fmt.Errorf("unexpected %T", o)
}

// trim drops what no reader needs: managed fields, and the
// last-applied-configuration annotation (kubectl apply copies a Secret's
// data into it).
func trim(m metav1.Object) {
	m.SetManagedFields(nil)
	if a := m.GetAnnotations(); a != nil {
		if _, ok := a[corev1.LastAppliedConfigAnnotation]; ok {
			delete(a, corev1.LastAppliedConfigAnnotation)
			m.SetAnnotations(a)
		}
	}
}

// store is the reflector's view of an objWatch: it holds at most the one
// object the field selector lets through.
type store objWatch

var _ cache.ReflectorStore = (*store)(nil)

func (s *store) Add(obj any) error    { (*objWatch)(s).set(obj, false); return nil }
func (s *store) Update(obj any) error { (*objWatch)(s).set(obj, false); return nil }
func (s *store) Delete(any) error     { (*objWatch)(s).set(nil, false); return nil }
func (s *store) Resync() error        { return nil }

func (s *store) Replace(list []any, _ string) error {
	var obj any
	for _, o := range list {
		obj = o
	}
	(*objWatch)(s).set(obj, true)
	return nil
}
