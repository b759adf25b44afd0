package cli

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/freight"
)

// kube is a connection to the cluster for the commands that read or change
// tend's resources.
type kube struct {
	cfg *rest.Config
	c   client.Client
	cs  kubernetes.Interface
	// ns is the namespace from -n, else the kubeconfig context's.
	ns string
}

// connect builds clients for the cluster the flags select. It does not
// contact the cluster; the first request does.
func (k *kubeFlags) connect() (*kube, error) {
	quietClientGo()
	cfg, err := k.restConfig()
	if err != nil {
		return nil, &exitError{code: ExitUsage, err: err}
	}
	ns := k.namespace
	if ns == "" {
		if n, _, err := k.loader().Namespace(); err == nil && n != "" {
			ns = n
		} else {
			ns = "default"
		}
	}
	c, err := client.New(cfg, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		return nil, reachError(cfg.Host, err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &kube{cfg: cfg, c: c, cs: cs, ns: ns}, nil
}

var quietOnce sync.Once

// quietClientGo stops client-go from logging retries and watch errors to
// stderr: the commands report what failed themselves, in one line. It
// runs before the command starts any informer (klog's logger must not
// change while they run).
func quietClientGo() { quietOnce.Do(func() { klog.SetLogger(logr.Discard()) }) }

// wrap turns errors of API requests into what a user can act on.
func (k *kube) wrap(err error) error {
	if err == nil {
		return nil
	}
	if meta.IsNoMatchError(err) {
		return &exitError{code: ExitUsage, err: fmt.Errorf("tend is not installed in the cluster at %s (it does not serve tend.dev/v1alpha1); install it with `tend bootstrap`", k.cfg.Host)}
	}
	if apierrors.IsUnauthorized(err) {
		return &exitError{code: ExitUsage, err: fmt.Errorf("the cluster at %s does not accept the kubeconfig's credentials (401 Unauthorized); log in again or pick another --context", k.cfg.Host)}
	}
	return reachError(k.cfg.Host, err)
}

// app returns the App name in the namespace, or an error that suggests the
// App the user probably meant.
func (k *kube) app(ctx context.Context, name string) (*tendv1.App, error) {
	var a tendv1.App
	err := k.c.Get(ctx, types.NamespacedName{Namespace: k.ns, Name: name}, &a)
	if err == nil {
		return &a, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, k.wrap(err)
	}
	var list tendv1.AppList
	if err := k.c.List(ctx, &list); err != nil {
		_ = k.c.List(ctx, &list, client.InNamespace(k.ns))
	}
	refs := make([]types.NamespacedName, 0, len(list.Items))
	for _, a := range list.Items {
		refs = append(refs, types.NamespacedName{Namespace: a.Namespace, Name: a.Name})
	}
	return nil, notFound("App", name, k.ns, refs)
}

// source returns the Source name in namespace ns.
func (k *kube) source(ctx context.Context, ns, name string) (*tendv1.Source, error) {
	var s tendv1.Source
	err := k.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &s)
	if err == nil {
		return &s, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, k.wrap(err)
	}
	var list tendv1.SourceList
	_ = k.c.List(ctx, &list, client.InNamespace(ns))
	refs := make([]types.NamespacedName, 0, len(list.Items))
	for _, s := range list.Items {
		refs = append(refs, types.NamespacedName{Namespace: s.Namespace, Name: s.Name})
	}
	return nil, notFound("Source", name, ns, refs)
}

// notifier returns the Notifier name in the namespace.
func (k *kube) notifier(ctx context.Context, name string) (*tendv1.Notifier, error) {
	var n tendv1.Notifier
	return &n, k.named(ctx, "Notifier", name, &n, &tendv1.NotifierList{})
}

// named reads the object of kind called name in the namespace into obj;
// when there is none, the error suggests what the user probably meant,
// from the objects of list's kind.
func (k *kube) named(ctx context.Context, kind, name string, obj client.Object, list client.ObjectList) error {
	err := k.c.Get(ctx, types.NamespacedName{Namespace: k.ns, Name: name}, obj)
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return k.wrap(err)
	}
	_ = k.c.List(ctx, list)
	items, _ := meta.ExtractList(list)
	refs := make([]types.NamespacedName, 0, len(items))
	for _, it := range items {
		if o, ok := it.(client.Object); ok {
			refs = append(refs, types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()})
		}
	}
	return notFound(kind, name, k.ns, refs)
}

// notFound says that kind name is not in ns and suggests what the user
// probably meant: the same name in another namespace, or the closest name
// in ns.
func notFound(kind, name, ns string, existing []types.NamespacedName) error {
	var here, elsewhere []string
	for _, r := range existing {
		switch {
		case r.Namespace == ns:
			here = append(here, r.Name)
		case r.Name == name:
			elsewhere = append(elsewhere, r.Namespace)
		}
	}
	msg := fmt.Sprintf("%s '%s' not found in namespace %s", kind, name, ns)
	switch s := closest(name, here); {
	case s != "":
		msg = fmt.Sprintf("%s '%s' not found; did you mean '%s'?", kind, name, s)
	case len(elsewhere) == 1:
		msg += fmt.Sprintf("; there is one in namespace %s (pass -n %s)", elsewhere[0], elsewhere[0])
	case len(elsewhere) > 1:
		sort.Strings(elsewhere)
		if len(elsewhere) > 5 {
			elsewhere = append(elsewhere[:5], "...")
		}
		msg += fmt.Sprintf("; there are %ss of that name in namespaces %s (pass -n NAMESPACE)", kind, strings.Join(elsewhere, ", "))
	case len(here) == 0:
		msg += fmt.Sprintf(" (it has no %ss; pass -n NAMESPACE)", kind)
	}
	return &exitError{code: ExitUsage, err: errors.New(msg)}
}

// readyCondition returns the Ready condition's status and message.
func readyCondition(conds []metav1.Condition) (string, string) {
	if c := meta.FindStatusCondition(conds, tendv1.ConditionReady); c != nil {
		return string(c.Status), c.Message
	}
	return "Unknown", ""
}

// age formats how long ago t was, like kubectl.
func age(t metav1.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	d := time.Since(t.Time)
	switch {
	case d < 2*time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < 2*time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h"
	}
	return strconv.Itoa(int(d.Hours()/24)) + "d"
}

func (m *Main) getCommand() *cobra.Command {
	var (
		kf     kubeFlags
		all    bool
		output string
	)
	cmd := &cobra.Command{
		Use:   "get apps|sources|notifiers|warehouses|stages [NAME]",
		Short: "List Apps, Sources, Notifiers, Warehouses or Stages, or show one",
		Long: `List the Apps, Sources, Notifiers, Warehouses or Stages of a namespace (-n, default the
context's; -A for all), or show one by name. -o yaml and -o json print the objects
themselves.`,
		Example: `  tend get apps -A
  tend get app web -o yaml
  tend get sources -n tend-system
  tend get stages -n team-web`,
		Args:      cobra.RangeArgs(1, 2),
		ValidArgs: getKinds,
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			switch {
			case len(args) == 0:
				return getKinds, cobra.ShellCompDirectiveNoFileComp
			case len(args) == 1 && strings.HasPrefix(args[0], "app"):
				return completeApps(cmd.Context(), &kf)
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(output, formatTable, formatYAML, formatJSON); err != nil {
				return err
			}
			var kind string
			switch args[0] {
			case "app", "apps", "App", "Apps":
				kind = "apps"
			case "source", "sources", "src", "Source", "Sources":
				kind = "sources"
			case "notifier", "notifiers", "Notifier", "Notifiers":
				kind = "notifiers"
			case "warehouse", "warehouses", "wh", "Warehouse", "Warehouses":
				kind = "warehouses"
			case "stage", "stages", "stg", "Stage", "Stages":
				kind = "stages"
			default:
				msg := fmt.Sprintf("unknown resource %q: want apps, sources, notifiers, warehouses or stages", args[0])
				if s := closest(args[0], getKinds); s != "" {
					msg += "; did you mean '" + s + "'?"
				}
				return &exitError{code: ExitUsage, err: errors.New(msg)}
			}
			name := ""
			if len(args) == 2 {
				name = args[1]
				if all {
					return &exitError{code: ExitUsage, err: errors.New("-A lists every namespace; to show one object, name its namespace with -n")}
				}
			}
			k, err := kf.connect()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			switch kind {
			case "apps":
				return runGet(ctx, m, k, getApps, name, all, output)
			case "notifiers":
				return runGet(ctx, m, k, getNotifiers, name, all, output)
			case "warehouses":
				return runGet(ctx, m, k, getWarehouses, name, all, output)
			case "stages":
				return runGet(ctx, m, k, getStages, name, all, output)
			}
			return runGet(ctx, m, k, getSources, name, all, output)
		},
	}
	f := cmd.Flags()
	kf.addFlags(f)
	f.BoolVarP(&all, "all-namespaces", "A", false, "list every namespace")
	f.StringVarP(&output, "output", "o", formatTable, "output format: table, yaml or json")
	return cmd
}

// getter describes one kind for `tend get`.
type getter[T any] struct {
	kind   string // "App"
	one    func(ctx context.Context, k *kube, name string) (*T, error)
	list   func(ctx context.Context, k *kube, opts ...client.ListOption) ([]T, error)
	header []string
	row    func(*T) []cell
}

// runGet lists the objects of g's kind (or shows one) as a table, YAML or
// JSON.
func runGet[T any, P interface {
	*T
	client.Object
}](ctx context.Context, m *Main, k *kube, g getter[T], name string, all bool, output string) error {
	var items []T
	if name != "" {
		o, err := g.one(ctx, k, name)
		if err != nil {
			return err
		}
		items = []T{*o}
	} else {
		var opts []client.ListOption
		if !all {
			opts = append(opts, client.InNamespace(k.ns))
		}
		list, err := g.list(ctx, k, opts...)
		if err != nil {
			return k.wrap(err)
		}
		items = list
	}
	key := func(i int) string { o := P(&items[i]); return o.GetNamespace() + "/" + o.GetName() }
	sort.Slice(items, func(i, j int) bool { return key(i) < key(j) })
	if output != formatTable {
		objs := make([]any, len(items))
		for i := range items {
			o := P(&items[i]).DeepCopyObject().(P)
			o.GetObjectKind().SetGroupVersionKind(tendv1.GroupVersion.WithKind(g.kind))
			o.SetManagedFields(nil)
			objs[i] = o
		}
		return printObjects(m, output, objs, name != "")
	}
	if len(items) == 0 {
		fmt.Fprintf(m.Stderr, "no %ss in %s\n", g.kind, scopeName(k, all))
		return nil
	}
	t := &table{header: g.header}
	if all {
		t.header = append([]string{"NAMESPACE"}, t.header...)
	}
	for i := range items {
		row := g.row(&items[i])
		if all {
			row = append([]cell{plain(P(&items[i]).GetNamespace())}, row...)
		}
		t.add(row...)
	}
	return t.write(m.Stdout, m.painter())
}

var (
	getApps = getter[tendv1.App]{
		kind: "App",
		one:  func(ctx context.Context, k *kube, name string) (*tendv1.App, error) { return k.app(ctx, name) },
		list: func(ctx context.Context, k *kube, opts ...client.ListOption) ([]tendv1.App, error) {
			var l tendv1.AppList
			err := k.c.List(ctx, &l, opts...)
			return l.Items, err
		},
		header: []string{"NAME", "SYNC", "HEALTH", "REVISION", "OBJECTS", "AGE"},
		row: func(a *tendv1.App) []cell {
			return []cell{plain(a.Name), state(orUnknown(a.Status.Sync)), state(orUnknown(a.Status.Health)), plain(shortRev(a.Status.Revision)), plain(strconv.Itoa(int(a.Status.Objects))), plain(age(a.CreationTimestamp))}
		},
	}
	getSources = getter[tendv1.Source]{
		kind: "Source",
		one: func(ctx context.Context, k *kube, name string) (*tendv1.Source, error) {
			return k.source(ctx, k.ns, name)
		},
		list: func(ctx context.Context, k *kube, opts ...client.ListOption) ([]tendv1.Source, error) {
			var l tendv1.SourceList
			err := k.c.List(ctx, &l, opts...)
			return l.Items, err
		},
		header: []string{"NAME", "URL", "REVISION", "READY", "AGE"},
		row: func(s *tendv1.Source) []cell {
			ready, _ := readyCondition(s.Status.Conditions)
			return []cell{plain(s.Name), plain(sourceURL(s)), plain(artifactRevision(s)), state(ready), plain(age(s.CreationTimestamp))}
		},
	}
	getNotifiers = getter[tendv1.Notifier]{
		kind: "Notifier",
		one: func(ctx context.Context, k *kube, name string) (*tendv1.Notifier, error) {
			return k.notifier(ctx, name)
		},
		list: func(ctx context.Context, k *kube, opts ...client.ListOption) ([]tendv1.Notifier, error) {
			var l tendv1.NotifierList
			err := k.c.List(ctx, &l, opts...)
			return l.Items, err
		},
		header: []string{"NAME", "PROVIDER", "SENT", "FAILED", "READY", "MESSAGE", "AGE"},
		row: func(n *tendv1.Notifier) []cell {
			ready, msg := readyCondition(n.Status.Conditions)
			return []cell{plain(n.Name), plain(n.Spec.Provider), plain(strconv.FormatInt(n.Status.Sent, 10)), plain(strconv.FormatInt(n.Status.Failed, 10)), state(ready), plain(msg), plain(age(n.CreationTimestamp))}
		},
	}
)

// getKinds are what `tend get` lists.
var getKinds = []string{"apps", "sources", "notifiers", "warehouses", "stages"}

var (
	getWarehouses = getter[tendv1.Warehouse]{
		kind: "Warehouse",
		one: func(ctx context.Context, k *kube, name string) (*tendv1.Warehouse, error) {
			var w tendv1.Warehouse
			return &w, k.named(ctx, "Warehouse", name, &w, &tendv1.WarehouseList{})
		},
		list: func(ctx context.Context, k *kube, opts ...client.ListOption) ([]tendv1.Warehouse, error) {
			var l tendv1.WarehouseList
			err := k.c.List(ctx, &l, opts...)
			return l.Items, err
		},
		header: []string{"NAME", "FREIGHT", "VERSIONS", "FOUND", "READY", "AGE"},
		row: func(w *tendv1.Warehouse) []cell {
			ready, _ := readyCondition(w.Status.Conditions)
			name, versions, found := "", "", ""
			if len(w.Status.Freight) > 0 {
				f := &w.Status.Freight[0]
				name, versions, found = f.Name, freight.Describe(f), age(f.DiscoveredAt)
			}
			return []cell{plain(w.Name), plain(name), plain(versions), plain(found), state(ready), plain(age(w.CreationTimestamp))}
		},
	}
	getStages = getter[tendv1.Stage]{
		kind: "Stage",
		one: func(ctx context.Context, k *kube, name string) (*tendv1.Stage, error) {
			var s tendv1.Stage
			return &s, k.named(ctx, "Stage", name, &s, &tendv1.StageList{})
		},
		list: func(ctx context.Context, k *kube, opts ...client.ListOption) ([]tendv1.Stage, error) {
			var l tendv1.StageList
			err := k.c.List(ctx, &l, opts...)
			return l.Items, err
		},
		header: []string{"NAME", "WAREHOUSE", "FREIGHT", "VERSIONS", "REVISION", "PROMOTED", "READY", "MESSAGE"},
		row: func(s *tendv1.Stage) []cell {
			ready, msg := readyCondition(s.Status.Conditions)
			name, versions, rev, when := "", "", "", ""
			if p := s.Status.Freight; p != nil {
				name, versions, rev, when = p.Name, p.Versions, shortRev(p.Revision), age(p.PromotedAt)
			}
			return []cell{plain(s.Name), plain(s.Spec.Warehouse.Name), plain(name), plain(versions), plain(rev), plain(when), state(ready), plain(msg)}
		},
	}
)

// printObjects prints one object, or a v1 List of them like kubectl.
func printObjects(m *Main, output string, objs []any, single bool) error {
	if single && len(objs) == 1 {
		return printData(m.Stdout, output, objs[0])
	}
	return printData(m.Stdout, output, map[string]any{"apiVersion": "v1", "kind": "List", "items": objs})
}

func scopeName(k *kube, all bool) string {
	if all {
		return "any namespace"
	}
	return "namespace " + k.ns
}

func orUnknown(s string) string {
	if s == "" {
		return "Unknown"
	}
	return s
}

func sourceURL(s *tendv1.Source) string {
	switch {
	case s.Spec.Git != nil:
		return s.Spec.Git.URL
	case s.Spec.Helm != nil:
		return s.Spec.Helm.URL
	case s.Spec.OCI != nil:
		return s.Spec.OCI.URL
	}
	return ""
}

func artifactRevision(s *tendv1.Source) string {
	if s.Status.Artifact == nil {
		return ""
	}
	return shortRev(s.Status.Artifact.Revision)
}

// completeApps completes App names in the namespace the flags select.
func completeApps(ctx context.Context, kf *kubeFlags) ([]cobra.Completion, cobra.ShellCompDirective) {
	k, err := kf.connect()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var list tendv1.AppList
	if err := k.c.List(ctx, &list, client.InNamespace(k.ns)); err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out := make([]cobra.Completion, 0, len(list.Items))
	for _, a := range list.Items {
		out = append(out, a.Name)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
