package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/freight"
	"github.com/tend-gitops/tend/internal/promote"
)

func (m *Main) promoteCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "promote",
		Short: "Follow and steer promotion pipelines: list, show, approve, rollback",
		Long: `Promotion: Warehouses find new versions (freight), Stages write them into git, each
after its upstream Stage passed them. ` + "`tend promote list`" + ` shows the pipelines,
` + "`tend promote show STAGE`" + ` one Stage and its history; approve and rollback steer a
Stage with spec.approval.`,
	}
	cmd.AddCommand(m.promoteListCommand(), m.promoteShowCommand(), m.promoteApproveCommand(), m.promoteRollbackCommand())
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
			name := ""
			if len(args) == 2 {
				name = args[1]
			}
			f, err := promote.Approve(ctx, k.c, &st, name, k.whoAmI(ctx))
			if err != nil {
				return k.promoteError(err)
			}
			fmt.Fprintf(m.Stdout, "approved freight %s (%s) for Stage %s/%s\n", f.Name, freight.Describe(f), st.Namespace, st.Name)
			return nil
		},
	}
	kf.addFlags(cmd.Flags())
	return cmd
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

func (m *Main) promoteListCommand() *cobra.Command {
	var kf kubeFlags
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "The promotion pipelines: each Warehouse's Stages in order, what they run and wait for",
		Long: `List the Stages of a namespace (or of all, with -A) by Warehouse, each after its upstream
Stage: where its freight comes from, the freight it runs, how far that got (rolling out,
verifying, passed, verification failed, a pull request open) and, when it is not Ready,
what it waits for.`,
		Example: `  tend promote list -n team-web
  tend promote list -A`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := kf.connect()
			if err != nil {
				return err
			}
			var l tendv1.StageList
			var opts []client.ListOption
			if !all {
				opts = append(opts, client.InNamespace(k.ns))
			}
			if err := k.c.List(cmd.Context(), &l, opts...); err != nil {
				return k.wrap(err)
			}
			if len(l.Items) == 0 {
				fmt.Fprintf(m.Stderr, "no Stages in %s\n", scopeName(k, all))
				return nil
			}
			promote.SortPipeline(l.Items)
			t := &table{header: []string{"WAREHOUSE", "STAGE", "FROM", "FREIGHT", "VERSIONS", "STATE", "WAITING"}}
			if all {
				t.header = append([]string{"NAMESPACE"}, t.header...)
			}
			for i := range l.Items {
				s := &l.Items[i]
				name, versions := "", ""
				if p := s.Status.Freight; p != nil {
					name, versions = p.Name, p.Versions
				}
				waiting := ""
				if ready, msg := readyCondition(s.Status.Conditions); ready != "True" {
					waiting = msg
				}
				row := []cell{plain(s.Spec.Warehouse.Name), plain(s.Name), plain(promote.From(s)), plain(name), plain(versions), state(promote.State(s)), plain(waiting)}
				if all {
					row = append([]cell{plain(s.Namespace)}, row...)
				}
				t.add(row...)
			}
			return t.write(m.Stdout, m.painter())
		},
	}
	kf.addFlags(cmd.Flags())
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list every namespace")
	return cmd
}

func (m *Main) promoteShowCommand() *cobra.Command {
	var kf kubeFlags
	cmd := &cobra.Command{
		Use:   "show STAGE",
		Short: "One Stage: where its freight comes from, its gates, what it runs and its history",
		Long: `Show a Stage: its Warehouse or upstream Stage (and soak time), its Apps, its gates
(approval, verification, pull requests), the promotion it runs (commit, who or what promoted
it, since when its Apps run it Healthy, its verification), what it waits for, and its last
20 promotions.`,
		Example: `  tend promote show prod -n team-web`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := kf.connect()
			if err != nil {
				return err
			}
			var s tendv1.Stage
			if err := k.named(cmd.Context(), "Stage", args[0], &s, &tendv1.StageList{}); err != nil {
				return err
			}
			w := m.Stdout
			fmt.Fprintf(w, "Stage %s/%s\n", s.Namespace, s.Name)
			fmt.Fprintf(w, "  Warehouse:  %s\n", s.Spec.Warehouse.Name)
			fmt.Fprintf(w, "  From:       %s\n", promote.From(&s))
			var apps []string
			for _, a := range s.Spec.Apps {
				apps = append(apps, a.Name)
			}
			if len(apps) > 0 {
				fmt.Fprintf(w, "  Apps:       %s\n", strings.Join(apps, ", "))
			}
			var gates []string
			if s.Spec.Approval {
				gates = append(gates, "approval")
			}
			if s.Spec.Verification != nil {
				gates = append(gates, "verification Job")
			}
			if pr := s.Spec.Git.PullRequest; pr != nil {
				gates = append(gates, "pull request ("+pr.Provider+")")
			}
			if len(gates) == 0 {
				gates = []string{"none: promotes each new piece of freight"}
			}
			fmt.Fprintf(w, "  Gates:      %s\n", strings.Join(gates, ", "))
			ready, msg := readyCondition(s.Status.Conditions)
			fmt.Fprintf(w, "  Ready:      %s: %s\n", orUnknown(ready), msg)
			if p := s.Status.Freight; p != nil {
				fmt.Fprintf(w, "Freight %s (%s): %s\n", p.Name, p.Versions, promote.State(&s))
				fmt.Fprintf(w, "  Commit:     %s\n", p.Revision)
				if pr := p.PullRequest; pr != nil {
					fmt.Fprintf(w, "  Pull request: #%d %s (%s)\n", pr.Number, pr.URL, pr.State)
				}
				fmt.Fprintf(w, "  Promoted:   %s ago, %s\n", age(p.PromotedAt), orUnknown(p.By))
				if p.HealthySince != nil {
					fmt.Fprintf(w, "  Healthy:    for %s\n", age(*p.HealthySince))
				}
				if p.Verification != "" {
					fmt.Fprintf(w, "  Verification: %s\n", p.Verification)
				}
				if p.VerifiedAt != nil {
					fmt.Fprintf(w, "  Passed:     %s ago\n", age(*p.VerifiedAt))
				}
				if p.Message != "" {
					fmt.Fprintf(w, "  Message:    %s\n", p.Message)
				}
			}
			if len(s.Status.History) == 0 {
				return nil
			}
			fmt.Fprintln(w, "History:")
			t := &table{header: []string{"FREIGHT", "VERSIONS", "COMMIT", "PROMOTED", "BY", "RESULT"}}
			for i := range s.Status.History {
				h := &s.Status.History[i]
				result := "passed"
				switch {
				case h.Verification == tendv1.VerificationFailed:
					result = "verification failed"
				case h.VerifiedAt == nil:
					result = "did not pass"
					if i == 0 {
						result = promote.State(&s)
					}
				}
				t.add(plain(h.Name), plain(h.Versions), plain(shortRev(h.Revision)), plain(age(h.PromotedAt)), plain(h.By), state(result))
			}
			return t.write(w, m.painter())
		},
	}
	kf.addFlags(cmd.Flags())
	return cmd
}

func (m *Main) promoteRollbackCommand() *cobra.Command {
	var kf kubeFlags
	cmd := &cobra.Command{
		Use:   "rollback STAGE",
		Short: "Roll a Stage with spec.approval back to the freight it ran before",
		Long: `Approve, for a Stage whose spec.approval is set, the freight it promoted before the one it
runs (from its history): the Stage writes that freight back into git, in a new commit. A Stage
without approval promotes each new piece of freight again as it comes: set spec.approval to
hold it on older freight.`,
		Example: `  tend promote rollback prod -n team-web`,
		Args:    cobra.ExactArgs(1),
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
				return &exitError{code: ExitUsage, err: fmt.Errorf("the Stage %s/%s promotes each new piece of freight as it comes (it has no spec.approval): a rollback would not hold; set spec.approval: true first", st.Namespace, st.Name)}
			}
			prev, err := promote.Previous(&st)
			if err != nil {
				return k.promoteError(err)
			}
			cur := st.Status.Freight
			if _, err := promote.Approve(ctx, k.c, &st, prev.Name, k.whoAmI(ctx)); err != nil {
				return k.promoteError(err)
			}
			fmt.Fprintf(m.Stdout, "rolling Stage %s/%s back from freight %s (%s) to %s (%s)\n", st.Namespace, st.Name, cur.Name, cur.Versions, prev.Name, prev.Versions)
			return nil
		},
	}
	kf.addFlags(cmd.Flags())
	return cmd
}

// promoteError is an approval's error as the CLI reports it: a request
// that cannot be made is a usage error.
func (k *kube) promoteError(err error) error {
	var ir *promote.InvalidRequest
	if errors.As(err, &ir) {
		return &exitError{code: ExitUsage, err: err}
	}
	return k.wrap(err)
}
