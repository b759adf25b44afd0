package render

import (
	"slices"
	"strings"
	"testing"
)

// plainRepo is a plain YAML directory with everything that is not a
// manifest mixed in.
var plainRepo = map[string]string{
	"app/README.md":   "# not YAML: ignored\n",
	"app/notes.txt":   "kind: ConfigMap\n",
	"app/values.yaml": "replicas: 3\nimage: {tag: v1}\n",
	"app/.sops.yaml":  "creation_rules:\n  - age: age1xyz\n",
	"app/b-multi.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: multi-1}
---
# only a comment
---
apiVersion: v1
kind: ConfigMap
metadata: {name: multi-2}
data: {n: "2"}
...
`,
	"app/a-deploy.json": `{"apiVersion": "apps/v1", "kind": "Deployment",
 "metadata": {"name": "web"},
 "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}}}}`,
	"app/c-list.yml": `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: svc}
- apiVersion: v1
  kind: ServiceAccount
  metadata: {name: sa}
`,
	"app/d-array.json":          `[{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}}, {"not": "a manifest"}]`,
	"app/e-kustomconfig.yaml":   "nameReference:\n- kind: Foo\n",
	"app/.github/workflow.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hidden}\n",
	"app/.hidden.yaml":          "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hidden}\n",
	"app/sub/z.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: sub-z}\n",
	"app/sub/deeper/a.yaml":     "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: deep}\n",
	"app/sub.yaml":              "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: sub-file}\n",
}

func TestPlainDirectory(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, plainRepo)
	r := &Renderer{}

	res := mustRender(t, r, root, Options{Path: "app", Namespace: "team"})
	want := []string{
		"Deployment.apps team/web",
		"ConfigMap team/multi-1",
		"ConfigMap team/multi-2",
		"Service team/svc",
		"ServiceAccount team/sa",
		"Secret team/s",
		"ConfigMap team/sub-file",
	}
	if got := ids(res.Objects()); !slices.Equal(got, want) {
		t.Errorf("objects:\ngot  %v\nwant %v", got, want)
	}
	replicas, _, _ := unstructuredInt(res.Objects()[0].Object, "spec", "replicas")
	if got, want := replicas, int64(2); got != want {
		t.Errorf("JSON number: got %d, want %d", got, want)
	}
	if got, want := res.Files, []string{
		"app/", "app/Chart.yaml", "app/Kustomization", "app/a-deploy.json", "app/b-multi.yaml", "app/c-list.yml",
		"app/d-array.json", "app/e-kustomconfig.yaml", "app/kustomization.yaml", "app/kustomization.yml", "app/sub.yaml", "app/values.yaml",
	}; !slices.Equal(got, want) {
		t.Errorf("Files:\ngot  %v\nwant %v", got, want)
	}

	res = mustRender(t, r, root, Options{Path: "app", Namespace: "team", Recursive: true})
	want = []string{
		"Deployment.apps team/web",
		"ConfigMap team/multi-1",
		"ConfigMap team/multi-2",
		"Service team/svc",
		"ServiceAccount team/sa",
		"Secret team/s",
		"ConfigMap team/sub-file",
		"ClusterRole.rbac.authorization.k8s.io deep",
		"ConfigMap team/sub-z",
	}
	if got := ids(res.Objects()); !slices.Equal(got, want) {
		t.Errorf("recursive objects:\ngot  %v\nwant %v", got, want)
	}
	for _, dir := range []string{"app/sub/", "app/sub/deeper/"} {
		if !slices.Contains(res.Files, dir) {
			t.Errorf("recursive Files %v lack the listing %s", res.Files, dir)
		}
	}
}

func unstructuredInt(obj map[string]any, fields ...string) (int64, bool, error) {
	var cur any = obj
	for _, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			return 0, false, nil
		}
		cur = m[f]
	}
	i, ok := cur.(int64)
	return i, ok, nil
}

func TestPlainErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{{
		name: "invalid YAML names file and line",
		files: map[string]string{
			"app/a.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n",
			"app/bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: [a\n",
		},
		want: []string{"app/bad.yaml", "line 5"},
	}, {
		name:  "invalid YAML in a later document",
		files: map[string]string{"app/bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nfoo: bar\n  baz: 1\n"},
		want:  []string{"app/bad.yaml", "line 6"},
	}, {
		name:  "kind without apiVersion",
		files: map[string]string{"app/a.yaml": "x: 1\n---\nkind: ConfigMap\nmetadata: {name: a}\n"},
		want:  []string{"app/a.yaml", "line 3", "kind ConfigMap but no apiVersion"},
	}, {
		name:  "apiVersion without kind",
		files: map[string]string{"app/a.yaml": "apiVersion: v1\nmetadata: {name: a}\n"},
		want:  []string{"app/a.yaml", "line 1", "no kind"},
	}, {
		name:  "invalid JSON names file and line",
		files: map[string]string{"app/a.json": "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"ConfigMap\"\n  \"metadata\": {}\n}\n"},
		want:  []string{"app/a.json", "line 4"},
	}, {
		name:  "List item without kind",
		files: map[string]string{"app/a.yaml": "apiVersion: v1\nkind: List\nitems:\n- metadata: {name: a}\n"},
		want:  []string{"app/a.yaml", "List item 1 has no kind"},
	}, {
		// Found by FuzzDecodeManifests: they decoded, then failed as an
		// object JSON cannot hold, without the file.
		name:  "YAML .nan and .inf name file and line",
		files: map[string]string{"app/a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata: {ratio: .nan}\n"},
		want:  []string{"app/a.yaml", "line 5", "NaN is not a number", "quote it"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tt.files)
			err := renderErr(t, &Renderer{}, root, Options{Path: "app"})
			t.Log(err)
			wantErrContains(t, err, tt.want...)
		})
	}
}

// Found by FuzzFileGlob: globs re-encoded non-ASCII characters byte by
// byte, so they never matched names with them.
func TestFileGlobNonASCII(t *testing.T) {
	for glob, name := range map[string]string{"café/*.yaml": "café/menu.yaml", `\é*`: "été", "[é]": "é"} {
		re, err := FileGlob(glob)
		if err != nil {
			t.Fatalf("%s: %v", glob, err)
		}
		if !re.MatchString(name) {
			t.Errorf("glob %q (%s) does not match %q", glob, re, name)
		}
	}
}

func TestPlainArtifactRoot(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"cm.yaml":       "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: root}\n",
		".git/HEAD":     "ref: refs/heads/main\n",
		".git/x.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: git}\n",
		"docs/doc.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: docs}\n",
	})
	res := mustRender(t, &Renderer{}, root, Options{Recursive: true})
	if got, want := ids(res.Objects()), []string{"ConfigMap root", "ConfigMap docs"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if !slices.Contains(res.Files, "./") {
		t.Errorf("Files %v lack the root listing ./", res.Files)
	}
}

// spec.include and spec.exclude (copied to Options.Include and Exclude)
// filter a plain directory's files by their path relative to Path, with
// Argo CD's glob syntax; exclude wins; a bad glob names the field; a
// kustomization refuses them.
func TestRenderPlainIncludeExclude(t *testing.T) {
	root := t.TempDir()
	cm := func(name string) string { return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + "}\n" }
	writeFiles(t, root, map[string]string{
		"app/web.yaml":            cm("web"),
		"app/db.yml":              cm("db"),
		"app/config.json":         `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config"}}`,
		"app/env/prod.yaml":       cm("prod"),
		"app/env/staging.yaml":    cm("staging"),
		"kust/kustomization.yaml": "resources: [cm.yaml]\n",
		"kust/cm.yaml":            cm("k"),
	})
	for _, tc := range []struct {
		include, exclude []string
		want             []string
	}{
		{[]string{"*.yaml"}, nil, []string{"ConfigMap ns/prod", "ConfigMap ns/staging", "ConfigMap ns/web"}},
		{[]string{"{web.yaml,env/*}"}, []string{"env/staging.yaml"}, []string{"ConfigMap ns/prod", "ConfigMap ns/web"}},
		{nil, []string{"config.json", "env/*"}, []string{"ConfigMap ns/db", "ConfigMap ns/web"}},
		{[]string{"[dw]*.y*ml"}, nil, []string{"ConfigMap ns/db", "ConfigMap ns/web"}},
	} {
		res := mustRender(t, &Renderer{}, root, Options{Path: "app", Namespace: "ns", Recursive: true, Include: tc.include, Exclude: tc.exclude})
		got := ids(res.Objects())
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("include %q exclude %q: got %v, want %v", tc.include, tc.exclude, got, tc.want)
		}
	}
	if _, err := render(t, &Renderer{}, root, Options{Path: "app", Include: []string{"{web"}}); err == nil || !strings.Contains(err.Error(), `spec.include[0] "{web": unmatched {`) {
		t.Errorf("bad glob: %v", err)
	}
	if _, err := render(t, &Renderer{}, root, Options{Path: "kust", Exclude: []string{"cm.yaml"}}); err == nil || !strings.Contains(err.Error(), "is a chart or a kustomization") {
		t.Errorf("exclude on a kustomization: %v", err)
	}
}
