package cli

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/tend-gitops/tend/internal/appctl"
)

func (m *Main) rollbackCommand() *cobra.Command {
	var (
		kf    kubeFlags
		unpin bool
	)
	cmd := &cobra.Command{
		Use:   "rollback APP (ID | --unpin)",
		Short: "Pin an App to the revision of an earlier sync, or unpin it",
		Long: `Pin an App to the revision of sync ID from its history (` + "`tend history APP`" + `) by
setting spec.targetRevision. tend then applies that revision and keeps applying
it: new commits on the Source do not reach the App until it is unpinned with
--unpin, which clears spec.targetRevision so the App follows its Source again.

If the App is also in git (an App that manages Apps, or an AppSet), that
parent does not set spec.targetRevision, so the pin stays until you unpin.`,
		Example: `  tend history web
  tend rollback web 41
  tend rollback web --unpin`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case unpin && len(args) != 1:
				return &exitError{code: ExitUsage, err: errors.New("--unpin takes the App only: tend rollback APP --unpin")}
			case !unpin && len(args) != 2:
				return &exitError{code: ExitUsage, err: errors.New("want an App and a sync ID from `tend history APP`: tend rollback APP ID (or tend rollback APP --unpin)")}
			}
			return nil
		},
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return completeApps(cmd.Context(), &kf)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			k, err := kf.connect()
			if err != nil {
				return err
			}
			app, err := k.app(ctx, args[0])
			if err != nil {
				return err
			}
			name := app.Namespace + "/" + app.Name
			if unpin {
				if app.Spec.TargetRevision == "" {
					fmt.Fprintf(m.Stdout, "App %s is not pinned; it follows its Source\n", name)
					return nil
				}
				if err := appctl.Unpin(ctx, k.c, app); err != nil {
					return k.wrap(err)
				}
				fmt.Fprintf(m.Stdout, "App %s unpinned from %s: it follows its Source again\n", name, shortRev(app.Spec.TargetRevision))
				return nil
			}
			id, err := strconv.ParseInt(args[1], 10, 64)
			if err != nil {
				return &exitError{code: ExitUsage, err: fmt.Errorf("sync ID %q is not a number; `tend history %s` lists them", args[1], app.Name)}
			}
			rec, err := appctl.Rollback(ctx, k.c, app, id)
			var invalid *appctl.InvalidRequest
			if errors.As(err, &invalid) {
				return &exitError{code: ExitUsage, err: err}
			}
			if err != nil {
				return k.wrap(err)
			}
			note := ""
			if rec.Result != "Succeeded" {
				note = " (that sync failed: " + rec.Message + ")"
			} else if !rec.Healthy {
				note = " (the App did not become Healthy after that sync)"
			}
			fmt.Fprintf(m.Stdout, "App %s pinned to %s, the revision of sync %d from %s%s\n", name, shortRev(rec.Revision), id, rec.StartedAt.UTC().Format(time.RFC3339), note)
			fmt.Fprintf(m.Stdout, "Automatic sync is paused: new commits on the Source do not reach the App until `tend rollback %s --unpin`\n", app.Name)
			return nil
		},
	}
	kf.addFlags(cmd.Flags())
	cmd.Flags().BoolVar(&unpin, "unpin", false, "clear spec.targetRevision: follow the Source again")
	return cmd
}
