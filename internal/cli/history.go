package cli

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

func (m *Main) historyCommand() *cobra.Command {
	var (
		kf     kubeFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "history APP",
		Short: "Show an App's last syncs",
		Long: `Show the last 20 syncs of an App, newest first: the revision, when it started,
how long it took, whether it succeeded, how many objects it changed, whether
the App became Healthy after it, and what triggered or failed it. Roll back to
an entry with ` + "`tend rollback APP ID`.",
		Example: `  tend history web
  tend history web -n tend-system -o yaml`,
		Args: cobra.ExactArgs(1),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return completeApps(cmd.Context(), &kf)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(output, formatTable, formatYAML, formatJSON); err != nil {
				return err
			}
			k, err := kf.connect()
			if err != nil {
				return err
			}
			app, err := k.app(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			h := app.Status.History
			if output != formatTable {
				if h == nil {
					return printData(m.Stdout, output, []any{})
				}
				return printData(m.Stdout, output, h)
			}
			if len(h) == 0 {
				fmt.Fprintf(m.Stdout, "App %s/%s has no sync history yet\n", app.Namespace, app.Name)
				return nil
			}
			t := &table{header: []string{"ID", "REVISION", "STARTED", "DURATION", "RESULT", "CHANGED", "HEALTHY", "MESSAGE"}}
			for _, r := range h {
				healthy := "no"
				if r.Healthy {
					healthy = "yes"
				}
				t.add(plain(strconv.FormatInt(r.ID, 10)), plain(shortRev(r.Revision)), plain(r.StartedAt.UTC().Format(time.RFC3339)),
					plain(r.Duration.Duration.String()), state(r.Result), plain(strconv.Itoa(int(r.Changed))), state(healthy), plain(r.Message))
			}
			return t.write(m.Stdout, m.painter())
		},
	}
	kf.addFlags(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", formatTable, "output format: table, yaml or json")
	return cmd
}
