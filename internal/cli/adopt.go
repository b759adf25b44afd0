package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/appdiff"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/appspec"
	"github.com/tend-gitops/tend/internal/cluster"
	"github.com/tend-gitops/tend/internal/compat"
	"github.com/tend-gitops/tend/internal/diff"
)

func (m *Main) adoptCommand() *cobra.Command {
	var (
		kf     kubeFlags
		dryRun bool
		copts  compat.Options
	)
	cmd := &cobra.Command{
		Use:   "adopt [NAME...] --dry-run",
		Short: "Show what taking over a namespace's Argo CD and Flux objects would change",
		Long: `Show, per object, what tend would change when it takes over the Argo CD
Applications and Flux Kustomizations and HelmReleases of a namespace (-n), or
those named: each is mapped as the controller maps it with --compat (and as
tend migrate prints it), rendered from its repository, and compared with the
cluster as tend diff compares (a server-side apply dry run, nothing is
changed). The objects the old tool recorded as applied (Argo CD's
status.resources, Flux's status.inventory) are the App's first inventory, so
those that left git show as deletions when the App prunes.

For a takeover without a blip the answer is nothing: each object is listed as
unchanged or as "taken over", where only tend's owner annotation is added and
the fields the old tool's field manager (argocd-controller, kustomize-controller,
helm-controller, helm, kubectl's client-side apply) set become tend's, values
unchanged. Objects tend cannot map are listed with every field that stops them.
Sources (GitRepository, HelmRepository) are read to render but not listed.
Flux Alerts are listed with the Notifier each becomes (with its Provider)
and where tend sends differently; they change nothing in the cluster.

--dry-run is required: the takeover itself is done by the controller, started
with --compat (tend install --compat argo,flux).

Exits 0 when nothing would change and 1 when something would (or an object
cannot be mapped).`,
		Example: `  tend adopt --dry-run -n argocd
  tend adopt apps infrastructure --dry-run -n flux-system`,
		Annotations: map[string]string{annotationExit1: "when the takeover would change or delete something, or an object cannot be mapped"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if !dryRun {
				return &exitError{code: ExitUsage, err: errors.New("tend adopt previews only: pass --dry-run (the controller takes over with --compat; see tend install --compat)")}
			}
			k, err := kf.connect()
			if err != nil {
				return err
			}
			return m.adoptPreview(cmd.Context(), k, args, copts)
		},
	}
	f := cmd.Flags()
	kf.addFlags(f)
	f.BoolVar(&dryRun, "dry-run", false, "show what the takeover would change, changing nothing (required)")
	f.StringVar(&copts.ArgoDecryptionSecret, "argo-decryption-secret", "", "as the controller's flag: the Secret with the SOPS keys Argo CD Applications' Apps decrypt with")
	return cmd
}

// adoptee is one foreign object and what it maps to.
type adoptee struct {
	obj    *unstructured.Unstructured
	mapped *compat.Mapped
}

func (a adoptee) String() string {
	return fmt.Sprintf("%s %s/%s", a.obj.GetKind(), a.obj.GetNamespace(), a.obj.GetName())
}

// adoptPreview maps the foreign objects of k.ns (those named, if any) and
// prints what syncing each App would change.
func (m *Main) adoptPreview(ctx context.Context, k *kube, names []string, copts compat.Options) error {
	dyn, err := dynamic.NewForConfig(k.cfg)
	if err != nil {
		return err
	}
	gvks, err := compat.Kinds([]string{compat.Argo, compat.Flux})
	if err != nil {
		return err
	}
	var (
		apps []adoptee
		kn   = appdiff.Known{Sources: map[string]*tendv1.Source{}, Projects: map[string]*tendv1.Project{}}
		// notifiers are the Notifiers Flux Alerts become, one line each.
		notifiers []string
	)
	for _, gvk := range gvks {
		mapping, err := k.c.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			continue // neither Argo CD's nor Flux's CRD for it is installed
		}
		if err != nil {
			return k.wrap(err)
		}
		list, err := dyn.Resource(mapping.Resource).Namespace(k.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return k.wrap(err)
		}
		for i := range list.Items {
			obj := &list.Items[i]
			mapped, err := compat.Map(ctx, k.c, obj, copts)
			if err != nil {
				return k.wrap(err)
			}
			if mapped == nil {
				continue
			}
			for _, o := range mapped.Objects {
				if src, ok := o.(*tendv1.Source); ok {
					kn.Sources[src.Name] = src
				}
				if p, ok := o.(*tendv1.Project); ok && mapped.Err == nil {
					kn.Projects[p.Name] = p
				}
				if n, ok := o.(*tendv1.Notifier); ok && mapped.Err == nil && (len(names) == 0 || slices.Contains(names, obj.GetName())) {
					line := fmt.Sprintf("%s %s/%s: becomes Notifier %s (%s)\n", obj.GetKind(), obj.GetNamespace(), obj.GetName(), n.Name, n.Spec.Provider)
					for _, w := range mapped.Warnings {
						line += "  note: " + w + "\n"
					}
					notifiers = append(notifiers, line)
				}
			}
			if mapped.App != nil || mapped.Err != nil {
				apps = append(apps, adoptee{obj: obj, mapped: mapped})
			}
		}
	}
	if len(names) > 0 {
		apps = slices.DeleteFunc(apps, func(a adoptee) bool { return !slices.Contains(names, a.obj.GetName()) })
	}
	sort.Strings(notifiers)
	for _, n := range notifiers {
		fmt.Fprint(m.Stdout, n)
	}
	if len(apps) == 0 && len(notifiers) > 0 {
		return nil // only Alerts: nothing in the cluster changes
	}
	if len(apps) == 0 {
		return &exitError{code: ExitUsage, err: fmt.Errorf("no Argo CD Application or Flux Kustomization or HelmRelease to adopt in namespace %s", k.ns)}
	}
	sort.Slice(apps, func(i, j int) bool { return apps[i].String() < apps[j].String() })
	changes, failed := 0, 0
	err = m.withConn(ctx, k, func(conn *cluster.Conn) error {
		for _, a := range apps {
			n, err := m.adoptOne(ctx, k, conn, a, kn)
			var ee *exitError
			switch {
			case errors.As(err, &ee) && ee.code == ExitUsage:
				fmt.Fprintf(m.Stdout, "  cannot be adopted: %v\n\n", ee.err)
				failed++
			case err != nil:
				return err
			}
			changes += n
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "%d objects of %d Apps would change; %d cannot be adopted\n", changes, len(apps)-failed, failed)
	if changes > 0 || failed > 0 {
		return &exitError{code: ExitDiff, quiet: true, err: fmt.Errorf("%d objects would change, %d objects cannot be adopted", changes, failed)}
	}
	return nil
}

// adoptOne prints what adopting a would change and returns how many
// objects would change.
func (m *Main) adoptOne(ctx context.Context, k *kube, conn *cluster.Conn, a adoptee, kn appdiff.Known) (int, error) {
	fmt.Fprintf(m.Stdout, "%s:\n", a)
	for _, w := range a.mapped.Warnings {
		fmt.Fprintf(m.Stdout, "  note: %s\n", w)
	}
	if a.mapped.Err != nil {
		return 0, &exitError{code: ExitUsage, err: a.mapped.Err}
	}
	app := a.mapped.App
	src := kn.Sources[app.Spec.SourceRef.Name]
	if src == nil || (app.Spec.SourceRef.Namespace != "" && app.Spec.SourceRef.Namespace != app.Namespace) {
		ns := app.Namespace
		if app.Spec.SourceRef.Namespace != "" {
			ns = app.Spec.SourceRef.Namespace
		}
		var err error
		if src, err = k.source(ctx, ns, app.Spec.SourceRef.Name); err != nil {
			return 0, &exitError{code: ExitUsage, err: fmt.Errorf("its source: %w", err)}
		}
	}
	if app.Spec.Destination.ClusterRef != nil {
		return 0, &exitError{code: ExitUsage, err: fmt.Errorf("it deploys to Cluster %s: preview it with --kubeconfig pointing at that cluster", app.Spec.Destination.ClusterRef.Name)}
	}
	ar, err := renderAppFrom(ctx, k, app, src, "", kn)
	if err != nil {
		return 0, err
	}
	rules, err := appspec.Compile(app)
	if err != nil {
		return 0, &exitError{code: ExitUsage, err: err}
	}
	req := appspec.Request(app, rules)
	req.Objects, req.Revision = ar.Objects, ar.Revision
	ref := apply.AppRef{Namespace: app.Namespace, Name: app.Name}
	inv, err := conn.Engine.Inventory.Load(ctx, ref)
	if err != nil {
		return 0, k.wrap(err)
	}
	if len(inv.Entries) == 0 {
		for r, v := range a.mapped.Adopted {
			inv.Entries[r] = apply.Entry{Version: v, Desired: apply.AdoptedDesired}
		}
	}
	req.Inventory = inv
	d, err := conn.Engine.Diff(ctx, req)
	if err != nil {
		var se *apply.SyncError
		if errors.As(err, &se) {
			return 0, &exitError{code: ExitUsage, err: err}
		}
		return 0, k.wrap(err)
	}
	p := m.painter()
	changed := 0
	for _, od := range d.Objects {
		what := apply.ObjectRef{Group: od.Group, Kind: od.Kind, Namespace: od.Namespace, Name: od.Name}.String()
		managers := m.takenFrom(ctx, k, od)
		switch {
		case od.Action == diff.ActionUnchanged:
			fmt.Fprintf(m.Stdout, "  unchanged    %s%s\n", what, managers)
		case od.Action == diff.ActionUpdate && ownerOnly(od.Unified):
			fmt.Fprintf(m.Stdout, "  taken over   %s%s\n", what, managers)
		default:
			changed++
			fmt.Fprintf(m.Stdout, "  %-12s %s%s\n", od.Action, what, managers)
			writeUnified(m.Stdout, od.Unified, p)
		}
	}
	for _, n := range append(d.Notes, d.Warnings...) {
		fmt.Fprintf(m.Stdout, "  note: %s\n", n)
	}
	if len(d.Errors) > 0 {
		sort.Strings(d.Errors)
		return changed, &exitError{code: ExitUsage, err: fmt.Errorf("%d objects cannot be compared:\n  %s", len(d.Errors), strings.Join(d.Errors, "\n  "))}
	}
	fmt.Fprintln(m.Stdout)
	return changed, nil
}

// ownerOnly says whether a unified diff adds tend's owner annotation and
// nothing else.
func ownerOnly(unified string) bool {
	found := false
	for _, line := range strings.Split(unified, "\n") {
		if strings.HasPrefix(line, "+++") || strings.HasPrefix(line, "---") {
			continue
		}
		if !strings.HasPrefix(line, "+") && !strings.HasPrefix(line, "-") {
			continue
		}
		text := strings.TrimSpace(line[1:])
		if line[0] == '+' && (strings.HasPrefix(text, tendv1.AnnotationOwner+":") || text == "annotations:") {
			found = true
			continue
		}
		return false
	}
	return found
}

// takenFrom names the old tools' field managers whose fields of the live
// object tend would take over, as " (fields of X, Y become tend's)".
func (m *Main) takenFrom(ctx context.Context, k *kube, od diff.ObjectDiff) string {
	if od.Action == diff.ActionCreate || od.Action == diff.ActionDelete {
		return ""
	}
	mapping, err := k.c.RESTMapper().RESTMapping(schema.GroupKind{Group: od.Group, Kind: od.Kind})
	if err != nil {
		return ""
	}
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(mapping.GroupVersionKind)
	if err := k.c.Get(ctx, types.NamespacedName{Namespace: od.Namespace, Name: od.Name}, live); err != nil {
		if !apierrors.IsNotFound(err) {
			return fmt.Sprintf(" (its field managers could not be read: %v)", err)
		}
		return ""
	}
	var names []string
	for _, mf := range live.GetManagedFields() {
		if slices.Contains(apply.DefaultTakeOverManagers(), mf.Manager) && !slices.Contains(names, mf.Manager) {
			names = append(names, mf.Manager)
		}
	}
	if len(names) == 0 {
		return ""
	}
	sort.Strings(names)
	return fmt.Sprintf(" (fields of %s become tend's)", strings.Join(names, ", "))
}
