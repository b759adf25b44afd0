package render

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tend-gitops/tend/internal/source/chart"
	"github.com/tend-gitops/tend/internal/source/chart/charttest"
)

var _ ChartFetcher = (*chart.Fetcher)(nil)

// helmRender renders opts from root and fails the test on error.
func helmRender(t *testing.T, r *Renderer, root string, opts Options) *Result {
	t.Helper()
	res, err := r.Render(context.Background(), root, opts)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return res
}

// helmRenderErr renders opts from root and returns the error, failing the test
// when there is none.
func helmRenderErr(t *testing.T, r *Renderer, root string, opts Options) error {
	t.Helper()
	_, err := r.Render(context.Background(), root, opts)
	if err == nil {
		t.Fatalf("Render succeeded, want an error")
	}
	return err
}

// find returns the object of kind and name, failing the test when absent.
func helmFind(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %q in the output; have %v", kind, name, helmNames(objs))
	return nil
}

func helmNames(objs []*unstructured.Unstructured) []string {
	out := make([]string, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	return out
}

func helmData(t *testing.T, o *unstructured.Unstructured, key string) string {
	t.Helper()
	v, _, err := unstructured.NestedString(o.Object, "data", key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func helmWantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}

// helmConfigMapChart returns a chart whose only template is a ConfigMap named
// <release>-<chart> holding the chart version and the value "greeting".
func helmConfigMapChart(name, version string, extra map[string]string) map[string]string {
	files := map[string]string{
		"Chart.yaml":  "apiVersion: v2\nname: " + name + "\nversion: " + version + "\n",
		"values.yaml": "greeting: hello from " + name + "\n",
		"templates/cm.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-{{ .Chart.Name }}
data:
  version: {{ .Chart.Version | quote }}
  greeting: {{ .Values.greeting | quote }}
`,
	}
	for k, v := range extra {
		files[k] = v
	}
	return files
}

func TestHelmChartDirValuesPrecedence(t *testing.T) {
	root := t.TempDir()
	charttest.WriteFiles(t, root, map[string]string{
		"charts/app/Chart.yaml": "apiVersion: v2\nname: app\nversion: 0.1.0\n",
		"charts/app/values.yaml": `a: chart
b: chart
c: chart
d: chart
e: chart
nested:
  x: chart
  z: chart
`,
		"charts/app/.helmignore":      "ignored.txt\n",
		"charts/app/ignored.txt":      "never read\n",
		"charts/app/files/motd.txt":   "welcome\n",
		"charts/app/values-extra.yml": "c: file2\n",
		"charts/app/templates/_helpers.tpl": `{{- define "app.fullname" -}}
{{ .Release.Name }}-app
{{- end -}}
`,
		"charts/app/templates/NOTES.txt": "Thanks for installing {{ .Release.Name }}.\n",
		"charts/app/templates/cm.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "app.fullname" . }}
  namespace: {{ .Release.Namespace }}
data:
  a: {{ .Values.a }}
  b: {{ .Values.b }}
  c: {{ .Values.c }}
  d: {{ .Values.d }}
  e: {{ .Values.e }}
  x: {{ .Values.nested.x }}
  z: {{ .Values.nested.z }}
  motd: {{ .Files.Get "files/motd.txt" | trim }}
  install: {{ .Release.IsInstall | quote }}
  upgrade: {{ .Release.IsUpgrade | quote }}
`,
		"envs/prod.yaml": "b: file1\nc: file1\nd: file1\ne: file1\nnested:\n  x: file1\n",
	})
	res := helmRender(t, &Renderer{}, root, Options{
		Path:      "charts/app",
		Namespace: "ns1",
		Helm: &HelmOptions{
			ReleaseName: "r1",
			ValuesFiles: []string{"../../envs/prod.yaml", "values-extra.yml"},
			ValuesFrom:  []map[string]any{{"d": "from1", "e": "from1"}, {"d": "from2"}},
			Values:      map[string]any{"e": "inline"},
		},
	})
	if got, want := len(res.Objects()), 1; got != want {
		t.Fatalf("got %d objects %v, want %d (NOTES.txt and partials render nothing)", got, helmNames(res.Objects()), want)
	}
	cm := helmFind(t, res.Objects(), "ConfigMap", "r1-app")
	if got, want := cm.GetNamespace(), "ns1"; got != want {
		t.Errorf("namespace = %q, want the release namespace %q", got, want)
	}
	for key, want := range map[string]string{
		"a": "chart", "b": "file1", "c": "file2", "d": "from2", "e": "inline",
		"x": "file1", "z": "chart", "motd": "welcome", "install": "true", "upgrade": "false",
	} {
		if got := helmData(t, cm, key); got != want {
			t.Errorf("data.%s = %q, want %q", key, got, want)
		}
	}
	for _, f := range []string{
		"charts/app/Chart.yaml", "charts/app/values.yaml", "charts/app/templates/cm.yaml",
		"charts/app/templates/_helpers.tpl", "charts/app/files/motd.txt",
		"charts/app/values-extra.yml", "envs/prod.yaml",
	} {
		if !slices.Contains(res.Files, f) {
			t.Errorf("Result.Files %v lacks %s", res.Files, f)
		}
	}
	if slices.Contains(res.Files, "charts/app/ignored.txt") {
		t.Errorf("Result.Files lists charts/app/ignored.txt, which .helmignore excludes")
	}
}

func TestHelmChartDirDependencies(t *testing.T) {
	repo := charttest.NewRepo(t, "", "")
	repo.Add(t, charttest.Package(t, helmConfigMapChart("remote", "2.0.0", nil)))
	repo.Add(t, charttest.Package(t, helmConfigMapChart("remote", "2.1.0", nil)))
	reg := charttest.NewRegistry(t, "", "")
	reg.Push(t, charttest.Package(t, helmConfigMapChart("ocidep", "3.1.0", nil)))
	packed := charttest.Package(t, helmConfigMapChart("packed", "0.1.0", nil))

	root := t.TempDir()
	files := map[string]string{
		"charts/app/Chart.yaml": `apiVersion: v2
name: app
version: 1.0.0
dependencies:
- name: vendored
  version: 1.x
  condition: vendored.enabled
- name: packed
  version: ^0.1.0
- name: disabled
  version: 1.0.0
  condition: disabled.enabled
- name: remote
  version: ^2.0.0
  repository: ` + repo.URL + `
- name: ocidep
  version: ">=3.0.0 <4"
  repository: ` + reg.URL + `
- name: local
  version: 0.1.0
  repository: file://../local
`,
		"charts/app/Chart.lock": `dependencies:
- name: remote
  version: 2.0.0
  repository: ` + repo.URL + `
digest: sha256:0
generated: "2026-01-01T00:00:00Z"
`,
		"charts/app/values.yaml": "disabled:\n  enabled: false\nvendored:\n  enabled: true\nremote:\n  greeting: from the parent\n",
		"charts/app/templates/cm.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-parent
`,
	}
	for k, v := range helmConfigMapChart("vendored", "1.2.0", nil) {
		files["charts/app/charts/vendored/"+k] = v
	}
	for k, v := range helmConfigMapChart("disabled", "1.0.0", nil) {
		files["charts/app/charts/disabled/"+k] = v
	}
	for k, v := range helmConfigMapChart("local", "0.1.0", nil) {
		files["charts/local/"+k] = v
	}
	charttest.WriteFiles(t, root, files)
	b, err := os.ReadFile(packed)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "charts/app/charts/packed-0.1.0.tgz"), b, 0o644); err != nil {
		t.Fatal(err)
	}

	// The registry speaks plain HTTP; a dependency has no Source to set
	// spec.oci.insecure.
	r := &Renderer{Charts: chart.New(chart.Options{PlainHTTP: true})}
	res := helmRender(t, r, root, Options{Path: "charts/app", Helm: &HelmOptions{ReleaseName: "r1"}})
	helmFind(t, res.Objects(), "ConfigMap", "r1-parent")
	for name, version := range map[string]string{
		"r1-vendored": "1.2.0", "r1-packed": "0.1.0", "r1-remote": "2.0.0", "r1-ocidep": "3.1.0", "r1-local": "0.1.0",
	} {
		if got := helmData(t, helmFind(t, res.Objects(), "ConfigMap", name), "version"); got != version {
			t.Errorf("%s rendered chart version %s, want %s", name, got, version)
		}
	}
	if got, want := helmData(t, helmFind(t, res.Objects(), "ConfigMap", "r1-remote"), "greeting"), "from the parent"; got != want {
		t.Errorf("remote subchart greeting = %q, want the parent's value %q", got, want)
	}
	for _, o := range res.Objects() {
		if o.GetName() == "r1-disabled" {
			t.Errorf("the subchart disabled by its condition rendered %s", o.GetName())
		}
	}
	if got, want := len(res.Objects()), 6; got != want {
		t.Errorf("got %d objects %v, want %d", got, helmNames(res.Objects()), want)
	}
	for _, f := range []string{"charts/app/Chart.lock", "charts/app/charts/packed-0.1.0.tgz", "charts/local/templates/cm.yaml"} {
		if !slices.Contains(res.Files, f) {
			t.Errorf("Result.Files %v lacks %s", res.Files, f)
		}
	}

	// Without a fetcher, the repository dependency cannot be resolved.
	err = helmRenderErr(t, &Renderer{}, root, Options{Path: "charts/app", Helm: &HelmOptions{ReleaseName: "r1"}})
	helmWantErr(t, err, `helm chart "app" at charts/app`, `dependency "remote"`, "Renderer.Charts is nil")
}

func TestHelmRemoteChartHTTP(t *testing.T) {
	repo := charttest.NewRepo(t, "alice", "s3cret")
	for _, v := range []string{"1.0.0", "1.1.0", "2.0.0-rc.1"} {
		repo.Add(t, charttest.Package(t, helmConfigMapChart("web", v, nil)))
	}
	root := t.TempDir()
	charttest.WriteFiles(t, root, map[string]string{"apps/web/values.yaml": "greeting: from git\n"})
	r := &Renderer{Charts: chart.New(chart.Options{})}
	opts := Options{
		Path:      "apps/web",
		Namespace: "web",
		Helm: &HelmOptions{
			ReleaseName: "web",
			ValuesFiles: []string{"values.yaml"},
			Chart:       &ChartRef{RepoURL: repo.URL, Name: "web", Version: "^1", Username: "alice", Password: "s3cret"},
		},
	}
	res := helmRender(t, r, root, opts)
	cm := helmFind(t, res.Objects(), "ConfigMap", "web-web")
	if got, want := helmData(t, cm, "version"), "1.1.0"; got != want {
		t.Errorf("rendered version %s, want %s (highest stable match of ^1)", got, want)
	}
	if got, want := helmData(t, cm, "greeting"), "from git"; got != want {
		t.Errorf("greeting = %q, want %q from the values file in git", got, want)
	}
	if got, want := res.Files, []string{"apps/web/values.yaml"}; !slices.Equal(got, want) {
		t.Errorf("Result.Files = %v, want %v", got, want)
	}

	opts.Helm.Chart.Password = "wrong"
	err := helmRenderErr(t, r, root, opts)
	helmWantErr(t, err, `helm chart "web" from `+repo.URL, "401", "rejected the username and password")

	opts.Helm.Chart.Password = "s3cret"
	opts.Helm.Chart.Version = "^5"
	err = helmRenderErr(t, r, root, opts)
	helmWantErr(t, err, `"web"`, `"^5"`, repo.URL, "available: 2.0.0-rc.1, 1.1.0, 1.0.0")

	opts.Helm.Chart.Version = ""
	opts.Helm.Chart.Name = "api"
	err = helmRenderErr(t, r, root, opts)
	helmWantErr(t, err, `chart "api" not found in `+repo.URL)

	opts.Helm.Chart.Name = "web"
	err = helmRenderErr(t, &Renderer{}, root, opts)
	helmWantErr(t, err, "Renderer.Charts is nil")
}

func TestHelmRemoteChartOCI(t *testing.T) {
	reg := charttest.NewRegistry(t, "bob", "pw")
	for _, v := range []string{"1.0.0", "1.3.0", "2.0.0"} {
		reg.Push(t, charttest.Package(t, helmConfigMapChart("api", v, nil)))
	}
	root := t.TempDir()
	r := &Renderer{Charts: chart.New(chart.Options{})}
	res := helmRender(t, r, root, Options{Helm: &HelmOptions{
		ReleaseName: "api",
		Values:      map[string]any{"greeting": "inline"},
		// The registry speaks plain HTTP, as a Source with spec.oci.insecure.
		Chart: &ChartRef{RepoURL: chart.OCIURL(reg.URL, true), Name: "api", Version: ">=1.0.0 <2.0.0", Username: "bob", Password: "pw"},
	}})
	cm := helmFind(t, res.Objects(), "ConfigMap", "api-api")
	if got, want := helmData(t, cm, "version"), "1.3.0"; got != want {
		t.Errorf("rendered version %s, want %s", got, want)
	}
	if got, want := helmData(t, cm, "greeting"), "inline"; got != want {
		t.Errorf("greeting = %q, want %q", got, want)
	}
}

func TestHelmHooksAndCRDs(t *testing.T) {
	crd := func(plural, group string) string {
		return `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: ` + plural + `.` + group + `
spec:
  group: ` + group + `
  names: {kind: Widget, plural: ` + plural + `}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`
	}
	hookJob := func(name, hook string) string {
		return `apiVersion: batch/v1
kind: Job
metadata:
  name: ` + name + `
  annotations:
    helm.sh/hook: ` + hook + `
    helm.sh/hook-weight: "-5"
    helm.sh/hook-delete-policy: before-hook-creation
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: x, image: busybox}]
`
	}
	root := t.TempDir()
	files := map[string]string{
		"app/Chart.yaml":     "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n- name: sub\n  version: 1.0.0\n",
		"app/crds/crd.yaml":  crd("widgets", "example.com"),
		"app/crds/README.md": "not a manifest\n",
		"app/templates/widget.yaml": `apiVersion: example.com/v1
kind: Widget
metadata:
  name: w
`,
		"app/templates/deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
`,
		"app/templates/ns-and-sa.yaml":   "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n---\n# just a comment\n---\n",
		"app/templates/pre-install.yaml": hookJob("migrate-install", "pre-install"),
		"app/templates/pre-upgrade.yaml": hookJob("migrate-upgrade", "pre-upgrade"),
		"app/templates/test.yaml":        hookJob("smoke", "test"),
	}
	for k, v := range helmConfigMapChart("sub", "1.0.0", map[string]string{"crds/gadgets.yaml": crd("gadgets", "example.org")}) {
		files["app/charts/sub/"+k] = v
	}
	charttest.WriteFiles(t, root, files)
	res := helmRender(t, &Renderer{}, root, Options{Path: "app", Namespace: "ns", Helm: &HelmOptions{ReleaseName: "rel"}})

	got := helmNames(res.Objects())
	want := []string{
		"CustomResourceDefinition/widgets.example.com",
		"CustomResourceDefinition/gadgets.example.org",
		"ServiceAccount/sa",
		"ConfigMap/rel-sub",
		"Deployment/web",
		"Widget/w",
		"Job/migrate-install",
		"Job/migrate-upgrade",
		"Job/smoke",
	}
	if !slices.Equal(got, want) {
		t.Errorf("render order:\n got %v\nwant %v", got, want)
	}
	for name, hook := range map[string]string{"migrate-install": "pre-install", "migrate-upgrade": "pre-upgrade", "smoke": "test"} {
		ann := helmFind(t, res.Objects(), "Job", name).GetAnnotations()
		if got, want := ann["helm.sh/hook"], hook; got != want {
			t.Errorf("Job %s helm.sh/hook = %q, want %q", name, got, want)
		}
		if got, want := ann["helm.sh/hook-weight"], "-5"; got != want {
			t.Errorf("Job %s helm.sh/hook-weight = %q, want %q", name, got, want)
		}
	}
	if labels := helmFind(t, res.Objects(), "Deployment", "web").GetLabels(); len(labels) != 0 {
		t.Errorf("Deployment labels = %v; tend must not add labels the chart does not render", labels)
	}
}

func TestHelmTemplateError(t *testing.T) {
	root := t.TempDir()
	charttest.WriteFiles(t, root, map[string]string{
		"apps/app/Chart.yaml": "apiVersion: v2\nname: app\nversion: 1.0.0\n",
		"apps/app/templates/bad.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: x
data:
  v: {{ .Values.db.host }}
`,
	})
	err := helmRenderErr(t, &Renderer{}, root, Options{Path: "apps/app", Helm: &HelmOptions{ReleaseName: "r"}})
	helmWantErr(t, err, `helm chart "app" at apps/app`, "app/templates/bad.yaml:6", "nil pointer")

	charttest.WriteFiles(t, root, map[string]string{
		"apps/app/templates/bad.yaml": "apiVersion: v1\nkind: ConfigMap\n{{ if }}\n",
	})
	err = helmRenderErr(t, &Renderer{}, root, Options{Path: "apps/app", Helm: &HelmOptions{ReleaseName: "r"}})
	helmWantErr(t, err, `helm chart "app" at apps/app`, "app/templates/bad.yaml:3", "missing value for if")

	charttest.WriteFiles(t, root, map[string]string{
		"apps/app/templates/bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n   bad: indent\n",
	})
	err = helmRenderErr(t, &Renderer{}, root, Options{Path: "apps/app", Helm: &HelmOptions{ReleaseName: "r"}})
	helmWantErr(t, err, `helm chart "app" at apps/app`, "app/templates/bad.yaml", "not valid YAML")

	charttest.WriteFiles(t, root, map[string]string{
		"apps/app/templates/bad.yaml": "metadata:\n  name: x\n",
	})
	err = helmRenderErr(t, &Renderer{}, root, Options{Path: "apps/app", Helm: &HelmOptions{ReleaseName: "r"}})
	helmWantErr(t, err, "app/templates/bad.yaml", "no apiVersion or kind")
}

func TestHelmInputErrors(t *testing.T) {
	root := t.TempDir()
	charttest.WriteFiles(t, root, helmConfigMapChart("app", "1.0.0", nil))
	charttest.WriteFiles(t, root, map[string]string{
		"dep/Chart.yaml": "apiVersion: v2\nname: dep\nversion: 1.0.0\ndependencies:\n- name: missing\n  version: 1.0.0\n",
		"lib/Chart.yaml": "apiVersion: v2\nname: lib\nversion: 1.0.0\ntype: library\n",
		"old/Chart.yaml": "apiVersion: v2\nname: old\nversion: 1.0.0\nkubeVersion: <1.10.0\n",
	})
	r := &Renderer{}

	err := helmRenderErr(t, r, root, Options{Helm: &HelmOptions{ReleaseName: "r", ValuesFiles: []string{"nope.yaml"}}})
	helmWantErr(t, err, `values file "nope.yaml"`, "does not exist")

	err = helmRenderErr(t, r, root, Options{Helm: &HelmOptions{}})
	helmWantErr(t, err, "release name is required", "spec.helm.releaseName")
	err = helmRenderErr(t, r, root, Options{})
	helmWantErr(t, err, "release name is required")

	err = helmRenderErr(t, r, root, Options{Helm: &HelmOptions{ReleaseName: "Not_Valid"}})
	helmWantErr(t, err, `release name "Not_Valid"`)

	err = helmRenderErr(t, r, root, Options{Path: "dep", Helm: &HelmOptions{ReleaseName: "r"}})
	helmWantErr(t, err, `dependency "missing"`, "not in charts/")

	err = helmRenderErr(t, r, root, Options{Path: "lib", Helm: &HelmOptions{ReleaseName: "r"}})
	helmWantErr(t, err, "library chart")

	err = helmRenderErr(t, r, root, Options{Path: "old", Helm: &HelmOptions{ReleaseName: "r"}})
	helmWantErr(t, err, "requires kubeVersion <1.10.0")
}

func TestReadOnlyTransportRefusesWrites(t *testing.T) {
	rt := readOnlyTransport{next: nil}
	req, err := http.NewRequest(http.MethodPost, "https://127.0.0.1/api/v1/namespaces/x/configmaps", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "only reads") {
		t.Errorf("POST through the lookup transport: got %v, want a refusal", err)
	}
}

func TestHelmErrorsRedactCredentialsInURLs(t *testing.T) {
	root := t.TempDir()
	r := &Renderer{Charts: chart.New(chart.Options{})}
	err := helmRenderErr(t, r, root, Options{Helm: &HelmOptions{
		ReleaseName: "r",
		Chart:       &ChartRef{RepoURL: "http://user:topsecret@127.0.0.1:1/charts", Name: "app"},
	}})
	if strings.Contains(err.Error(), "topsecret") {
		t.Errorf("error %q shows the password from the repository URL", err)
	}
	helmWantErr(t, err, "127.0.0.1:1")
}
