package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"time"

	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/objstatus"

	"github.com/spf13/cobra"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/tend-gitops/tend/internal/appdiff"
	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/dashboard"
	"github.com/tend-gitops/tend/internal/dashboard/auth"
	"github.com/tend-gitops/tend/internal/refwatch"
	"github.com/tend-gitops/tend/internal/webhook"
)

// newTeamDashboard is the dashboard the controller serves, over the
// manager's cache (Apps, Sources, Notifiers, Clusters and AppSets are
// cached for the controllers anyway); its diffs use the engine the App's
// syncs run on (as its ServiceAccount, when it has one).
func newTeamDashboard(mgr manager.Manager, c *controller.Controller, t dashboard.TeamOptions) (*dashboard.Team, error) {
	cfg := mgr.GetConfig()
	// Uncached: a diff reads the Secrets an App names once, and they
	// should not stay in memory.
	direct, err := client.New(cfg, client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return nil, err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return dashboard.NewTeam(dashboard.Options{
		Cache: mgr.GetCache(), Client: mgr.GetClient(), Kube: kube, Dynamic: dyn, Mapper: mgr.GetRESTMapper(), Log: t.Log,
		Differ: &appdiff.Differ{Config: cfg, Client: direct, Engine: c.Clusters.Local.Engine, EngineFor: c.EngineFor, ActAs: c.ServiceAccountUser},
	}, t)
}

func (m *Main) controllerCommand() *cobra.Command {
	var (
		kf            kubeFlags
		opts          controller.Options
		json          bool
		webhookAddr   string
		webhookSecret string
		gcPercent     int
		dash          dashboard.TeamOptions
	)
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the tend controller (in the cluster, or locally against a kubeconfig)",
		Long: `Run the tend controller: fetch Sources, render and sync Apps, generate Apps
from AppSets, and serve /metrics, /healthz and /readyz. Run two replicas with
--leader-elect for high availability.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := kf.restConfig()
			if err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			opts.Config = cfg
			opts.Version, opts.Commit = m.Build.Version, m.Build.Commit
			setGCPercent(gcPercent, cmd.Flags().Changed("gc-percent"))
			var h slog.Handler = slog.NewTextHandler(m.Stderr, nil)
			if json {
				h = slog.NewJSONHandler(m.Stderr, nil)
			}
			opts.Log = slog.New(h)
			opts.Extra = func(_ context.Context, mgr manager.Manager, c *controller.Controller) error {
				if dash.Addr != "0" && dash.Addr != "" {
					dash.Namespace = opts.LeaderElectionNamespace
					dash.Log = opts.Log.With("component", "dashboard")
					team, err := newTeamDashboard(mgr, c, dash)
					if err != nil {
						return &exitError{code: ExitUsage, err: err}
					}
					if err := mgr.Add(team); err != nil {
						return err
					}
				}
				if webhookAddr == "0" || webhookAddr == "" {
					return nil
				}
				if slices.Contains(opts.Compat, "flux") {
					// Flux's Receivers' status, as notification-controller
					// wrote it; served or not, their paths are theirs.
					if err := setupFluxReceiverStatus(mgr, opts); err != nil {
						return err
					}
				}
				srv := &webhookServer{addr: webhookAddr, log: opts.Log, handler: &webhook.Receiver{
					// The Secret is read from a watch of it alone: a flood
					// of requests sends the apiserver none, and a rotated
					// secret applies at once.
					Client: mgr.GetClient(), SecretReader: watchedSecrets{refs: c.Refs, owner: refwatch.Owner{Kind: "WebhookReceiver", Name: webhookSecret}},
					SecretNamespace: opts.LeaderElectionNamespace, SecretName: webhookSecret,
					Log: opts.Log.With("component", "webhook"),
				}}
				if slices.Contains(opts.Compat, "flux") {
					// Flux's Receivers, at the paths Flux gave them.
					srv.flux = &webhook.FluxReceivers{
						Client: mgr.GetClient(), Secrets: c.Refs, Namespaces: opts.Namespaces,
						Log: opts.Log.With("component", "flux-receiver"),
					}
				}
				return mgr.Add(srv)
			}
			c, err := controller.New(cmd.Context(), opts)
			if err != nil {
				return err
			}
			opts.Log.Info("tend controller starting", "version", m.Build.Version, "metrics", opts.MetricsAddr, "probes", opts.ProbeAddr, "leaderElection", opts.LeaderElection, "pid", os.Getpid())
			return c.Start(cmd.Context())
		},
	}
	f := cmd.Flags()
	kf.addFlags(f)
	f.StringVar(&opts.DataDir, "data-dir", "", "directory for source checkouts (default $TMPDIR/tend)")
	f.StringVar(&opts.MetricsAddr, "metrics-addr", ":8080", "address of /metrics (0 disables)")
	f.StringVar(&opts.ProbeAddr, "probe-addr", ":8081", "address of /healthz and /readyz (0 disables)")
	f.Float32Var(&opts.QPS, "kube-api-qps", 0, "requests per second to the cluster's apiserver (0: no client-side limit, the apiserver's priority and fairness applies)")
	f.IntVar(&opts.Burst, "kube-api-burst", 0, "burst of requests above --kube-api-qps")
	f.StringVar(&opts.PprofAddr, "pprof-addr", "0", "address of Go's /debug/pprof profiles, e.g. 127.0.0.1:6060 (0 disables; never expose it)")
	f.BoolVar(&opts.LeaderElection, "leader-elect", false, "elect one active replica through a Lease")
	f.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "tend-system", "namespace of the leader election Lease")
	f.IntVar(&opts.AppWorkers, "app-workers", 8, "concurrent App reconciles")
	f.IntVar(&opts.SourceWorkers, "source-workers", 4, "concurrent Source fetches")
	f.IntVar(&opts.ApplyConcurrency, "apply-concurrency", 8, "parallel applies within one sync step")
	f.IntVar(&opts.MaxInflightApplies, "max-inflight-applies", apply.DefaultMaxInflight, "applies in flight to a cluster across all Apps (keeps a cold start of many Apps from queueing writes in the apiserver until they time out)")
	f.IntVar(&opts.MaxConcurrentSyncs, "max-concurrent-syncs", apply.DefaultMaxSyncs, "syncs working on a cluster at once; more wait for a turn (a sync waiting for health or a hook gives its turn up meanwhile)")
	f.StringSliceVar(&opts.Namespaces, "watch-namespace", nil, "only manage Apps, Sources and AppSets in these namespaces (default: all)")
	f.BoolVar(&opts.NoCrossNamespaceRefs, "no-cross-namespace-refs", false, "stall Apps and AppSets that reference a Source or App in another namespace, whatever their Project allows (for clusters shared by tenants)")
	f.StringVar(&opts.DefaultServiceAccount, "default-service-account", "", "ServiceAccount (in each App's namespace) that Apps without spec.serviceAccountName act as, so that tenants' RBAC limits their Apps (empty: tend's own identity)")
	f.StringSliceVar(&opts.Compat, "compat", nil, "also reconcile Argo CD (argo) and Flux (flux) objects as they are; their CRDs must be installed (tend install --compat)")
	f.StringVar(&opts.ArgoDecryptionSecret, "argo-decryption-secret", "", "with --compat argo: the Secret, in each Application's namespace, holding the SOPS keys (keys.txt, *.agekey, *.asc) KSOPS generators and SOPS files decrypt with, as Argo CD's repo-server has them")
	f.StringVar(&webhookAddr, "webhook-addr", ":9292", "address of the push webhook receiver, /hooks/{github,gitlab,gitea,bitbucket,generic}, and with --compat flux Flux's Receivers at /hook/<digest> (0 disables)")
	f.StringVar(&webhookSecret, "webhook-secret", "tend-webhook", "Secret in --leader-election-namespace holding the webhook tokens")
	f.StringVar(&dash.Addr, "dashboard-addr", "0", "address of the web dashboard, behind single sign-on or the admin token of `tend dashboard token` (0 disables)")
	f.StringVar(&dash.URL, "dashboard-url", "", "the dashboard's public URL, such as https://tend.example.com (required with --dashboard-oidc-issuer; https makes its cookies Secure)")
	f.StringVar(&dash.Issuer, "dashboard-oidc-issuer", "", "OIDC issuer URL for single sign-on (Dex, Keycloak, authentik, GitLab, Google); its client secret is the key "+dashboard.SecretOIDCClientSecret+" of the Secret --dashboard-secret")
	f.StringVar(&dash.ClientID, "dashboard-oidc-client-id", "", "the dashboard's client ID at the OIDC issuer")
	f.StringSliceVar(&dash.Scopes, "dashboard-oidc-scopes", nil, "scopes to ask the issuer for (default openid,profile,email,groups; Google and GitLab: openid,profile,email)")
	f.StringVar(&dash.GroupsClaim, "dashboard-oidc-groups-claim", "groups", "ID token claim listing the user's groups")
	f.DurationVar(&dash.SessionTTL, "dashboard-session-ttl", 12*time.Hour, "how long a dashboard sign-in lasts")
	f.StringVar(&dash.Name, "dashboard-secret", dashboard.DefaultTeamName, "Secret in --leader-election-namespace with the dashboard's session key (created when missing), admin token hash and OIDC client secret; the ConfigMap of that name holds the roles policy ("+auth.PolicyKey+")")
	f.BoolVar(&json, "log-json", false, "log as JSON")
	f.IntVar(&gcPercent, "gc-percent", DefaultGCPercent, "how far Go's heap may grow over live data before a collection, in percent (GOGC; the GOGC variable wins unless this flag is given)")
	return cmd
}

// setupFluxReceiverStatus registers the writer of Flux's Receivers'
// status, unless the cluster has no Receiver CRD (Flux installed without
// its notification-controller).
func setupFluxReceiverStatus(mgr manager.Manager, opts controller.Options) error {
	if _, err := mgr.GetRESTMapper().RESTMapping(schema.GroupKind{Group: "notification.toolkit.fluxcd.io", Kind: "Receiver"}, "v1"); err != nil {
		if meta.IsNoMatchError(err) {
			opts.Log.Info("compat: the cluster has no Receiver CRD; Receivers are not served (tend install --compat flux installs it)")
			return nil
		}
		return err
	}
	return (&webhook.FluxReceiverStatus{
		Client: mgr.GetClient(), SecretReader: mgr.GetAPIReader(), Recorder: objstatus.DistinctNotes(mgr.GetEventRecorder("tend")),
		Namespaces: opts.Namespaces, Log: opts.Log.With("controller", "flux-receiver"),
	}).SetupWithManager(mgr)
}

// DefaultGCPercent is the controller's GOGC. Go's default of 100 lets the
// heap reach twice the live data between collections; at 50 it reaches one
// and a half times, for more frequent collections while tend works (an
// idle controller allocates almost nothing, so it costs nothing then).
// Prometheus made the same trade (GOGC=75) for the same reason.
const DefaultGCPercent = 50

// setGCPercent applies --gc-percent: always when the flag was given,
// otherwise only when GOGC is not set in the environment.
func setGCPercent(percent int, flagGiven bool) {
	if flagGiven || os.Getenv("GOGC") == "" {
		debug.SetGCPercent(percent)
	}
}

// watchedSecrets reads Secrets from refwatch's watches (one per Secret,
// started at its first read) for owner; it cannot list.
type watchedSecrets struct {
	refs  *refwatch.Watcher
	owner refwatch.Owner
}

var _ client.Reader = watchedSecrets{}

func (w watchedSecrets) Get(ctx context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	return w.refs.Get(ctx, w.owner, key, obj)
}

func (w watchedSecrets) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("watchedSecrets: List is not supported; read one Secret by name")
}

// webhookServer serves the push receivers on every replica: receiving a
// push only annotates Sources, which the leader acts on.
type webhookServer struct {
	addr    string
	handler http.Handler
	// flux serves Flux's Receivers (/hook/...) under --compat flux.
	flux http.Handler
	log  *slog.Logger
}

var (
	_ manager.Runnable               = (*webhookServer)(nil)
	_ manager.LeaderElectionRunnable = (*webhookServer)(nil)
)

func (w *webhookServer) NeedLeaderElection() bool { return false }

func (w *webhookServer) Start(ctx context.Context) error {
	l, err := net.Listen("tcp", w.addr)
	if err != nil {
		return fmt.Errorf("webhook receiver on %s: %w", w.addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/hooks/", w.handler)
	if w.flux != nil {
		mux.Handle("/hook/", w.flux)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	w.log.Info("webhook receiver listening", "addr", l.Addr().String())
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
