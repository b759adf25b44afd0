// Package chart fetches packaged Helm charts (.tgz archives) from HTTP chart
// repositories (index.yaml) and OCI registries, for the Helm renderer.
//
// One Fetcher is shared by every App of a controller: it keeps what it
// downloaded in memory, bounded by size, so a thousand Apps that use the same
// chart version cost one download and one copy. Repository indexes are
// re-read at most once per Options.IndexTTL, and only the entries of the
// charts that were asked for are kept, never a whole index.yaml of a large
// repository.
//
// OCI registries are reached over HTTPS, with the certificate verified, on
// every host including loopback. A registry that speaks only plain HTTP is
// reached over plain HTTP only when its URL says so (oci+http://, what
// OCIURL makes of a Source with spec.oci.insecure); otherwise it is refused
// with an error naming that field (ErrScheme).
//
// The Fetcher returns raw archives and takes only standard types, so it
// satisfies render.ChartFetcher without importing the render package (and
// render does not import this one).
package chart

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Defaults for Options.
const (
	DefaultIndexTTL      = 5 * time.Minute
	DefaultMaxCacheBytes = 32 << 20
	DefaultMaxChartBytes = 20 << 20
	defaultMaxIndexBytes = 64 << 20
)

// Errors a caller can test for with errors.Is to decide whether retrying
// soon can help.
var (
	// ErrNotFound means the repository answered but has no such chart or
	// no version matching the request; retrying helps only once the
	// repository changes.
	ErrNotFound = errors.New("chart not found")
	// ErrUnauthorized means the repository or registry rejected the
	// credentials (or asked for some and none were given).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrScheme means an OCI registry does not speak the protocol its URL
	// asks for: it answered HTTPS with plain HTTP (the Source needs
	// spec.oci.insecure), or it answered plain HTTP with an error asking
	// for HTTPS (the Source must not set it). Retrying does not help; a
	// change of the Source or of the registry does.
	ErrScheme = errors.New("registry protocol mismatch")
)

// Options configure a Fetcher. The zero value is ready to use.
type Options struct {
	// HTTPClient makes every request. Nil means a client with a 60 s
	// timeout over a clone of http.DefaultTransport.
	HTTPClient *http.Client
	// IndexTTL is how long a repository's index.yaml, an OCI repository's
	// tag list, and an OCI tag's manifest are reused before being fetched
	// again. Zero means DefaultIndexTTL; negative means never reuse.
	IndexTTL time.Duration
	// MaxCacheBytes bounds the chart archives kept in memory, least
	// recently used first out. Zero means DefaultMaxCacheBytes; negative
	// disables the cache.
	MaxCacheBytes int64
	// MaxChartBytes is the largest chart archive accepted. Zero means
	// DefaultMaxChartBytes.
	MaxChartBytes int64
	// PlainHTTP reaches every OCI registry over plain HTTP, whatever its
	// URL says, the registries of a chart's dependencies included. It is
	// for tests and development: a Source chooses per registry with
	// spec.oci.insecure, which OCIURL turns into an oci+http:// URL.
	PlainHTTP bool
}

// Fetcher fetches chart archives. It is safe for concurrent use.
type Fetcher struct {
	client        *http.Client
	ttl           time.Duration
	maxChartBytes int64
	plainHTTP     bool
	now           func() time.Time

	mu      sync.Mutex
	indexes map[string]*repoIndex // HTTP repositories, by repo URL and user
	tags    map[string]*tagList   // OCI repositories, by reference and user
	tagRefs map[string]*tagRef    // OCI tags resolved to a chart layer
	flights map[string]*flight    // archive downloads in progress, by cache key
	cache   *archiveCache
}

// flight is one archive download that concurrent callers wait for.
type flight struct {
	done chan struct{}
	data []byte
	err  error
}

// New returns a Fetcher configured by opts.
func New(opts Options) *Fetcher {
	f := &Fetcher{
		client:        opts.HTTPClient,
		ttl:           opts.IndexTTL,
		maxChartBytes: opts.MaxChartBytes,
		plainHTTP:     opts.PlainHTTP,
		now:           time.Now,
		indexes:       map[string]*repoIndex{},
		tags:          map[string]*tagList{},
		tagRefs:       map[string]*tagRef{},
		flights:       map[string]*flight{},
	}
	if f.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		f.client = &http.Client{Transport: tr, Timeout: 60 * time.Second}
	}
	if f.ttl == 0 {
		f.ttl = DefaultIndexTTL
	}
	if f.maxChartBytes <= 0 {
		f.maxChartBytes = DefaultMaxChartBytes
	}
	maxCache := opts.MaxCacheBytes
	if maxCache == 0 {
		maxCache = DefaultMaxCacheBytes
	}
	f.cache = newArchiveCache(maxCache)
	return f
}

// FetchChart returns the packaged chart (a gzipped tar) called name from the
// repository at repoURL, and the version it picked. repoURL is an HTTP(S)
// chart repository or an OCI repository prefix (oci://host/path, the chart
// being host/path/name, reached over HTTPS; oci+http://host/path for a
// registry reached over plain HTTP, see OCIURL). version is an exact version or a semver range
// (Masterminds syntax, as Helm uses); empty means the highest stable
// version. Prereleases match only when the range names one. auth, when not
// nil, holds a username and password for basic authentication.
//
// The returned archive may be shared with other callers: do not modify it.
func (f *Fetcher) FetchChart(ctx context.Context, repoURL, name, version string, auth *url.Userinfo) ([]byte, string, error) {
	if name == "" {
		return nil, "", errors.New("chart name is empty; set the chart's name")
	}
	if strings.Contains(name, "/") {
		return nil, "", fmt.Errorf("chart name %q contains a slash; put the path in the repository URL", name)
	}
	u, err := url.Parse(repoURL)
	if err != nil {
		return nil, "", fmt.Errorf("chart repository URL: %w", err)
	}
	if auth == nil && u.User != nil {
		auth = u.User // credentials written into the URL
	}
	u.User = nil
	switch u.Scheme {
	case "oci", schemeOCIPlainHTTP:
		return f.fetchOCI(ctx, u, name, version, auth)
	case "http", "https":
		return f.fetchHTTP(ctx, u, name, version, auth)
	default:
		return nil, "", fmt.Errorf("chart repository URL %q: want an https://, http:// or oci:// URL", redact(u))
	}
}

// kindError gives err a kind (ErrNotFound, ErrUnauthorized) for errors.Is
// without adding the kind's text to the message.
type kindError struct{ err, kind error }

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.err, e.kind} }

func mark(err, kind error) error { return &kindError{err: err, kind: kind} }

// redact returns u as a string without any password.
func redact(u *url.URL) string { return u.Redacted() }

// credentials returns the username and password of auth ("" when nil).
func credentials(auth *url.Userinfo) (user, pass string) {
	if auth == nil {
		return "", ""
	}
	pass, _ = auth.Password()
	return auth.Username(), pass
}

// cacheUser distinguishes cached indexes, tag lists and tag resolutions of
// different credentials for one repository: a repository may show different
// charts to different users, and a caller with wrong credentials must not be
// served what another caller fetched. Archives themselves are cached by
// digest and reached only through these.
func cacheUser(auth *url.Userinfo) string {
	if auth == nil {
		return ""
	}
	user, pass := credentials(auth)
	sum := sha256.Sum256([]byte(user + "\x00" + pass))
	return hex.EncodeToString(sum[:16])
}

// fresh reports whether something fetched at t may still be used.
func (f *Fetcher) fresh(t time.Time) bool {
	return f.ttl > 0 && !t.IsZero() && f.now().Sub(t) < f.ttl
}

// archiveCache keeps chart archives in memory, bounded by total size, least
// recently used first out.
type archiveCache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	ll    *list.List // of *cacheEntry, most recent at the front
	items map[string]*list.Element
}

type cacheEntry struct {
	key  string
	data []byte
}

func newArchiveCache(maxBytes int64) *archiveCache {
	return &archiveCache{max: maxBytes, ll: list.New(), items: map[string]*list.Element{}}
}

func (c *archiveCache) get(key string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*cacheEntry).data, true
}

func (c *archiveCache) add(key string, data []byte) {
	if c.max <= 0 || int64(len(data)) > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.ll.MoveToFront(e)
		return
	}
	c.items[key] = c.ll.PushFront(&cacheEntry{key: key, data: data})
	c.size += int64(len(data))
	for c.size > c.max {
		last := c.ll.Back()
		ent := last.Value.(*cacheEntry)
		c.ll.Remove(last)
		delete(c.items, ent.key)
		c.size -= int64(len(ent.data))
	}
}

// archive returns the cached archive for key, or downloads it with fetch,
// once for all concurrent callers asking for the same key, and caches it.
// A caller whose ctx ends while waiting for another's download returns its
// ctx's error.
func (f *Fetcher) archive(ctx context.Context, key string, fetch func() ([]byte, error)) ([]byte, error) {
	if data, ok := f.cache.get(key); ok {
		return data, nil
	}
	f.mu.Lock()
	if fl, ok := f.flights[key]; ok {
		f.mu.Unlock()
		select {
		case <-fl.done:
			return fl.data, fl.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	fl := &flight{done: make(chan struct{})}
	f.flights[key] = fl
	f.mu.Unlock()

	fl.data, fl.err = fetch()
	if fl.err == nil {
		f.cache.add(key, fl.data)
	}
	f.mu.Lock()
	delete(f.flights, key)
	f.mu.Unlock()
	close(fl.done)
	return fl.data, fl.err
}

// cacheKey identifies one chart archive: repository, name, resolved version
// and content digest.
func cacheKey(repo, name, version, digest string) string {
	return strings.Join([]string{repo, name, version, digest}, "\x00")
}
