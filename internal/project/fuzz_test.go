package project

import (
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/objstatus"
)

// FuzzProject compiles a Project's spec as written in YAML. A pattern that
// does not parse is a permanent error naming the Project and the field;
// a compiled Project allows a repository listed literally (unless a deny
// entry matches it), refuses a repository that no entry lists, and checks
// objects without panicking. `make fuzz-smoke` runs it briefly; see
// docs/development.md for longer runs.
func FuzzProject(f *testing.F) {
	f.Add([]byte(`sourceRepos: ["https://git.example.com/team/*", "!https://git.example.com/team/secret.git", "oci://ghcr.io/team/charts"]
destinations:
- {cluster: in-cluster, namespace: "team-*"}
- {cluster: "!prod-*"}
clusterResources:
  allow: [{group: "", kind: Namespace}]
namespacedResources:
  deny: [{group: "rbac.authorization.k8s.io", kind: "*"}]
allowCrossNamespaceRefs: false
`))
	f.Add([]byte(`sourceRepos: ["*"]
destinations: [{}]
clusterResources: {allow: [{group: "*", kind: "*"}]}
`))
	f.Add([]byte(`sourceRepos: ["https://git.example.com/{a,b}/[!x]?.git", "a\\*b", "{"]`))
	f.Add([]byte(`destinations: [{namespace: "[z-a]"}]`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		var spec tendv1.ProjectSpec
		if err := yaml.UnmarshalStrict(doc, &spec); err != nil {
			return
		}
		p := &tendv1.Project{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "team"}, Spec: spec}
		r, err := Compile(p)
		if err != nil {
			if !objstatus.IsPermanent(err) || !strings.Contains(err.Error(), "the Project apps/team: spec.") {
				t.Fatalf("error is not permanent or names no field: %v", err)
			}
			return
		}
		denied := func(repo string) bool {
			for _, pt := range r.repos {
				if pt.deny && pt.re.MatchString(normalizeRepo(repo)) {
					return true
				}
			}
			return false
		}
		for _, s := range spec.SourceRepos {
			if strings.HasPrefix(s, "!") || strings.ContainsAny(s, `*?[]{}\,`) {
				continue
			}
			if got, want := r.repos.match(normalizeRepo(s)), !denied(s); got != want {
				t.Fatalf("sourceRepos lists %q: allowed %v, want %v", s, got, want)
			}
		}
		if len(spec.SourceRepos) == 0 && r.repos.match("https://git.example.com/any.git") {
			t.Fatalf("no sourceRepos allows a repository")
		}
		app := &tendv1.App{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "web"}, Spec: tendv1.AppSpec{Project: "team"}}
		var objs []*unstructured.Unstructured
		for _, o := range []struct{ av, kind, ns string }{
			{"v1", "ConfigMap", "team-a"}, {"v1", "Namespace", ""}, {"rbac.authorization.k8s.io/v1", "ClusterRole", ""},
			{"apps/v1", "Deployment", ""}, {tendv1.GroupVersion.String(), "App", "apps"}, {"example.com/v1", "Widget", "x"},
		} {
			u := &unstructured.Unstructured{}
			u.SetAPIVersion(o.av)
			u.SetKind(o.kind)
			u.SetNamespace(o.ns)
			u.SetName("o")
			objs = append(objs, u)
		}
		namespaced := func(gvk schema.GroupVersionKind) (bool, bool) {
			return gvk.Kind != "Namespace" && gvk.Kind != "ClusterRole", gvk.Group != "example.com"
		}
		if err := r.CheckObjects(app, objs, namespaced); err != nil && !errors.Is(err, ErrDenied) {
			t.Fatalf("CheckObjects: not a denial: %v", err)
		}
	})
}
