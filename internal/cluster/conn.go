// Package cluster connects tend to the clusters it deploys to: the one it
// runs in and the remote ones Cluster objects name. A connection carries the
// apply engine, the watch cache of the kinds tend manages there and what
// Helm needs to know about the cluster. The controller and the CLI use it
// alike.
package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/health"
	"github.com/tend-gitops/tend/internal/livestate"
	"github.com/tend-gitops/tend/internal/render"
)

// Conn is tend's connection to one target cluster: the engine that applies
// to it, the watch cache of the kinds tend manages there, and what Helm needs
// to know about it.
type Conn struct {
	// Name is "" for the cluster tend runs in, else namespace/name of the
	// Cluster object.
	Name   string
	Config *rest.Config
	Engine *apply.Engine
	Live   *livestate.Cache
	Mapper meta.RESTMapper

	log *slog.Logger

	mu         sync.Mutex
	helm       *render.Cluster
	helmAt     time.Time
	helmSeen   int64     // apis.count() when helm was discovered
	helmFound  int64     // discoveries made, for HelmStats
	apis       *apiWatch // nil: not started yet, or polling
	apisDenied bool      // the watches may not list: poll for good
	apisRetry  time.Time // when to try starting them again after a failure
	closed     bool
	secretVers string // resourceVersion of the kubeconfig Secret it was built from

	imp impersonation // engines acting as ServiceAccounts (As)
}

// helmRefresh is how long discovered capabilities are reused when the
// cluster's API definitions cannot be watched.
const helmRefresh = 5 * time.Minute

// HelmCluster returns the cluster's version and API versions for Helm. They
// are discovered at the first call, which also starts watching the
// cluster's CustomResourceDefinitions and APIServices (metadata only), and
// again only after one of those changed: a CRD installed by one App becomes
// visible to the charts of the next, and an unchanged cluster costs no
// discovery request. Where tend may not list those kinds, the answer is
// discovered again every helmRefresh instead (logged once).
func (c *Conn) HelmCluster() (*render.Cluster, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.apis == nil && !c.apisDenied && !c.closed && !time.Now().Before(c.apisRetry) {
		w, err := startAPIWatch(c.Config, c.logger())
		switch {
		case errors.Is(err, errAPIWatchForbidden):
			c.apisDenied = true
			c.logger().Warn("cannot watch the cluster's API definitions; Helm capabilities are discovered again every few minutes instead", "error", err)
		case err != nil:
			// Unreachable: poll meanwhile, and try again later.
			c.apisRetry = time.Now().Add(helmRefresh)
			c.logger().Info("cannot watch the cluster's API definitions yet; trying again later", "error", err)
		default:
			c.apis = w
		}
	}
	if c.helm != nil && c.fresh() {
		return c.helm, nil
	}
	var seen int64
	if c.apis != nil {
		seen = c.apis.count() // before discovering: a change during it counts
	}
	c.helmFound++
	hc, err := render.DiscoverCluster(c.Config)
	if err != nil {
		if c.helm != nil {
			return c.helm, nil // keep the last good answer
		}
		return nil, fmt.Errorf("discover cluster %s: %w", c.Display(), err)
	}
	c.helm, c.helmAt, c.helmSeen = hc, time.Now(), seen
	return hc, nil
}

// HelmStats counts what HelmCluster did: discoveries made, changes of the
// cluster's API definitions seen, and how many of those the last discovery
// had seen. A discovery is due only while Seen < Changes (or, where the
// definitions cannot be watched, every few minutes).
type HelmStats struct{ Discoveries, Changes, Seen int64 }

// HelmStats reports the connection's HelmStats.
func (c *Conn) HelmStats() HelmStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := HelmStats{Discoveries: c.helmFound, Seen: c.helmSeen}
	if c.apis != nil {
		s.Changes = c.apis.count()
	}
	return s
}

// fresh says whether the discovered answer still holds. c.mu is held.
func (c *Conn) fresh() bool {
	if c.apis == nil || c.apis.failure() != nil {
		return time.Since(c.helmAt) < helmRefresh
	}
	return c.apis.count() == c.helmSeen
}

func (c *Conn) logger() *slog.Logger {
	if c.log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.log
}

// Scope tells the renderer whether a kind is namespaced, from discovery.
func (c *Conn) Scope(gvk schema.GroupVersionKind) (namespaced, known bool) {
	m, err := c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return false, false
	}
	return m.Scope.Name() == meta.RESTScopeNameNamespace, true
}

// Display names the connection for messages and metrics: "in-cluster" or
// the Cluster's namespace/name.
func (c *Conn) Display() string {
	if c.Name == "" {
		return "in-cluster"
	}
	return c.Name
}

// ConnOptions configure new connections.
type ConnOptions struct {
	// Inventory stores App inventories (always in the cluster tend runs in).
	Inventory apply.InventoryStore
	// Health assesses objects.
	Health *health.Checker
	// Log for the live caches.
	Log *slog.Logger
	// Concurrency of applies within a step.
	Concurrency int
	// MaxInflight bounds the applies in flight to the cluster across all
	// Apps (apply.Engine.MaxInflight).
	MaxInflight int
	// MaxSyncs bounds the syncs working on the cluster at once
	// (apply.Engine.MaxSyncs).
	MaxSyncs int
	// OnChange is told about every change of an object in a watched kind.
	OnChange livestate.Handler
	// WrapTransport, when set, wraps every connection's transport (metrics).
	WrapTransport func(name string, rt http.RoundTripper) http.RoundTripper
}

// NewConn connects to the cluster cfg points at.
func NewConn(name string, cfg *rest.Config, opts ConnOptions) (*Conn, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 100, 200
	}
	if opts.WrapTransport != nil {
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return opts.WrapTransport(name, rt) })
	}
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	dyn, err := dynamic.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	live, err := livestate.New(cfg, mapper, livestate.Options{})
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	if opts.OnChange != nil {
		live.AddHandler(opts.OnChange)
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Conn{
		Name: name, Config: cfg, Live: live, Mapper: mapper, log: log.With("cluster", name),
		Engine: &apply.Engine{
			Dynamic: dyn, Mapper: mapper, Live: live, Health: opts.Health,
			Inventory: opts.Inventory, Fingerprint: livestate.Fingerprint,
			Log: log.With("cluster", name), Concurrency: opts.Concurrency, MaxInflight: opts.MaxInflight, MaxSyncs: opts.MaxSyncs,
		},
	}, nil
}

// Close stops the connection's watches.
func (c *Conn) Close() {
	c.Live.Close()
	c.mu.Lock()
	c.closed = true
	w := c.apis
	c.apis = nil
	c.mu.Unlock()
	if w != nil {
		w.stop()
	}
}

// KubeVersion checks a connection by asking the server's version.
func KubeVersion(cfg *rest.Config) (string, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		return "", err
	}
	return v.GitVersion, nil
}
