package render

import (
	"context"
	"slices"
	"testing"

	"github.com/tend-gitops/tend/internal/source/chart"
	"github.com/tend-gitops/tend/internal/source/chart/charttest"
)

// kustomizeTestChart is a chart with a CRD, a hook and a ConfigMap showing
// three values and the release.
func kustomizeTestChart(version string) map[string]string {
	return map[string]string{
		"Chart.yaml":  "apiVersion: v2\nname: app\nversion: " + version + "\n",
		"values.yaml": "a: chart\nb: chart\nc: chart\n",
		"crds/crd.yaml": `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
`,
		"templates/cm.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-app
  namespace: {{ .Release.Namespace }}
data:
  a: {{ .Values.a | quote }}
  b: {{ .Values.b | quote }}
  c: {{ .Values.c | quote }}
  version: {{ .Chart.Version | quote }}
  kube: {{ .Capabilities.KubeVersion.Version | quote }}
  widgets: {{ .Capabilities.APIVersions.Has "example.com/v1" | quote }}
`,
		"templates/hook.yaml": `apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-test
  annotations:
    helm.sh/hook: test
spec: {containers: [{name: t, image: busybox}]}
`,
	}
}

func TestInflateHelmChartLocal(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"kust/values.yaml": "a: file\nb: file\n",
		"kust/extra.yaml":  "c: extra\n",
	}
	for k, v := range kustomizeTestChart("1.0.0") {
		files["kust/charts/app/"+k] = v
	}
	charttest.WriteFiles(t, root, files)
	r := &Renderer{}
	inflate := func(spec KustomizeHelmChart) map[string]string {
		t.Helper()
		f := newFiles(root, nil)
		objs, err := r.inflateHelmChart(context.Background(), f, "kust/charts", spec)
		if err != nil {
			t.Fatalf("inflateHelmChart(%+v): %v", spec, err)
		}
		out := map[string]string{"objects": ""}
		for _, o := range objs {
			out["objects"] += o.GetKind() + " "
			if o.GetKind() == "ConfigMap" {
				out["name"] = o.GetName()
				out["namespace"] = o.GetNamespace()
				for _, k := range []string{"a", "b", "c", "kube", "widgets"} {
					out[k] = helmData(t, o, k)
				}
			}
		}
		if !slices.Contains(f.readSet(), "kust/charts/app/templates/cm.yaml") {
			t.Errorf("read set %v lacks the chart's template", f.readSet())
		}
		return out
	}

	got := inflate(KustomizeHelmChart{Name: "app"})
	for k, want := range map[string]string{
		"name": "release-name-app", "a": "chart", "objects": "ConfigMap Pod ", "widgets": "false",
	} {
		if got[k] != want {
			t.Errorf("defaults: %s = %q, want %q", k, got[k], want)
		}
	}

	inline := map[string]any{"b": "inline", "c": "inline"}
	for _, tc := range []struct {
		mode    string
		a, b, c string
	}{
		{"", "file", "inline", "extra"},
		{"override", "file", "inline", "extra"},
		{"merge", "file", "file", "extra"},
		{"replace", "chart", "inline", "extra"},
	} {
		got := inflate(KustomizeHelmChart{
			Name: "app", ReleaseName: "rel", Namespace: "team",
			ValuesFile: "kust/values.yaml", ValuesInline: inline, ValuesMerge: tc.mode,
			AdditionalValuesFiles: []string{"kust/extra.yaml"},
		})
		if got["a"] != tc.a || got["b"] != tc.b || got["c"] != tc.c {
			t.Errorf("valuesMerge %q: a, b, c = %q, %q, %q; want %q, %q, %q", tc.mode, got["a"], got["b"], got["c"], tc.a, tc.b, tc.c)
		}
		if got["name"] != "rel-app" || got["namespace"] != "team" {
			t.Errorf("valuesMerge %q: ConfigMap %s/%s, want team/rel-app", tc.mode, got["namespace"], got["name"])
		}
	}

	got = inflate(KustomizeHelmChart{
		Name: "app", IncludeCRDs: true, SkipTests: true,
		KubeVersion: "v1.31.2", APIVersions: []string{"example.com/v1"},
	})
	for k, want := range map[string]string{"objects": "CustomResourceDefinition ConfigMap ", "kube": "v1.31.2", "widgets": "true"} {
		if got[k] != want {
			t.Errorf("includeCRDs, skipTests, capabilities: %s = %q, want %q", k, got[k], want)
		}
	}
	if got := inflate(KustomizeHelmChart{Name: "app", SkipHooks: true}); got["objects"] != "ConfigMap " {
		t.Errorf("skipHooks: objects %q, want only the ConfigMap", got["objects"])
	}

	f := newFiles(root, nil)
	_, err := r.inflateHelmChart(context.Background(), f, "kust/charts", KustomizeHelmChart{Name: "nope"})
	helmWantErr(t, err, `helmCharts "nope"`, "no chart at kust/charts/nope", "no repo")
	_, err = r.inflateHelmChart(context.Background(), f, "kust/charts", KustomizeHelmChart{Name: "app", ValuesMerge: "deep"})
	helmWantErr(t, err, `valuesMerge "deep"`)
	_, err = r.inflateHelmChart(context.Background(), f, "kust/charts", KustomizeHelmChart{Name: "app", ValuesFile: "kust/missing.yaml"})
	helmWantErr(t, err, "valuesFile kust/missing.yaml does not exist")
}

func TestInflateHelmChartRemote(t *testing.T) {
	repo := charttest.NewRepo(t, "", "")
	repo.Add(t, charttest.Package(t, kustomizeTestChart("1.0.0")))
	repo.Add(t, charttest.Package(t, kustomizeTestChart("1.1.0")))
	root := t.TempDir()
	// A chart vendored the way `kustomize build --enable-helm` pulls it
	// (chartHome/<name>-<version>/<name>) wins over the repository.
	vendored := kustomizeTestChart("1.0.0")
	vendored["values.yaml"] = "a: vendored\nb: chart\nc: chart\n"
	files := map[string]string{}
	for k, v := range vendored {
		files["k/charts/app-1.0.0/app/"+k] = v
	}
	charttest.WriteFiles(t, root, files)
	r := &Renderer{Charts: chart.New(chart.Options{})}

	objs, err := r.inflateHelmChart(context.Background(), newFiles(root, nil), "k/charts", KustomizeHelmChart{Name: "app", Repo: repo.URL, Version: "~1.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	cm := helmFind(t, objs, "ConfigMap", "release-name-app")
	if got, want := helmData(t, cm, "version"), "1.1.0"; got != want {
		t.Errorf("fetched version %s, want %s", got, want)
	}

	objs, err = r.inflateHelmChart(context.Background(), newFiles(root, nil), "k/charts", KustomizeHelmChart{Name: "app", Repo: repo.URL, Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := helmData(t, helmFind(t, objs, "ConfigMap", "release-name-app"), "a"), "vendored"; got != want {
		t.Errorf("a = %q, want %q from the chart vendored in chartHome/app-1.0.0/app", got, want)
	}
	if got, want := repo.Hits("/charts/app-1.0.0.tgz"), 0; got != want {
		t.Errorf("the vendored chart was downloaded %d times, want %d", got, want)
	}
}
