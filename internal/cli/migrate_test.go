package cli

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
)

// argoApplication is an Argo CD Application of path in repo, deploying
// into ns with a kustomize namePrefix and labels, as teams write them, in
// Argo CD's default project (inProject moves it to another).
func argoApplication(name, repo, path, ns string) string {
	return fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: %[1]s
  namespace: argocd
  finalizers: [resources-finalizer.argocd.argoproj.io]
spec:
  project: default
  source:
    repoURL: %[2]s
    targetRevision: main
    path: %[3]s
    kustomize:
      namePrefix: %[1]s-
      commonLabels: {converted: from-argocd}
  destination:
    server: https://kubernetes.default.svc
    namespace: %[4]s
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true, ServerSideApply=true]
`, name, repo, path, ns)
}

// inProject moves an argoApplication into an AppProject.
func inProject(app, project string) string {
	return strings.Replace(app, "project: default", "project: "+project, 1)
}

// An app-of-apps directory of Argo CD Applications converts to tend Apps
// and one shared Source that a running controller syncs: the objects come
// out as Argo CD would have applied them.
func TestMigrateArgoCDApplicationsRunUnderTheController(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	repo := testenv.NewGitRepo(t, nil)
	rev := repo.Commit("apps", map[string]string{
		"apps/web/cm.yaml": configMapYAML("settings", "web"),
		"apps/api/cm.yaml": configMapYAML("settings", "api"),
	})
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"argocd/web.yaml": inProject(argoApplication("web", repo.URL, "apps/web", ns), "platform"),
		"argocd/api.yaml": inProject(argoApplication("api", repo.URL, "apps/api", ns), "platform"),
		"argocd/project.yaml": "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: platform, namespace: argocd}\n" +
			"spec:\n  sourceRepos: ['*']\n  destinations: [{server: 'https://kubernetes.default.svc', namespace: '*'}]\n" +
			"  roles: [{name: ci, policies: ['p, proj:platform:ci, applications, sync, platform/*, allow']}]\n",
		"argocd/notes.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n",
		"argocd/README.md":  "not YAML at all: {",
	})

	code, out, stderr := runIn(t, time.Minute, "migrate", "--app-namespace", ns, dir+"/argocd")
	if code != ExitOK {
		t.Fatalf("migrate: exit %d: %s", code, stderr)
	}
	if want := "AppProject argocd/platform: spec.roles: Argo CD's API roles and tokens have no use under tend"; !strings.Contains(stderr, want) {
		t.Errorf("migrate warnings lack %q:\n%s", want, stderr)
	}
	objs := objectsOf(t, out)
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind()+" "+o.GetNamespace())
	}
	if want := []string{"Project " + ns, "Source " + ns, "App " + ns, "App " + ns}; strings.Join(kinds, ",") != strings.Join(want, ",") {
		t.Fatalf("converted %v, want %v:\n%s", kinds, want, out)
	}

	ctx := context.Background()
	for _, o := range objs {
		if err := cl.c.Create(ctx, o); err != nil {
			t.Fatalf("create %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	cl.startController(t)
	for _, app := range []string{"web", "api"} {
		name := app + "-settings"
		eventually(t, "ConfigMap "+name+" applied by the converted App "+app, 2*time.Minute, func() bool {
			cm, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
			return err == nil && cm.Data["value"] == app && cm.Labels["converted"] == "from-argocd"
		})
	}
	eventually(t, "tend status exits 0 with both Apps at "+shortRev(rev), time.Minute, func() bool {
		code, out, _ = cl.tend(t, "status")
		return code == ExitOK && strings.Contains(out, "web") && strings.Contains(out, "api") && strings.Contains(out, shortRev(rev))
	})

	// The Project, from the AppProject, holds the Apps: once it allows no
	// ConfigMaps, tend render refuses web as the controller would.
	var p tendv1.Project
	if err := cl.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "platform"}, &p); err != nil {
		t.Fatal(err)
	}
	p.Spec.NamespacedResources.Deny = []tendv1.GroupKindPattern{{Kind: "ConfigMap"}}
	if err := cl.c.Update(ctx, &p); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = cl.tend(t, "render", "web")
	if want := "ConfigMap " + ns + "/web-settings: the kind ConfigMap is not allowed by spec.namespacedResources"; code != ExitUsage || !strings.Contains(stderr, want) {
		t.Errorf("tend render web with the Project denying ConfigMaps: exit %d, stderr %q; want 2 and %q", code, stderr, want)
	}
}

// What tend cannot honour is listed with every field named; such an object
// is left out and tend migrate exits 1, while what converts is printed.
func TestMigrateListsWhatItCannotConvert(t *testing.T) {
	bad := strings.Replace(argoApplication("web", "https://git.example.com/r.git", "apps/web", "web"),
		"    kustomize:\n", "    directory: {include: \"{*.yaml\"}\n    kustomize:\n      forceCommonLabels: true\n", 1)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"web.yaml":  bad,
		"typo.yaml": strings.Replace(bad, "targetRevision", "targetRevison", 1),
		"good.yaml": argoApplication("good", "https://git.example.com/r.git", "apps/good", "good"),
	})
	code, out, stderr := runIn(t, time.Minute, "migrate", dir)
	if objs := objectsOf(t, out); code != ExitDiff || len(objs) != 2 || objs[1].GetName() != "good" {
		t.Fatalf("exit %d, output:\n%s\nwant 1 and the Source and App of good only", code, out)
	}
	for _, want := range []string{
		"not converted: " + dir + "/web.yaml: converting Argo CD Application argocd/web",
		"spec.source.directory.include",
		"spec.source.kustomize.forceCommonLabels",
		"typo.yaml",
		"targetRevison",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	// kubectl's List output converts item by item, from standard input.
	list := "apiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(strings.TrimSpace(argoApplication("web", "https://git.example.com/r.git", "apps/web", "web")), "\n", "\n  ") + "\n"
	m := &Main{Stdout: new(strings.Builder), Stderr: new(strings.Builder), Stdin: strings.NewReader(list)}
	if code := m.Run(context.Background(), []string{"migrate", "-"}); code != ExitOK || !strings.Contains(m.Stdout.(*strings.Builder).String(), "name: web") {
		t.Errorf("a List on stdin: exit %d: %s\n%s", code, m.Stderr, m.Stdout)
	}
}

// A Flux repository's GitRepository and Kustomizations (dependsOn,
// targetNamespace, commonMetadata) convert to a Source and Apps of the same
// names that a running controller syncs.
func TestMigrateFluxKustomizationsRunUnderTheController(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	repo := testenv.NewGitRepo(t, nil)
	rev := repo.Commit("fleet", map[string]string{
		"infra/cm.yaml":               configMapYAML("infra", "1"),
		"apps/production/cm.yaml":     configMapYAML("shop", "2"),
		"apps/production/deep/x.yaml": configMapYAML("deep", "3"),
	})
	flux := fmt.Sprintf(`apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: fleet, namespace: %[1]s}
spec: {interval: 1m, url: %[2]s, ref: {branch: main}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: infra, namespace: %[1]s}
spec: {interval: 10m, path: ./infra, prune: true, sourceRef: {kind: GitRepository, name: fleet}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: apps, namespace: %[1]s}
spec:
  interval: 10m
  path: ./apps/production
  prune: true
  targetNamespace: %[1]s
  dependsOn: [{name: infra}]
  commonMetadata: {labels: {converted: from-flux}}
  sourceRef: {kind: GitRepository, name: fleet}
---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {name: github, namespace: %[1]s}
spec: {type: github, resources: [{kind: GitRepository, name: fleet}], secretRef: {name: token}}
`, ns, repo.URL)
	m := &Main{Stdout: new(strings.Builder), Stderr: new(strings.Builder), Stdin: strings.NewReader(flux)}
	if code := m.Run(context.Background(), []string{"migrate", "-"}); code != ExitOK {
		t.Fatalf("migrate: exit %d: %s", code, m.Stderr)
	}
	out, stderr := m.Stdout.(*strings.Builder).String(), m.Stderr.(*strings.Builder).String()
	if !strings.Contains(stderr, "Receiver is not converted") {
		t.Errorf("stderr lacks the skipped Receiver:\n%s", stderr)
	}
	objs := objectsOf(t, out)
	var names []string
	for _, o := range objs {
		names = append(names, o.GetKind()+" "+o.GetName())
	}
	if want := "Source fleet,App apps,App infra"; strings.Join(names, ",") != want {
		t.Fatalf("converted %v, want %s:\n%s", names, want, out)
	}
	ctx := context.Background()
	for _, o := range objs {
		if err := cl.c.Create(ctx, o); err != nil {
			t.Fatalf("create %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	cl.startController(t)
	for name, value := range map[string]string{"infra": "1", "shop": "2", "deep": "3"} {
		eventually(t, "ConfigMap "+name+" applied", 2*time.Minute, func() bool {
			cm, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
			return err == nil && cm.Data["value"] == value && (name == "infra" || cm.Labels["converted"] == "from-flux")
		})
	}
	eventually(t, "tend status exits 0 with both Apps at "+shortRev(rev), time.Minute, func() bool {
		code, out, _ := cl.tend(t, "status")
		return code == ExitOK && strings.Contains(out, "infra") && strings.Contains(out, "apps") && strings.Contains(out, shortRev(rev))
	})
}

// An Argo CD repository Secret in the input is matched to the Application's
// repository URL and named by the Source as it is: the controller fetches
// the private repository with it. Its values are not printed.
func TestMigrateUsesArgoCDRepositorySecrets(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	repo := testenv.NewGitRepo(t, nil, testenv.GitBasicAuth("deploy", "s3cret-token"))
	repo.Commit("apps", map[string]string{"apps/web/cm.yaml": configMapYAML("settings", "private")})
	repoSecret := fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: repo-private
  namespace: %s
  labels: {argocd.argoproj.io/secret-type: repository}
stringData: {type: git, url: %s, username: deploy, password: s3cret-token}
`, ns, repo.URL)
	other := `apiVersion: v1
kind: Secret
metadata:
  name: creds-elsewhere
  namespace: argocd
  labels: {argocd.argoproj.io/secret-type: repo-creds}
stringData: {url: https://git.example.com/, username: x, password: "y"}
`
	app := strings.Replace(argoApplication("web", repo.URL+"/", "apps/web", ns), "namespace: argocd", "namespace: "+ns, 1)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"secrets.yaml": repoSecret + "---\n" + other, "web.yaml": app})
	code, out, stderr := runIn(t, time.Minute, "migrate", dir)
	if code != ExitOK {
		t.Fatalf("migrate: exit %d: %s", code, stderr)
	}
	if strings.Contains(out, "s3cret-token") || strings.Contains(stderr, "s3cret-token") {
		t.Fatalf("a Secret's value was printed:\n%s\n%s", out, stderr)
	}
	objs := objectsOf(t, out)
	if len(objs) != 2 || !strings.Contains(out, "secretRef:\n      name: repo-private") {
		t.Fatalf("migrate output lacks the Source's secretRef to repo-private:\n%s", out)
	}
	ctx := context.Background()
	for _, o := range append(objectsOf(t, repoSecret), objs...) {
		if err := cl.c.Create(ctx, o); err != nil {
			t.Fatalf("create %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	cl.startController(t)
	eventually(t, "ConfigMap web-settings applied from the private repository", 2*time.Minute, func() bool {
		cm, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "web-settings", metav1.GetOptions{})
		return err == nil && cm.Data["value"] == "private"
	})
}

// An Argo CD cluster Secret in the input becomes a Cluster that reads it as
// it is, and the Application whose destination names its server deploys
// through it.
func TestMigrateUsesArgoCDClusterSecrets(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	raw, err := os.ReadFile(cl.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	secret := testenv.ArgoCDClusterSecret(t, raw, "cluster-staging", "staging")
	secret.Namespace = ns
	secretYAML, err := yaml.Marshal(secret)
	if err != nil {
		t.Fatal(err)
	}
	repo := testenv.NewGitRepo(t, nil)
	repo.Commit("apps", map[string]string{"apps/web/cm.yaml": configMapYAML("settings", "staging")})
	app := strings.Replace(argoApplication("web", repo.URL, "apps/web", ns), "namespace: argocd", "namespace: "+ns, 1)
	app = strings.Replace(app, "server: https://kubernetes.default.svc", "name: staging", 1)
	m := &Main{Stdout: new(strings.Builder), Stderr: new(strings.Builder), Stdin: strings.NewReader(string(secretYAML) + "---\n" + app)}
	if code := m.Run(context.Background(), []string{"migrate", "-"}); code != ExitOK {
		t.Fatalf("migrate: exit %d: %s", code, m.Stderr)
	}
	out := m.Stdout.(*strings.Builder).String()
	if strings.Contains(out, base64.StdEncoding.EncodeToString(secret.Data["config"])) || strings.Contains(out, "keyData") {
		t.Fatalf("a Secret's value was printed:\n%s", out)
	}
	objs := objectsOf(t, out)
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind()+" "+o.GetName())
	}
	if want := "Cluster cluster-staging,Source " + objs[1].GetName() + ",App web"; strings.Join(kinds, ",") != want || !strings.Contains(out, "clusterRef:\n      name: cluster-staging") {
		t.Fatalf("migrate printed %v, want %s with the App's clusterRef:\n%s", kinds, want, out)
	}
	ctx := context.Background()
	if err := cl.c.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if err := cl.c.Create(ctx, o); err != nil {
			t.Fatalf("create %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	cl.startController(t)
	eventually(t, "ConfigMap web-settings applied through the Cluster", 2*time.Minute, func() bool {
		cm, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "web-settings", metav1.GetOptions{})
		return err == nil && cm.Data["value"] == "staging"
	})
}

// An ApplicationSet over a repository's directories becomes an AppSet whose
// Apps a running controller generates and syncs.
func TestMigrateArgoCDApplicationSet(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	repo := testenv.NewGitRepo(t, nil)
	repo.Commit("apps", map[string]string{
		"apps/api/cm.yaml":    configMapYAML("api-settings", "api"),
		"apps/worker/cm.yaml": configMapYAML("worker-settings", "worker"),
		"apps/legacy/cm.yaml": configMapYAML("legacy-settings", "legacy"),
	})
	set := fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: apps, namespace: %[1]s}
spec:
  generators:
  - git:
      repoURL: %[2]s
      revision: main
      directories: [{path: "apps/*"}, {path: apps/legacy, exclude: true}]
  template:
    metadata: {name: "{{path.basename}}"}
    spec:
      project: default
      source: {repoURL: %[2]s, targetRevision: main, path: "{{path}}"}
      destination: {server: https://kubernetes.default.svc, namespace: %[1]s}
      syncPolicy: {automated: {prune: true}}
`, ns, repo.URL)
	m := &Main{Stdout: new(strings.Builder), Stderr: new(strings.Builder), Stdin: strings.NewReader(set)}
	if code := m.Run(context.Background(), []string{"migrate", "-"}); code != ExitOK {
		t.Fatalf("migrate: exit %d: %s", code, m.Stderr)
	}
	out := m.Stdout.(*strings.Builder).String()
	objs := objectsOf(t, out)
	if len(objs) != 2 || objs[0].GetKind() != "Source" || objs[1].GetKind() != "AppSet" {
		t.Fatalf("migrate printed:\n%s\nwant a Source and an AppSet", out)
	}
	ctx := context.Background()
	for _, o := range objs {
		if err := cl.c.Create(ctx, o); err != nil {
			t.Fatalf("create %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	cl.startController(t)
	// Before the controller's cleanup deletes the Apps (cleanups run last
	// first): the AppSet would generate them again.
	t.Cleanup(func() {
		for _, o := range objs {
			if o.GetKind() == "AppSet" {
				_ = cl.c.Delete(context.Background(), o)
			}
		}
	})
	for _, name := range []string{"api", "worker"} {
		eventually(t, "ConfigMap "+name+"-settings applied by the generated App "+name, 2*time.Minute, func() bool {
			cm, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, name+"-settings", metav1.GetOptions{})
			return err == nil && cm.Data["value"] == name
		})
	}
	var apps tendv1.AppList
	if err := cl.c.List(ctx, &apps, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range apps.Items {
		names = append(names, a.Name)
	}
	if slices.Sort(names); strings.Join(names, ",") != "api,worker" {
		t.Errorf("generated Apps %v, want api,worker (legacy excluded)", names)
	}
}

// A Flux Alert and its Provider, in separate files, print as one Notifier
// named as the Alert.
func TestMigrateFluxAlert(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"alert.yaml": `apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {name: on-call, namespace: flux-system}
spec:
  providerRef: {name: discord}
  eventSeverity: error
  eventSources: [{kind: Kustomization, name: "*"}]
`,
		"provider.yaml": `apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {name: discord, namespace: flux-system}
spec: {type: discord, secretRef: {name: discord-webhook}}
`,
	})
	code, out, stderr := runIn(t, time.Minute, "migrate", dir)
	objs := objectsOf(t, out)
	if code != ExitOK || len(objs) != 1 || objs[0].GetKind() != "Notifier" || objs[0].GetName() != "on-call" {
		t.Fatalf("exit %d, output:\n%s\nstderr:\n%s\nwant Notifier on-call", code, out, stderr)
	}
	spec, _, _ := unstructured.NestedMap(objs[0].Object, "spec")
	if spec["provider"] != "discord" || spec["severity"] != "error" || spec["secretRef"].(map[string]any)["name"] != "discord-webhook" {
		t.Errorf("Notifier spec %v", spec)
	}
}
