package project

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/objstatus"
)

const appNS = "apps"

// newProject is the Project apps/team with spec.
func newProject(spec tendv1.ProjectSpec) *tendv1.Project {
	return &tendv1.Project{
		TypeMeta:   metav1.TypeMeta{APIVersion: tendv1.GroupVersion.String(), Kind: "Project"},
		ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "team", ResourceVersion: "7"},
		Spec:       spec,
	}
}

func mustCompile(t *testing.T, spec tendv1.ProjectSpec) *Rules {
	t.Helper()
	r, err := Compile(newProject(spec))
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return r
}

// newApp is the App apps/web naming the Project team and the Source repo.
func newApp(mods ...func(*tendv1.App)) *tendv1.App {
	a := &tendv1.App{
		ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "web"},
		Spec: tendv1.AppSpec{
			SourceRef: tendv1.NamespacedObjectReference{Name: "repo"},
			Project:   "team",
		},
	}
	for _, m := range mods {
		m(a)
	}
	return a
}

func gitSource(name, url string) *tendv1.Source {
	return &tendv1.Source{
		ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: name},
		Spec:       tendv1.SourceSpec{Git: &tendv1.GitSource{URL: url}},
	}
}

func helmSource(name, url string) *tendv1.Source {
	return &tendv1.Source{
		ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: name},
		Spec:       tendv1.SourceSpec{Helm: &tendv1.HelmRepositorySource{URL: url}},
	}
}

func ociSource(name, url string) *tendv1.Source {
	return &tendv1.Source{
		ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: name},
		Spec:       tendv1.SourceSpec{OCI: &tendv1.OCIRepositorySource{URL: url}},
	}
}

func obj(apiVersion, kind, namespace, name string) *unstructured.Unstructured {
	o := &unstructured.Unstructured{Object: map[string]any{}}
	o.SetAPIVersion(apiVersion)
	o.SetKind(kind)
	o.SetName(name)
	if namespace != "" {
		o.SetNamespace(namespace)
	}
	return o
}

func crd(group, kind, scope string) *unstructured.Unstructured {
	o := obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", strings.ToLower(kind)+"s."+group)
	o.Object["spec"] = map[string]any{
		"group": group,
		"scope": scope,
		"names": map[string]any{"kind": kind, "plural": strings.ToLower(kind) + "s"},
	}
	return o
}

// knownScopes is a cluster's discovery: the kinds it serves and whether
// they are namespaced. Every other kind is unknown.
func knownScopes(gvk schema.GroupVersionKind) (namespaced, known bool) {
	switch gvk.GroupKind() {
	case schema.GroupKind{Kind: "Namespace"},
		schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"},
		schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"},
		schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}:
		return false, true
	case schema.GroupKind{Kind: "ConfigMap"},
		schema.GroupKind{Kind: "ResourceQuota"},
		schema.GroupKind{Group: "apps", Kind: "Deployment"},
		schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "Role"}:
		return true, true
	}
	return false, false
}

func checkDenied(t *testing.T, err error, want, dontWant []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("err = %v, want none", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("err = nil, want a refusal naming %q", want)
	}
	if !errors.Is(err, ErrDenied) {
		t.Errorf("errors.Is(%v, ErrDenied) = false", err)
	}
	var d *Denied
	if !errors.As(err, &d) {
		t.Fatalf("err %T is not a *Denied", err)
	}
	if d.Project != appNS+"/team" {
		t.Errorf("Denied.Project = %q, want %q", d.Project, appNS+"/team")
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "the Project "+appNS+"/team does not allow it: ") {
		t.Errorf("message %q does not start with the Project", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q lacks %q", msg, w)
		}
	}
	for _, w := range dontWant {
		if strings.Contains(msg, w) {
			t.Errorf("message %q holds %q", msg, w)
		}
	}
}

func TestRepoOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  *tendv1.Source
		want string
	}{
		{"git", gitSource("s", "https://git.example.org/a/b.git"), "https://git.example.org/a/b.git"},
		{"git scp", gitSource("s", "git@git.example.org:a/b.git"), "git@git.example.org:a/b.git"},
		{"helm", helmSource("s", "https://charts.example.org/stable"), "https://charts.example.org/stable"},
		{"oci", ociSource("s", "oci://registry.example.org/charts"), "oci://registry.example.org/charts"},
		{"none", &tendv1.Source{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RepoOf(tc.src); got != tc.want {
				t.Errorf("RepoOf = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestClusterOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		ref  *tendv1.LocalObjectReference
		want string
	}{
		{"no clusterRef", nil, InCluster},
		{"empty clusterRef name", &tendv1.LocalObjectReference{}, InCluster},
		{"clusterRef", &tendv1.LocalObjectReference{Name: "prod"}, "prod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := newApp(func(a *tendv1.App) { a.Spec.Destination.ClusterRef = tc.ref })
			if got := ClusterOf(app); got != tc.want {
				t.Errorf("ClusterOf = %q, want %q", got, tc.want)
			}
		})
	}
	if InCluster != "in-cluster" {
		t.Errorf("InCluster = %q, want in-cluster", InCluster)
	}
}

func TestCheckAppSourceRepos(t *testing.T) {
	for _, tc := range []struct {
		name  string
		repos []string
		src   *tendv1.Source
		deny  bool
	}{
		{"glob crosses slashes", []string{"https://git.example.org/*"}, gitSource("repo", "https://git.example.org/a/b.git"), false},
		{"glob anchored at start", []string{"https://git.example.org/*"}, gitSource("repo", "https://evil.example/https://git.example.org/a.git"), true},
		{"glob anchored at end", []string{"https://git.example.org/a.git"}, gitSource("repo", "https://git.example.org/a.git.evil"), true},
		{"another host", []string{"https://git.example.org/*"}, gitSource("repo", "https://git.example.com/a/b.git"), true},
		{"exact", []string{"https://git.example.org/a/b.git"}, gitSource("repo", "https://git.example.org/a/b.git"), false},
		{"dot is literal", []string{"https://git.example.org/a/b.git"}, gitSource("repo", "https://gitXexample.org/a/b.git"), true},
		{"question mark", []string{"https://git.example.org/team-?.git"}, gitSource("repo", "https://git.example.org/team-a.git"), false},
		{"braces", []string{"https://git.example.org/{web,api}/*"}, gitSource("repo", "https://git.example.org/api/x.git"), false},
		{"braces other", []string{"https://git.example.org/{web,api}/*"}, gitSource("repo", "https://git.example.org/db/x.git"), true},
		{"star allows any", []string{"*"}, gitSource("repo", "ssh://anything/at/all"), false},
		{"second pattern allows", []string{"https://a.example/*", "https://git.example.org/*"}, gitSource("repo", "https://git.example.org/x.git"), false},
		{"negation wins over an earlier allow", []string{"https://git.example.org/*", "!https://git.example.org/secret/*"}, gitSource("repo", "https://git.example.org/secret/x.git"), true},
		{"negation wins over a later allow", []string{"!https://git.example.org/secret/*", "https://git.example.org/*"}, gitSource("repo", "https://git.example.org/secret/x.git"), true},
		{"negation leaves the rest allowed", []string{"https://git.example.org/*", "!https://git.example.org/secret/*"}, gitSource("repo", "https://git.example.org/public/x.git"), false},
		{"negation alone allows nothing", []string{"!https://git.example.org/secret/*"}, gitSource("repo", "https://git.example.org/public/x.git"), true},
		{"empty allows nothing", nil, gitSource("repo", "https://git.example.org/a/b.git"), true},
		{"helm allowed", []string{"https://charts.example.org/*"}, helmSource("repo", "https://charts.example.org/stable"), false},
		{"helm refused", []string{"https://git.example.org/*"}, helmSource("repo", "https://charts.example.org/stable"), true},
		{"oci allowed", []string{"oci://registry.example.org/charts/*"}, ociSource("repo", "oci://registry.example.org/charts/web"), false},
		{"oci refused", []string{"oci://registry.example.org/charts/*"}, ociSource("repo", "oci://registry.example.org/other/web"), true},
		{"oci scheme matters", []string{"oci://registry.example.org/*"}, gitSource("repo", "https://registry.example.org/web"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustCompile(t, tendv1.ProjectSpec{SourceRepos: tc.repos})
			err := r.CheckApp(context.Background(), nil, newApp(), tc.src)
			var want []string
			if tc.deny {
				want = []string{fmt.Sprintf("the Source %s/repo names the repository %q, which no pattern of spec.sourceRepos allows", appNS, RepoOf(tc.src))}
			}
			checkDenied(t, err, want, nil)
		})
	}
}

func TestCheckAppDestination(t *testing.T) {
	prod := &tendv1.LocalObjectReference{Name: "prod"}
	for _, tc := range []struct {
		name       string
		dests      []tendv1.ProjectDestination
		clusterRef *tendv1.LocalObjectReference
		namespace  string
		want       string // "" allowed
	}{
		{"in-cluster by default", []tendv1.ProjectDestination{{Cluster: "in-cluster", Namespace: "team-a"}}, nil, "team-a", ""},
		{"in-cluster not another cluster", []tendv1.ProjectDestination{{Cluster: "in-cluster", Namespace: "team-a"}}, prod, "team-a",
			`spec.destination.namespace "team-a" on cluster "prod" matches no entry of spec.destinations`},
		{"clusterRef by name", []tendv1.ProjectDestination{{Cluster: "prod", Namespace: "team-a"}}, prod, "team-a", ""},
		{"named cluster not in-cluster", []tendv1.ProjectDestination{{Cluster: "prod", Namespace: "team-a"}}, nil, "team-a",
			`spec.destination.namespace "team-a" on cluster "in-cluster" matches no entry of spec.destinations`},
		{"cluster glob", []tendv1.ProjectDestination{{Cluster: "pro*", Namespace: "team-a"}}, prod, "team-a", ""},
		{"empty cluster is any", []tendv1.ProjectDestination{{Namespace: "team-a"}}, prod, "team-a", ""},
		{"empty namespace is any", []tendv1.ProjectDestination{{Cluster: "prod"}}, prod, "anything", ""},
		{"namespace glob", []tendv1.ProjectDestination{{Namespace: "team-*"}}, nil, "team-b", ""},
		{"namespace glob refuses", []tendv1.ProjectDestination{{Namespace: "team-*"}}, nil, "kube-system",
			`spec.destination.namespace "kube-system" on cluster "in-cluster"`},
		{"namespace glob anchored", []tendv1.ProjectDestination{{Namespace: "team-*"}}, nil, "x-team-a", `"x-team-a"`},
		{"cluster and namespace from one entry", []tendv1.ProjectDestination{{Cluster: "prod", Namespace: "a"}, {Cluster: "in-cluster", Namespace: "b"}}, prod, "b",
			`spec.destination.namespace "b" on cluster "prod"`},
		{"second entry", []tendv1.ProjectDestination{{Cluster: "prod", Namespace: "a"}, {Cluster: "in-cluster", Namespace: "b"}}, nil, "b", ""},
		{"empty destinations allow nothing", nil, nil, "team-a", `spec.destination.namespace "team-a"`},
		{"no destination namespace is not checked here", nil, nil, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustCompile(t, tendv1.ProjectSpec{SourceRepos: []string{"*"}, Destinations: tc.dests})
			app := newApp(func(a *tendv1.App) {
				a.Spec.Destination.ClusterRef = tc.clusterRef
				a.Spec.Destination.Namespace = tc.namespace
			})
			var want []string
			if tc.want != "" {
				want = []string{tc.want}
			}
			checkDenied(t, r.CheckApp(context.Background(), nil, app, gitSource("repo", "https://git.example.org/a.git")), want, nil)
		})
	}
}

func TestCrossNamespaceRefs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		allow   bool
		mod     func(*tendv1.App)
		want    []string
		notWant []string
	}{
		{name: "sourceRef in another namespace", mod: func(a *tendv1.App) { a.Spec.SourceRef.Namespace = "kube-system" },
			want: []string{`spec.sourceRef names a Source in namespace "kube-system", and spec.allowCrossNamespaceRefs is not set`}},
		{name: "sourceRef in the App's namespace", mod: func(a *tendv1.App) { a.Spec.SourceRef.Namespace = appNS }},
		{name: "sourceRef without namespace", mod: func(a *tendv1.App) {}},
		{name: "dependsOn in another namespace", mod: func(a *tendv1.App) {
			a.Spec.DependsOn = []tendv1.NamespacedObjectReference{{Name: "db"}, {Name: "mq", Namespace: appNS}, {Name: "infra", Namespace: "platform"}}
		}, want: []string{`spec.dependsOn[2] names an App in namespace "platform", and spec.allowCrossNamespaceRefs is not set`},
			notWant: []string{"spec.dependsOn[0]", "spec.dependsOn[1]", "spec.sourceRef"}},
		{name: "both refused", mod: func(a *tendv1.App) {
			a.Spec.SourceRef.Namespace = "other"
			a.Spec.DependsOn = []tendv1.NamespacedObjectReference{{Name: "infra", Namespace: "platform"}}
		}, want: []string{`spec.sourceRef names a Source in namespace "other"`, `spec.dependsOn[0] names an App in namespace "platform"`}},
		{name: "allowCrossNamespaceRefs", allow: true, mod: func(a *tendv1.App) {
			a.Spec.SourceRef.Namespace = "other"
			a.Spec.DependsOn = []tendv1.NamespacedObjectReference{{Name: "infra", Namespace: "platform"}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustCompile(t, tendv1.ProjectSpec{SourceRepos: []string{"*"}, AllowCrossNamespaceRefs: tc.allow})
			app := newApp(tc.mod)
			src := gitSource("repo", "https://git.example.org/a.git")
			t.Run("CheckApp", func(t *testing.T) {
				checkDenied(t, r.CheckApp(context.Background(), nil, app, src), tc.want, tc.notWant)
			})
			t.Run("CheckRefs", func(t *testing.T) {
				checkDenied(t, r.CheckRefs(app), tc.want, tc.notWant)
			})
		})
	}
}

// anyDestination allows every namespace on every cluster.
var anyDestination = []tendv1.ProjectDestination{{}}

func TestCheckObjectsKinds(t *testing.T) {
	clusterRole := obj("rbac.authorization.k8s.io/v1", "ClusterRole", "", "reader")
	clusterRoleBinding := obj("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "", "reader")
	namespace := obj("v1", "Namespace", "", "team-a")
	fakeNamespace := obj("example.com/v1", "Namespace", "", "not-core") // unknown kind: cluster-scoped
	configMap := obj("v1", "ConfigMap", "team-a", "cfg")
	quota := obj("v1", "ResourceQuota", "team-a", "quota")
	deployment := obj("apps/v1", "Deployment", "team-a", "web")
	role := obj("rbac.authorization.k8s.io/v1", "Role", "team-a", "reader")

	const clusterRoleDenied = "ClusterRole reader: the cluster-scoped kind ClusterRole.rbac.authorization.k8s.io is not allowed by spec.clusterResources"
	const namespaceDenied = "Namespace team-a: the cluster-scoped kind Namespace is not allowed by spec.clusterResources"
	const fakeNamespaceDenied = "Namespace not-core: the cluster-scoped kind Namespace.example.com is not allowed by spec.clusterResources"
	const configMapDenied = "ConfigMap team-a/cfg: the kind ConfigMap is not allowed by spec.namespacedResources"
	const quotaDenied = "ResourceQuota team-a/quota: the kind ResourceQuota is not allowed by spec.namespacedResources"
	const deploymentDenied = "Deployment team-a/web: the kind Deployment.apps is not allowed by spec.namespacedResources"
	all := []tendv1.GroupKindPattern{{Group: "*", Kind: "*"}}

	for _, tc := range []struct {
		name           string
		cluster, nsd   tendv1.KindRules
		objs           []*unstructured.Unstructured
		want, dontWant []string
	}{
		{
			name: "cluster-scoped with empty allow refused",
			objs: []*unstructured.Unstructured{clusterRole, namespace, configMap},
			want: []string{clusterRoleDenied, namespaceDenied}, dontWant: []string{"ConfigMap"},
		},
		{
			name:     "cluster-scoped allowed when listed",
			cluster:  tendv1.KindRules{Allow: []tendv1.GroupKindPattern{{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}}},
			objs:     []*unstructured.Unstructured{clusterRole, clusterRoleBinding, namespace},
			want:     []string{"ClusterRoleBinding reader: the cluster-scoped kind ClusterRoleBinding.rbac.authorization.k8s.io", namespaceDenied},
			dontWant: []string{clusterRoleDenied},
		},
		{
			name:    "kind glob",
			cluster: tendv1.KindRules{Allow: []tendv1.GroupKindPattern{{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole*"}}},
			objs:    []*unstructured.Unstructured{clusterRole, clusterRoleBinding},
		},
		{
			name:    "deny wins over allow",
			cluster: tendv1.KindRules{Allow: all, Deny: []tendv1.GroupKindPattern{{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}}},
			objs:    []*unstructured.Unstructured{clusterRole, clusterRoleBinding, namespace},
			want:    []string{clusterRoleDenied}, dontWant: []string{"ClusterRoleBinding", "Namespace"},
		},
		{
			name:    "group empty is the core group only",
			cluster: tendv1.KindRules{Allow: []tendv1.GroupKindPattern{{Group: "", Kind: "Namespace"}}},
			objs:    []*unstructured.Unstructured{namespace, fakeNamespace},
			want:    []string{fakeNamespaceDenied}, dontWant: []string{namespaceDenied},
		},
		{
			name:    "group glob star is any group",
			cluster: tendv1.KindRules{Allow: []tendv1.GroupKindPattern{{Group: "*", Kind: "Namespace"}}},
			objs:    []*unstructured.Unstructured{namespace, fakeNamespace, clusterRole},
			want:    []string{clusterRoleDenied}, dontWant: []string{"Namespace"},
		},
		{
			name:    "core deny leaves other groups",
			cluster: tendv1.KindRules{Allow: all, Deny: []tendv1.GroupKindPattern{{Kind: "Namespace"}}},
			objs:    []*unstructured.Unstructured{namespace, fakeNamespace},
			want:    []string{namespaceDenied}, dontWant: []string{"not-core"},
		},
		{
			name: "namespaced allow does not cover cluster-scoped kinds",
			nsd:  tendv1.KindRules{Allow: all},
			objs: []*unstructured.Unstructured{clusterRole, configMap},
			want: []string{clusterRoleDenied}, dontWant: []string{"ConfigMap"},
		},
		{
			name:    "cluster allow does not cover namespaced kinds",
			cluster: tendv1.KindRules{Allow: all},
			nsd:     tendv1.KindRules{Allow: []tendv1.GroupKindPattern{{Group: "apps", Kind: "*"}}},
			objs:    []*unstructured.Unstructured{clusterRole, configMap, deployment},
			want:    []string{configMapDenied}, dontWant: []string{"ClusterRole", "Deployment"},
		},
		{
			name: "namespaced with empty allow allows all",
			objs: []*unstructured.Unstructured{configMap, quota, deployment, role},
		},
		{
			name: "namespaced empty allow except deny",
			nsd:  tendv1.KindRules{Deny: []tendv1.GroupKindPattern{{Kind: "ResourceQuota"}}},
			objs: []*unstructured.Unstructured{configMap, quota, deployment},
			want: []string{quotaDenied}, dontWant: []string{"ConfigMap", "Deployment"},
		},
		{
			name: "namespaced deny of core kind leaves apps",
			nsd:  tendv1.KindRules{Deny: []tendv1.GroupKindPattern{{Kind: "Deployment"}, {Kind: "ConfigMap"}}},
			objs: []*unstructured.Unstructured{configMap, deployment},
			want: []string{configMapDenied}, dontWant: []string{"Deployment"},
		},
		{
			name: "namespaced deny with group glob",
			nsd:  tendv1.KindRules{Deny: []tendv1.GroupKindPattern{{Group: "*", Kind: "Deployment"}}},
			objs: []*unstructured.Unstructured{configMap, deployment},
			want: []string{deploymentDenied}, dontWant: []string{"ConfigMap"},
		},
		{
			name: "namespaced allow list",
			nsd:  tendv1.KindRules{Allow: []tendv1.GroupKindPattern{{Kind: "ConfigMap"}, {Group: "rbac.authorization.k8s.io", Kind: "Role"}}},
			objs: []*unstructured.Unstructured{configMap, quota, deployment, role},
			want: []string{quotaDenied, deploymentDenied}, dontWant: []string{"ConfigMap", "Role"},
		},
		{
			name: "namespaced deny wins over allow",
			nsd:  tendv1.KindRules{Allow: all, Deny: []tendv1.GroupKindPattern{{Group: "apps", Kind: "Deploy*"}}},
			objs: []*unstructured.Unstructured{configMap, deployment},
			want: []string{deploymentDenied}, dontWant: []string{"ConfigMap"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustCompile(t, tendv1.ProjectSpec{Destinations: anyDestination, ClusterResources: tc.cluster, NamespacedResources: tc.nsd})
			checkDenied(t, r.CheckObjects(newApp(), tc.objs, knownScopes), tc.want, tc.dontWant)
		})
	}
}

func TestCheckObjectsScope(t *testing.T) {
	widgetCRD := crd("example.com", "Widget", "Namespaced")
	gadgetCRD := crd("example.com", "Gadget", "Cluster")
	for _, tc := range []struct {
		name           string
		spec           tendv1.ProjectSpec
		objs           []*unstructured.Unstructured
		want, dontWant []string
	}{
		{
			name: "namespaced custom resource by its CRD",
			spec: tendv1.ProjectSpec{
				Destinations:     []tendv1.ProjectDestination{{Namespace: "team-a"}},
				ClusterResources: tendv1.KindRules{Allow: []tendv1.GroupKindPattern{{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}}},
			},
			objs:     []*unstructured.Unstructured{widgetCRD, obj("example.com/v1", "Widget", "team-a", "w")},
			dontWant: []string{"Widget"},
		},
		{
			name: "namespaced custom resource checked against destinations",
			spec: tendv1.ProjectSpec{
				Destinations:     []tendv1.ProjectDestination{{Namespace: "team-a"}},
				ClusterResources: tendv1.KindRules{Allow: []tendv1.GroupKindPattern{{Group: "apiextensions.k8s.io", Kind: "*"}}},
			},
			objs: []*unstructured.Unstructured{obj("example.com/v1", "Widget", "kube-system", "w"), widgetCRD},
			want: []string{`Widget kube-system/w: namespace "kube-system" on cluster "in-cluster" matches no entry of spec.destinations`},
		},
		{
			name: "namespaced custom resource without namespace is in default",
			spec: tendv1.ProjectSpec{
				Destinations:     []tendv1.ProjectDestination{{Namespace: "team-a"}},
				ClusterResources: tendv1.KindRules{Allow: []tendv1.GroupKindPattern{{Group: "*", Kind: "*"}}},
			},
			objs:     []*unstructured.Unstructured{widgetCRD, obj("example.com/v1", "Widget", "", "w")},
			want:     []string{`Widget w: namespace "default" on cluster "in-cluster"`},
			dontWant: []string{"clusterResources"},
		},
		{
			name: "cluster-scoped custom resource by its CRD",
			spec: tendv1.ProjectSpec{
				Destinations:     anyDestination,
				ClusterResources: tendv1.KindRules{Allow: []tendv1.GroupKindPattern{{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}}},
			},
			objs: []*unstructured.Unstructured{gadgetCRD, obj("example.com/v1", "Gadget", "", "g")},
			want: []string{"Gadget g: the cluster-scoped kind Gadget.example.com is not allowed by spec.clusterResources"},
		},
		{
			name: "cluster-scoped custom resource allowed",
			spec: tendv1.ProjectSpec{
				ClusterResources: tendv1.KindRules{Allow: []tendv1.GroupKindPattern{{Group: "apiextensions.k8s.io", Kind: "*"}, {Group: "example.com", Kind: "Gadget"}}},
			},
			objs: []*unstructured.Unstructured{gadgetCRD, obj("example.com/v1", "Gadget", "", "g")},
		},
		{
			name: "cluster-scoped custom resource is not checked against destinations",
			spec: tendv1.ProjectSpec{
				Destinations:     []tendv1.ProjectDestination{{Namespace: "team-a"}},
				ClusterResources: tendv1.KindRules{Allow: []tendv1.GroupKindPattern{{Group: "*", Kind: "*"}}},
			},
			objs: []*unstructured.Unstructured{gadgetCRD, obj("example.com/v1", "Gadget", "", "g")},
		},
		{
			name: "CRD of another group is not a CRD",
			spec: tendv1.ProjectSpec{Destinations: anyDestination},
			objs: []*unstructured.Unstructured{
				func() *unstructured.Unstructured {
					o := crd("example.com", "Widget", "Namespaced")
					o.SetAPIVersion("fake.example/v1")
					o.SetNamespace("team-a") // namespaced, so allowed itself
					return o
				}(),
				obj("example.com/v1", "Widget", "", "w"),
			},
			want: []string{"Widget w: the cluster-scoped kind Widget.example.com is not allowed by spec.clusterResources"},
		},
		{
			name: "unknown kind without namespace is cluster-scoped",
			spec: tendv1.ProjectSpec{Destinations: anyDestination},
			objs: []*unstructured.Unstructured{obj("example.com/v1", "Thing", "", "t")},
			want: []string{"Thing t: the cluster-scoped kind Thing.example.com is not allowed by spec.clusterResources"},
		},
		{
			name: "unknown kind with namespace is namespaced",
			spec: tendv1.ProjectSpec{Destinations: []tendv1.ProjectDestination{{Namespace: "team-a"}}},
			objs: []*unstructured.Unstructured{obj("example.com/v1", "Thing", "team-a", "t"), obj("example.com/v1", "Thing", "team-b", "u")},
			want: []string{`Thing team-b/u: namespace "team-b" on cluster "in-cluster"`}, dontWant: []string{"clusterResources", "team-a/t"},
		},
		{
			name: "known namespaced kind without namespace is in default",
			spec: tendv1.ProjectSpec{Destinations: []tendv1.ProjectDestination{{Namespace: "team-a"}}},
			objs: []*unstructured.Unstructured{obj("v1", "ConfigMap", "", "cfg")},
			want: []string{`ConfigMap cfg: namespace "default" on cluster "in-cluster"`}, dontWant: []string{"clusterResources"},
		},
		{
			name: "known cluster-scoped kind with a namespace stays cluster-scoped",
			spec: tendv1.ProjectSpec{Destinations: anyDestination},
			objs: []*unstructured.Unstructured{obj("rbac.authorization.k8s.io/v1", "ClusterRole", "team-a", "r")},
			want: []string{"ClusterRole team-a/r: the cluster-scoped kind ClusterRole.rbac.authorization.k8s.io"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustCompile(t, tc.spec)
			checkDenied(t, r.CheckObjects(newApp(), tc.objs, knownScopes), tc.want, tc.dontWant)
		})
	}
}

func TestCheckObjectsDestinations(t *testing.T) {
	prod := func(a *tendv1.App) { a.Spec.Destination.ClusterRef = &tendv1.LocalObjectReference{Name: "prod"} }
	cm := func(ns, name string) *unstructured.Unstructured { return obj("v1", "ConfigMap", ns, name) }
	for _, tc := range []struct {
		name           string
		dests          []tendv1.ProjectDestination
		app            *tendv1.App
		objs           []*unstructured.Unstructured
		want, dontWant []string
	}{
		{
			name:     "namespace glob",
			dests:    []tendv1.ProjectDestination{{Cluster: "in-cluster", Namespace: "team-*"}},
			app:      newApp(),
			objs:     []*unstructured.Unstructured{cm("team-a", "a"), cm("team-b", "b"), cm("kube-system", "c")},
			want:     []string{`ConfigMap kube-system/c: namespace "kube-system" on cluster "in-cluster" matches no entry of spec.destinations`},
			dontWant: []string{"team-a", "team-b"},
		},
		{
			name:  "clusterRef name",
			dests: []tendv1.ProjectDestination{{Cluster: "prod", Namespace: "team-a"}},
			app:   newApp(prod),
			objs:  []*unstructured.Unstructured{cm("team-a", "a")},
		},
		{
			name:  "in-cluster entry does not allow another cluster",
			dests: []tendv1.ProjectDestination{{Cluster: "in-cluster", Namespace: "team-a"}},
			app:   newApp(prod),
			objs:  []*unstructured.Unstructured{cm("team-a", "a")},
			want:  []string{`ConfigMap team-a/a: namespace "team-a" on cluster "prod"`},
		},
		{
			name: "empty destinations allow nothing",
			app:  newApp(),
			objs: []*unstructured.Unstructured{cm("team-a", "a")},
			want: []string{`ConfigMap team-a/a: namespace "team-a" on cluster "in-cluster"`},
		},
		{
			name: "cluster-scoped objects need no destination",
			app:  newApp(),
			objs: []*unstructured.Unstructured{obj("v1", "Namespace", "", "kube-system")},
		},
		{
			name:     "one refusal per namespace",
			dests:    []tendv1.ProjectDestination{{Namespace: "team-a"}},
			app:      newApp(),
			objs:     []*unstructured.Unstructured{cm("kube-system", "a"), cm("kube-system", "b"), cm("kube-public", "c"), cm("kube-system", "d")},
			want:     []string{`ConfigMap kube-system/a: namespace "kube-system"`, `ConfigMap kube-public/c: namespace "kube-public"`},
			dontWant: []string{"kube-system/b", "kube-system/d"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustCompile(t, tendv1.ProjectSpec{
				Destinations:     tc.dests,
				ClusterResources: tendv1.KindRules{Allow: []tendv1.GroupKindPattern{{Group: "*", Kind: "*"}}},
			})
			checkDenied(t, r.CheckObjects(tc.app, tc.objs, knownScopes), tc.want, tc.dontWant)
		})
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spec  tendv1.ProjectSpec
		field string
	}{
		{"unmatched brace in sourceRepos", tendv1.ProjectSpec{SourceRepos: []string{"*", "{a"}}, `spec.sourceRepos[1] "{a"`},
		{"negated bad sourceRepos", tendv1.ProjectSpec{SourceRepos: []string{"!https://x/{a"}}, `spec.sourceRepos[0] "!https://x/{a"`},
		{"unmatched closing brace", tendv1.ProjectSpec{SourceRepos: []string{"a}"}}, `spec.sourceRepos[0] "a}"`},
		{"destination cluster", tendv1.ProjectSpec{Destinations: []tendv1.ProjectDestination{{}, {Cluster: "[prod"}}}, `spec.destinations[1].cluster "[prod"`},
		{"destination namespace", tendv1.ProjectSpec{Destinations: []tendv1.ProjectDestination{{Namespace: "team-{a"}}}, `spec.destinations[0].namespace "team-{a"`},
		{"clusterResources allow group", tendv1.ProjectSpec{ClusterResources: tendv1.KindRules{Allow: []tendv1.GroupKindPattern{{Group: "{x", Kind: "*"}}}}, `spec.clusterResources.allow[0].group "{x"`},
		{"clusterResources deny kind", tendv1.ProjectSpec{ClusterResources: tendv1.KindRules{Deny: []tendv1.GroupKindPattern{{Kind: "Namespace"}, {Kind: `Role\`}}}}, `spec.clusterResources.deny[1].kind`},
		{"namespacedResources allow kind", tendv1.ProjectSpec{NamespacedResources: tendv1.KindRules{Allow: []tendv1.GroupKindPattern{{Kind: "Config{Map"}}}}, `spec.namespacedResources.allow[0].kind "Config{Map"`},
		{"namespacedResources deny group", tendv1.ProjectSpec{NamespacedResources: tendv1.KindRules{Deny: []tendv1.GroupKindPattern{{Group: "[apps", Kind: "*"}}}}, `spec.namespacedResources.deny[0].group "[apps"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Compile(newProject(tc.spec))
			if err == nil {
				t.Fatalf("Compile = %v, want an error naming %s", r, tc.field)
			}
			if r != nil {
				t.Errorf("Compile returned rules %v with its error", r)
			}
			msg := err.Error()
			if !strings.Contains(msg, "the Project "+appNS+"/team") {
				t.Errorf("error %q does not name the Project", msg)
			}
			if !strings.Contains(msg, tc.field) {
				t.Errorf("error %q does not name %s", msg, tc.field)
			}
			if !objstatus.IsPermanent(err) {
				t.Errorf("error %q is not permanent", msg)
			}
			if errors.Is(err, ErrDenied) || errors.Is(err, ErrNotFound) {
				t.Errorf("error %q is a refusal or not-found", msg)
			}
		})
	}
}

func TestCompileVersion(t *testing.T) {
	r := mustCompile(t, tendv1.ProjectSpec{})
	if got := r.Version(); got != "7" {
		t.Errorf("Version = %q, want 7", got)
	}
}

func TestDenialsSummarised(t *testing.T) {
	r := mustCompile(t, tendv1.ProjectSpec{SourceRepos: []string{"*"}})
	deps := func(n int) func(*tendv1.App) {
		return func(a *tendv1.App) {
			for i := 0; i < n; i++ {
				a.Spec.DependsOn = append(a.Spec.DependsOn, tendv1.NamespacedObjectReference{Name: fmt.Sprintf("d%d", i), Namespace: "other"})
			}
		}
	}
	for _, tc := range []struct {
		n              int
		want, dontWant []string
	}{
		{n: 1, want: []string{"spec.dependsOn[0]"}, dontWant: []string{"more"}},
		{n: 10, want: []string{"spec.dependsOn[0]", "spec.dependsOn[9]"}, dontWant: []string{"more"}},
		{n: 11, want: []string{"spec.dependsOn[9]", "; and 1 more; change the App or the Project"}, dontWant: []string{"spec.dependsOn[10]"}},
		{n: 25, want: []string{"spec.dependsOn[9]", "; and 15 more"}, dontWant: []string{"spec.dependsOn[10]", "spec.dependsOn[24]"}},
	} {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			err := r.CheckRefs(newApp(deps(tc.n)))
			checkDenied(t, err, tc.want, tc.dontWant)
			listed := strings.Count(err.Error(), "names an App in namespace")
			if want := min(tc.n, 10); listed != want {
				t.Errorf("%d refusals listed, want %d: %v", listed, want, err)
			}
		})
	}

	t.Run("objects", func(t *testing.T) {
		rr := mustCompile(t, tendv1.ProjectSpec{Destinations: anyDestination})
		var objs []*unstructured.Unstructured
		for i := 0; i < 12; i++ {
			objs = append(objs, obj("rbac.authorization.k8s.io/v1", "ClusterRole", "", fmt.Sprintf("r%02d", i)))
		}
		checkDenied(t, rr.CheckObjects(newApp(), objs, knownScopes),
			[]string{"ClusterRole r00:", "ClusterRole r09:", "; and 2 more"}, []string{"ClusterRole r10", "ClusterRole r11"})
	})
}

func TestDeniedError(t *testing.T) {
	err := error(&Denied{Project: "apps/team", Message: "X is not allowed"})
	if got, want := err.Error(), "the Project apps/team does not allow it: X is not allowed; change the App or the Project"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, ErrDenied) {
		t.Error("errors.Is(Denied, ErrDenied) = false")
	}
	if !errors.Is(fmt.Errorf("wrapped: %w", err), ErrDenied) {
		t.Error("a wrapped Denied is not ErrDenied")
	}
	if errors.Is(err, ErrNotFound) {
		t.Error("Denied is ErrNotFound")
	}
}

func TestNilRulesAllowEverything(t *testing.T) {
	var r *Rules
	app := newApp(func(a *tendv1.App) {
		a.Spec.SourceRef.Namespace = "other"
		a.Spec.DependsOn = []tendv1.NamespacedObjectReference{{Name: "x", Namespace: "elsewhere"}}
		a.Spec.Destination.Namespace = "kube-system"
		a.Spec.Helm = &tendv1.HelmSpec{ValuesFrom: []tendv1.ValuesReference{{Kind: "Source", Name: "v"}}}
	})
	if err := r.CheckApp(context.Background(), nil, app, gitSource("repo", "https://anything.example/x.git")); err != nil {
		t.Errorf("CheckApp: %v", err)
	}
	if err := r.CheckRefs(app); err != nil {
		t.Errorf("CheckRefs: %v", err)
	}
	objs := []*unstructured.Unstructured{obj("rbac.authorization.k8s.io/v1", "ClusterRole", "", "admin"), obj("v1", "ConfigMap", "kube-system", "c")}
	if err := r.CheckObjects(app, objs, knownScopes); err != nil {
		t.Errorf("CheckObjects: %v", err)
	}
	if v := r.Version(); v != "" {
		t.Errorf("Version = %q, want empty", v)
	}
}

// An empty Project refuses everything it rules on and allows what it does
// not rule on.
func TestEmptyProject(t *testing.T) {
	r := mustCompile(t, tendv1.ProjectSpec{})
	app := newApp(func(a *tendv1.App) { a.Spec.Destination.Namespace = "team-a" })
	checkDenied(t, r.CheckApp(context.Background(), nil, app, gitSource("repo", "https://git.example.org/a.git")),
		[]string{"spec.sourceRepos", "spec.destinations"}, nil)
	checkDenied(t, r.CheckRefs(newApp()), nil, nil)
	checkDenied(t, r.CheckObjects(app, []*unstructured.Unstructured{
		obj("v1", "Namespace", "", "team-a"), obj("v1", "ConfigMap", "team-a", "c"),
	}, knownScopes), []string{"spec.clusterResources", "spec.destinations"}, []string{"spec.namespacedResources"})
}

// An App cannot step out of its Project through the tend objects it
// renders: no Project (its own rewritten, or another), and Apps and AppSets
// only in the Project's namespace, naming the same Project.
func TestCheckObjectsTendObjectsStayInTheProject(t *testing.T) {
	r := mustCompile(t, tendv1.ProjectSpec{Destinations: []tendv1.ProjectDestination{{Namespace: "*"}}})
	child := func(kind, ns, project string) *unstructured.Unstructured {
		o := obj("tend.dev/v1alpha1", kind, ns, "child")
		if kind == "AppSet" {
			o.Object["spec"] = map[string]any{"template": map[string]any{"spec": map[string]any{"project": project}}}
		} else if project != "" {
			o.Object["spec"] = map[string]any{"project": project}
		}
		return o
	}
	scope := func(schema.GroupVersionKind) (bool, bool) { return true, true }
	for _, tc := range []struct {
		name string
		o    *unstructured.Unstructured
		want string // "" allowed
	}{
		{"its own Project rewritten", child("Project", appNS, ""), "may not create or change Projects"},
		{"an App in the Project", child("App", appNS, "team"), ""},
		{"an AppSet whose Apps are in the Project", child("AppSet", appNS, "team"), ""},
		{"an App without a Project", child("App", appNS, ""), `(this one: namespace "apps", project "")`},
		{"an App in another Project", child("App", appNS, "ops"), `project "ops"`},
		{"an App in another namespace", child("App", "other", "team"), `namespace "other"`},
		{"an AppSet without a Project", child("AppSet", appNS, ""), "may create Apps and AppSets only in namespace apps with spec.project team"},
		{"another tend kind", child("Source", appNS, ""), ""},
	} {
		err := r.CheckObjects(newApp(), []*unstructured.Unstructured{tc.o}, scope)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want allowed", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want a refusal with %q", tc.name, err, tc.want)
		}
	}
}

// Repository URLs compare as Argo CD compares them: case, a trailing /
// and .git do not matter, on either side.
func TestSourceReposNormalized(t *testing.T) {
	r := mustCompile(t, tendv1.ProjectSpec{SourceRepos: []string{"https://Git.Example.org/team/*", "!https://git.example.org/team/secret.git"}})
	for url, allowed := range map[string]bool{
		"https://git.example.org/team/web.git":  true,
		"https://GIT.example.org/team/web/":     true,
		"https://git.example.org/team/secret":   false,
		"https://git.example.org/team/Secret/":  false,
		"https://git.example.org/other/web.git": false,
	} {
		err := r.CheckApp(context.Background(), nil, newApp(), gitSource("repo", url))
		if (err == nil) != allowed {
			t.Errorf("%s: %v, want allowed=%v", url, err, allowed)
		}
	}
}

// Labels on the destination Namespace are a write to a cluster-scoped
// object: only with Namespace among spec.clusterResources.
func TestNamespaceMetadataNeedsNamespaceKind(t *testing.T) {
	app := newApp(func(a *tendv1.App) {
		a.Spec.Destination = tendv1.Destination{Namespace: "team-a", CreateNamespace: true,
			NamespaceMetadata: &tendv1.NamespaceMetadata{Labels: map[string]string{"pod-security.kubernetes.io/enforce": "privileged"}}}
	})
	src := gitSource("repo", "https://git.example.org/r.git")
	spec := tendv1.ProjectSpec{SourceRepos: []string{"*"}, Destinations: []tendv1.ProjectDestination{{Namespace: "team-a"}}}
	if err := mustCompile(t, spec).CheckApp(context.Background(), nil, app, src); err == nil || !strings.Contains(err.Error(), "spec.destination.namespaceMetadata") {
		t.Errorf("namespaceMetadata without Namespace allowed: %v", err)
	}
	spec.ClusterResources.Allow = []tendv1.GroupKindPattern{{Kind: "Namespace"}}
	if err := mustCompile(t, spec).CheckApp(context.Background(), nil, app, src); err != nil {
		t.Errorf("namespaceMetadata with Namespace allowed: %v", err)
	}
}
