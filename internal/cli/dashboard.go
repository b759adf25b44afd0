package cli

import (
	"fmt"
	"log/slog"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/dashboard"
)

func (m *Main) dashboardCommand() *cobra.Command {
	var kf kubeFlags
	addr := "127.0.0.1:8090"
	var namespaces []string
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve tend's web dashboard on this machine, with your kubeconfig's credentials",
		Long: `Serve tend's web dashboard on 127.0.0.1: every App with its sync and health
state, resource tree, history and events; Sources, AppSets, Notifiers and
Clusters; sync, refresh, suspend and resume buttons; live updates.

The dashboard acts with your kubeconfig's credentials, so it listens on a
loopback address only and opens through the URL it prints, which carries a
token (other users of this machine cannot use it without that URL). Actions
are recorded as events on the App and logged here.`,
		Example: `  tend dashboard
  tend dashboard --addr 127.0.0.1:9000 --context staging
  tend dashboard -n team-a -n team-b        # credentials that may read only these namespaces`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := kf.connect()
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(m.Stderr, nil))
			ctrllog.SetLogger(logr.FromSlogHandler(log.Handler()))
			l, err := dashboard.ListenLocal(cmd.Context(), k.cfg, controller.Scheme(), dashboard.LocalOptions{Addr: addr, Namespaces: namespaces, Log: log})
			if err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			return l.Serve(cmd.Context(), func(err error) {
				if err == nil {
					fmt.Fprintf(m.Stdout, "tend dashboard for %s: open %s\n(Ctrl-C stops it)\n", k.cfg.Host, l.URL)
				}
			})
		},
	}
	cmd.Flags().StringVar(&kf.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default $KUBECONFIG, ~/.kube/config)")
	cmd.Flags().StringVar(&kf.context, "context", "", "kubeconfig context to use")
	cmd.Flags().StringVar(&addr, "addr", addr, "loopback address to listen on (port 0 picks a free one)")
	cmd.Flags().StringSliceVarP(&namespaces, "namespace", "n", nil, "show only these namespaces, for credentials that may not list tend's objects in all (default: all)")
	cmd.AddCommand(m.dashboardTokenCommand())
	return cmd
}

func (m *Main) dashboardTokenCommand() *cobra.Command {
	var kf kubeFlags
	namespace, secret := "tend-system", dashboard.DefaultTeamName
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Make a new admin token for the dashboard the controller serves, and print it once",
		Long: `Make a new local admin token for the dashboard that tend controller serves
(--dashboard-addr), for a first sign-in or when single sign-on is down. The
token is printed once and kept nowhere: only its SHA-256 goes into the Secret
` + dashboard.DefaultTeamName + ` of tend's namespace, and the running controller picks it up at
once. Making a new token replaces the old one and ends the sessions signed in
with it.

Whoever holds the token is an admin of the dashboard: keep it in a password
manager, and prefer single sign-on for daily use.`,
		Example: `  tend dashboard token
  tend dashboard token -n tend-system --context prod`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := kf.restConfig()
			if err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			kube, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return err
			}
			token, err := dashboard.AdminTokenPatch(cmd.Context(), kube, namespace, secret)
			if err != nil {
				return err
			}
			fmt.Fprintf(m.Stdout, "%s\n", token)
			fmt.Fprintf(m.Stderr, "The dashboard's admin token (shown once; its hash is in Secret %s/%s). Sign in at <dashboard URL>/auth/token.\n", namespace, secret)
			return nil
		},
	}
	cmd.Flags().StringVar(&kf.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default $KUBECONFIG, ~/.kube/config)")
	cmd.Flags().StringVar(&kf.context, "context", "", "kubeconfig context to use")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", namespace, "tend's namespace (the controller's --leader-election-namespace)")
	cmd.Flags().StringVar(&secret, "secret", secret, "the dashboard's Secret (the controller's --dashboard-secret)")
	return cmd
}
