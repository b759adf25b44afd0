package example_test

import (
	"context"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/install"
	"github.com/tend-gitops/tend/internal/testenv"
	"github.com/tend-gitops/tend/internal/testenv/platform"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var (
	// The CRD the example's gateway-api App owns.
	exampleCRDs = []string{"httproutes.gateway.networking.k8s.io"}
	// The root App, the one App of platform/, and the AppSet's, one per
	// directory of apps/.
	apps    = []string{"platform", "gateway-api", "tend", "miniflux"}
	appSets = []string{"miniflux", "tend"}
)

const (
	rootFile      = "clusters/k8s-235/root.yaml"
	platformFile  = "clusters/k8s-235/platform/platform.yaml"
	notifiersFile = "clusters/k8s-235/platform/notifiers.yaml"
	tendInstall   = "apps/tend/base/install.yaml"
	tendProd      = "apps/tend/overlays/prod/kustomization.yaml"
	minifluxBase  = "apps/miniflux/base/kustomization.yaml"
	minifluxProd  = "apps/miniflux/overlays/prod/kustomization.yaml"

	repoURL = "https://gitlab.k8s-235.example.org/ops/k8s-235.git"
	// What the SOPS files hold, encrypted for demo.asc.
	webhookToken = "demo-only-gitlab-webhook-token"
	databaseURL  = "postgres://miniflux:demo-only-db-password@postgres.databases.svc:5432/miniflux?sslmode=require"
	oauthSecret  = "demo-only-gitlab-oauth-client-secret"
)

// TestKustomizeSelfManaged runs the k8s-235 platform of seed 004 from a git
// server: tend, installed once by hand, manages everything in apps/ through
// an AppSet, itself included; kustomize overlays and a component shape the
// apps; secrets are SOPS-encrypted for an OpenPGP key; a GitLab push
// webhook syncs within seconds although the Source polls hourly; Discord
// and Matrix hear about every sync and failure.
func TestKustomizeSelfManaged(t *testing.T) {
	start := time.Now()
	e := setup(t)
	chat := newChats(t)

	// The example as its git repository, changed only where this cluster
	// differs: the repository's URL, the chat server, and one namespace
	// (the test's) for everything.
	repo := testenv.NewGitRepo(t, nil)
	files := testenv.DirFiles(t, ".")
	ns := e.Namespace
	files[rootFile] = platform.ReplaceAll(t, files[rootFile], repoURL, repo.URL, "namespace: tend-system", "namespace: "+ns)
	files[platformFile] = platform.ReplaceAll(t, files[platformFile], repoURL, repo.URL)
	files[notifiersFile] = platform.ReplaceAll(t, files[notifiersFile], "https://matrix.k8s-235.example.org", chat.matrix.URL)
	files[tendInstall] = testInstall(t, ns)
	files[tendProd] = platform.ReplaceAll(t, files[tendProd], "namespace: tend-system", "namespace: "+ns)
	files[minifluxBase] = platform.ReplaceAll(t, files[minifluxBase], "- namespace.yaml\n", "")
	files[minifluxProd] = platform.ReplaceAll(t, files[minifluxProd], "namespace: miniflux", "namespace: "+ns)
	first := repo.Commit("k8s-235 platform", files)

	// What the README has you create by hand: the decryption key and the
	// chats' credentials. Then root.yaml.
	key, err := os.ReadFile("demo.asc")
	if err != nil {
		t.Fatal(err)
	}
	e.create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sops-gpg"}, Data: map[string][]byte{"sops.asc": key}})
	e.create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "discord-webhook"}, StringData: map[string]string{"address": chat.discord.URL + discordPath}})
	e.create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "matrix-bot"}, StringData: map[string]string{"token": matrixToken}})
	gw := e.playGateway(t)
	e.applyRoot(t, files[rootFile])

	e.waitAppsAt(t, first)
	t.Logf("every App Synced and Healthy at %s after %s", first[:8], time.Since(start).Round(time.Millisecond))
	e.checkSynced(t, first)
	e.checkOverlay(t, 2)
	e.checkSecrets(t, files)
	e.checkSelfManaged(t)
	e.healthFollowsGateway(t, gw, chat)
	e.webhookSyncs(t, repo, files, chat)
	t.Logf("whole test %s", time.Since(start).Round(time.Millisecond))
}

// TestInstallIsCurrent: apps/tend/base/install.yaml is what this version
// of tend generates, so the example installs the tend it is tested with.
func TestInstallIsCurrent(t *testing.T) {
	want, err := install.Render(install.Options{ClusterAdmin: true})
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile(tendInstall)
	if err != nil {
		t.Fatal(err)
	}
	if string(have) != string(want) {
		t.Errorf("%s is stale: run go run ./internal/install/gen -stdout -cluster-admin > examples/kustomize-selfmanaged/%s", tendInstall, tendInstall)
	}
}

// checkSynced: the Source fetched the commit from the git server, and the
// AppSet generated one App per directory of apps/, each rendering its
// prod overlay.
func (e *env) checkSynced(t *testing.T, rev string) {
	t.Helper()
	if src := e.source(t); src.Status.Artifact == nil || src.Status.Artifact.Revision != rev {
		t.Errorf("Source platform has artifact %+v, want revision %s", src.Status.Artifact, rev)
	}
	var set tendv1.AppSet
	e.get(t, &set, "apps")
	if !slices.Equal(set.Status.Apps, appSets) {
		t.Errorf("AppSet apps generated %v, want %v", set.Status.Apps, appSets)
	}
	for _, name := range appSets {
		var a tendv1.App
		e.get(t, &a, name)
		if a.Spec.Path != "apps/"+name+"/overlays/prod" || a.Labels["tend.dev/appset"] != "apps" || !metav1.IsControlledBy(&a, &set) {
			t.Errorf("App %s: path %q, labels %v: not generated by AppSet apps for apps/%s", name, a.Spec.Path, a.Labels, name)
		}
	}
}

// checkOverlay: what the prod overlay and the component add to the base.
func (e *env) checkOverlay(t *testing.T, replicas int32) {
	t.Helper()
	var d appsv1.Deployment
	e.get(t, &d, "miniflux")
	if d.Spec.Replicas == nil || *d.Spec.Replicas != replicas || d.Status.AvailableReplicas != replicas {
		t.Errorf("Deployment miniflux: replicas %v, %d available; want the prod overlay's %d", d.Spec.Replicas, d.Status.AvailableReplicas, replicas)
	}
	if l := d.Spec.Template.Labels; l["environment"] != "prod" || l["app.kubernetes.io/name"] != "miniflux" {
		t.Errorf("miniflux pods are labelled %v, want the base's app.kubernetes.io/name and the overlay's environment=prod", l)
	}
	if d.Spec.Selector.MatchLabels["environment"] != "" {
		t.Errorf("the overlay's label got into the selector %v, which would break upgrades", d.Spec.Selector.MatchLabels)
	}
	// The config map the base generates, merged with the overlay's values
	// and renamed by its content hash.
	var cmName string
	for _, ef := range d.Spec.Template.Spec.Containers[0].EnvFrom {
		if ef.ConfigMapRef != nil {
			cmName = ef.ConfigMapRef.Name
		}
	}
	if !strings.HasPrefix(cmName, "miniflux-config-") {
		t.Fatalf("Deployment miniflux reads config map %q, want the generated miniflux-config-<hash>", cmName)
	}
	var cm corev1.ConfigMap
	e.get(t, &cm, cmName)
	for k, v := range map[string]string{"LOG_LEVEL": "info", "BASE_URL": "https://rss.k8s-235.example.org", "OAUTH2_PROVIDER": "oidc", "RUN_MIGRATIONS": "1", "LISTEN_ADDR": "0.0.0.0:8080"} {
		if cm.Data[k] != v {
			t.Errorf("ConfigMap %s: %s=%q, want %q", cmName, k, cm.Data[k], v)
		}
	}
	// The component's HTTPRoute, its backend filled in by the component's
	// replacement and its hostname by the overlay.
	route, err := e.dyn.Resource(httpRoutes).Namespace(e.Namespace).Get(context.Background(), "public", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the component's HTTPRoute public: %v", err)
	}
	hosts, _, _ := unstructured.NestedStringSlice(route.Object, "spec", "hostnames")
	rules, _, _ := unstructured.NestedSlice(route.Object, "spec", "rules")
	var backend any
	if len(rules) == 1 {
		backends, _, _ := unstructured.NestedSlice(rules[0].(map[string]any), "backendRefs")
		if len(backends) == 1 {
			backend = backends[0].(map[string]any)["name"]
		}
	}
	if !slices.Equal(hosts, []string{"rss.k8s-235.example.org"}) || backend != "miniflux" {
		t.Errorf("HTTPRoute public: hostnames %v, backend %v; want the overlay's hostname and the Service miniflux", hosts, backend)
	}
	for _, o := range []metav1.Object{&d, &cm, route} {
		if owner := o.GetAnnotations()["tend.dev/owner"]; owner != e.Namespace+"/miniflux" {
			t.Errorf("%s is owned by %q, want App miniflux", o.GetName(), owner)
		}
	}
}

// checkSecrets: the SOPS files are encrypted in git and decrypted in the
// cluster, by tend, with the OpenPGP key.
func (e *env) checkSecrets(t *testing.T, files map[string]string) {
	t.Helper()
	for name, want := range map[string]map[string]string{
		"miniflux":     {"DATABASE_URL": databaseURL, "OAUTH2_CLIENT_SECRET": oauthSecret},
		"tend-webhook": {"gitlab": webhookToken},
	} {
		var s corev1.Secret
		e.get(t, &s, name)
		for k, v := range want {
			if got := string(s.Data[k]); got != v {
				t.Errorf("Secret %s: %s is %q, want the decrypted %q", name, k, got, v)
			}
		}
		if len(s.Data) != len(want) {
			t.Errorf("Secret %s has keys %v, want only %v (no SOPS metadata)", name, keys(s.Data), want)
		}
	}
	for _, f := range []string{"apps/miniflux/overlays/prod/secret.sops.yaml", "apps/tend/overlays/prod/webhook.sops.yaml"} {
		if c := files[f]; !strings.Contains(c, "ENC[AES256_GCM,") || strings.Contains(c, "demo-only-") || !strings.Contains(c, "fp: 3D81E3A5317AC73221F2096EE8452BCD4E458F0B") {
			t.Errorf("%s in git is not encrypted for the demo OpenPGP key", f)
		}
	}
}

// checkSelfManaged: the App tend, generated by the AppSet like any app,
// applied tend's own install (the controller Deployment, its
// ServiceAccount, its cluster-admin binding, the Service and the prod
// overlay's additions), marked so that it never prunes it, and did not
// adopt the CRDs the test harness installed.
func (e *env) checkSelfManaged(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	owned := func(kind string, o metav1.Object) {
		t.Helper()
		a := o.GetAnnotations()
		if a["tend.dev/owner"] != e.Namespace+"/tend" || a["tend.dev/prune"] != "disabled" {
			t.Errorf("%s %s: owner %q, prune %q; want App tend, never pruned", kind, o.GetName(), a["tend.dev/owner"], a["tend.dev/prune"])
		}
	}
	var d appsv1.Deployment
	e.get(t, &d, install.Name)
	owned("Deployment", &d)
	if d.Status.AvailableReplicas != 2 {
		t.Errorf("Deployment tend has %d available replicas, want 2", d.Status.AvailableReplicas)
	}
	args := d.Spec.Template.Spec.Containers[0].Args
	for _, want := range []string{"controller", "--leader-elect", "--leader-election-namespace=" + e.Namespace, "--log-json"} {
		if !slices.Contains(args, want) {
			t.Errorf("tend's controller runs with %v, missing %s", args, want)
		}
	}
	var sa corev1.ServiceAccount
	e.get(t, &sa, install.Name)
	owned("ServiceAccount", &sa)
	var svc corev1.Service
	e.get(t, &svc, install.Name)
	owned("Service", &svc)
	var crb rbacv1.ClusterRoleBinding
	if err := e.c.Get(ctx, client.ObjectKey{Name: install.ClusterName(e.Namespace) + "-cluster-admin"}, &crb); err != nil {
		t.Fatal(err)
	}
	owned("ClusterRoleBinding", &crb)
	if crb.RoleRef.Name != "cluster-admin" || len(crb.Subjects) != 1 || crb.Subjects[0].Namespace != e.Namespace {
		t.Errorf("ClusterRoleBinding %s: %+v %+v", crb.Name, crb.RoleRef, crb.Subjects)
	}
	route, err := e.dyn.Resource(httpRoutes).Namespace(e.Namespace).Get(ctx, "tend-webhook", metav1.GetOptions{})
	if err != nil || route.GetAnnotations()["tend.dev/owner"] != e.Namespace+"/tend" {
		t.Errorf("HTTPRoute tend-webhook of the prod overlay: %v, annotations %v", err, route)
	}
	for _, name := range []string{"apps.tend.dev", "appsets.tend.dev", "sources.tend.dev", "notifiers.tend.dev"} {
		crd, err := e.dyn.Resource(apiextv1.SchemeGroupVersion.WithResource("customresourcedefinitions")).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if owner := crd.GetAnnotations()["tend.dev/owner"]; owner == e.Namespace+"/tend" {
			t.Errorf("CRD %s was adopted by App tend, although the test left tend's CRDs out of its install", name)
		}
	}
}

// healthFollowsGateway: a route the gateway refuses degrades its App,
// with the gateway's message, and both chats hear of it and of the
// recovery.
func (e *env) healthFollowsGateway(t *testing.T, gw *gateway, chat *chats) {
	t.Helper()
	const refusal = "Gateway traefik/websecure: listener https does not allow routes from this namespace"
	gw.refuse("public", refusal)
	a := e.WaitApp(t, "miniflux", "Degraded", func(a *tendv1.App) bool { return a.Status.Health == "Degraded" })
	if msg := platform.ReadyMessage(a); !strings.Contains(msg, "refused by the gateway: "+refusal) {
		t.Errorf("Degraded App's Ready message %q does not give the gateway's reason", msg)
	}
	gw.refuse("public", "")
	e.WaitApp(t, "miniflux", "Healthy again", func(a *tendv1.App) bool { return a.Status.Health == "Healthy" })
	title := e.Namespace + "/miniflux: health degraded"
	for _, c := range []string{"discord", "matrix"} {
		p := chat.wait(t, c, title, func(p post) bool { return strings.HasSuffix(p.title, title) && strings.Contains(p.text, refusal) })
		if c == "discord" && p.colour != 0xE01E5A {
			t.Errorf("discord: %q has colour %06X, want red", p.title, p.colour)
		}
		chat.wait(t, c, "healthy again", func(p post) bool { return strings.HasSuffix(p.title, e.Namespace+"/miniflux: healthy again") })
	}
}

// webhookSyncs: a wrong token is refused; a GitLab push event with the
// token tend decrypted from git makes tend fetch and sync the commit at
// once, although the Source polls hourly; both chats get the sync, then a
// broken commit's failure and the fix.
func (e *env) webhookSyncs(t *testing.T, repo *testenv.GitRepo, files map[string]string, chat *chats) {
	t.Helper()
	if src := e.source(t); src.Spec.Interval.Duration != time.Hour {
		t.Fatalf("Source platform polls every %s; the test needs the example's 1h to show the webhook", src.Spec.Interval.Duration)
	}
	prod := files[minifluxProd]
	before := repo.Head()
	scaled := platform.ReplaceAll(t, prod, "value: 2\n", "value: 3\n")
	rev := repo.Commit("miniflux: 3 replicas", map[string]string{minifluxProd: scaled})

	requested := e.source(t).Annotations[controller.AnnotationRequestedAt]
	if status, resp := e.pushGitLab(t, repo.URL, before, rev, "miniflux: 3 replicas", "not-the-token"); status != http.StatusUnauthorized || len(resp.Sources) > 0 {
		t.Errorf("a push with a wrong token: HTTP %d %+v, want 401 and no Source", status, resp)
	}
	if src := e.source(t); src.Annotations[controller.AnnotationRequestedAt] != requested {
		t.Errorf("a push with a wrong token triggered a fetch")
	}

	// Measured from posting the push to the watch event of the changed
	// Deployment.
	w, err := e.Clientset.AppsV1().Deployments(e.Namespace).Watch(context.Background(), metav1.ListOptions{FieldSelector: "metadata.name=miniflux"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	pushed := time.Now()
	status, resp := e.pushGitLab(t, repo.URL, before, rev, "miniflux: 3 replicas", webhookToken)
	if status != http.StatusAccepted || !slices.Equal(resp.Sources, []string{e.Namespace + "/platform"}) {
		t.Fatalf("the push: HTTP %d %+v, want 202 triggering Source platform", status, resp)
	}
	timeout := time.After(time.Minute)
	for arrived := false; !arrived; {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("the watch of Deployment miniflux ended")
			}
			d, isDeployment := ev.Object.(*appsv1.Deployment)
			arrived = isDeployment && d.Spec.Replicas != nil && *d.Spec.Replicas == 3
		case <-timeout:
			t.Fatal("Deployment miniflux never got the 3 replicas pushed")
		}
	}
	took := time.Since(pushed)
	t.Logf("GitLab push webhook to 3 replicas in the cluster: %s (the Source polls every hour)", took.Round(time.Millisecond))
	if took >= 5*time.Second {
		t.Errorf("the push took %s to reach the cluster, want under 5s", took.Round(time.Millisecond))
	}
	e.waitAppsAt(t, rev)
	e.checkOverlay(t, 3)
	e.notified(t, chat, rev, "miniflux: 3 replicas", "synced")

	// A commit that renames the secret file without fixing the
	// kustomization: the render fails, the running version stays, both
	// chats say so; the fix recovers.
	before = rev
	broken := platform.ReplaceAll(t, scaled, "- secret.sops.yaml\n", "- secrets.sops.yaml\n")
	rev = repo.Commit("miniflux: rename secrets", map[string]string{minifluxProd: broken})
	if status, resp := e.pushGitLab(t, repo.URL, before, rev, "miniflux: rename secrets", webhookToken); status != http.StatusAccepted {
		t.Fatalf("the push: HTTP %d %+v", status, resp)
	}
	e.WaitApp(t, "miniflux", "sync of "+rev[:8]+" failed", func(a *tendv1.App) bool {
		return a.Status.LastAttemptedRevision == rev && a.Status.Revision != rev
	})
	for c, p := range e.notified(t, chat, rev, "miniflux: rename secrets", "sync failed") {
		if !strings.Contains(p.text, "secrets.sops.yaml") {
			t.Errorf("%s: the failure does not name the missing file:\n%s", c, p.text)
		}
	}
	e.checkOverlay(t, 3)

	before = rev
	rev = repo.Commit("miniflux: fix secrets", map[string]string{minifluxProd: scaled})
	if status, resp := e.pushGitLab(t, repo.URL, before, rev, "miniflux: fix secrets", webhookToken); status != http.StatusAccepted {
		t.Fatalf("the push: HTTP %d %+v", status, resp)
	}
	e.waitAppsAt(t, rev)
	for c, p := range e.notified(t, chat, rev, "miniflux: fix secrets", "synced") {
		if !strings.Contains(p.text, "recovered") {
			t.Errorf("%s: the fix is not told as a recovery:\n%s", c, p.text)
		}
	}
}

// notified waits until both chats got the App miniflux's event (its title's
// phrase) for the commit rev with subject, and returns their posts.
func (e *env) notified(t *testing.T, chat *chats, rev, subject, phrase string) map[string]post {
	t.Helper()
	title := e.Namespace + "/miniflux: " + phrase
	posts := map[string]post{}
	for _, c := range []string{"discord", "matrix"} {
		p := chat.wait(t, c, title+" for "+rev[:12], func(p post) bool {
			return strings.HasSuffix(p.title, title) && strings.Contains(p.text, rev[:12]) && strings.Contains(p.text, subject)
		})
		red := phrase == "sync failed"
		if c == "discord" && (p.colour == 0xE01E5A) != red {
			t.Errorf("discord: %q has colour %06X", p.title, p.colour)
		}
		if c == "matrix" && strings.HasPrefix(p.title, "🔴") != red {
			t.Errorf("matrix: %q has the wrong mark", p.title)
		}
		posts[c] = p
	}
	return posts
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
