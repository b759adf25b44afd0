package cli

import (
	"fmt"
	"log/slog"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
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
	return cmd
}
