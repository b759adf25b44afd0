package controller

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/artifact"
)

// appSetTree creates directories (ending in /) and files under a temp dir.
func appSetTree(t *testing.T, paths ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, p := range paths {
		full := filepath.Join(root, filepath.FromSlash(p))
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("x: 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestAppSetMatchDirs(t *testing.T) {
	root := appSetTree(t,
		"apps/a/", "apps/b/", "apps/.hidden/", "apps/file.yaml",
		"apps/b/nested/", "envs/dev/web/", "envs/prod/web/", "envs/prod/db/",
		"envs/legacy/web/", ".github/workflows/",
	)
	if err := os.Symlink(filepath.Join(root, "apps", "a"), filepath.Join(root, "apps", "link")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		include, exclude []string
		want             []string
	}{
		{[]string{"apps/*"}, nil, []string{"apps/a", "apps/b"}},
		{[]string{"./apps/*/"}, nil, []string{"apps/a", "apps/b"}},
		{[]string{"apps/*"}, []string{"apps/b"}, []string{"apps/a"}},
		{[]string{"apps/*/*"}, nil, []string{"apps/b/nested"}},
		{[]string{"envs/*/web"}, []string{"envs/legacy"}, []string{"envs/dev/web", "envs/prod/web"}},
		{[]string{"envs/prod/*", "envs/*/web"}, nil, []string{"envs/dev/web", "envs/legacy/web", "envs/prod/db", "envs/prod/web"}},
		{[]string{"apps/[ab]"}, nil, []string{"apps/a", "apps/b"}},
		{[]string{"*"}, nil, []string{"apps", "envs"}},
		{[]string{"missing/*"}, nil, []string{}},
		{[]string{".github/*", "apps/.hidden"}, nil, []string{}},
	} {
		inc, err := appSetPatterns(tc.include)
		if err != nil {
			t.Fatal(err)
		}
		exc, err := appSetPatterns(tc.exclude)
		if err != nil {
			t.Fatal(err)
		}
		got, err := appSetMatchDirs(root, inc, exc)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("include %v exclude %v: got %v, want %v", tc.include, tc.exclude, got, tc.want)
		}
	}
	for _, bad := range []string{"apps/[", "/", "."} {
		if _, err := appSetPatterns([]string{bad}); err == nil {
			t.Errorf("glob %q: no error", bad)
		}
	}
}

func TestAppSetDirectoriesArtifact(t *testing.T) {
	arts := artifact.NewStore(t.TempDir(), nil)
	set := &v1alpha1.AppSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "set"}, Spec: v1alpha1.AppSetSpec{
		Generators: []v1alpha1.Generator{{Directories: &v1alpha1.DirectoriesGenerator{
			SourceRef: v1alpha1.NamespacedObjectReference{Name: "repo"}, Include: []string{"apps/*"},
		}}},
	}}
	g := appSetGenerator{artifacts: arts}
	_, err := g.params(set)
	var waiting *appSetWaiting
	if !errors.As(err, &waiting) || !strings.Contains(waiting.message, "ns/repo") {
		t.Fatalf("no artifact: got %v, want a wait naming Source ns/repo", err)
	}

	arts.Set(types.NamespacedName{Namespace: "ns", Name: "repo"}, artifact.Artifact{Revision: "idx"}, nil)
	_, err = g.params(set)
	var stalled *appSetStalled
	if !errors.As(err, &stalled) || !strings.Contains(stalled.message, "git Source") {
		t.Fatalf("chart Source: got %v, want stalled naming a git Source", err)
	}

	root := appSetTree(t, "apps/web/")
	arts.Set(types.NamespacedName{Namespace: "ns", Name: "repo"}, artifact.Artifact{Dir: root, Revision: "r1"}, nil)
	ps, err := g.params(set)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"path": "apps/web", "path.basename": "web", "name": "web"}
	if len(ps) != 1 || !reflect.DeepEqual(ps[0].values, want) {
		t.Errorf("params = %+v, want one set %v", ps, want)
	}
}

func TestAppSetGeneratorErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		gens []v1alpha1.Generator
		want string
	}{
		{"none", nil, "spec.generators is empty"},
		{"both", []v1alpha1.Generator{{Directories: &v1alpha1.DirectoriesGenerator{Include: []string{"a"}}, List: &v1alpha1.ListGenerator{}}}, "exactly one"},
		{"neither", []v1alpha1.Generator{{}}, "exactly one"},
		{"no name", []v1alpha1.Generator{{List: &v1alpha1.ListGenerator{Elements: []map[string]string{{"name": "a"}, {"env": "x"}}}}}, `elements[1] has no "name"`},
		{"bad glob", []v1alpha1.Generator{{Directories: &v1alpha1.DirectoriesGenerator{Include: []string{"apps/["}}}}, `glob "apps/["`},
	} {
		set := &v1alpha1.AppSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"}, Spec: v1alpha1.AppSetSpec{Generators: tc.gens}}
		_, err := appSetGenerator{artifacts: artifact.NewStore(t.TempDir(), nil)}.params(set)
		var stalled *appSetStalled
		if !errors.As(err, &stalled) || stalled.reason != AppSetReasonInvalidGenerator || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want InvalidGenerator containing %q", tc.name, err, tc.want)
		}
	}
}

func TestAppSetRenderApp(t *testing.T) {
	set := &v1alpha1.AppSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "platform"}, Spec: v1alpha1.AppSetSpec{
		Template: v1alpha1.AppTemplate{
			Metadata: v1alpha1.AppTemplateMeta{
				Name:        "{{ path.basename }}-{{env}}",
				Labels:      map[string]string{"team": "{{name}}", AppSetLabel: "spoofed"},
				Annotations: map[string]string{"example.com/{{name}}": "from {{path}}"},
			},
			Spec: v1alpha1.AppSpec{
				SourceRef:   v1alpha1.NamespacedObjectReference{Name: "repo"},
				Path:        "{{path}}/overlays/{{env}}",
				Destination: v1alpha1.Destination{Namespace: "{{name}}"},
				Helm:        &v1alpha1.HelmSpec{Values: &apiextensionsv1.JSON{Raw: []byte(`{"image":{"tag":"{{env}}"},"list":["{{name}}",1]}`)}},
				DependsOn:   []v1alpha1.NamespacedObjectReference{{Name: "db-{{env}}"}},
			},
		},
	}}
	p := appSetParams{origin: "directory apps/web", values: map[string]string{"path": "apps/web", "path.basename": "web", "name": "web", "env": "dev"}}
	app, err := appSetRenderApp(set, p)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := app.Name, "web-dev"; got != want {
		t.Errorf("name = %q, want %q", got, want)
	}
	if got, want := app.Labels, map[string]string{"team": "web", AppSetLabel: "platform"}; !reflect.DeepEqual(got, want) {
		t.Errorf("labels = %v, want %v", got, want)
	}
	if got, want := app.Annotations, map[string]string{"example.com/web": "from apps/web"}; !reflect.DeepEqual(got, want) {
		t.Errorf("annotations = %v, want %v", got, want)
	}
	if got, want := app.Spec.Path, "apps/web/overlays/dev"; got != want {
		t.Errorf("path = %q, want %q", got, want)
	}
	if got, want := app.Spec.Destination.Namespace, "web"; got != want {
		t.Errorf("destination namespace = %q, want %q", got, want)
	}
	if got, want := string(app.Spec.Helm.Values.Raw), `{"image":{"tag":"dev"},"list":["web",1]}`; got != want {
		t.Errorf("helm values = %s, want %s", got, want)
	}
	if got, want := app.Spec.DependsOn[0].Name, "db-dev"; got != want {
		t.Errorf("dependsOn = %q, want %q", got, want)
	}
	if set.Spec.Template.Spec.Path != "{{path}}/overlays/{{env}}" {
		t.Errorf("template modified: %q", set.Spec.Template.Spec.Path)
	}

	for _, tc := range []struct {
		name string
		edit func(*v1alpha1.AppTemplate)
		want []string
	}{
		{"unknown in spec", func(tm *v1alpha1.AppTemplate) { tm.Spec.Path = "{{path}}/{{ cluster }}" },
			[]string{"unknown parameter {{cluster}}", "directory apps/web", "{{path.basename}}"}},
		{"unknown in name", func(tm *v1alpha1.AppTemplate) { tm.Metadata.Name = "{{basename}}" },
			[]string{"{{basename}}"}},
		{"invalid name", func(tm *v1alpha1.AppTemplate) { tm.Metadata.Name = "{{name}}_{{env}}" },
			[]string{`"web_dev"`, "DNS-1123", "directory apps/web {env=dev, name=web, path=apps/web, path.basename=web}"}},
		{"invalid label", func(tm *v1alpha1.AppTemplate) { tm.Metadata.Labels = map[string]string{"path": "{{path}}"} },
			[]string{"labels", "apps/web"}},
	} {
		s := set.DeepCopy()
		tc.edit(&s.Spec.Template)
		_, err := appSetRenderApp(s, p)
		var stalled *appSetStalled
		if !errors.As(err, &stalled) || stalled.reason != AppSetReasonInvalidTemplate {
			t.Errorf("%s: got %v, want InvalidTemplate", tc.name, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not mention %q", tc.name, err, w)
			}
		}
	}
}

func TestAppSetApplyConfig(t *testing.T) {
	app := &v1alpha1.App{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", Labels: map[string]string{AppSetLabel: "s"}},
		Spec: v1alpha1.AppSpec{SourceRef: v1alpha1.NamespacedObjectReference{Name: "repo"}, Path: "apps/web",
			Sync: v1alpha1.SyncPolicy{Prune: true, Retry: &v1alpha1.RetryPolicy{}}}}
	cfg, err := appSetApplyConfig(app)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"sourceRef": map[string]any{"name": "repo"},
		"path":      "apps/web",
		"sync":      map[string]any{"prune": true, "retry": map[string]any{}},
	}
	if got := cfg.Object["spec"]; !reflect.DeepEqual(got, want) {
		t.Errorf("spec = %v, want %v (zero durations and empty objects left to CRD defaults)", got, want)
	}
}

func TestAppSetOwnedCovered(t *testing.T) {
	obj := map[string]any{
		"metadata": map[string]any{
			"labels":          map[string]any{"a": "1"},
			"ownerReferences": []any{map[string]any{"uid": "u1", "name": "s"}},
		},
		"spec": map[string]any{"path": "p", "dependsOn": []any{}},
	}
	for _, tc := range []struct {
		owned string
		want  bool
	}{
		{`{"f:spec":{"f:path":{},"f:dependsOn":{}}}`, true},
		{`{"f:metadata":{"f:labels":{"f:a":{}},"f:ownerReferences":{"k:{\"uid\":\"u1\"}":{".":{},"f:name":{}}}}}`, true},
		{`{"f:metadata":{"f:labels":{"f:b":{}}}}`, false},
		{`{"f:metadata":{"f:ownerReferences":{"k:{\"uid\":\"u2\"}":{}}}}`, false},
		{`{"f:spec":{"f:destination":{"f:namespace":{}}}}`, false},
	} {
		var owned map[string]any
		if err := json.Unmarshal([]byte(tc.owned), &owned); err != nil {
			t.Fatal(err)
		}
		if got := appSetOwnedCovered(owned, obj); got != tc.want {
			t.Errorf("owned %s: covered = %v, want %v", tc.owned, got, tc.want)
		}
	}
}
