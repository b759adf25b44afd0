package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
lists them in status.freight); without it, what the Stage waits for: the freight that
passed in its upstream Stage (spec.upstream), else the Warehouse's newest. Approving
older freight than the Stage runs rolls it back. The approval is the Stage's
tend.dev/approved-freight annotation; tend.dev/approved-by records who approved (the
user the cluster knows you as), and the promotion's status.freight.by says it.`,
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
			if up := st.Spec.Upstream; up != nil && len(args) < 2 {
				var u tendv1.Stage
				if err := k.c.Get(ctx, types.NamespacedName{Namespace: st.Namespace, Name: up.Stage}, &u); err != nil {
					return k.wrap(fmt.Errorf("the Stage's upstream Stage %s: %w", up.Stage, err))
				}
				p := u.Status.Freight
				if p == nil || p.VerifiedAt == nil {
					return &exitError{code: ExitUsage, err: fmt.Errorf("nothing has passed in the upstream Stage %s/%s yet; wait, or name the freight to approve", u.Namespace, u.Name)}
				}
				if f = freightOf(&wh, p.Name); f == nil {
					return &exitError{code: ExitUsage, err: fmt.Errorf("freight %s, which passed in the upstream Stage %s, is no longer kept by the Warehouse %s/%s", p.Name, u.Name, wh.Namespace, wh.Name)}
				}
			}
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
			ann := map[string]any{tendv1.AnnotationApprovedFreight: f.Name, tendv1.AnnotationApprovedBy: nil}
			if who := k.whoAmI(ctx); who != "" {
				ann[tendv1.AnnotationApprovedBy] = who
			}
			patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
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

// freightOf is the Warehouse's freight called name, nil if it keeps none.
func freightOf(wh *tendv1.Warehouse, name string) *tendv1.Freight {
	for i := range wh.Status.Freight {
		if wh.Status.Freight[i].Name == name {
			return &wh.Status.Freight[i]
		}
	}
	return nil
}

// whoAmI is the user the cluster knows the CLI's credentials as, "" when
// it will not say (a cluster without SelfSubjectReview).
func (k *kube) whoAmI(ctx context.Context) string {
	r, err := k.cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return ""
	}
	return r.Status.UserInfo.Username
}
