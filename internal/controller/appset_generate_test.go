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
		got, err := appSetMatch(root, inc, exc, true)
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
	want := map[string]string{"path": "apps/web", "path.basename": "web", "path.basenameNormalized": "web", "path[0]": "apps", "path[1]": "web", "name": "web"}
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

// appSetFiles writes files with their content under a temp dir.
func appSetFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// appSetGen returns a generator whose Source ns/repo is checked out at root.
func appSetGen(t *testing.T, root string) appSetGenerator {
	t.Helper()
	arts := artifact.NewStore(t.TempDir(), nil)
	arts.Set(types.NamespacedName{Namespace: "ns", Name: "repo"}, artifact.Artifact{Dir: root, Revision: "r1"}, nil)
	return appSetGenerator{artifacts: arts}
}

func appSetValues(ps []appSetParams) []map[string]string {
	out := make([]map[string]string, len(ps))
	for i, p := range ps {
		out[i] = p.values
	}
	return out
}

// The files generator: an object file gives one set, a list file one set
// per element; nested keys are joined with dots; numbers keep their text;
// the path parameters name the file; hidden files and excluded ones are
// skipped.
func TestAppSetFilesGenerator(t *testing.T) {
	root := appSetFiles(t, map[string]string{
		"clusters/dev/config.json":     `{"cluster": {"name": "dev", "replicas": 2, "big": 12345678901}, "tier": null, "tags": ["a", "b"]}`,
		"clusters/prod/config.json":    `{"cluster": {"name": "prod", "replicas": 3}, "enabled": true}`,
		"clusters/legacy/config.json":  `{"cluster": {"name": "legacy"}}`,
		"clusters/.hidden/config.json": `{"cluster": {"name": "hidden"}}`,
		"teams/list.yaml":              "- {name: web, owner: alice}\n- name: db\n  owner: bob\n",
	})
	g := appSetGen(t, root)
	set := &v1alpha1.AppSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"}, Spec: v1alpha1.AppSetSpec{Generators: []v1alpha1.Generator{
		{Files: &v1alpha1.FilesGenerator{SourceRef: v1alpha1.NamespacedObjectReference{Name: "repo"}, Include: []string{"clusters/*/config.json"}, Exclude: []string{"clusters/legacy"}}},
		{Files: &v1alpha1.FilesGenerator{SourceRef: v1alpha1.NamespacedObjectReference{Name: "repo"}, Include: []string{"teams/*.yaml"}}},
	}}}
	ps, err := g.params(set)
	if err != nil {
		t.Fatal(err)
	}
	want := []map[string]string{
		{"cluster.name": "dev", "cluster.replicas": "2", "cluster.big": "12345678901", "tier": "", "tags.0": "a", "tags.1": "b",
			"path": "clusters/dev", "path.basename": "dev", "path.basenameNormalized": "dev", "path.filename": "config.json", "path.filenameNormalized": "config.json", "path[0]": "clusters", "path[1]": "dev"},
		{"cluster.name": "prod", "cluster.replicas": "3", "enabled": "true",
			"path": "clusters/prod", "path.basename": "prod", "path.basenameNormalized": "prod", "path.filename": "config.json", "path.filenameNormalized": "config.json", "path[0]": "clusters", "path[1]": "prod"},
		{"name": "web", "owner": "alice", "path": "teams", "path.basename": "teams", "path.basenameNormalized": "teams", "path.filename": "list.yaml", "path.filenameNormalized": "list.yaml", "path[0]": "teams"},
		{"name": "db", "owner": "bob", "path": "teams", "path.basename": "teams", "path.basenameNormalized": "teams", "path.filename": "list.yaml", "path.filenameNormalized": "list.yaml", "path[0]": "teams"},
	}
	if got := appSetValues(ps); !reflect.DeepEqual(got, want) {
		t.Errorf("params =\n%v\nwant\n%v", got, want)
	}
	if got := ps[3].origin; got != "file teams/list.yaml element 1" {
		t.Errorf("origin = %q", got)
	}
	if got := appSetSources(set); len(got) != 2 || got[0] != (types.NamespacedName{Namespace: "ns", Name: "repo"}) {
		t.Errorf("sources = %v, want ns/repo twice", got)
	}

	// Sources read inside matrix and merge, namespaces defaulted to the
	// AppSet's: a new revision of any of them regenerates the AppSet.
	ref := func(ns, name string) v1alpha1.NamespacedObjectReference {
		return v1alpha1.NamespacedObjectReference{Namespace: ns, Name: name}
	}
	nested := &v1alpha1.AppSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "n"}, Spec: v1alpha1.AppSetSpec{Generators: []v1alpha1.Generator{
		{Matrix: &v1alpha1.MatrixGenerator{Generators: []v1alpha1.NestedGenerator{
			{Files: &v1alpha1.FilesGenerator{SourceRef: ref("shared", "fleet")}}, {Directories: &v1alpha1.DirectoriesGenerator{SourceRef: ref("", "apps")}},
		}}},
		{Merge: &v1alpha1.MergeGenerator{Generators: []v1alpha1.NestedGenerator{
			{Directories: &v1alpha1.DirectoriesGenerator{SourceRef: ref("shared", "base")}}, {Files: &v1alpha1.FilesGenerator{SourceRef: ref("", "overrides")}},
		}}},
	}}}
	want2 := []types.NamespacedName{{Namespace: "shared", Name: "fleet"}, {Namespace: "ns", Name: "apps"}, {Namespace: "shared", Name: "base"}, {Namespace: "ns", Name: "overrides"}}
	if got := appSetSources(nested); !reflect.DeepEqual(got, want2) {
		t.Errorf("nested sources = %v, want %v", got, want2)
	}
}

// A file that is not a parameter file stalls the AppSet with a message
// naming the generator, the file and the revision.
func TestAppSetFilesGeneratorBadFile(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"scalar", "just text\n", "neither an object nor a list"},
		{"list of scalars", "[1, 2]\n", "element 0 is not an object"},
		{"broken", "a: [\n", "not JSON or YAML"},
		{"too big", "a: " + strings.Repeat("x", appSetMaxFile) + "\n", "larger than"},
	} {
		g := appSetGen(t, appSetFiles(t, map[string]string{"conf/a.yaml": tc.content}))
		set := &v1alpha1.AppSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"}, Spec: v1alpha1.AppSetSpec{Generators: []v1alpha1.Generator{
			{Files: &v1alpha1.FilesGenerator{SourceRef: v1alpha1.NamespacedObjectReference{Name: "repo"}, Include: []string{"conf/*.yaml"}}},
		}}}
		_, err := g.params(set)
		var stalled *appSetStalled
		if !errors.As(err, &stalled) || !strings.Contains(err.Error(), "spec.generators[0].files: file conf/a.yaml of Source ns/repo at revision r1") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want stalled naming the file and %q", tc.name, err, tc.want)
		}
	}
}

// Matrix: every pair, keys of both; a key both set differently is refused.
// Merge: the base sets overridden by matching later sets, others dropped.
func TestAppSetMatrixAndMerge(t *testing.T) {
	root := appSetFiles(t, map[string]string{"apps/web/k.yaml": "{}", "apps/db/k.yaml": "{}", "apps/old/k.yaml": "{}"})
	g := appSetGen(t, root)
	dirs := v1alpha1.NestedGenerator{Directories: &v1alpha1.DirectoriesGenerator{SourceRef: v1alpha1.NamespacedObjectReference{Name: "repo"}, Include: []string{"apps/*"}, Exclude: []string{"apps/old"}}}
	envs := v1alpha1.NestedGenerator{List: &v1alpha1.ListGenerator{Elements: []map[string]string{{"env": "dev"}, {"env": "prod"}}}}
	set := &v1alpha1.AppSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"}, Spec: v1alpha1.AppSetSpec{Generators: []v1alpha1.Generator{
		{Matrix: &v1alpha1.MatrixGenerator{Generators: []v1alpha1.NestedGenerator{dirs, envs}}},
	}}}
	ps, err := g.params(set)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.values["name"]+"-"+p.values["env"]+"@"+p.values["path"])
	}
	if want := []string{"db-dev@apps/db", "db-prod@apps/db", "web-dev@apps/web", "web-prod@apps/web"}; !reflect.DeepEqual(got, want) {
		t.Errorf("matrix = %v, want %v", got, want)
	}
	if got, want := ps[0].origin, "directory apps/db × list element 0"; got != want {
		t.Errorf("origin = %q, want %q", got, want)
	}

	clash := v1alpha1.NestedGenerator{List: &v1alpha1.ListGenerator{Elements: []map[string]string{{"name": "other"}}}}
	set.Spec.Generators[0].Matrix.Generators[1] = clash
	_, err = g.params(set)
	var stalled *appSetStalled
	if !errors.As(err, &stalled) || !strings.Contains(err.Error(), `spec.generators[0].matrix: both generators set "name"`) {
		t.Errorf("clash: got %v, want stalled naming the key", err)
	}

	overrides := v1alpha1.NestedGenerator{List: &v1alpha1.ListGenerator{Elements: []map[string]string{
		{"name": "web", "replicas": "3"}, {"name": "cache", "replicas": "9"},
	}}}
	set.Spec.Generators[0] = v1alpha1.Generator{Merge: &v1alpha1.MergeGenerator{MergeKeys: []string{"name"}, Generators: []v1alpha1.NestedGenerator{dirs, overrides}}}
	ps, err = g.params(set)
	if err != nil {
		t.Fatal(err)
	}
	want := []map[string]string{
		{"name": "db", "path": "apps/db", "path.basename": "db", "path.basenameNormalized": "db", "path[0]": "apps", "path[1]": "db"},
		{"name": "web", "path": "apps/web", "path.basename": "web", "path.basenameNormalized": "web", "path[0]": "apps", "path[1]": "web", "replicas": "3"},
	}
	if got := appSetValues(ps); !reflect.DeepEqual(got, want) {
		t.Errorf("merge = %v, want %v", got, want)
	}

	set.Spec.Generators[0].Merge.MergeKeys = []string{"env"}
	_, err = g.params(set)
	if !errors.As(err, &stalled) || !strings.Contains(err.Error(), `has no merge key "env"`) {
		t.Errorf("missing merge key: got %v", err)
	}
	set.Spec.Generators[0].Merge.MergeKeys = []string{"name"}
	set.Spec.Generators[0].Merge.Generators[0] = v1alpha1.NestedGenerator{List: &v1alpha1.ListGenerator{Elements: []map[string]string{{"name": "a"}, {"name": "a"}}}}
	_, err = g.params(set)
	if !errors.As(err, &stalled) || !strings.Contains(err.Error(), "two sets have the same merge keys") {
		t.Errorf("duplicate base: got %v", err)
	}
}

// With goTemplate the template's strings are Go templates over nested
// parameters, with Sprig's functions; missingkey=error makes a missing
// parameter stall the AppSet; functions that read the controller's
// environment are not there.
func TestAppSetGoTemplate(t *testing.T) {
	root := appSetFiles(t, map[string]string{
		"clusters/Edge_1/config.yaml": "cluster: {name: Edge-1, replicas: 2, zones: [a, b]}\n",
	})
	g := appSetGen(t, root)
	set := &v1alpha1.AppSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "fleet"}, Spec: v1alpha1.AppSetSpec{
		GoTemplate:        true,
		GoTemplateOptions: []string{"missingkey=error"},
		Generators: []v1alpha1.Generator{{Matrix: &v1alpha1.MatrixGenerator{Generators: []v1alpha1.NestedGenerator{
			{Files: &v1alpha1.FilesGenerator{SourceRef: v1alpha1.NamespacedObjectReference{Name: "repo"}, Include: []string{"clusters/*/config.yaml"}}},
			{List: &v1alpha1.ListGenerator{Elements: []map[string]string{{"tier": "web"}}}},
		}}}},
		Template: v1alpha1.AppTemplate{
			Metadata: v1alpha1.AppTemplateMeta{
				Name:        "{{ .cluster.name | lower }}-{{ .tier }}",
				Annotations: map[string]string{"example.com/where": `{{ index .path.segments 0 }}/{{ .path.basenameNormalized }}/{{ .path.filename }}`},
			},
			Spec: v1alpha1.AppSpec{
				SourceRef:   v1alpha1.NamespacedObjectReference{Name: "repo"},
				Path:        "{{ .path.path }}/{{ .tier }}",
				Destination: v1alpha1.Destination{Namespace: `{{ .cluster.name | normalize }}`},
				Helm: &v1alpha1.HelmSpec{Values: &apiextensionsv1.JSON{Raw: []byte(
					`{"replicas":"{{ .cluster.replicas }}","zones":"{{ join \",\" .cluster.zones }}","upper":"{{ upper .tier }}"}`)}},
			},
		},
	}}
	ps, err := g.params(set)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 {
		t.Fatalf("params = %v, want one set", ps)
	}
	app, err := appSetRenderApp(set, ps[0])
	if err != nil {
		t.Fatal(err)
	}
	if got, want := app.Name, "edge-1-web"; got != want {
		t.Errorf("name = %q, want %q", got, want)
	}
	if got, want := app.Annotations["example.com/where"], "clusters/edge-1/config.yaml"; got != want {
		t.Errorf("annotation = %q, want %q", got, want)
	}
	if got, want := app.Spec.Path, "clusters/Edge_1/web"; got != want {
		t.Errorf("path = %q, want %q", got, want)
	}
	if got, want := app.Spec.Destination.Namespace, "edge-1"; got != want {
		t.Errorf("namespace = %q, want %q", got, want)
	}
	if got, want := string(app.Spec.Helm.Values.Raw), `{"replicas":"2","upper":"WEB","zones":"a,b"}`; got != want {
		t.Errorf("values = %s, want %s", got, want)
	}

	for _, tc := range []struct {
		name    string
		edit    func(*v1alpha1.AppSet)
		reason  string
		message string
	}{
		{"missing key", func(s *v1alpha1.AppSet) { s.Spec.Template.Spec.Path = "{{ .env }}" }, AppSetReasonInvalidTemplate, `template "{{ .env }}"`},
		{"env", func(s *v1alpha1.AppSet) { s.Spec.Template.Spec.Path = `{{ env "HOME" }}` }, AppSetReasonInvalidTemplate, `function "env" not defined`},
		{"option", func(s *v1alpha1.AppSet) { s.Spec.GoTemplateOptions = []string{"missingkey=maybe"} }, AppSetReasonInvalidTemplate, `spec.goTemplateOptions: "missingkey=maybe"`},
	} {
		bad := set.DeepCopy()
		tc.edit(bad)
		_, err := appSetRenderApp(bad, ps[0])
		var stalled *appSetStalled
		if !errors.As(err, &stalled) || stalled.reason != tc.reason || !strings.Contains(stalled.message, tc.message) {
			t.Errorf("%s: got %v, want %s containing %q", tc.name, err, tc.reason, tc.message)
		}
	}
	// Without missingkey=error a missing key prints as Go prints it.
	lax := set.DeepCopy()
	lax.Spec.GoTemplateOptions = nil
	lax.Spec.Template.Metadata.Annotations = map[string]string{"example.com/env": "{{ .env }}"}
	app, err = appSetRenderApp(lax, ps[0])
	if err != nil || app.Annotations["example.com/env"] != "<no value>" {
		t.Errorf("missing key without missingkey=error: %v, annotations %v", err, app.Annotations)
	}
}

// TestAppSetSlugify: Argo CD's slugify in Go templates: lowercase, runs of
// other characters one hyphen, cut to maxSize at a hyphen (smart) or
// anywhere; bad arguments are template errors.
func TestAppSetSlugify(t *testing.T) {
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"Feature/JIRA-123_Add OAuth!"}, "feature-jira-123-add-oauth"},
		{[]any{"--Already--slugged--"}, "already-slugged"},
		{[]any{10, "release-candidate-one"}, "release"},
		{[]any{10, false, "release-candidate-one"}, "release-ca"},
		{[]any{7, "release-x"}, "release"},
		{[]any{strings.Repeat("a", 60)}, strings.Repeat("a", 50)},
	} {
		got, err := appSetSlugify(tc.args...)
		if err != nil || got != tc.want {
			t.Errorf("slugify %v = %q, %v; want %q", tc.args, got, err, tc.want)
		}
	}
	for _, bad := range [][]any{{}, {3}, {0, "x"}, {5, "yes", "x"}} {
		if _, err := appSetSlugify(bad...); err == nil {
			t.Errorf("slugify %v: no error", bad)
		}
	}
	set := &v1alpha1.AppSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "previews"}, Spec: v1alpha1.AppSetSpec{
		GoTemplate: true,
		Generators: []v1alpha1.Generator{{List: &v1alpha1.ListGenerator{Elements: []map[string]string{{"branch": "Feature/Login_Page"}}}}},
		Template: v1alpha1.AppTemplate{
			Metadata: v1alpha1.AppTemplateMeta{Name: "preview-{{ slugify 20 .branch }}"},
			Spec:     v1alpha1.AppSpec{SourceRef: v1alpha1.NamespacedObjectReference{Name: "repo"}, Path: "apps", Destination: v1alpha1.Destination{Namespace: "{{ slugify .branch }}"}},
		},
	}}
	app, err := appSetRenderApp(set, appSetParams{origin: "list element 0", values: map[string]string{"branch": "Feature/Login_Page"}, tree: map[string]any{"branch": "Feature/Login_Page"}})
	if err != nil {
		t.Fatal(err)
	}
	if app.Name != "preview-feature-login-page" || app.Spec.Destination.Namespace != "feature-login-page" {
		t.Errorf("App %s in %s, want preview-feature-login-page in feature-login-page", app.Name, app.Spec.Destination.Namespace)
	}
}
