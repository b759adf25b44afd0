// Package project checks an App against the Project it names
// (tendv1.Project): the repositories of its Sources, its cluster and
// namespaces, the kinds it renders and its references to other
// namespaces. The controller and the CLI check the same way, before
// anything of a revision is applied.
package project

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/objstatus"
	"github.com/tend-gitops/tend/internal/render"
)

// InCluster is the cluster name destinations use for the cluster tend
// runs in.
const InCluster = "in-cluster"

// maxDenials bounds how many refusals one error lists.
const maxDenials = 10

// ErrDenied marks a refusal: the App breaks a rule of its Project.
var ErrDenied = errors.New("denied by its Project")

// ErrNotFound marks an App whose Project does not exist (yet).
var ErrNotFound = errors.New("project not found")

// Rules is a Project compiled for checking.
type Rules struct {
	name      string // namespace/name, for messages
	version   string // the Project's resourceVersion
	repos     patterns
	dests     []destination
	cluster   kindRules
	namespace kindRules
	crossNS   bool
}

// destination is a cluster and namespace pattern; deny: one of them was
// written with "!", and what both match is refused.
type destination struct {
	cluster, namespace *regexp.Regexp
	deny               bool
}

// pattern is a compiled glob; deny patterns start with "!".
type pattern struct {
	re   *regexp.Regexp
	deny bool
}

type patterns []pattern

// match: some allowing pattern matches s and no denying one does.
func (ps patterns) match(s string) bool {
	ok := false
	for _, p := range ps {
		if p.re.MatchString(s) {
			if p.deny {
				return false
			}
			ok = true
		}
	}
	return ok
}

type groupKind struct{ group, kind *regexp.Regexp }

func (g groupKind) match(gk schema.GroupKind) bool {
	return g.group.MatchString(gk.Group) && g.kind.MatchString(gk.Kind)
}

type kindRules struct {
	allow, deny []groupKind
	// emptyAllows: an empty allow list allows every kind (namespaced
	// kinds) rather than none (cluster-scoped kinds).
	emptyAllows bool
}

func (k kindRules) allowed(gk schema.GroupKind) bool {
	for _, d := range k.deny {
		if d.match(gk) {
			return false
		}
	}
	if len(k.allow) == 0 {
		return k.emptyAllows
	}
	for _, a := range k.allow {
		if a.match(gk) {
			return true
		}
	}
	return false
}

// Load reads the Project app names (nil when it names none) and compiles
// it. A Project that does not exist is an error satisfying
// errors.Is(err, ErrNotFound); one whose patterns do not parse a permanent
// error naming the field.
//
// An App whose spec.project is empty is bound to the Project its
// Namespace's tend.dev/project label names, if any.
func Load(ctx context.Context, c client.Reader, app *tendv1.App) (*Rules, error) {
	name, from := app.Spec.Project, "spec.project"
	if name == "" {
		var ns corev1.Namespace
		if err := c.Get(ctx, types.NamespacedName{Name: app.Namespace}, &ns); err != nil && !apierrors.IsNotFound(err) {
			return nil, err
		}
		name, from = ns.Labels[tendv1.LabelProject], "the Namespace's label "+tendv1.LabelProject
	}
	if name == "" {
		return nil, nil
	}
	var p tendv1.Project
	key := types.NamespacedName{Namespace: app.Namespace, Name: name}
	if err := c.Get(ctx, key, &p); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("the Project %s (%s) does not exist; create it or fix %s: %w", key, from, from, ErrNotFound)
		}
		return nil, err
	}
	return compiled(&p)
}

// compiledRules keeps each Project's Rules by resourceVersion: Apps are
// reconciled far more often than Projects change.
var compiledRules sync.Map // namespace/name -> *Rules

func compiled(p *tendv1.Project) (*Rules, error) {
	key := p.Namespace + "/" + p.Name
	if r, ok := compiledRules.Load(key); ok && p.ResourceVersion != "" && r.(*Rules).version == p.ResourceVersion {
		return r.(*Rules), nil
	}
	r, err := Compile(p)
	if err == nil {
		compiledRules.Store(key, r)
	}
	return r, err
}

// Version is the resourceVersion of the Project r was compiled from ("" for
// nil): a check made under one version holds while it is current.
func (r *Rules) Version() string {
	if r == nil {
		return ""
	}
	return r.version
}

// Compile checks a Project's patterns and compiles them. The error names
// the Project and the field of a pattern that does not parse.
func Compile(p *tendv1.Project) (*Rules, error) {
	r := &Rules{name: p.Namespace + "/" + p.Name, version: p.ResourceVersion, crossNS: p.Spec.AllowCrossNamespaceRefs}
	bad := func(field string, err error) error {
		return objstatus.Permanentf("the Project %s: %s: %v", r.name, field, err)
	}
	for i, s := range p.Spec.SourceRepos {
		pt, err := compilePattern(normalizeRepo(s))
		if err != nil {
			return nil, bad(fmt.Sprintf("spec.sourceRepos[%d] %q", i, s), err)
		}
		r.repos = append(r.repos, pt)
	}
	for i, d := range p.Spec.Destinations {
		c, err := compilePattern(orAny(d.Cluster))
		if err != nil {
			return nil, bad(fmt.Sprintf("spec.destinations[%d].cluster %q", i, d.Cluster), err)
		}
		n, err := compilePattern(orAny(d.Namespace))
		if err != nil {
			return nil, bad(fmt.Sprintf("spec.destinations[%d].namespace %q", i, d.Namespace), err)
		}
		r.dests = append(r.dests, destination{cluster: c.re, namespace: n.re, deny: c.deny || n.deny})
	}
	var err error
	if r.cluster, err = compileKinds("spec.clusterResources", p.Spec.ClusterResources, bad); err != nil {
		return nil, err
	}
	if r.namespace, err = compileKinds("spec.namespacedResources", p.Spec.NamespacedResources, bad); err != nil {
		return nil, err
	}
	r.namespace.emptyAllows = true
	return r, nil
}

func compileKinds(field string, k tendv1.KindRules, bad func(string, error) error) (kindRules, error) {
	var out kindRules
	for _, l := range []struct {
		list string
		in   []tendv1.GroupKindPattern
	}{{"allow", k.Allow}, {"deny", k.Deny}} {
		list := l.list
		for i, gk := range l.in {
			g, err := glob(gk.Group)
			if err != nil {
				return out, bad(fmt.Sprintf("%s.%s[%d].group %q", field, list, i, gk.Group), err)
			}
			kd, err := glob(gk.Kind)
			if err != nil {
				return out, bad(fmt.Sprintf("%s.%s[%d].kind %q", field, list, i, gk.Kind), err)
			}
			if list == "allow" {
				out.allow = append(out.allow, groupKind{g, kd})
			} else {
				out.deny = append(out.deny, groupKind{g, kd})
			}
		}
	}
	return out, nil
}

func orAny(s string) string {
	if s == "" {
		return "*"
	}
	return s
}

func compilePattern(s string) (pattern, error) {
	deny := strings.HasPrefix(s, "!")
	re, err := glob(strings.TrimPrefix(s, "!"))
	return pattern{re: re, deny: deny}, err
}

func glob(s string) (*regexp.Regexp, error) { return render.FileGlob(s) }

// denials collects refusals into one error.
type denials struct {
	project string
	list    []string
	more    int
}

func (d *denials) add(format string, args ...any) {
	if len(d.list) == maxDenials {
		d.more++
		return
	}
	d.list = append(d.list, fmt.Sprintf(format, args...))
}

func (d *denials) err() error {
	if len(d.list) == 0 {
		return nil
	}
	msg := strings.Join(d.list, "; ")
	if d.more > 0 {
		msg += fmt.Sprintf("; and %d more", d.more)
	}
	return &Denied{Project: d.project, Message: msg}
}

// Denied is a refusal: what breaks which rule of the Project.
type Denied struct {
	Project string
	Message string
}

func (e *Denied) Error() string {
	return fmt.Sprintf("the Project %s does not allow it: %s; change the App or the Project", e.Project, e.Message)
}

func (e *Denied) Unwrap() error { return ErrDenied }

// normalizeRepo makes the spellings of one repository equal, as Argo CD
// compares them: case, a trailing / and a trailing .git do not matter.
// Patterns are normalized the same way.
func normalizeRepo(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.TrimSuffix(s, "/")
	return strings.TrimSuffix(s, ".git")
}

// SameRepo says whether two repository URLs name the same repository.
func SameRepo(a, b string) bool { return normalizeRepo(a) == normalizeRepo(b) }

// RepoOf is the repository a Source names, as sourceRepos patterns match
// it.
func RepoOf(src *tendv1.Source) string {
	switch {
	case src.Spec.Git != nil:
		return src.Spec.Git.URL
	case src.Spec.Helm != nil:
		return src.Spec.Helm.URL
	case src.Spec.OCI != nil:
		return src.Spec.OCI.URL
	}
	return ""
}

// ClusterOf is the name of the cluster app deploys to, as destination
// patterns match it.
func ClusterOf(app *tendv1.App) string {
	if ref := app.Spec.Destination.ClusterRef; ref != nil && ref.Name != "" {
		return ref.Name
	}
	return InCluster
}

// CheckApp checks what the App names before anything is rendered: its
// Sources' repositories (the App's own, and those it reads values files
// from, read through c), its destination, and its references to other
// namespaces. A nil Rules allows everything.
func (r *Rules) CheckApp(ctx context.Context, c client.Reader, app *tendv1.App, src *tendv1.Source) error {
	if r == nil {
		return nil
	}
	d := &denials{project: r.name}
	if repo := RepoOf(src); !r.repos.match(normalizeRepo(repo)) {
		d.add("the Source %s/%s names the repository %q, which no pattern of spec.sourceRepos allows", src.Namespace, src.Name, repo)
	}
	if h := app.Spec.Helm; h != nil {
		for i, v := range h.ValuesFrom {
			if v.Kind != "Source" {
				continue
			}
			var vs tendv1.Source
			if err := c.Get(ctx, types.NamespacedName{Namespace: app.Namespace, Name: v.Name}, &vs); err != nil {
				if apierrors.IsNotFound(err) {
					continue // the render reports it
				}
				return err
			}
			if repo := RepoOf(&vs); !r.repos.match(normalizeRepo(repo)) {
				d.add("spec.helm.valuesFrom[%d]: the Source %s names the repository %q, which no pattern of spec.sourceRepos allows", i, v.Name, repo)
			}
		}
	}
	if ns := app.Spec.Destination.Namespace; ns != "" && !r.destinationAllowed(ClusterOf(app), ns) {
		d.add("spec.destination.namespace %q on cluster %q matches no entry of spec.destinations", ns, ClusterOf(app))
	}
	if app.Spec.Destination.NamespaceMetadata != nil && !r.cluster.allowed(schema.GroupKind{Kind: "Namespace"}) {
		// Labels on a Namespace (pod security, say) are a cluster-scoped
		// write.
		d.add("spec.destination.namespaceMetadata writes the Namespace %q, and spec.clusterResources does not allow Namespace", app.Spec.Destination.Namespace)
	}
	r.refs(app, d)
	return d.err()
}

// CheckRefs checks the App's references to other namespaces alone: what
// can be refused before the Source is even read. CheckApp checks them too.
func (r *Rules) CheckRefs(app *tendv1.App) error {
	if r == nil {
		return nil
	}
	d := &denials{project: r.name}
	r.refs(app, d)
	return d.err()
}

func (r *Rules) refs(app *tendv1.App, d *denials) {
	if r.crossNS {
		return
	}
	for _, ref := range CrossNamespaceRefs(app) {
		d.add("%s, and spec.allowCrossNamespaceRefs is not set", ref)
	}
}

// CrossNamespaceRefs describes each reference of app to an object in
// another namespace (spec.sourceRef, spec.sources, spec.dependsOn), e.g. `spec.sourceRef
// names a Source in namespace "platform"`. An App's other references
// (values, decryption keys, Clusters) are in its own namespace always.
func CrossNamespaceRefs(app *tendv1.App) []string {
	var out []string
	if ns := app.Spec.SourceRef.Namespace; ns != "" && ns != app.Namespace {
		out = append(out, fmt.Sprintf("spec.sourceRef names a Source in namespace %q", ns))
	}
	for i, s := range app.Spec.Sources {
		if ns := s.SourceRef.Namespace; ns != "" && ns != app.Namespace {
			out = append(out, fmt.Sprintf("spec.sources[%d].sourceRef names a Source in namespace %q", i, ns))
		}
	}
	for i, dep := range app.Spec.DependsOn {
		if dep.Namespace != "" && dep.Namespace != app.Namespace {
			out = append(out, fmt.Sprintf("spec.dependsOn[%d] names an App in namespace %q", i, dep.Namespace))
		}
	}
	return out
}

// destinationAllowed: an allowing entry matches the cluster and namespace,
// and no denying one does.
func (r *Rules) destinationAllowed(cluster, namespace string) bool {
	ok := false
	for _, d := range r.dests {
		if d.cluster.MatchString(cluster) && d.namespace.MatchString(namespace) {
			if d.deny {
				return false
			}
			ok = true
		}
	}
	return ok
}

// CheckObjects checks what a revision renders to: every object's kind, and
// every namespaced object's namespace. namespaced says whether a kind is
// namespaced (known false when the cluster does not serve it); a kind whose
// CustomResourceDefinition is among objs takes its scope from there.
func (r *Rules) CheckObjects(app *tendv1.App, objs []*unstructured.Unstructured, namespaced func(schema.GroupVersionKind) (namespaced, known bool)) error {
	if r == nil {
		return nil
	}
	crdScope := map[schema.GroupKind]bool{}
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" && o.GroupVersionKind().Group == "apiextensions.k8s.io" {
			group, _, _ := unstructured.NestedString(o.Object, "spec", "group")
			kind, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
			scope, _, _ := unstructured.NestedString(o.Object, "spec", "scope")
			crdScope[schema.GroupKind{Group: group, Kind: kind}] = scope == "Namespaced"
		}
	}
	d := &denials{project: r.name}
	cluster := ClusterOf(app)
	deniedNS := map[string]bool{}
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		nsd, known := namespaced(gvk)
		if !known {
			nsd, known = crdScope[gvk.GroupKind()]
		}
		if !known {
			nsd = o.GetNamespace() != ""
		}
		id := objectName(o)
		if !nsd {
			if !r.cluster.allowed(gvk.GroupKind()) {
				d.add("%s: the cluster-scoped kind %s is not allowed by spec.clusterResources", id, kindName(gvk))
			}
			continue
		}
		if !r.namespace.allowed(gvk.GroupKind()) {
			d.add("%s: the kind %s is not allowed by spec.namespacedResources", id, kindName(gvk))
		}
		if msg := r.escapes(o); msg != "" {
			d.add("%s: %s", id, msg)
		}
		ns := o.GetNamespace()
		if ns == "" {
			ns = "default"
		}
		if !deniedNS[ns] && !r.destinationAllowed(cluster, ns) {
			deniedNS[ns] = true
			d.add("%s: namespace %q on cluster %q matches no entry of spec.destinations", id, ns, cluster)
		}
	}
	return d.err()
}

// escapes says how a tend object among an App's objects would step out of
// the Project ("" when it does not): a Project (this one rewritten, or
// another), or an App or AppSet that names no Project, another one, or one
// of another namespace.
func (r *Rules) escapes(o *unstructured.Unstructured) string {
	if o.GroupVersionKind().Group != tendv1.GroupVersion.Group {
		return ""
	}
	ns, name, _ := strings.Cut(r.name, "/")
	var project string
	switch o.GetKind() {
	case "Project":
		return "an App of a Project may not create or change Projects"
	case "App":
		project, _, _ = unstructured.NestedString(o.Object, "spec", "project")
	case "AppSet":
		project, _, _ = unstructured.NestedString(o.Object, "spec", "template", "spec", "project")
	default:
		return ""
	}
	if project != name || o.GetNamespace() != ns {
		return fmt.Sprintf("an App of the Project %s may create Apps and AppSets only in namespace %s with spec.project %s (this one: namespace %q, project %q)", r.name, ns, name, o.GetNamespace(), project)
	}
	return ""
}

func kindName(gvk schema.GroupVersionKind) string {
	if gvk.Group == "" {
		return gvk.Kind
	}
	return gvk.Kind + "." + gvk.Group
}

func objectName(o *unstructured.Unstructured) string {
	if ns := o.GetNamespace(); ns != "" {
		return fmt.Sprintf("%s %s/%s", o.GetKind(), ns, o.GetName())
	}
	return fmt.Sprintf("%s %s", o.GetKind(), o.GetName())
}
