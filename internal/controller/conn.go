package controller

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/health"
	"github.com/tend-gitops/tend/internal/livestate"
	"github.com/tend-gitops/tend/internal/objstatus"
	"github.com/tend-gitops/tend/internal/refwatch"
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

	mu         sync.Mutex
	helm       *render.Cluster
	helmAt     time.Time
	secretVers string // resourceVersion of the kubeconfig Secret it was built from
}

// helmRefresh is how long discovered capabilities are reused.
const helmRefresh = 5 * time.Minute

// HelmCluster returns the cluster's version and API versions for Helm,
// refreshed every few minutes (a CRD installed by one App becomes visible
// to charts of the next).
func (c *Conn) HelmCluster() (*render.Cluster, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.helm != nil && time.Since(c.helmAt) < helmRefresh {
		return c.helm, nil
	}
	hc, err := render.DiscoverCluster(c.Config)
	if err != nil {
		if c.helm != nil {
			return c.helm, nil // keep the last good answer
		}
		return nil, fmt.Errorf("discover cluster %s: %w", c.display(), err)
	}
	c.helm, c.helmAt = hc, time.Now()
	return hc, nil
}

// Scope tells the renderer whether a kind is namespaced, from discovery.
func (c *Conn) Scope(gvk schema.GroupVersionKind) (namespaced, known bool) {
	m, err := c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return false, false
	}
	return m.Scope.Name() == meta.RESTScopeNameNamespace, true
}

func (c *Conn) display() string {
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
		Name: name, Config: cfg, Live: live, Mapper: mapper,
		Engine: &apply.Engine{
			Dynamic: dyn, Mapper: mapper, Live: live, Health: opts.Health,
			Inventory: opts.Inventory, Fingerprint: livestate.Fingerprint,
			Log: log.With("cluster", name), Concurrency: opts.Concurrency, MaxInflight: opts.MaxInflight, MaxSyncs: opts.MaxSyncs,
		},
	}, nil
}

// Close stops the connection's watches.
func (c *Conn) Close() { c.Live.Close() }

// Clusters hands out connections: the local cluster, and remote ones named
// by Cluster objects (rebuilt when their kubeconfig Secret changes).
type Clusters struct {
	Local  *Conn
	Client client.Client // reads Cluster objects and their Secrets
	Opts   ConnOptions

	mu     sync.Mutex
	remote map[types.NamespacedName]*Conn
}

// Get returns the connection for an App in namespace ns with destination
// ref (nil: the local cluster).
func (cs *Clusters) Get(ctx context.Context, ns string, ref *tendv1.LocalObjectReference) (*Conn, error) {
	if ref == nil || ref.Name == "" {
		return cs.Local, nil
	}
	key := types.NamespacedName{Namespace: ns, Name: ref.Name}
	var cl tendv1.Cluster
	if err := cs.Client.Get(ctx, key, &cl); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, objstatus.Permanentf("the Cluster %s does not exist; create it or fix spec.destination.clusterRef", key)
		}
		return nil, fmt.Errorf("cluster %s: %w", key, err)
	}
	if cl.Spec.Suspend {
		return nil, objstatus.Permanentf("cluster %s is suspended (its spec.suspend)", key)
	}
	secKey := cl.Spec.KubeconfigSecretRef
	// The kubeconfig Secret is read from its watch (refs.go): an App's
	// reconcile sends no request for it, and a new kubeconfig reconciles
	// the Cluster's Apps.
	rd := readerFor(cs.Client, refwatch.Owner{Kind: ownerCluster, Namespace: ns, Name: ref.Name})
	var sec corev1.Secret
	err := rd.Get(ctx, types.NamespacedName{Namespace: ns, Name: secKey.Name}, &sec)
	rd.done()
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, objstatus.Permanentf("cluster %s: the kubeconfig Secret %s does not exist; create it or fix the Cluster's kubeconfigSecretRef", key, secKey.Name)
		}
		return nil, fmt.Errorf("cluster %s: kubeconfig Secret %s: %w", key, secKey.Name, err)
	}
	dataKey := secKey.Key
	if dataKey == "" {
		dataKey = "kubeconfig"
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if c, ok := cs.remote[key]; ok && c.secretVers == sec.ResourceVersion {
		return c, nil
	}
	raw, ok := sec.Data[dataKey]
	if !ok {
		return nil, objstatus.Permanentf("cluster %s: Secret %s has no key %q; put the kubeconfig there or set kubeconfigSecretRef.key", key, secKey.Name, dataKey)
	}
	cfg, err := ParseKubeconfig(raw)
	if err != nil {
		return nil, objstatus.Permanentf("cluster %s: Secret %s key %q is not a usable kubeconfig: %v", key, secKey.Name, dataKey, err)
	}
	c, err := NewConn(key.String(), cfg, cs.Opts)
	if err != nil {
		return nil, err
	}
	c.secretVers = sec.ResourceVersion
	if old, ok := cs.remote[key]; ok {
		old.Close()
	}
	if cs.remote == nil {
		cs.remote = map[types.NamespacedName]*Conn{}
	}
	cs.remote[key] = c
	return c, nil
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
