package cli

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
)

const plainSecretYAML = `apiVersion: v1
kind: Secret
metadata: {name: db}
stringData: {password: hunter2}
data: {user: YWRtaW4=}
`

// objectsOf parses YAML documents.
func objectsOf(t *testing.T, out string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, doc := range strings.Split(out, "---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("not YAML: %v\n%s", err, doc)
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	return objs
}

func TestRenderPlainDirectoryMasksSecrets(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"cm.yaml":     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: fast}\n",
		"secret.yaml": plainSecretYAML,
		"sub/x.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: nested}\n",
	})
	code, out, stderr := run(t, "render", dir, "-n", "team")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	objs := objectsOf(t, out)
	if len(objs) != 2 {
		t.Fatalf("rendered %d objects, want 2 (no --recursive):\n%s", len(objs), out)
	}
	for _, o := range objs {
		if o.GetNamespace() != "team" {
			t.Errorf("%s %s: namespace %q, want team", o.GetKind(), o.GetName(), o.GetNamespace())
		}
	}
	if strings.Contains(out, "hunter2") || strings.Contains(out, "YWRtaW4=") {
		t.Fatalf("secret value printed:\n%s", out)
	}
	if strings.Count(out, MaskedValue) != 2 {
		t.Fatalf("want both Secret values masked:\n%s", out)
	}

	code, out, _ = run(t, "render", dir, "--show-secrets", "--recursive")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out, "hunter2") || !strings.Contains(out, "YWRtaW4=") {
		t.Fatalf("--show-secrets hid values:\n%s", out)
	}
	if !strings.Contains(out, "name: nested") {
		t.Fatalf("--recursive left out sub/:\n%s", out)
	}
}

// A kustomization may use bases elsewhere in its repository: the artifact
// root is the git work tree, not the directory rendered.
func TestRenderKustomizeInRepository(t *testing.T) {
	repo := t.TempDir()
	if err := os.Mkdir(filepath.Join(repo, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, repo, map[string]string{
		"base/kustomization.yaml":          "resources: [cm.yaml]\n",
		"base/cm.yaml":                     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: slow}\n",
		"clusters/home/kustomization.yaml": "resources: [../../base]\nnamePrefix: home-\npatches:\n- patch: '[{\"op\": \"replace\", \"path\": \"/data/mode\", \"value\": \"fast\"}]'\n  target: {kind: ConfigMap}\n",
	})
	code, out, stderr := run(t, "render", filepath.Join(repo, "clusters", "home"), "-o", "json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var list struct {
		Items []map[string]any `json:"items"`
	}
	if err := yaml.Unmarshal([]byte(out), &list); err != nil || len(list.Items) != 1 {
		t.Fatalf("want a List of 1: %v\n%s", err, out)
	}
	o := unstructured.Unstructured{Object: list.Items[0]}
	mode, _, _ := unstructured.NestedString(o.Object, "data", "mode")
	if o.GetName() != "home-settings" || mode != "fast" {
		t.Fatalf("got %s with mode %q", o.GetName(), mode)
	}
}

func TestRenderErrors(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n"})
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"render", "./no/such/dir"}, "no directory ./no/such/dir"},
		{[]string{"render", dir}, "bad.yaml"},
		{[]string{"render", dir, "-o", "table"}, `--output "table": want yaml, json`},
		{[]string{"render", dir, "--revision", "main"}, "--revision applies to an App"},
		{[]string{"render", dir, "--age-key-file", filepath.Join(dir, "missing.key")}, "age key file"},
	} {
		code, _, stderr := run(t, c.args...)
		if code != ExitUsage {
			t.Errorf("%v: exit %d, want %d", c.args, code, ExitUsage)
		}
		if !strings.Contains(stderr, c.want) {
			t.Errorf("%v: stderr %q lacks %q", c.args, stderr, c.want)
		}
	}
}

func TestRenderChartDirectoryWithValues(t *testing.T) {
	repo := t.TempDir()
	if err := os.Mkdir(filepath.Join(repo, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, repo, map[string]string{
		"charts/web/Chart.yaml":          "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"charts/web/values.yaml":         "mode: default\nsize: small\ncolour: blue\n",
		"charts/web/templates/cm.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}-settings}\ndata: {mode: {{ .Values.mode }}, size: {{ .Values.size }}, colour: {{ .Values.colour }}}\n",
		"env/prod.yaml":                  "mode: prod\nsize: large\n",
		"charts/web/templates/NOTES.txt": "hello\n",
	})
	outside := filepath.Join(t.TempDir(), "mine.yaml")
	if err := os.WriteFile(outside, []byte("size: huge\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run(t, "render", filepath.Join(repo, "charts", "web"), "--helm-release", "shop", "-n", "team",
		"-f", filepath.Join(repo, "env", "prod.yaml"), "-f", outside)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	objs := objectsOf(t, out)
	if len(objs) != 1 {
		t.Fatalf("want one ConfigMap:\n%s", out)
	}
	data, _, _ := unstructured.NestedStringMap(objs[0].Object, "data")
	if objs[0].GetName() != "shop-settings" || objs[0].GetNamespace() != "team" || data["mode"] != "prod" || data["size"] != "huge" || data["colour"] != "blue" {
		t.Fatalf("got %s/%s %v", objs[0].GetNamespace(), objs[0].GetName(), data)
	}
}

// TestRenderAppKustomizeOverlay: `tend render APP` applies the App's
// spec.kustomize overlay exactly as the controller does (both take the
// render options from appspec): what it prints is what the controller
// applied.
func TestRenderAppKustomizeOverlay(t *testing.T) {
	cl := newCluster(t)
	other := testenv.New(t).Namespace
	cl.startController(t)
	repo := testenv.NewGitRepo(t, nil)
	rev := repo.Commit("web", map[string]string{
		"apps/web/deploy.yaml": webDeploymentYAML,
		"apps/web/cfg.yaml":    tunedConfigMapYAML,
	})
	cl.createSource(t, "repo", repo.URL, nil)
	cl.createSyncApp(t, "web", "apps/web", func(a *tendv1.App) {
		a.Spec.Kustomize = &tendv1.KustomizeSpec{
			NamePrefix:   "prod-",
			Namespace:    other,
			Images:       []tendv1.KustomizeImage{{Name: "web", NewTag: "2"}},
			Patches:      []tendv1.KustomizePatch{{Patch: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, labels: {patched: \"yes\"}}\n"}},
			CommonLabels: map[string]string{"team": "a"},
		}
	})
	cl.waitApp(t, "web", "synced at "+rev, func(a *tendv1.App) bool { return a.Status.Sync == tendv1.SyncSynced && a.Status.Revision == rev })

	code, out, stderr := cl.tend(t, "render", "web")
	if code != ExitOK {
		t.Fatalf("render: exit %d: %s", code, stderr)
	}
	objs := objectsOf(t, out)
	var got []string
	for _, o := range objs {
		got = append(got, o.GetKind()+" "+o.GetNamespace()+"/"+o.GetName())
	}
	if want := []string{"ConfigMap " + other + "/prod-cfg", "Deployment " + other + "/prod-web"}; !slices.Equal(got, want) {
		t.Fatalf("render printed %v, want %v", got, want)
	}
	ctx := context.Background()
	live, err := cl.Clientset.AppsV1().Deployments(other).Get(ctx, "prod-web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rendered := objs[1]
	containers, _, _ := unstructured.NestedSlice(rendered.Object, "spec", "template", "spec", "containers")
	image := containers[0].(map[string]any)["image"]
	if image != "web:2" || live.Spec.Template.Spec.Containers[0].Image != image {
		t.Errorf("image: rendered %v, live %s; want web:2 in both", image, live.Spec.Template.Spec.Containers[0].Image)
	}
	for _, k := range []string{"patched", "team"} {
		if rendered.GetLabels()[k] == "" || rendered.GetLabels()[k] != live.Labels[k] {
			t.Errorf("label %s: rendered %q, live %q", k, rendered.GetLabels()[k], live.Labels[k])
		}
	}
	if _, err := cl.Clientset.CoreV1().ConfigMaps(other).Get(ctx, "prod-cfg", metav1.GetOptions{}); err != nil {
		t.Errorf("live ConfigMap prod-cfg: %v", err)
	}
}
