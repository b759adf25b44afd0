package cli

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/freight"
)

func (m *Main) promoteCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "promote",
		Short: "Approve freight for a Stage",
		Long: `Promotion: Warehouses find new versions (freight), Stages write them into git.
` + "`tend get warehouses`" + ` and ` + "`tend get stages`" + ` show them.`,
	}
	cmd.AddCommand(m.promoteApproveCommand())
	return cmd
}

func (m *Main) promoteApproveCommand() *cobra.Command {
	var kf kubeFlags
	cmd := &cobra.Command{
		Use:   "approve STAGE [FREIGHT]",
		Short: "Approve freight for a Stage with spec.approval: it promotes it",
		Long: `Approve a piece of freight for a Stage whose spec.approval is set: the Stage writes it into
git. FREIGHT is a name from the Stage's Warehouse (` + "`tend get warehouse NAME -o yaml`" + `
lists them in status.freight); without it, the Warehouse's newest. Approving older
freight than the Stage runs rolls it back. The approval is the Stage's
tend.dev/approved-freight annotation.`,
		Example: `  tend promote approve prod
  tend promote approve prod 0a8071867d94 -n team-web`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			k, err := kf.connect()
			if err != nil {
				return err
			}
			var st tendv1.Stage
			if err := k.named(ctx, "Stage", args[0], &st, &tendv1.StageList{}); err != nil {
				return err
			}
			if !st.Spec.Approval {
				return &exitError{code: ExitUsage, err: fmt.Errorf("the Stage %s/%s promotes each new piece of freight as it is found (it has no spec.approval): there is nothing to approve", st.Namespace, st.Name)}
			}
			var wh tendv1.Warehouse
			if err := k.c.Get(ctx, types.NamespacedName{Namespace: st.Namespace, Name: st.Spec.Warehouse.Name}, &wh); err != nil {
				return k.wrap(fmt.Errorf("the Stage's Warehouse %s: %w", st.Spec.Warehouse.Name, err))
			}
			if len(wh.Status.Freight) == 0 {
				return &exitError{code: ExitUsage, err: fmt.Errorf("the Warehouse %s/%s has found no freight yet", wh.Namespace, wh.Name)}
			}
			f := &wh.Status.Freight[0]
			if len(args) == 2 {
				f = nil
				var names []string
				for i := range wh.Status.Freight {
					names = append(names, wh.Status.Freight[i].Name)
					if wh.Status.Freight[i].Name == args[1] {
						f = &wh.Status.Freight[i]
					}
				}
				if f == nil {
					return &exitError{code: ExitUsage, err: fmt.Errorf("the Warehouse %s/%s keeps no freight %q; it keeps %s", wh.Namespace, wh.Name, args[1], strings.Join(names, ", "))}
				}
			}
			patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{tendv1.AnnotationApprovedFreight: f.Name}}})
			if err != nil {
				return err
			}
			if err := k.c.Patch(ctx, &st, client.RawPatch(types.MergePatchType, patch)); err != nil {
				return k.wrap(err)
			}
			fmt.Fprintf(m.Stdout, "approved freight %s (%s) for Stage %s/%s\n", f.Name, freight.Describe(f), st.Namespace, st.Name)
			return nil
		},
	}
	kf.addFlags(cmd.Flags())
	return cmd
}
