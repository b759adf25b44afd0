package render

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"sync"
	"sync/atomic"
)

// DefaultCacheSize is how many Results a Cache keeps when Size is 0.
const DefaultCacheSize = 4096

// Cache keeps Results by (source revision, App spec) so each App is
// rendered once per revision it is affected by, and skips renders a commit
// cannot have changed: when the files a commit touched are not among the
// files an App's last render read (see Affected), the last Result stands.
//
// Concurrent requests for the same key share one render. Results are
// shared between callers and must not be modified. The zero value is ready
// to use; a Cache is safe for concurrent use.
type Cache struct {
	// Size bounds how many Results are kept (least recently used go
	// first); 0 means DefaultCacheSize.
	Size int

	mu     sync.Mutex
	lru    *list.List // of *cacheEntry, most recent first
	items  map[cacheKey]*list.Element
	flight map[cacheKey]*flight

	renders, hits, reused atomic.Int64
}

// CacheStats count what a Cache did.
type CacheStats struct {
	// Renders is how many renders ran.
	Renders int64
	// Hits is how many requests were answered from a kept Result.
	Hits int64
	// Reused is how many requests reused an App's previous Result because
	// the change could not affect it.
	Reused int64
}

type cacheKey struct {
	revision, spec string
}

type cacheEntry struct {
	key cacheKey
	res *Result
}

type flight struct {
	done chan struct{}
	res  *Result
	err  error
}

// Stats returns counters since the Cache was created.
func (c *Cache) Stats() CacheStats {
	return CacheStats{Renders: c.renders.Load(), Hits: c.hits.Load(), Reused: c.reused.Load()}
}

// Render returns what r renders for opts from the artifact at root, whose
// revision is revision, rendering only when no Result for the same
// revision and spec is kept. Failed renders are not kept.
func (c *Cache) Render(ctx context.Context, r *Renderer, root, revision string, opts Options) (*Result, error) {
	return c.RenderChange(ctx, r, root, revision, opts, nil, nil)
}

// RenderChange is Render for an App whose last Result is prev (nil if
// none): if prev was rendered by this Cache from the same spec and changed
// (the paths that differ between prev's revision and revision, as git
// reports them; nil when unknown) touches nothing prev read, prev is the
// Result for revision too and nothing is rendered.
func (c *Cache) RenderChange(ctx context.Context, r *Renderer, root, revision string, opts Options, prev *Result, changed []string) (*Result, error) {
	key := cacheKey{revision: revision, spec: SpecHash(opts) + r.targetKey()}
	if res, ok := c.get(key); ok && res.clusterCurrent(r) {
		c.hits.Add(1)
		return res, nil
	}
	if prev != nil && prev.spec == key.spec && !Affected(prev.Files, changed) && prev.clusterCurrent(r) {
		c.reused.Add(1)
		c.put(key, prev)
		return prev, nil
	}
	for {
		res, err, shared := c.do(ctx, key, func() (*Result, error) {
			c.renders.Add(1)
			res, err := r.Render(ctx, root, opts)
			if err != nil {
				return nil, err
			}
			res.spec = key.spec
			if r.clusterAsked.Load() {
				res.usesCluster, res.cluster = true, clusterHash(r.cluster())
			}
			c.put(key, res)
			return res, nil
		})
		// A render another caller started and then abandoned says
		// nothing about this caller: try again.
		if shared && err != nil && ctx.Err() == nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			continue
		}
		// A render shared with a caller whose cluster answered otherwise
		// (its APIs changed in between) is not this caller's.
		if shared && err == nil && !res.clusterCurrent(r) {
			continue
		}
		return res, err
	}
}

// do runs fn once for concurrent callers of the same key; shared says the
// result came from another caller's run.
func (c *Cache) do(ctx context.Context, key cacheKey, fn func() (*Result, error)) (*Result, error, bool) {
	c.mu.Lock()
	if c.flight == nil {
		c.flight = map[cacheKey]*flight{}
	}
	if fl, ok := c.flight[key]; ok {
		c.mu.Unlock()
		select {
		case <-fl.done:
			return fl.res, fl.err, true
		case <-ctx.Done():
			return nil, ctx.Err(), false
		}
	}
	fl := &flight{done: make(chan struct{})}
	c.flight[key] = fl
	c.mu.Unlock()

	defer func() {
		c.mu.Lock()
		delete(c.flight, key)
		c.mu.Unlock()
		close(fl.done)
	}()
	fl.res, fl.err = fn()
	return fl.res, fl.err, false
}

func (c *Cache) get(key cacheKey) (*Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(el)
	return el.Value.(*cacheEntry).res, true
}

func (c *Cache) put(key cacheKey, res *Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.items == nil {
		c.items = map[cacheKey]*list.Element{}
		c.lru = list.New()
	}
	if el, ok := c.items[key]; ok {
		el.Value.(*cacheEntry).res = res
		c.lru.MoveToFront(el)
		return
	}
	c.items[key] = c.lru.PushFront(&cacheEntry{key: key, res: res})
	size := c.Size
	if size <= 0 {
		size = DefaultCacheSize
	}
	for c.lru.Len() > size {
		last := c.lru.Back()
		c.lru.Remove(last)
		delete(c.items, last.Value.(*cacheEntry).key)
	}
}

// Len returns how many Results the Cache keeps.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

// SpecHash returns a stable hash of opts: equal Options give equal hashes,
// and any difference (including in decryption keys, Helm values or chart
// credentials) gives a different one. Secret material only goes into the
// hash; it is never kept.
func SpecHash(opts Options) string {
	h := sha256.New()
	keys := opts.Keys
	opts.Keys = nil
	var password string
	if opts.Helm != nil && opts.Helm.Chart != nil {
		// Copy so the caller's Options are not changed.
		helm, chart := *opts.Helm, *opts.Helm.Chart
		password, chart.Password = chart.Password, ""
		helm.Chart = &chart
		opts.Helm = &helm
	}
	b, err := json.Marshal(opts)
	if err != nil {
		// Values that do not encode (channels, funcs) cannot come from an
		// App spec; make such Options never match anything.
		b = []byte(err.Error())
	}
	writeField(h, b)
	writeField(h, []byte(password))
	if keys != nil {
		for _, k := range keys.Age {
			writeField(h, []byte(k))
		}
		writeField(h, nil)
		for _, k := range keys.PGP {
			writeField(h, k)
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// writeField writes b length-prefixed, so field boundaries are unambiguous.
func writeField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

// clusterCurrent says whether res still holds for r's target cluster: a
// Result whose render did not consult the cluster always does; one that
// did holds while the cluster's version and API versions are unchanged.
func (res *Result) clusterCurrent(r *Renderer) bool {
	return !res.usesCluster || clusterHash(r.cluster()) == res.cluster
}

// targetKey separates Results rendered for different target clusters, so
// that Apps sending one spec to two clusters do not replace each other's.
func (r *Renderer) targetKey() string {
	if r == nil || r.Target == "" {
		return ""
	}
	return "@" + r.Target
}

// clusterHash covers what in cl changes a Helm render's output and can be
// compared: the cluster's version and the API versions templates see.
func clusterHash(cl *Cluster) string {
	if cl == nil || (cl.KubeVersion == "" && len(cl.APIVersions) == 0) {
		return ""
	}
	h := sha256.New()
	writeField(h, []byte(cl.KubeVersion))
	for _, v := range cl.APIVersions {
		writeField(h, []byte(v))
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
