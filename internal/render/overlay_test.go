package render

import (
	"maps"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// overlayManifests are the objects each kind of App path renders in the
// overlay tests: a Deployment referring to a ConfigMap, a Service in a
// namespace of its own, a ClusterRole, and a cluster-scoped custom kind
// with its CRD (kustomize does not know its scope).
var overlayManifests = map[string]string{
	"deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      initContainers:
      - {name: init, image: "busybox:1.36"}
      containers:
      - name: web
        image: "nginx:1.0"
        envFrom: [{configMapRef: {name: settings}}]
`,
	"cm.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: prod}\n",
	"svc.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: other}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n",
	"cr.yaml":  "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: reader}\nrules: []\n",
	"crd.yaml": `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Cluster
  names: {kind: Widget, plural: widgets}
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}]
`,
	"widget.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: gadget}\n",
}

// overlayRepo holds the same manifests as plain YAML (plain/), as a
// kustomization (kustomize/) and as a chart (chart/), plus a component and
// a patch file the overlays use.
func overlayRepo(t *testing.T) string {
	t.Helper()
	files := map[string]string{
		"kustomize/kustomization.yaml": "resources: [crd.yaml, widget.yaml, cm.yaml, deploy.yaml, svc.yaml, cr.yaml]\n",
		"chart/Chart.yaml":             "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"components/extra/kustomization.yaml": `apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
resources: [extra.yaml]
patches:
- patch: |
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web, labels: {component: extra}}
`,
		"components/extra/extra.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n",
		"patches/replicas.yaml":       "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 3}\n",
	}
	for name, content := range overlayManifests {
		files["plain/"+name] = content
		files["kustomize/"+name] = content
		files["chart/templates/"+name] = content
	}
	root := t.TempDir()
	writeFiles(t, root, files)
	return root
}

// overlayKinds are the App paths of overlayRepo, one per renderer.
var overlayKinds = []string{"plain", "kustomize", "chart"}

// forEachKind renders ov around each kind of path and runs check on the
// objects.
func forEachKind(t *testing.T, ov *Overlay, check func(t *testing.T, objs []*unstructured.Unstructured)) {
	t.Helper()
	root := overlayRepo(t)
	for _, kind := range overlayKinds {
		t.Run(kind, func(t *testing.T) {
			opts := Options{Path: kind, Namespace: "dest", Overlay: ov}
			if kind == "chart" {
				opts.Helm = &HelmOptions{ReleaseName: "web"}
			}
			res := mustRender(t, &Renderer{}, root, opts)
			check(t, res.Objects())
		})
	}
}

func TestOverlayNamePrefix(t *testing.T) {
	forEachKind(t, &Overlay{NamePrefix: "pre-"}, func(t *testing.T, objs []*unstructured.Unstructured) {
		d := findObj(t, objs, "Deployment", "pre-web")
		findObj(t, objs, "Service", "pre-web")
		findObj(t, objs, "ClusterRole", "pre-reader")
		envFrom, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
		ref := envFrom[0].(map[string]any)["envFrom"].([]any)[0].(map[string]any)["configMapRef"].(map[string]any)["name"]
		if got, want := ref, "pre-settings"; got != want {
			t.Errorf("configMapRef = %v, want %v (references follow renamed objects)", got, want)
		}
	})
}

func TestOverlayNameSuffix(t *testing.T) {
	forEachKind(t, &Overlay{NameSuffix: "-v2"}, func(t *testing.T, objs []*unstructured.Unstructured) {
		findObj(t, objs, "Deployment", "web-v2")
		findObj(t, objs, "ConfigMap", "settings-v2")
	})
}

func TestOverlayNamespace(t *testing.T) {
	forEachKind(t, &Overlay{Namespace: "team"}, func(t *testing.T, objs []*unstructured.Unstructured) {
		for _, o := range []*unstructured.Unstructured{
			findObj(t, objs, "Deployment", "web"),
			findObj(t, objs, "Service", "web"), // set to "other" in git: overridden
			findObj(t, objs, "ConfigMap", "settings"),
		} {
			if got, want := o.GetNamespace(), "team"; got != want {
				t.Errorf("%s namespace = %q, want %q", describe(o), got, want)
			}
		}
		for _, o := range []*unstructured.Unstructured{
			findObj(t, objs, "ClusterRole", "reader"),
			findObj(t, objs, "Widget", "gadget"), // cluster-scoped by the CRD in the same render
		} {
			if got := o.GetNamespace(); got != "" {
				t.Errorf("cluster-scoped %s got namespace %q", describe(o), got)
			}
		}
	})
}

func TestOverlayImages(t *testing.T) {
	ov := &Overlay{Images: []Image{
		{Name: "nginx", NewName: "registry.example/nginx", NewTag: "1.27"},
		{Name: "busybox", Digest: "sha256:0000000000000000000000000000000000000000000000000000000000000001"},
	}}
	forEachKind(t, ov, func(t *testing.T, objs []*unstructured.Unstructured) {
		d := findObj(t, objs, "Deployment", "web")
		spec := d.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
		if got, want := spec["containers"].([]any)[0].(map[string]any)["image"], "registry.example/nginx:1.27"; got != want {
			t.Errorf("image = %v, want %v", got, want)
		}
		if got, want := spec["initContainers"].([]any)[0].(map[string]any)["image"], "busybox@sha256:0000000000000000000000000000000000000000000000000000000000000001"; got != want {
			t.Errorf("init image = %v, want %v", got, want)
		}
	})
}

func TestOverlayPatches(t *testing.T) {
	ov := &Overlay{Patches: []Patch{
		// strategic merge, naming its object
		{Patch: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, labels: {patched: strategic}}\n"},
		// JSON 6902 with a target
		{Patch: "- {op: add, path: /metadata/labels, value: {patched: json6902}}", Target: &PatchTarget{Kind: "Service", Name: "web", Namespace: "other"}},
		// strategic merge from a file, by label selector
		{Path: "../patches/replicas.yaml", Target: &PatchTarget{Group: "apps", Version: "v1", Kind: "Deployment", LabelSelector: "app=web"}},
		// a target no object matches: no change
		{Patch: "- {op: add, path: /metadata/labels/nope, value: x}", Target: &PatchTarget{Kind: "Deployment", AnnotationSelector: "absent=yes"}},
	}}
	forEachKind(t, ov, func(t *testing.T, objs []*unstructured.Unstructured) {
		d := findObj(t, objs, "Deployment", "web")
		if got, want := d.GetLabels()["patched"], "strategic"; got != want {
			t.Errorf("Deployment label patched = %q, want %q", got, want)
		}
		if n, _, _ := unstructured.NestedInt64(d.Object, "spec", "replicas"); n != 3 {
			t.Errorf("replicas = %d, want 3 (patch from file)", n)
		}
		if _, ok := d.GetLabels()["nope"]; ok {
			t.Errorf("a patch whose annotationSelector matches nothing changed the Deployment")
		}
		s := findObj(t, objs, "Service", "web")
		if got, want := s.GetLabels()["patched"], "json6902"; got != want {
			t.Errorf("Service label patched = %q, want %q", got, want)
		}
	})
}

func TestOverlayComponents(t *testing.T) {
	forEachKind(t, &Overlay{Components: []string{"../components/extra"}}, func(t *testing.T, objs []*unstructured.Unstructured) {
		findObj(t, objs, "ConfigMap", "extra")
		if got, want := findObj(t, objs, "Deployment", "web").GetLabels()["component"], "extra"; got != want {
			t.Errorf("component's patch: label = %q, want %q", got, want)
		}
	})
}

func TestOverlayCommonLabels(t *testing.T) {
	forEachKind(t, &Overlay{Labels: map[string]string{"team": "a"}}, func(t *testing.T, objs []*unstructured.Unstructured) {
		for _, o := range objs {
			if got := o.GetLabels()["team"]; got != "a" {
				t.Errorf("%s label team = %q, want a", describe(o), got)
			}
		}
		d := findObj(t, objs, "Deployment", "web")
		sel, _, _ := unstructured.NestedStringMap(d.Object, "spec", "selector", "matchLabels")
		tpl, _, _ := unstructured.NestedStringMap(d.Object, "spec", "template", "metadata", "labels")
		if want := map[string]string{"app": "web"}; !maps.Equal(sel, want) || !maps.Equal(tpl, want) {
			t.Errorf("selector %v and template labels %v changed; want both %v", sel, tpl, want)
		}
	})
}

func TestOverlayCommonAnnotations(t *testing.T) {
	forEachKind(t, &Overlay{Annotations: map[string]string{"owner": "team-a"}}, func(t *testing.T, objs []*unstructured.Unstructured) {
		for _, o := range objs {
			if got := o.GetAnnotations()["owner"]; got != "team-a" {
				t.Errorf("%s annotation owner = %q, want team-a", describe(o), got)
			}
			if _, ok := o.GetAnnotations()[originAnnotation]; ok {
				t.Errorf("%s keeps the internal annotation %s", describe(o), originAnnotation)
			}
		}
		d := findObj(t, objs, "Deployment", "web")
		if got, _, _ := unstructured.NestedString(d.Object, "spec", "template", "metadata", "annotations", "owner"); got != "team-a" {
			t.Errorf("pod template annotation owner = %q, want team-a", got)
		}
	})
}

func TestOverlayReplicas(t *testing.T) {
	forEachKind(t, &Overlay{Replicas: []Replica{{Name: "web", Count: 4}}}, func(t *testing.T, objs []*unstructured.Unstructured) {
		if n, _, _ := unstructured.NestedInt64(findObj(t, objs, "Deployment", "web").Object, "spec", "replicas"); n != 4 {
			t.Errorf("replicas = %d, want 4", n)
		}
	})
}

// TestOverlayKeepsOrderAndDefaults checks that the overlay keeps the
// render's order (CRDs before their objects) and leaves the App's
// destination namespace to fill in namespaces the overlay does not set.
func TestOverlayKeepsOrderAndDefaults(t *testing.T) {
	root := overlayRepo(t)
	for _, kind := range overlayKinds {
		t.Run(kind, func(t *testing.T) {
			opts := Options{Path: kind, Namespace: "dest"}
			if kind == "chart" {
				opts.Helm = &HelmOptions{ReleaseName: "web"}
			}
			plain := ids(mustRender(t, &Renderer{}, root, opts).Objects())
			opts.Overlay = &Overlay{Annotations: map[string]string{"a": "b"}}
			got := ids(mustRender(t, &Renderer{}, root, opts).Objects())
			if !slices.Equal(got, plain) {
				t.Errorf("with an overlay:\n  %v\nwithout:\n  %v", got, plain)
			}
		})
	}
}

func TestOverlayErrors(t *testing.T) {
	root := overlayRepo(t)
	for _, tc := range []struct {
		name string
		ov   *Overlay
		want []string
	}{
		{"missing component", &Overlay{Components: []string{"../components/nope"}},
			[]string{"spec.kustomize.components[0]", "components/nope", "no kustomization.yaml"}},
		{"component outside the artifact", &Overlay{Components: []string{"../../elsewhere"}},
			[]string{"spec.kustomize.components[0]", "outside the source artifact"}},
		{"missing patch file", &Overlay{Patches: []Patch{{Patch: "- {op: add, path: /x, value: 1}", Target: &PatchTarget{Kind: "Service"}}, {Path: "nope.yaml"}}},
			[]string{"spec.kustomize.patches[1].path", "plain/nope.yaml does not exist"}},
		{"patch of nothing", &Overlay{Patches: []Patch{{Patch: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: absent}\n"}}},
			[]string{"kustomize overlay (spec.kustomize)", "absent"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := renderErr(t, &Renderer{}, root, Options{Path: "plain", Overlay: tc.ov})
			wantErrContains(t, err, tc.want...)
		})
	}
}

// TestOverlayReadSet: the component and patch files an overlay reads are
// among the files the render read, so a commit changing them re-renders
// the App (Cache.RenderChange).
func TestOverlayReadSet(t *testing.T) {
	root := overlayRepo(t)
	res := mustRender(t, &Renderer{}, root, Options{Path: "plain", Overlay: &Overlay{
		Components: []string{"../components/extra"},
		Patches:    []Patch{{Path: "../patches/replicas.yaml"}},
	}})
	for _, want := range []string{"components/extra/kustomization.yaml", "components/extra/extra.yaml", "patches/replicas.yaml"} {
		if !slices.Contains(res.Files, want) {
			t.Errorf("read set %v lacks %s", res.Files, want)
		}
	}
	if !Affected(res.Files, []string{"patches/replicas.yaml"}) {
		t.Errorf("a change to the patch file does not affect the App")
	}
}
