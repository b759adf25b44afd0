package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
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
			if err := k.approve(ctx, &st, f.Name); err != nil {
				return err
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

// promotionState says in a few words how far a Stage's promotion got.
func promotionState(s *tendv1.Stage) string {
	p := s.Status.Freight
	switch {
	case p == nil:
		return "nothing promoted"
	case p.PullRequest != nil && p.PullRequest.State == "open":
		return fmt.Sprintf("pull request #%d open", p.PullRequest.Number)
	case p.PullRequest != nil && p.PullRequest.State == "closed":
		return fmt.Sprintf("pull request #%d closed", p.PullRequest.Number)
	case p.Verification == tendv1.VerificationFailed:
		return "verification failed"
	case p.VerifiedAt != nil && p.HealthySince != nil:
		return "passed"
	case p.VerifiedAt != nil:
		return "passed, not Healthy now"
	case p.Verification == tendv1.VerificationRunning:
		return "verifying"
	}
	return "rolling out"
}

// pipelineOrder sorts Stages by Warehouse, then upstream before
// downstream (by name among equals).
func pipelineOrder(stages []tendv1.Stage) {
	depth := func(s *tendv1.Stage) int {
		byName := map[string]*tendv1.Stage{}
		for i := range stages {
			if stages[i].Namespace == s.Namespace {
				byName[stages[i].Name] = &stages[i]
			}
		}
		d := 0
		for cur := s; cur.Spec.Upstream != nil && d < len(stages); d++ {
			next, ok := byName[cur.Spec.Upstream.Stage]
			if !ok {
				d++
				break
			}
			cur = next
		}
		return d
	}
	depths := map[string]int{}
	for i := range stages {
		depths[stages[i].Namespace+"/"+stages[i].Name] = depth(&stages[i])
	}
	sort.SliceStable(stages, func(i, j int) bool {
		a, b := &stages[i], &stages[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Spec.Warehouse.Name != b.Spec.Warehouse.Name {
			return a.Spec.Warehouse.Name < b.Spec.Warehouse.Name
		}
		if da, db := depths[a.Namespace+"/"+a.Name], depths[b.Namespace+"/"+b.Name]; da != db {
			return da < db
		}
		return a.Name < b.Name
	})
}

func stageFrom(s *tendv1.Stage) string {
	if u := s.Spec.Upstream; u != nil {
		if u.Soak.Duration > 0 {
			return fmt.Sprintf("%s (soak %s)", u.Stage, u.Soak.Duration)
		}
		return u.Stage
	}
	return "warehouse"
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
			pipelineOrder(l.Items)
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
				row := []cell{plain(s.Spec.Warehouse.Name), plain(s.Name), plain(stageFrom(s)), plain(name), plain(versions), state(promotionState(s)), plain(waiting)}
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
			fmt.Fprintf(w, "  From:       %s\n", stageFrom(&s))
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
				fmt.Fprintf(w, "Freight %s (%s): %s\n", p.Name, p.Versions, promotionState(&s))
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
						result = promotionState(&s)
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
			cur := st.Status.Freight
			if cur == nil {
				return &exitError{code: ExitUsage, err: fmt.Errorf("the Stage %s/%s has promoted nothing yet", st.Namespace, st.Name)}
			}
			var prev *tendv1.Promotion
			for i := range st.Status.History {
				if st.Status.History[i].Name != cur.Name {
					prev = &st.Status.History[i]
					break
				}
			}
			if prev == nil {
				return &exitError{code: ExitUsage, err: fmt.Errorf("the Stage %s/%s has run no other freight than %s (%s)", st.Namespace, st.Name, cur.Name, cur.Versions)}
			}
			if err := k.approve(ctx, &st, prev.Name); err != nil {
				return err
			}
			fmt.Fprintf(m.Stdout, "rolling Stage %s/%s back from freight %s (%s) to %s (%s)\n", st.Namespace, st.Name, cur.Name, cur.Versions, prev.Name, prev.Versions)
			return nil
		},
	}
	kf.addFlags(cmd.Flags())
	return cmd
}

// approve sets the Stage's approved freight, and who approved it.
func (k *kube) approve(ctx context.Context, st *tendv1.Stage, freightName string) error {
	ann := map[string]any{tendv1.AnnotationApprovedFreight: freightName, tendv1.AnnotationApprovedBy: nil}
	if who := k.whoAmI(ctx); who != "" {
		ann[tendv1.AnnotationApprovedBy] = who
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
	if err != nil {
		return err
	}
	return k.wrap(k.c.Patch(ctx, st, client.RawPatch(types.MergePatchType, patch)))
}
