package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
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

Each rendered object is sent to the API server as a server-side apply dry run
(field manager tend), so defaults, admission webhooks and fields owned by
other managers are accounted for exactly as in a sync; nothing is changed.
Fields other managers own and tend does not set never show. Secret values are
masked: a diff says only whether a value is unchanged, changed, added or
removed. Hooks are not compared: they run during a sync.

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
			dyn, err := dynamic.NewForConfig(k.cfg)
			if err != nil {
				return err
			}
			d := &differ{k: k, dyn: dyn, mapper: k.c.RESTMapper(), prune: prune}
			var objs []*unstructured.Unstructured
			if t.path != "" {
				res, _, err := rf.renderPath(ctx, clusterRenderer(k), t.path, k.ns, app)
				if err != nil {
					return err
				}
				objs = res.Objects()
				if app != "" {
					d.app = &apply.AppRef{Namespace: k.ns, Name: app}
				}
			} else {
				a, err := k.app(ctx, t.app)
				if err != nil {
					return err
				}
				if a.Spec.Destination.ClusterRef != nil {
					return &exitError{code: ExitUsage, err: fmt.Errorf("the App %s/%s deploys to Cluster %s: tend diff compares with the cluster of the kubeconfig only; point --kubeconfig at that cluster and diff the App's directory", a.Namespace, a.Name, a.Spec.Destination.ClusterRef.Name)}
				}
				ar, err := renderApp(ctx, k, a, revision)
				if err != nil {
					return err
				}
				objs = ar.objects
				d.app = &apply.AppRef{Namespace: a.Namespace, Name: a.Name}
				d.rules = ignoreRules(a)
				d.forceConflicts = a.Spec.Sync.ForceConflicts
				if !cmd.Flags().Changed("prune") {
					d.prune = a.Spec.Sync.Prune
				}
			}
			r, err := d.run(ctx, objs)
			if err != nil {
				return err
			}
			return m.printDiff(r)
		},
	}
	f := cmd.Flags()
	kf.addFlags(f)
	rf.addFlags(f)
	f.StringVar(&app, "app", "", "PATH: the App the objects belong to; its inventory shows what a sync would prune")
	f.StringVar(&revision, "revision", "", "APP: diff this git branch, tag or commit of the App's Source")
	f.BoolVar(&prune, "prune", false, "show objects that left git as deletions (default for an App: its spec.sync.prune)")
	return cmd
}

// differ computes what a sync would change.
type differ struct {
	k      *kube
	dyn    dynamic.Interface
	mapper meta.RESTMapper
	// app owns the objects; nil for a PATH without --app.
	app            *apply.AppRef
	rules          []diff.IgnoreRule
	forceConflicts bool
	prune          bool
}

// diffResult is what differ.run found.
type diffResult struct {
	diffs []diff.ObjectDiff
	// notes say things about objects that are not differences.
	notes []string
	// errs are objects a sync would fail on.
	errs  []string
	hooks int
}

func ignoreRules(a *tendv1.App) []diff.IgnoreRule {
	var out []diff.IgnoreRule
	for _, r := range a.Spec.IgnoreDifferences {
		out = append(out, diff.IgnoreRule{Group: r.Group, Kind: r.Kind, Name: r.Name, Namespace: r.Namespace, JSONPointers: r.JSONPointers, Managers: r.Managers})
	}
	return out
}

func (d *differ) run(ctx context.Context, objs []*unstructured.Unstructured) (*diffResult, error) {
	res := &diffResult{}
	var inv *apply.Inventory
	if d.app != nil {
		var err error
		if inv, err = (&apply.SecretStore{Client: d.k.cs}).Load(ctx, *d.app); err != nil {
			return nil, d.k.wrap(err)
		}
	}
	plan, err := apply.NewPlan(objs, inv != nil && len(inv.Entries) > 0)
	if err != nil {
		return nil, &exitError{code: ExitUsage, err: err}
	}
	res.hooks = len(plan.PreSync) + len(plan.PostSync) + len(plan.SyncFail)
	crdKinds := map[schema.GroupKind]bool{}
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" {
			g, _, _ := unstructured.NestedString(o.Object, "spec", "group")
			k, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
			crdKinds[schema.GroupKind{Group: g, Kind: k}] = true
		}
	}
	desired := map[apply.ObjectRef]bool{}
	for _, o := range plan.All() {
		desired[apply.RefOf(o)] = true
		od, err := d.object(ctx, o.DeepCopy(), crdKinds)
		if err != nil {
			var ee *exitError
			if errors.As(err, &ee) {
				return nil, err // the cluster cannot be reached
			}
			res.errs = append(res.errs, err.Error())
			continue
		}
		res.diffs = append(res.diffs, od)
	}
	if inv == nil {
		return res, nil
	}
	for _, ref := range inv.Refs() {
		if desired[ref] {
			continue
		}
		od, note, err := d.gone(ctx, ref, inv.Entries[ref])
		switch {
		case err != nil:
			res.errs = append(res.errs, err.Error())
		case note != "":
			res.notes = append(res.notes, note)
		case od != nil:
			res.diffs = append(res.diffs, *od)
		}
	}
	return res, nil
}

// resource returns the client for obj's kind, or a NoMatch error.
func (d *differ) resource(gvk schema.GroupVersionKind, namespace, name string) (dynamic.ResourceInterface, error) {
	m, err := d.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, err
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if namespace == "" {
			return nil, fmt.Errorf("%s %s: namespaced kind without a namespace; set metadata.namespace or pass -n", gvk.Kind, name)
		}
		return d.dyn.Resource(m.Resource).Namespace(namespace), nil
	}
	return d.dyn.Resource(m.Resource), nil
}

// object diffs one rendered object against the cluster.
func (d *differ) object(ctx context.Context, o *unstructured.Unstructured, crdKinds map[schema.GroupKind]bool) (diff.ObjectDiff, error) {
	gvk := o.GroupVersionKind()
	ref := apply.RefOf(o)
	ri, err := d.resource(gvk, o.GetNamespace(), o.GetName())
	if err != nil {
		if meta.IsNoMatchError(err) && crdKinds[gvk.GroupKind()] {
			d.setOwner(o, nil)
			return diff.Compare(o, nil) // its CRD comes with the same sync
		}
		if meta.IsNoMatchError(err) {
			return diff.ObjectDiff{}, fmt.Errorf("%s: the cluster does not serve %s; install its CRD first", ref, gvk.GroupVersion().WithKind(gvk.Kind))
		}
		return diff.ObjectDiff{}, d.k.wrap(err)
	}
	live, err := ri.Get(ctx, o.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		live = nil
	case err != nil:
		return diff.ObjectDiff{}, fmt.Errorf("%s: %w", ref, d.k.wrap(err))
	}
	if live != nil && d.app != nil {
		if owner := live.GetAnnotations()[apply.AnnotationOwner]; owner != "" && owner != d.app.String() {
			return diff.ObjectDiff{}, fmt.Errorf("%s is owned by App %s; a sync would refuse it (an object can belong to one App only)", ref, owner)
		}
	}
	d.setOwner(o, live)
	if len(d.rules) > 0 {
		if o, err = diff.ApplyIgnoreRules(o, live, d.rules); err != nil {
			return diff.ObjectDiff{}, err
		}
	}
	force := d.forceConflicts || o.GetAnnotations()[apply.AnnotationForceConflicts] == "true"
	opts := metav1.ApplyOptions{FieldManager: apply.FieldManager, Force: force, DryRun: []string{metav1.DryRunAll}}
	out, err := ri.Apply(ctx, o.GetName(), o, opts)
	if apierrors.IsConflict(err) && !force {
		// A sync takes fields back from people (kubectl edit) and leaves
		// controllers' fields to them; shown here as taken over.
		opts.Force = true
		out, err = ri.Apply(ctx, o.GetName(), o, opts)
	}
	switch {
	case err != nil && live == nil && apierrors.IsNotFound(err):
		// Its namespace does not exist yet (the same sync creates it).
		return diff.Compare(o, nil)
	case err != nil:
		return diff.ObjectDiff{}, fmt.Errorf("%s: a sync would fail: %s", ref, serverMessage(d.k, err))
	case live == nil:
		return diff.Compare(o, nil)
	}
	return diff.Compare(out, live)
}

// setOwner adds the owner annotation a sync adds: the App's, else (a PATH
// without --app) whatever the live object has.
func (d *differ) setOwner(o, live *unstructured.Unstructured) {
	owner := ""
	if d.app != nil {
		owner = d.app.String()
	} else if live != nil {
		owner = live.GetAnnotations()[apply.AnnotationOwner]
	}
	if owner == "" {
		return
	}
	ann := o.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[apply.AnnotationOwner] = owner
	o.SetAnnotations(ann)
}

// gone diffs an object the App applied before and no longer renders: a
// deletion when a sync would prune it, else a note.
func (d *differ) gone(ctx context.Context, ref apply.ObjectRef, entry apply.Entry) (*diff.ObjectDiff, string, error) {
	ri, err := d.resource(ref.GroupKind().WithVersion(entry.Version), ref.Namespace, ref.Name)
	if meta.IsNoMatchError(err) {
		return nil, "", nil // its kind is gone, and so is it
	}
	if err != nil {
		return nil, "", d.k.wrap(err)
	}
	live, err := ri.Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", ref, d.k.wrap(err))
	}
	ann := live.GetAnnotations()
	switch {
	case ann[apply.AnnotationOwner] != d.app.String():
		return nil, "", nil // another App took it over
	case ann[apply.AnnotationPrune] == "disabled":
		return nil, fmt.Sprintf("%s left git and stays (%s: disabled)", ref, apply.AnnotationPrune), nil
	case !d.prune:
		return nil, fmt.Sprintf("%s left git and stays: pruning is off (spec.sync.prune or --prune)", ref), nil
	}
	od, err := diff.Compare(nil, live)
	if err != nil {
		return nil, "", err
	}
	return &od, "", nil
}

// serverMessage is the API server's message of err, without client-go's
// wrapping.
func serverMessage(k *kube, err error) string {
	var se apierrors.APIStatus
	if errors.As(err, &se) && se.Status().Message != "" {
		return se.Status().Message
	}
	return k.wrap(err).Error()
}

// printDiff prints the diffs and the summary line and returns the exit
// status: 1 when something would change.
func (m *Main) printDiff(r *diffResult) error {
	p := m.painter()
	sort.SliceStable(r.diffs, func(i, j int) bool { return actionRank(r.diffs[i].Action) < actionRank(r.diffs[j].Action) })
	changed := 0
	for _, d := range r.diffs {
		if d.Action == diff.ActionUnchanged {
			continue
		}
		changed++
		writeUnified(m.Stdout, d.Unified, p)
	}
	for _, n := range r.notes {
		fmt.Fprintf(m.Stdout, "note: %s\n", n)
	}
	summary := diff.Summary(r.diffs)
	if r.hooks > 0 {
		summary += fmt.Sprintf(" (%d hooks run during a sync, not compared)", r.hooks)
	}
	fmt.Fprintln(m.Stdout, p.paint(colorBold, summary))
	if len(r.errs) > 0 {
		sort.Strings(r.errs)
		return &exitError{code: ExitUsage, err: fmt.Errorf("%d objects cannot be compared:\n  %s", len(r.errs), strings.Join(r.errs, "\n  "))}
	}
	if changed > 0 {
		return &exitError{code: ExitDiff, quiet: true, err: fmt.Errorf("%d objects differ", changed)}
	}
	return nil
}

func actionRank(a string) int {
	switch a {
	case diff.ActionCreate:
		return 0
	case diff.ActionUpdate:
		return 1
	case diff.ActionDelete:
		return 2
	}
	return 3
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
