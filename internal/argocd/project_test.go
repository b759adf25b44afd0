package argocd

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/project"
)

// teamProject is an AppProject as a platform team writes it.
const teamProject = `
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata:
  name: team-web
  namespace: argocd
  labels: {team: web}
  annotations: {owner: platform}
  finalizers: [resources-finalizer.argocd.argoproj.io]
spec:
  description: Web team applications
  sourceRepos:
  - https://git.example.com/web/*
  - '!https://git.example.com/web/secret.git'
  - oci://registry.example.com/charts/*
  destinations:
  - server: https://kubernetes.default.svc
    namespace: web-*
  - name: prod-eu
    namespace: web
  - server: '*'
    namespace: shared
  clusterResourceWhitelist:
  - group: ''
    kind: Namespace
  clusterResourceBlacklist:
  - group: rbac.authorization.k8s.io
    kind: '*'
  namespaceResourceWhitelist:
  - group: apps
    kind: Deployment
  - group: ''
    kind: '*'
  namespaceResourceBlacklist:
  - group: ''
    kind: ResourceQuota
  orphanedResources:
    warn: true
  roles:
  - name: ci
    description: CI pipelines sync
    policies:
    - p, proj:team-web:ci, applications, sync, team-web/*, allow
    groups: [web-admins]
  sourceNamespaces: [web-apps]
status:
  jwtTokensByRole: {}
`

func mustParseProject(t *testing.T, doc string) *AppProject {
	t.Helper()
	p, err := ParseAppProject([]byte(doc))
	if err != nil {
		t.Fatalf("ParseAppProject: %v", err)
	}
	return p
}

func TestParseAppProject(t *testing.T) {
	p := mustParseProject(t, teamProject)
	if p.Name != "team-web" || p.Namespace != "argocd" || p.Labels["team"] != "web" {
		t.Errorf("metadata = %+v", p.ObjectMeta)
	}
	s := p.Spec
	if s.Description != "Web team applications" || len(s.SourceRepos) != 3 || len(s.Destinations) != 3 {
		t.Errorf("spec = %+v", s)
	}
	if got, want := s.Destinations[1], (ProjectDestination{Name: "prod-eu", Namespace: "web"}); got != want {
		t.Errorf("destinations[1] = %+v, want %+v", got, want)
	}
	if got, want := s.ClusterResourceBlacklist, []metav1.GroupKind{{Group: "rbac.authorization.k8s.io", Kind: "*"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("clusterResourceBlacklist = %+v, want %+v", got, want)
	}
	if len(s.Roles.Raw) == 0 || len(s.OrphanedResources.Raw) == 0 || !reflect.DeepEqual(s.SourceNamespaces, []string{"web-apps"}) {
		t.Errorf("roles %s, orphanedResources %s, sourceNamespaces %v not kept", s.Roles.Raw, s.OrphanedResources.Raw, s.SourceNamespaces)
	}
}

func TestParseAppProjectStrict(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{
			name: "misspelt spec field",
			doc:  "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: p}\nspec:\n  sourceRepo: ['*']\n",
			want: "sourceRepo",
		},
		{
			name: "unknown destination field",
			doc:  "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: p}\nspec:\n  destinations: [{cluster: prod, namespace: a}]\n",
			want: "cluster",
		},
		{
			name: "unknown group kind field",
			doc:  "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: p}\nspec:\n  clusterResourceWhitelist: [{group: '', kind: Namespace, version: v1}]\n",
			want: "version",
		},
		{
			name: "unknown top-level field",
			doc:  "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: p}\nspec: {}\nextra: 1\n",
			want: "extra",
		},
		{
			name: "an Application",
			doc:  "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: p}\nspec: {}\n",
			want: "is not an Argo CD AppProject",
		},
		{
			name: "another version",
			doc:  "apiVersion: argoproj.io/v1beta1\nkind: AppProject\nmetadata: {name: p}\nspec: {}\n",
			want: "argoproj.io/v1beta1 AppProject is not an Argo CD AppProject",
		},
		{
			name: "a tend Project",
			doc:  "apiVersion: tend.dev/v1alpha1\nkind: Project\nmetadata: {name: p}\nspec: {}\n",
			want: "not an Argo CD AppProject",
		},
		{
			name: "not YAML",
			doc:  "apiVersion: [",
			want: "",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseAppProject([]byte(tc.doc))
			if err == nil {
				t.Fatalf("ParseAppProject = %+v, want an error", p)
			}
			if p != nil {
				t.Errorf("ParseAppProject returned %+v with its error", p)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
		})
	}
}

func TestConvertProject(t *testing.T) {
	res, err := ConvertProject(mustParseProject(t, teamProject))
	if err != nil {
		t.Fatalf("ConvertProject: %v", err)
	}
	want := &tendv1.Project{
		TypeMeta:   metav1.TypeMeta{APIVersion: "tend.dev/v1alpha1", Kind: "Project"},
		ObjectMeta: metav1.ObjectMeta{Name: "team-web", Namespace: "argocd", Labels: map[string]string{"team": "web"}},
		// spec.description is prose for Argo CD's UI: not kept.
		Spec: tendv1.ProjectSpec{
			SourceRepos: []string{"https://git.example.com/web/*", "!https://git.example.com/web/secret.git", "oci://registry.example.com/charts/*"},
			Destinations: []tendv1.ProjectDestination{
				{Cluster: "in-cluster", Namespace: "web-*"},
				{Cluster: "prod-eu", Namespace: "web"},
				{Cluster: "*", Namespace: "shared"},
			},
			ClusterResources: tendv1.KindRules{
				Allow: []tendv1.GroupKindPattern{{Group: "", Kind: "Namespace"}},
				Deny:  []tendv1.GroupKindPattern{{Group: "rbac.authorization.k8s.io", Kind: "*"}},
			},
			NamespacedResources: tendv1.KindRules{
				Allow: []tendv1.GroupKindPattern{{Group: "apps", Kind: "Deployment"}, {Group: "", Kind: "*"}},
				Deny:  []tendv1.GroupKindPattern{{Group: "", Kind: "ResourceQuota"}},
			},
			AllowCrossNamespaceRefs: false,
		},
	}
	if !reflect.DeepEqual(res.Project, want) {
		t.Errorf("Project =\n%+v\nwant\n%+v", res.Project, want)
	}
	if got := strings.Join(res.Warnings, "\n"); len(res.Warnings) != 3 ||
		!strings.Contains(got, "spec.roles:") || !strings.Contains(got, "spec.sourceNamespaces:") || !strings.Contains(got, "spec.orphanedResources:") {
		t.Errorf("warnings = %q, want one each for spec.roles, spec.sourceNamespaces and spec.orphanedResources", res.Warnings)
	}
}

// The converted Project keeps the AppProject's rules when tend checks them.
func TestConvertProjectRulesHold(t *testing.T) {
	res, err := ConvertProject(mustParseProject(t, teamProject))
	if err != nil {
		t.Fatalf("ConvertProject: %v", err)
	}
	rules, err := project.Compile(res.Project)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	app := func(cluster, ns string) *tendv1.App {
		a := &tendv1.App{ObjectMeta: metav1.ObjectMeta{Namespace: "argocd", Name: "web"}}
		a.Spec.Destination.Namespace = ns
		if cluster != "" {
			a.Spec.Destination.ClusterRef = &tendv1.LocalObjectReference{Name: cluster}
		}
		return a
	}
	git := func(url string) *tendv1.Source {
		return &tendv1.Source{ObjectMeta: metav1.ObjectMeta{Namespace: "argocd", Name: "repo"}, Spec: tendv1.SourceSpec{Git: &tendv1.GitSource{URL: url}}}
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		app     *tendv1.App
		src     *tendv1.Source
		allowed bool
	}{
		{"team repo in-cluster", app("", "web-a"), git("https://git.example.com/web/site.git"), true},
		{"negated repo", app("", "web-a"), git("https://git.example.com/web/secret.git"), false},
		{"other repo", app("", "web-a"), git("https://git.example.com/db/site.git"), false},
		{"named cluster", app("prod-eu", "web"), git("https://git.example.com/web/site.git"), true},
		{"named cluster other namespace", app("prod-eu", "web-a"), git("https://git.example.com/web/site.git"), false},
		{"any cluster shared", app("staging", "shared"), git("https://git.example.com/web/site.git"), true},
		{"in-cluster namespace outside", app("", "kube-system"), git("https://git.example.com/web/site.git"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := rules.CheckApp(ctx, nil, tc.app, tc.src)
			if tc.allowed && err != nil {
				t.Errorf("CheckApp: %v", err)
			}
			if !tc.allowed && !errors.Is(err, project.ErrDenied) {
				t.Errorf("CheckApp = %v, want a refusal", err)
			}
		})
	}

	scope := func(gvk schema.GroupVersionKind) (bool, bool) {
		switch gvk.Kind {
		case "Namespace", "ClusterRole":
			return false, true
		}
		return true, true
	}
	o := func(apiVersion, kind, ns string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{}}
		u.SetAPIVersion(apiVersion)
		u.SetKind(kind)
		u.SetName("x")
		u.SetNamespace(ns)
		return u
	}
	for _, tc := range []struct {
		name    string
		obj     *unstructured.Unstructured
		allowed bool
	}{
		{"whitelisted Namespace", o("v1", "Namespace", ""), true},
		{"blacklisted ClusterRole", o("rbac.authorization.k8s.io/v1", "ClusterRole", ""), false},
		{"whitelisted Deployment", o("apps/v1", "Deployment", "web-a"), true},
		{"core wildcard", o("v1", "Secret", "web-a"), true},
		{"blacklisted ResourceQuota", o("v1", "ResourceQuota", "web-a"), false},
		{"not whitelisted StatefulSet", o("apps/v1", "StatefulSet", "web-a"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := rules.CheckObjects(app("", "web-a"), []*unstructured.Unstructured{tc.obj}, scope)
			if tc.allowed && err != nil {
				t.Errorf("CheckObjects: %v", err)
			}
			if !tc.allowed && !errors.Is(err, project.ErrDenied) {
				t.Errorf("CheckObjects = %v, want a refusal", err)
			}
		})
	}
}

func TestConvertProjectDestinations(t *testing.T) {
	for _, tc := range []struct {
		name  string
		dest  ProjectDestination
		want  string // the cluster pattern
		error string // or the error's field and text
	}{
		{name: "in-cluster server", dest: ProjectDestination{Server: "https://kubernetes.default.svc", Namespace: "a"}, want: "in-cluster"},
		{name: "any server", dest: ProjectDestination{Server: "*", Namespace: "a"}, want: "*"},
		{name: "name", dest: ProjectDestination{Name: "prod", Namespace: "a"}, want: "prod"},
		{name: "name glob", dest: ProjectDestination{Name: "prod-*", Namespace: "a"}, want: "prod-*"},
		{name: "in-cluster name", dest: ProjectDestination{Name: "in-cluster", Namespace: "a"}, want: "in-cluster"},
		{name: "remote server", dest: ProjectDestination{Server: "https://prod.example.com:6443", Namespace: "a"},
			error: `AppProject argocd/p: spec.destinations[1].server: "https://prod.example.com:6443": tend matches clusters by the name of their Cluster object`},
		{name: "server glob", dest: ProjectDestination{Server: "https://*.example.com", Namespace: "a"},
			error: `spec.destinations[1].server: "https://*.example.com"`},
		{name: "in-cluster with trailing slash", dest: ProjectDestination{Server: "https://kubernetes.default.svc/", Namespace: "a"},
			error: `spec.destinations[1].server`},
		{name: "name and server", dest: ProjectDestination{Name: "prod", Server: "https://kubernetes.default.svc", Namespace: "a"},
			error: "spec.destinations[1]: set name or server, not both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &AppProject{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "argocd"}}
			// A first, valid destination: the index in errors is the
			// failing one's.
			p.Spec.Destinations = []ProjectDestination{{Server: "*", Namespace: "ok"}, tc.dest}
			res, err := ConvertProject(p)
			if tc.error != "" {
				if err == nil {
					t.Fatalf("ConvertProject = %+v, want an error", res.Project.Spec.Destinations)
				}
				if res != nil {
					t.Errorf("ConvertProject returned %+v with its error", res)
				}
				if !strings.Contains(err.Error(), tc.error) {
					t.Errorf("error %q lacks %q", err, tc.error)
				}
				return
			}
			if err != nil {
				t.Fatalf("ConvertProject: %v", err)
			}
			want := []tendv1.ProjectDestination{{Cluster: "*", Namespace: "ok"}, {Cluster: tc.want, Namespace: tc.dest.Namespace}}
			if got := res.Project.Spec.Destinations; !reflect.DeepEqual(got, want) {
				t.Errorf("destinations = %+v, want %+v", got, want)
			}
		})
	}
}

func TestConvertProjectRefusesWhatTendCannotEnforce(t *testing.T) {
	const head = "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: p, namespace: argocd}\nspec:\n  sourceRepos: ['*']\n"
	for _, tc := range []struct {
		name, spec, want string
	}{
		{"syncWindows", "  syncWindows:\n  - {kind: deny, schedule: '0 22 * * *', duration: 8h, applications: ['*']}\n",
			"AppProject argocd/p: spec.syncWindows: not supported on a project"},
		{"signatureKeys", "  signatureKeys:\n  - keyID: 4AEE18F83AFDEB23\n",
			"AppProject argocd/p: spec.signatureKeys: commit signature verification is not supported"},
		{"destinationServiceAccounts", "  destinationServiceAccounts:\n  - {server: https://kubernetes.default.svc, namespace: web, defaultServiceAccount: deployer}\n",
			"AppProject argocd/p: spec.destinationServiceAccounts: impersonation is not supported"},
		{"permitOnlyProjectScopedClusters", "  permitOnlyProjectScopedClusters: true\n",
			"AppProject argocd/p: spec.permitOnlyProjectScopedClusters: not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := ConvertProject(mustParseProject(t, head+tc.spec))
			if err == nil {
				t.Fatalf("ConvertProject = %+v, want an error naming %s", res, tc.name)
			}
			if res != nil {
				t.Errorf("ConvertProject returned %+v with its error", res)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
		})
	}

	t.Run("empty settings restrict nothing", func(t *testing.T) {
		res, err := ConvertProject(mustParseProject(t, head+
			"  syncWindows: []\n  signatureKeys: []\n  destinationServiceAccounts: []\n  permitOnlyProjectScopedClusters: false\n  roles: []\n  sourceNamespaces: []\n"))
		if err != nil {
			t.Fatalf("ConvertProject: %v", err)
		}
		if len(res.Warnings) != 0 {
			t.Errorf("warnings = %q, want none", res.Warnings)
		}
	})
	t.Run("null settings restrict nothing", func(t *testing.T) {
		res, err := ConvertProject(mustParseProject(t, head+
			"  syncWindows: null\n  signatureKeys: null\n  destinationServiceAccounts: null\n  roles: null\n  orphanedResources: null\n"))
		if err != nil {
			t.Fatalf("ConvertProject: %v", err)
		}
		if len(res.Warnings) != 0 {
			t.Errorf("warnings = %q, want none", res.Warnings)
		}
	})
	t.Run("every refusal reported", func(t *testing.T) {
		_, err := ConvertProject(mustParseProject(t, head+
			"  destinations: [{server: https://prod.example.com, namespace: a}]\n  syncWindows: [{kind: allow, schedule: '* * * * *', duration: 1h}]\n  permitOnlyProjectScopedClusters: true\n"))
		if err == nil {
			t.Fatal("ConvertProject succeeded")
		}
		for _, want := range []string{"spec.destinations[0].server", "spec.syncWindows", "spec.permitOnlyProjectScopedClusters"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
	})
}

func TestConvertProjectWarnings(t *testing.T) {
	const head = "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: p, namespace: argocd}\nspec:\n  sourceRepos: ['*']\n"
	for _, tc := range []struct {
		name, spec, want string
	}{
		{"roles", "  roles:\n  - name: read-only\n    policies: ['p, proj:p:read-only, applications, get, p/*, allow']\n",
			"spec.roles: Argo CD's API roles and tokens have no use under tend"},
		{"sourceNamespaces", "  sourceNamespaces: [team-a, team-b]\n",
			"spec.sourceNamespaces: tend's Apps name a Project in their own namespace"},
		{"orphanedResources", "  orphanedResources: {warn: false}\n",
			"spec.orphanedResources:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := ConvertProject(mustParseProject(t, head+tc.spec))
			if err != nil {
				t.Fatalf("ConvertProject: %v", err)
			}
			if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], tc.want) {
				t.Errorf("warnings = %q, want one holding %q", res.Warnings, tc.want)
			}
			if res.Project == nil || !reflect.DeepEqual(res.Project.Spec.SourceRepos, []string{"*"}) {
				t.Errorf("Project = %+v, want it converted despite the warning", res.Project)
			}
		})
	}
}

// Argo CD's defaults are kept: no whitelists means no cluster-scoped kind
// and every namespaced kind; references stay in the namespace.
func TestConvertProjectMinimal(t *testing.T) {
	res, err := ConvertProject(mustParseProject(t,
		"apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: p, namespace: argocd}\nspec:\n  destinations: [{server: '*', namespace: a}]\n"))
	if err != nil {
		t.Fatalf("ConvertProject: %v", err)
	}
	s := res.Project.Spec
	if len(s.SourceRepos) != 0 || s.AllowCrossNamespaceRefs ||
		len(s.ClusterResources.Allow)+len(s.ClusterResources.Deny)+len(s.NamespacedResources.Allow)+len(s.NamespacedResources.Deny) != 0 {
		t.Errorf("spec = %+v, want no repositories, no kind rules, no cross-namespace references", s)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("warnings = %q, want none", res.Warnings)
	}
	if _, err := project.Compile(res.Project); err != nil {
		t.Errorf("Compile: %v", err)
	}
}

// Argo CD's destination patterns keep their meaning: "!" denies (tend's
// Projects deny the same way), and an entry without a cluster, or without
// a namespace, allows nothing in Argo CD, so it is left out with a warning
// rather than widened to "any".
func TestConvertProjectDestinationPatterns(t *testing.T) {
	res, err := ConvertProject(mustParseProject(t, `apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: p, namespace: argocd}
spec:
  sourceRepos: ['*']
  destinations:
    - {server: '*', namespace: '*'}
    - {server: '*', namespace: '!kube-system'}
    - {name: '!prod', namespace: '*'}
    - {server: '!https://kubernetes.default.svc', namespace: 'secret-*'}
    - {namespace: team-a}
    - {server: '*'}
`))
	if err != nil {
		t.Fatalf("ConvertProject: %v", err)
	}
	want := []tendv1.ProjectDestination{
		{Cluster: "*", Namespace: "*"},
		{Cluster: "*", Namespace: "!kube-system"},
		{Cluster: "!prod", Namespace: "*"},
		{Cluster: "!in-cluster", Namespace: "secret-*"},
	}
	if !reflect.DeepEqual(res.Project.Spec.Destinations, want) {
		t.Errorf("destinations = %+v, want %+v", res.Project.Spec.Destinations, want)
	}
	if len(res.Warnings) != 2 || !strings.Contains(res.Warnings[0], "spec.destinations[4]: neither server nor name") || !strings.Contains(res.Warnings[1], "spec.destinations[5]: no namespace") {
		t.Errorf("warnings = %q, want one for destinations[4] and one for destinations[5]", res.Warnings)
	}
	rules, err := project.Compile(res.Project)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cluster, namespace string
		allowed            bool
	}{
		{"in-cluster", "web", true},
		{"in-cluster", "kube-system", false},
		{"edge", "kube-system", false},
		{"prod", "web", false},
		{"edge", "web", true},
		{"in-cluster", "secret-stuff", false},
		{"edge", "secret-stuff", true},
	} {
		app := &tendv1.App{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "argocd"}}
		app.Spec.Destination.Namespace = tc.namespace
		if tc.cluster != "in-cluster" {
			app.Spec.Destination.ClusterRef = &tendv1.LocalObjectReference{Name: tc.cluster}
		}
		src := &tendv1.Source{Spec: tendv1.SourceSpec{Git: &tendv1.GitSource{URL: "https://git.example.org/r.git"}}}
		err := rules.CheckApp(context.Background(), nil, app, src)
		if (err == nil) != tc.allowed {
			t.Errorf("%s/%s: err %v, want allowed=%v", tc.cluster, tc.namespace, err, tc.allowed)
		}
	}
}
