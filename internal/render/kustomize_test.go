package render

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// kustomizeRepo has an overlay using a base, a component, patches of both
// kinds, generators, images, a name prefix and a local Helm chart.
var kustomizeRepo = map[string]string{
	"base/kustomization.yaml": "resources:\n- deploy.yaml\n- svc.yaml\n",
	"base/deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.0
        envFrom: [{configMapRef: {name: settings}}]
`,
	"base/svc.yaml":    "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n",
	"base/unused.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: unused}\n",
	"components/monitoring/kustomization.yaml": `apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
resources: [monitor.yaml]
patches:
- path: monitored.yaml
  target: {kind: Deployment}
`,
	"components/monitoring/monitor.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: monitor}\ndata: {scrape: \"true\"}\n",
	"components/monitoring/monitored.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: any, labels: {monitored: \"yes\"}}\n",
	"overlays/prod/kustomization.yaml": `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- ../../base
components:
- ../../components/monitoring
namePrefix: prod-
images:
- name: nginx
  newTag: "1.27"
patches:
- path: replicas.yaml
- path: svc-port.yaml
  target: {kind: Service, name: web}
configMapGenerator:
- name: settings
  files: [settings.properties]
  literals: [mode=prod]
helmCharts:
- name: hello
  releaseName: hi
  valuesInline: {greeting: from prod}
`,
	"overlays/prod/replicas.yaml":            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 3}\n",
	"overlays/prod/svc-port.yaml":            "- op: replace\n  path: /spec/ports/0/port\n  value: 8080\n",
	"overlays/prod/settings.properties":      "color=blue\n",
	"overlays/prod/charts/hello/Chart.yaml":  "apiVersion: v2\nname: hello\nversion: 0.1.0\n",
	"overlays/prod/charts/hello/values.yaml": "greeting: default\n",
	"overlays/prod/charts/hello/templates/cm.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-{{ .Chart.Name }}
data:
  greeting: {{ .Values.greeting | quote }}
`,
}

func TestKustomizeOverlay(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, kustomizeRepo)
	res := mustRender(t, &Renderer{}, root, Options{Path: "overlays/prod", Namespace: "shop"})
	objs := res.Objects()

	d := findObj(t, objs, "Deployment", "prod-web")
	if got, want := d.GetNamespace(), "shop"; got != want {
		t.Errorf("namespace: got %q, want %q", got, want)
	}
	if got, _, _ := unstructuredInt(d.Object, "spec", "replicas"); got != 3 {
		t.Errorf("strategic merge patch: replicas = %d, want 3", got)
	}
	if got, want := d.GetLabels()["monitored"], "yes"; got != want {
		t.Errorf("component patch: label monitored = %q, want %q", got, want)
	}
	containers, _, _ := nestedSlice(d.Object, "spec", "template", "spec", "containers")
	c0 := containers[0].(map[string]any)
	if got, want := c0["image"], "nginx:1.27"; got != want {
		t.Errorf("images: got %v, want %v", got, want)
	}
	// The generated ConfigMap's hashed name is referenced from the Deployment.
	ref := c0["envFrom"].([]any)[0].(map[string]any)["configMapRef"].(map[string]any)["name"].(string)
	if !strings.HasPrefix(ref, "prod-settings-") {
		t.Errorf("envFrom references %q, want the generated prod-settings-<hash>", ref)
	}
	cm := findObj(t, objs, "ConfigMap", ref)
	if got, want := nestedString(t, cm, "data", "settings.properties"), "color=blue\n"; got != want {
		t.Errorf("configMapGenerator file: got %q, want %q", got, want)
	}
	if got, want := nestedString(t, cm, "data", "mode"), "prod"; got != want {
		t.Errorf("configMapGenerator literal: got %q, want %q", got, want)
	}

	svc := findObj(t, objs, "Service", "prod-web")
	ports, _, _ := nestedSlice(svc.Object, "spec", "ports")
	if got := ports[0].(map[string]any)["port"]; got != int64(8080) {
		t.Errorf("JSON6902 patch: port = %v, want 8080", got)
	}
	findObj(t, objs, "ConfigMap", "prod-monitor")

	helm := findObj(t, objs, "ConfigMap", "prod-hi-hello")
	if got, want := nestedString(t, helm, "data", "greeting"), "from prod"; got != want {
		t.Errorf("helmCharts valuesInline: got %q, want %q", got, want)
	}
	if got, want := helm.GetNamespace(), "shop"; got != want {
		t.Errorf("helm output namespace: got %q, want %q", got, want)
	}
	if slices.ContainsFunc(objs, func(o *unstructured.Unstructured) bool {
		return o.GetName() == "prod-unused" || o.GetName() == "unused"
	}) {
		t.Errorf("a file no kustomization lists was rendered: %v", ids(objs))
	}

	for _, p := range []string{
		"overlays/prod/kustomization.yaml",
		"base/kustomization.yaml",
		"base/deploy.yaml",
		"base/svc.yaml",
		"components/monitoring/kustomization.yaml",
		"components/monitoring/monitor.yaml",
		"components/monitoring/monitored.yaml",
		"overlays/prod/replicas.yaml",
		"overlays/prod/svc-port.yaml",
		"overlays/prod/settings.properties",
		"overlays/prod/charts/hello/Chart.yaml",
		"overlays/prod/charts/hello/templates/cm.yaml",
	} {
		if !slices.Contains(res.Files, p) {
			t.Errorf("Result.Files lacks %s:\n%v", p, res.Files)
		}
	}
	for _, p := range res.Files {
		if strings.Contains(p, ".tend-helmchart") || p == "base/unused.yaml" {
			t.Errorf("Result.Files has %s, which the render did not read from the artifact", p)
		}
	}
	if !Affected(res.Files, []string{"overlays/prod/charts/hello/values.yaml"}) {
		t.Errorf("a change to the chart's values.yaml does not affect the render")
	}
	if Affected(res.Files, []string{"base/unused.yaml", "README.md"}) {
		t.Errorf("a change to files the render did not read affects it")
	}
}

func nestedSlice(obj map[string]any, fields ...string) ([]any, bool, error) {
	var cur any = obj
	for _, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false, nil
		}
		cur = m[f]
	}
	s, ok := cur.([]any)
	return s, ok, nil
}

func TestKustomizeErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		opts  Options
		want  []string
	}{{
		name: "missing resource",
		files: map[string]string{
			"app/kustomization.yaml": "resources:\n- cm.yaml\n- missing.yaml\n",
			"app/cm.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
		},
		want: []string{"app/kustomization.yaml", `"missing.yaml"`, "app/missing.yaml does not exist"},
	}, {
		name: "missing base in a base",
		files: map[string]string{
			"app/kustomization.yaml":  "resources: [../base]\n",
			"base/kustomization.yaml": "resources: [../gone]\n",
		},
		want: []string{"base/kustomization.yaml", `"../gone"`, "gone does not exist"},
	}, {
		name:  "remote base without permission",
		files: map[string]string{"app/kustomization.yaml": "resources:\n- github.com/example/repo//deploy?ref=v1.0.0\n"},
		want:  []string{"app/kustomization.yaml", `"github.com/example/repo//deploy?ref=v1.0.0"`, "remote bases are not allowed", "allow remote bases"},
	}, {
		name:  "remote URL without permission",
		files: map[string]string{"app/kustomization.yaml": "resources:\n- https://example.com/manifests/app.yaml\n"},
		want:  []string{"app/kustomization.yaml", `"https://example.com/manifests/app.yaml"`, "remote bases are not allowed"},
	}, {
		name:  "outside the artifact",
		files: map[string]string{"app/kustomization.yaml": "resources:\n- ../../../etc\n"},
		want:  []string{"app/kustomization.yaml", `"../../../etc"`, "outside the source artifact"},
	}, {
		name: "patch outside the artifact",
		files: map[string]string{
			"app/kustomization.yaml": "resources: [cm.yaml]\npatches:\n- path: ../../../../etc/passwd\n",
			"app/cm.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
		},
		want: []string{"outside the source artifact"},
	}, {
		name:  "invalid kustomization YAML",
		files: map[string]string{"app/kustomization.yaml": "namePrefix: a-\nresources:\n\t- a.yaml\n"},
		want:  []string{"app/kustomization.yaml", "line 3"},
	}, {
		name: "invalid YAML in a resource",
		files: map[string]string{
			"app/kustomization.yaml": "resources: [cm.yaml]\n",
			"app/cm.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [a}\n",
		},
		want: []string{"kustomize build app", "cm.yaml"},
	}, {
		name: "missing chart",
		files: map[string]string{
			"app/kustomization.yaml": "helmCharts:\n- name: nope\n",
		},
		want: []string{"app/kustomization.yaml", "helmCharts[0]", "nope"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tt.files)
			opts := tt.opts
			opts.Path = "app"
			err := renderErr(t, &Renderer{}, root, opts)
			t.Log(err)
			wantErrContains(t, err, tt.want...)
		})
	}
}

func TestKustomizeChartHome(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"app/kustomization.yaml":                "helmGlobals: {chartHome: ../vendor/charts}\nhelmCharts:\n- name: hello\n  valuesFile: values-prod.yaml\n",
		"app/values-prod.yaml":                  "greeting: from file\n",
		"vendor/charts/hello/Chart.yaml":        "apiVersion: v2\nname: hello\nversion: 0.1.0\n",
		"vendor/charts/hello/values.yaml":       "greeting: default\n",
		"vendor/charts/hello/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  greeting: {{ .Values.greeting | quote }}\n",
	})
	res := mustRender(t, &Renderer{}, root, Options{Path: "app", Namespace: "ns"})
	cm := findObj(t, res.Objects(), "ConfigMap", "release-name")
	if got, want := nestedString(t, cm, "data", "greeting"), "from file"; got != want {
		t.Errorf("valuesFile relative to the kustomization: got %q, want %q", got, want)
	}
	if !slices.Contains(res.Files, "app/values-prod.yaml") {
		t.Errorf("Files %v lack the values file", res.Files)
	}
}
