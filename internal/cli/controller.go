package cli

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/tend-gitops/tend/internal/controller"
)

func (m *Main) controllerCommand() *cobra.Command {
	var (
		kf   kubeFlags
		opts controller.Options
		json bool
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
			var h slog.Handler = slog.NewTextHandler(m.Stderr, nil)
			if json {
				h = slog.NewJSONHandler(m.Stderr, nil)
			}
			opts.Log = slog.New(h)
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
	f.BoolVar(&opts.LeaderElection, "leader-elect", false, "elect one active replica through a Lease")
	f.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "tend-system", "namespace of the leader election Lease")
	f.IntVar(&opts.AppWorkers, "app-workers", 8, "concurrent App reconciles")
	f.IntVar(&opts.SourceWorkers, "source-workers", 4, "concurrent Source fetches")
	f.IntVar(&opts.ApplyConcurrency, "apply-concurrency", 8, "parallel applies within one sync step")
	f.StringSliceVar(&opts.Namespaces, "watch-namespace", nil, "only manage Apps, Sources and AppSets in these namespaces (default: all)")
	f.BoolVar(&json, "log-json", false, "log as JSON")
	return cmd
}
