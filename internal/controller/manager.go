// Package controller runs tend in a cluster: controller-runtime
// reconcilers for Source (fetch), App (render, sync, assess), AppSet
// (generate Apps) and Cluster (remote targets), with leader election,
// health probes and Prometheus metrics.
package controller

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/artifact"
	"github.com/tend-gitops/tend/internal/cluster"
	"github.com/tend-gitops/tend/internal/compat"
	"github.com/tend-gitops/tend/internal/freight"
	"github.com/tend-gitops/tend/internal/health"
	"github.com/tend-gitops/tend/internal/notify"
	"github.com/tend-gitops/tend/internal/objstatus"
	"github.com/tend-gitops/tend/internal/refwatch"
	"github.com/tend-gitops/tend/internal/render"
	"github.com/tend-gitops/tend/internal/replicate"
	"github.com/tend-gitops/tend/internal/source/chart"
	"github.com/tend-gitops/tend/internal/source/git"
)

// Options configure the controller. Zero values are sane defaults.
type Options struct {
	// Config reaches the cluster tend runs in (required).
	Config *rest.Config
	// DataDir holds checkouts (default $TMPDIR/tend).
	DataDir string
	// MetricsAddr serves /metrics (default ":8080"; "0" disables).
	MetricsAddr string
	// Version and Commit of the binary, for the tend_build_info metric.
	Version, Commit string
	// ProbeAddr serves /healthz and /readyz (default ":8081"; "0" disables).
	ProbeAddr string
	// PprofAddr serves Go's /debug/pprof ("" or "0": off, the default).
	PprofAddr string
	// QPS and Burst limit the controller's requests to its own cluster on
	// the client side (0: no client-side limit; the apiserver's priority
	// and fairness applies). Remote clusters get 100/s, burst 200.
	QPS   float32
	Burst int
	// ChartIndexTTL is how long a chart repository's index is trusted
	// before it is read again (default chart.DefaultIndexTTL, 5m): a new
	// chart version in an App's range is rendered after at most this long.
	ChartIndexTTL time.Duration
	// LeaderElection makes replicas elect one active controller.
	LeaderElection bool
	// LeaderElectionNamespace holds the Lease (default: tend-system).
	LeaderElectionNamespace string
	// LeaderElectionID names the Lease (default: tend-controller).
	LeaderElectionID string
	// AppWorkers and SourceWorkers bound concurrent reconciles (8 and 4).
	AppWorkers, SourceWorkers int
	// ApplyConcurrency bounds parallel applies within one sync step (8).
	ApplyConcurrency int
	// MaxInflightApplies bounds the applies in flight to a cluster across
	// all Apps (apply.DefaultMaxInflight).
	MaxInflightApplies int
	// MaxConcurrentSyncs bounds the syncs working on a cluster at once
	// (apply.DefaultMaxSyncs); a sync waiting for health gives its turn up.
	MaxConcurrentSyncs int
	// Namespaces, when set, restricts tend to Apps, Sources and AppSets in
	// these namespaces (the objects Apps apply may be anywhere).
	Namespaces []string
	// NoCrossNamespaceRefs stalls Apps and AppSets that reference a Source
	// or App in another namespace, whatever their Project allows.
	NoCrossNamespaceRefs bool
	// DefaultServiceAccount is the ServiceAccount Apps without
	// spec.serviceAccountName act as, in their namespace (Flux's
	// --default-service-account); empty: tend's own identity.
	DefaultServiceAccount string
	// Compat names the families of foreign objects to reconcile as they
	// are: "argo" (Argo CD Applications and ApplicationSets) and "flux" (Flux's sources,
	// Kustomizations and HelmReleases). Their CRDs must be installed.
	Compat []string
	// ArgoDecryptionSecret names the Secret in each Argo CD Application's
	// namespace with the SOPS keys its App decrypts with (--compat argo).
	ArgoDecryptionSecret string
	// Log is the structured logger (default slog.Default()).
	Log *slog.Logger
	// OnSync is told about every sync (notifications).
	OnSync func(app *tendv1.App, rec tendv1.SyncRecord, res *apply.Result, err error)
	// Notify tunes notification delivery (zero: defaults); its Client and
	// Log are set by New.
	Notify notify.Options
	// Extra lets callers add reconcilers and servers to the manager.
	Extra func(ctx context.Context, mgr manager.Manager, c *Controller) error
}

// Controller is a running tend controller.
type Controller struct {
	Manager   manager.Manager
	Artifacts *artifact.Store
	Clusters  *cluster.Clusters
	Apps      *AppReconciler
	Sources   *SourceReconciler
	AppSets   *AppSetReconciler
	// Notifications delivers App events to Notifiers.
	Notifications *notify.Dispatcher
	// Refs watches the Secrets and ConfigMaps Apps and Clusters reference
	// (values, decryption keys, chart credentials, kubeconfigs), one watch
	// per object, from the first read until nothing references it.
	Refs *refwatch.Watcher

	fetcher *git.Fetcher
}

// Scheme has the Kubernetes built-in types and tend's.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := tendv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// New builds a controller; Start runs it.
func New(ctx context.Context, opts Options) (*Controller, error) {
	if opts.Config == nil {
		return nil, fmt.Errorf("controller: no cluster config")
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	ctrl.SetLogger(logr.FromSlogHandler(opts.Log.Handler()))
	if opts.DataDir == "" {
		opts.DataDir = filepath.Join(os.TempDir(), "tend")
	}
	if err := os.MkdirAll(filepath.Join(opts.DataDir, "empty"), 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if opts.MetricsAddr == "" {
		opts.MetricsAddr = ":8080"
	}
	if opts.ProbeAddr == "" {
		opts.ProbeAddr = ":8081"
	}
	if opts.LeaderElectionNamespace == "" {
		opts.LeaderElectionNamespace = "tend-system"
	}
	if opts.LeaderElectionID == "" {
		opts.LeaderElectionID = "tend-controller"
	}
	// A killed leader's lease expires after 10 s; a replica takes over
	// within about 12 s.
	lease, renew, retry := 10*time.Second, 7*time.Second, 2*time.Second
	// Jobs are cached only when a Stage made them (verification): an
	// informer on all of a cluster's Jobs would cost memory for nothing.
	stageJobs, err := labels.Parse(tendv1.LabelStage)
	if err != nil {
		return nil, err
	}
	cacheOpts := cache.Options{ByObject: map[client.Object]cache.ByObject{&batchv1.Job{}: {Label: stageJobs}}}
	if len(opts.Namespaces) > 0 {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range opts.Namespaces {
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	// client-go's default of 5 requests/s (burst 10) per client would cap
	// a cold start of a thousand Apps at many minutes of applies, status
	// and inventory writes. Unless told otherwise, tend does not limit
	// itself: the apiserver's priority and fairness protects the server
	// (and tells clients to back off with 429s, which client-go honours).
	mgrConfig := rest.CopyConfig(opts.Config)
	if opts.QPS != 0 {
		mgrConfig.QPS, mgrConfig.Burst = opts.QPS, opts.Burst
		if mgrConfig.QPS > 0 && mgrConfig.Burst <= 0 {
			mgrConfig.Burst = max(1, int(2*mgrConfig.QPS))
		}
	}
	if mgrConfig.QPS == 0 {
		mgrConfig.QPS = -1
	}
	mgr, err := ctrl.NewManager(mgrConfig, ctrl.Options{
		Scheme: Scheme(),
		Cache:  cacheOpts,
		// Tests and failover drills run several controllers in one process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		// Secrets and ConfigMaps are never cached cluster-wide: an
		// informer on all of them would cost more memory than all of
		// tend. Those Apps and Clusters reference are watched one by one
		// (refwatch, see Controller.Refs).
		Client:                        client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}, &corev1.ConfigMap{}}}},
		Metrics:                       metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress:        opts.ProbeAddr,
		LeaderElection:                opts.LeaderElection,
		LeaderElectionID:              opts.LeaderElectionID,
		LeaderElectionNamespace:       opts.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		PprofBindAddress:              opts.PprofAddr,
		LeaseDuration:                 &lease,
		RenewDeadline:                 &renew,
		RetryPeriod:                   &retry,
	})
	if err != nil {
		return nil, fmt.Errorf("controller manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, err
	}
	checker, err := health.NewChecker(nil)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(mgrConfig)
	if err != nil {
		return nil, err
	}
	fetcher := &git.Fetcher{}
	arts := artifact.NewStore(filepath.Join(opts.DataDir, "sources"), fetcher)
	metrics := registerMetrics()
	metrics.buildInfo(opts.Version, opts.Commit)
	apps := &AppReconciler{
		Client: mgr.GetClient(), Artifacts: arts, Fetcher: fetcher,
		Charts:     chart.New(chart.Options{IndexTTL: opts.ChartIndexTTL}),
		Cache:      &render.Cache{},
		DataDir:    opts.DataDir,
		Recorder:   objstatus.DistinctNotes(mgr.GetEventRecorder("tend")),
		Log:        opts.Log.With("controller", "app"),
		Workers:    opts.AppWorkers,
		Namespaces: opts.Namespaces,
		OnSync:     opts.OnSync,

		NoCrossNamespaceRefs:  opts.NoCrossNamespaceRefs,
		DefaultServiceAccount: opts.DefaultServiceAccount,
		metrics:               metrics,
	}
	connOpts := cluster.ConnOptions{
		Inventory:     &apply.SecretStore{Client: cs},
		Health:        checker,
		Log:           opts.Log,
		Concurrency:   opts.ApplyConcurrency,
		MaxInflight:   opts.MaxInflightApplies,
		MaxSyncs:      opts.MaxConcurrentSyncs,
		OnChange:      handlerFunc(apps.OnChange),
		WrapTransport: metrics.wrapTransport,
	}
	local, err := cluster.NewConn("", mgrConfig, connOpts)
	if err != nil {
		return nil, err
	}
	owners := &refOwners{apps: apps, sources: newTrigger(), clusters: newTrigger(), notifiers: newTrigger(), warehouses: newTrigger()}
	refs, err := refwatch.New(refwatch.Options{Config: mgrConfig, OnChange: owners.changed, Log: opts.Log.With("controller", "refs")})
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(refs); err != nil {
		return nil, err
	}
	if err := forgetDeleted(ctx, mgr, refs); err != nil {
		return nil, err
	}
	withRefs := &refClient{Client: mgr.GetClient(), refs: refs}
	apps.Client = withRefs
	clusters := &cluster.Clusters{Local: local, Client: withRefs, Opts: connOpts, ReadSecret: readKubeconfig(withRefs)}
	apps.Clusters = clusters
	c := &Controller{Manager: mgr, Artifacts: arts, Clusters: clusters, Apps: apps, Refs: refs, fetcher: fetcher}
	c.AppSets = &AppSetReconciler{Client: mgr.GetClient(), Artifacts: arts, Recorder: objstatus.DistinctNotes(mgr.GetEventRecorder("tend")), Log: opts.Log.With("controller", "appset"),
		NoCrossNamespaceRefs: opts.NoCrossNamespaceRefs}
	c.Sources = &SourceReconciler{
		Client: withRefs, Artifacts: arts,
		Recorder: objstatus.DistinctNotes(mgr.GetEventRecorder("tend")), Log: opts.Log.With("controller", "source"),
		Workers: opts.SourceWorkers, metrics: metrics, refs: owners.sources,
		OnNewRevision: c.AppSets.SourceChanged,
	}
	if err := c.Sources.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := apps.SetupWithManager(ctx, mgr); err != nil {
		return nil, err
	}
	if err := c.AppSets.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := (&ClusterReconciler{Client: withRefs, Clusters: clusters, Recorder: objstatus.DistinctNotes(mgr.GetEventRecorder("tend")), Log: opts.Log.With("controller", "cluster"), Apps: apps, refs: owners.clusters}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	// Warehouses read chart indexes anew at each check (a conditional GET
	// when the repository sends an ETag); the archive of a version found is
	// kept, in a small cache of their own.
	whCharts := chart.New(chart.Options{IndexTTL: -1, MaxCacheBytes: 4 << 20})
	if err := (&WarehouseReconciler{Client: withRefs, Images: &freight.Images{}, Charts: whCharts,
		Recorder: objstatus.DistinctNotes(mgr.GetEventRecorder("tend")), Log: opts.Log.With("controller", "warehouse"), refs: owners.warehouses}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	stages := &StageReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Git: &git.Fetcher{}, Artifacts: arts, Charts: apps.Charts,
		Recorder: objstatus.DistinctNotes(mgr.GetEventRecorder("tend")), Log: opts.Log.With("controller", "stage")}
	if err := stages.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	writers := &replicaWriters{mgr: mgr, apps: apps}
	if err := (&replicate.Reconciler{Client: mgr.GetClient(), Recorder: objstatus.DistinctNotes(mgr.GetEventRecorder("tend")), Log: opts.Log.With("controller", "replicate"), Namespaces: opts.Namespaces,
		WriterFor: writers.writerFor}).SetupWithManager(ctx, mgr); err != nil {
		return nil, err
	}
	nopts := opts.Notify
	nopts.Client, nopts.Refs, nopts.Log, nopts.Metrics = mgr.GetClient(), refs, opts.Log.With("controller", "notify"), crmetrics.Registry
	nopts.Namespaces = opts.Namespaces
	c.Notifications = notify.NewDispatcher(nopts)
	apps.Notify = c.Notifications.Publish
	c.Sources.Notify = c.Notifications.Publish
	stages.Notify = c.Notifications.Publish
	if err := mgr.Add(c.Notifications); err != nil {
		return nil, err
	}
	if err := (&notify.Reconciler{Client: mgr.GetClient(), Refs: refs, RefChanged: owners.notifiers, Log: opts.Log.With("controller", "notifier"), Namespaces: opts.Namespaces}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := compat.Setup(mgr, opts.Compat, connOpts.Inventory, compat.Options{ArgoDecryptionSecret: opts.ArgoDecryptionSecret}, opts.Log); err != nil {
		return nil, err
	}
	metrics.addSource(mgr.GetClient(), clusters)
	metrics.AddRenderCache(apps.Cache)
	if opts.Extra != nil {
		if err := opts.Extra(ctx, mgr, c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Start runs the controller until ctx ends.
func (c *Controller) Start(ctx context.Context) error {
	defer func() {
		for _, conn := range c.Clusters.All() {
			conn.Close()
		}
		// Fetches that outlived their reconcile finish (bounded by their
		// timeout) before Start returns: nothing writes checkouts after.
		if c.fetcher != nil {
			c.fetcher.Wait()
		}
	}()
	return c.Manager.Start(ctx)
}
