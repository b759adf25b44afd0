package cli

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tend-gitops/tend/internal/appdiff"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/cluster"
	"github.com/tend-gitops/tend/internal/diff"
)

func (m *Main) diffCommand() *cobra.Command {
	var (
		kf       kubeFlags
		rf       renderFlags
		app      string
		revision string
		prune    bool
	)
	cmd := &cobra.Command{
		Use:         "diff PATH|APP",
		Short:       "Show what syncing a directory or an App would change in the cluster",
		Annotations: map[string]string{annotationExit1: "when something would change"},
		Long: `Show what a sync would change in the cluster, as unified YAML diffs of the live
objects against what applying would make of them, then a summary line such as
"2 to create, 1 to update, 1 to delete, 7 unchanged".

tend diff runs the sync engine's own preparation and apply, as a server-side
apply dry run (field manager tend): the owner check, the App's
ignoreDifferences, and the handling of fields other managers own are exactly
those of a sync, so defaults, admission webhooks and other managers' fields are
accounted for and nothing is changed. A field a controller owns (an
autoscaler's replicas) is left to it, as a sync leaves it, and noted; a
person's edit (kubectl) shows as a change a sync takes back. Fields other
managers own and tend does not set never show. Secret values are masked: a diff
says only whether a value is unchanged, changed, added or removed. Hooks are
not compared: they run during a sync.

Objects the App applied before and no longer renders (from its inventory) show
as deletions when they would be pruned: when the App prunes (spec.sync.prune)
or with --prune. A PATH has an inventory only with --app NAME; -n is the App's
namespace and that of namespaced objects that have none.

APP renders the App from its Source at the revision the Source last fetched,
or at --revision (a branch, tag or commit).

Exits 0 when nothing would change and 1 when something would.`,
		Example: `  tend diff web
  tend diff web --revision feature/new-ingress
  tend diff ./clusters/home/web --app web -n tend-system --prune`,
		Args: cobra.ExactArgs(1),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			apps, _ := completeApps(cmd.Context(), &kf)
			return apps, cobra.ShellCompDirectiveFilterDirs
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			t, err := resolveTarget(args[0])
			if err != nil {
				return err
			}
			if t.path != "" && revision != "" {
				return &exitError{code: ExitUsage, err: errors.New("--revision applies to an App; a PATH renders what is on disk")}
			}
			if t.app != "" {
				if err := checkAppFlags(cmd, t.app); err != nil {
					return err
				}
				if app != "" {
					return &exitError{code: ExitUsage, err: errors.New("--app applies to a PATH")}
				}
			}
			k, err := kf.connect()
			if err != nil {
				if t.app != "" {
					return notPathOrApp(t.app, err)
				}
				return err
			}
			if t.app != "" {
				a, err := k.app(ctx, t.app)
				if err != nil {
					return err
				}
				src, err := k.appSource(ctx, a)
				if err != nil {
					return err
				}
				o := appdiff.Options{Revision: revision}
				if cmd.Flags().Changed("prune") {
					o.Prune = &prune
				}
				return m.withConn(ctx, k, func(conn *cluster.Conn) error {
					res, err := k.differ(conn.Engine).Diff(ctx, a, src, o)
					if err != nil {
						return k.appError(err)
					}
					return m.printDiff(res.Difference)
				})
			}
			res, _, err := rf.renderPath(ctx, clusterRenderer(k), t.path, k.ns, app)
			if err != nil {
				return err
			}
			req := apply.Request{Objects: res.Objects(), Prune: prune}
			if app != "" {
				req.App = apply.AppRef{Namespace: k.ns, Name: app}
			}
			return m.withConn(ctx, k, func(conn *cluster.Conn) error {
				d, err := conn.Engine.Diff(ctx, req)
				if err != nil {
					var se *apply.SyncError
					if errors.As(err, &se) {
						return &exitError{code: ExitUsage, err: err}
					}
					return k.wrap(err)
				}
				return m.printDiff(d)
			})
		},
	}
	f := cmd.Flags()
	kf.addFlags(f)
	rf.addFlags(f)
	f.StringVar(&app, "app", "", "PATH: the App the objects belong to; its inventory shows what a sync would prune")
	f.StringVar(&revision, "revision", "", "APP: diff this git branch, tag or commit of the App's Source (a tag or digest of an OCI artifact Source)")
	f.BoolVar(&prune, "prune", false, "show objects that left git as deletions (default for an App: its spec.sync.prune)")
	return cmd
}

// printDiff prints the diffs and the summary line and returns the exit
// status: 1 when something would change.
func (m *Main) printDiff(r *apply.Difference) error {
	p := m.painter()
	sort.SliceStable(r.Objects, func(i, j int) bool {
		return diff.ActionRank(r.Objects[i].Action) < diff.ActionRank(r.Objects[j].Action)
	})
	changed := 0
	for _, d := range r.Objects {
		if d.Action == diff.ActionUnchanged {
			continue
		}
		changed++
		writeUnified(m.Stdout, d.Unified, p)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(m.Stdout, "note: %s\n", n)
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(m.Stdout, "note: %s\n", w)
	}
	summary := diff.Summary(r.Objects)
	if r.Hooks > 0 {
		summary += fmt.Sprintf(" (%d hooks run during a sync, not compared)", r.Hooks)
	}
	fmt.Fprintln(m.Stdout, p.paint(colorBold, summary))
	if len(r.Errors) > 0 {
		sort.Strings(r.Errors)
		return &exitError{code: ExitUsage, err: fmt.Errorf("%d objects cannot be compared:\n  %s", len(r.Errors), strings.Join(r.Errors, "\n  "))}
	}
	if changed > 0 {
		return &exitError{code: ExitDiff, quiet: true, err: fmt.Errorf("%d objects differ", changed)}
	}
	return nil
}

// writeUnified prints a unified diff, coloured on a terminal.
func writeUnified(w io.Writer, unified string, p painter) {
	var b strings.Builder
	for _, line := range strings.SplitAfter(unified, "\n") {
		if line == "" {
			continue
		}
		text := strings.TrimSuffix(line, "\n")
		color := ""
		switch {
		case strings.HasPrefix(text, "+++"), strings.HasPrefix(text, "---"):
			color = colorBold
		case strings.HasPrefix(text, "+"):
			color = colorGreen
		case strings.HasPrefix(text, "-"):
			color = colorRed
		case strings.HasPrefix(text, "@@"):
			color = colorCyan
		}
		b.WriteString(p.paint(color, text))
		b.WriteString("\n")
	}
	_, _ = io.WriteString(w, b.String())
}
