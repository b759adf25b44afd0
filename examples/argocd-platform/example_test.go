package example_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	sigsyaml "sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/source/chart/charttest"
	"github.com/tend-gitops/tend/internal/testenv"
	"github.com/tend-gitops/tend/internal/testenv/platform"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var (
	applications    = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}
	applicationSets = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applicationsets"}
)

const (
	gitPlaceholder   = "https://git.example.org/platform/gitops.git"
	chartPlaceholder = "https://charts.example.org"
)

// TestArgoCDPlatform runs this repository, written as an Argo CD team
// writes theirs, unchanged under `tend controller --compat argo`: the root
// Application (applied by hand, as Argo CD users bootstrap) applies the
// others from git, app-of-apps; sync waves order them; an ApplicationSet
// with a Go template makes one Application per directory under apps/,
// with ignoreDifferences for the replica count an autoscaler owns; a
// multi-source Application renders a chart from the chart repository with
// values from this repository ($values); KSOPS decrypts a Secret with the
// key Argo CD's repo-server would have; a PreSync hook runs before its
// App's objects. An AppProject limits the ApplicationSet's Applications;
// an Application of it aimed at kube-system is refused, with a condition
// naming the rule, and nothing of it is applied. A values commit, picked up on Argo CD's refresh
// annotation, is applied; a replica count changed in the cluster is left
// alone. The Applications report it in Argo CD's status fields.
func TestArgoCDPlatform(t *testing.T) {
	e := platform.Start(t, platform.Options{
		Apps:    []string{"root", "web", "secrets", "shop", "search", "debug-tools"},
		Compat:  []string{"argo"},
		Timeout: 2 * time.Minute,
		Controller: func(o *controller.Options) {
			o.ArgoDecryptionSecret = "sops-age"
		},
	})
	ns := e.Namespace
	ctx := context.Background()

	charts := charttest.NewRepo(t, "", "")
	charts.Add(t, charttest.Package(t, map[string]string{
		"Chart.yaml":  "apiVersion: v2\nname: web\nversion: 2.4.1\n",
		"values.yaml": "replicaCount: 1\ngreeting: hello\n",
		"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}-settings}\n" +
			"data: {greeting: {{ .Values.greeting | quote }}, replicas: {{ .Values.replicaCount | quote }}}\n",
	}))

	// The repository, pointed at this test's git server, chart repository
	// and namespace.
	repo := testenv.NewGitRepo(t, nil)
	files := testenv.DirFiles(t, ".")
	delete(files, "example_test.go")
	delete(files, "README.md")
	for p, content := range files {
		if strings.HasSuffix(p, ".sops.yaml") {
			continue // its namespace would be under its MAC; it has none
		}
		content = strings.ReplaceAll(content, gitPlaceholder, repo.URL)
		content = strings.ReplaceAll(content, chartPlaceholder, charts.URL)
		content = strings.ReplaceAll(content, "namespace: argocd", "namespace: "+ns)
		files[p] = strings.ReplaceAll(content, "namespace: web", "namespace: "+ns)
	}
	repo.Commit("platform", files)

	// The age key as Argo CD teams keep it for the repo-server.
	key, err := os.ReadFile("../flux-platform/demo.agekey")
	if err != nil {
		t.Fatal(err)
	}
	e.Create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sops-age", Namespace: ns}, Data: map[string][]byte{"keys.txt": key}})
	root := &unstructured.Unstructured{}
	if err := sigsyaml.Unmarshal([]byte(files["bootstrap/root.yaml"]), &root.Object); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Dynamic.Resource(applications).Namespace(ns).Create(ctx, root, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, gvr := range []schema.GroupVersionResource{applications, applicationSets} {
				l, _ := e.Dynamic.Resource(gvr).Namespace(ns).List(context.Background(), metav1.ListOptions{})
				for _, u := range l.Items {
					st, _ := sigsyaml.Marshal(u.Object["status"])
					t.Logf("%s %s status:\n%s", u.GetKind(), u.GetName(), st)
				}
			}
		}
		// Deleting the root Application deletes what it applied, as under
		// Argo CD with its resources finalizer.
		_ = e.Dynamic.Resource(applications).Namespace(ns).Delete(context.Background(), "root", metav1.DeleteOptions{})
		e.WaitFor(t, "the root Application gone", func() bool {
			_, err := e.Dynamic.Resource(applications).Namespace(ns).Get(context.Background(), "root", metav1.GetOptions{})
			return err != nil
		})
	})

	for _, app := range []string{"root", "web", "secrets"} {
		e.WaitFor(t, "Application "+app+" Synced and Healthy", func() bool {
			return status(e, applications, app, "sync", "status") == "Synced" && status(e, applications, app, "health", "status") == "Healthy"
		})
	}
	for _, app := range []string{"shop", "search"} {
		e.WaitApp(t, app, "the ApplicationSet's App synced and healthy", platform.Healthy)
	}

	// The AppProject, enforced: debug-tools is refused before anything of
	// it is applied, and says why, in tend's status and Argo CD's.
	e.WaitApp(t, "debug-tools", "refused by its Project", func(a *tendv1.App) bool {
		c := apimeta.FindStatusCondition(a.Status.Conditions, tendv1.ConditionStalled)
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == "ProjectDenied" &&
			strings.Contains(c.Message, `namespace "kube-system" on cluster "in-cluster" matches no entry of spec.destinations`)
	})
	if got := status(e, applications, "debug-tools", "conditions"); !strings.Contains(got, "InvalidSpecError") || !strings.Contains(got, "the Project "+ns+"/teams does not allow it") {
		t.Errorf("Application debug-tools status.conditions:\n%s\nwant an InvalidSpecError naming the Project", got)
	}
	if _, err := e.Clientset.CoreV1().ConfigMaps("kube-system").Get(ctx, "debug-tools", metav1.GetOptions{}); err == nil {
		t.Errorf("ConfigMap kube-system/debug-tools exists; the Project should have kept it out")
	}
	if p := e.App(t, "shop").Spec.Project; p != "teams" {
		t.Errorf("App shop spec.project %q; want teams, from the ApplicationSet's template", p)
	}

	// The chart from the chart repository, with the values file from git.
	if got := configMap(t, e, "web-settings"); got["greeting"] != "hello from production" || got["replicas"] != "3" {
		t.Errorf("web-settings = %v; want the values of values/web/production.yaml", got)
	}
	// As Argo CD writes a multi-source Application's revisions: the
	// chart's version, then the values commit.
	if got := status(e, applications, "web", "sync", "revisions"); !strings.HasPrefix(got, "- 2.4.1\n- ") {
		t.Errorf("web status.sync.revisions = %q; want the chart version 2.4.1 and the values commit", got)
	}
	// KSOPS, decrypted with keys.txt.
	s, err := e.Clientset.CoreV1().Secrets(ns).Get(ctx, "web-db", metav1.GetOptions{})
	if err != nil || string(s.Data["DATABASE_URL"]) != "postgres://web:s3cret-web-db@postgres/web" {
		t.Errorf("Secret web-db: %v; want DATABASE_URL decrypted by KSOPS", err)
	}
	// The ApplicationSet's Go template (slugify) and the PreSync hook.
	if shop := e.App(t, "shop"); shop.Labels["team"] != "shop" {
		t.Errorf("App shop labels %v; want team=shop from the template", shop.Labels)
	}
	if _, err := e.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "shop-migration", metav1.GetOptions{}); err != nil {
		t.Errorf("the PreSync hook ConfigMap shop-migration: %v", err)
	}
	// Waves: the wave 0 Application synced no later than wave 1's.
	web, secrets := e.App(t, "web").Status.History, e.App(t, "secrets").Status.History
	if len(web) == 0 || len(secrets) == 0 {
		t.Fatalf("no sync history: web %d, secrets %d", len(web), len(secrets))
	}
	if first, other := web[len(web)-1].StartedAt, secrets[len(secrets)-1].StartedAt; first.Before(&other) {
		t.Errorf("web (wave 1) first synced at %s, before secrets (wave 0) at %s", first, other)
	}

	// The autoscaler's replica count is left alone (ignoreDifferences).
	scale := []byte(`{"spec":{"replicas":5}}`)
	if _, err := e.Clientset.AppsV1().Deployments(ns).Patch(ctx, "shop", types.MergePatchType, scale, metav1.PatchOptions{FieldManager: "hpa"}); err != nil {
		t.Fatal(err)
	}
	// A values commit, then Argo CD's refresh annotation on web.
	files["values/web/production.yaml"] = "replicaCount: 3\ngreeting: hello again\n"
	repo.Commit("web: greet again", map[string]string{"values/web/production.yaml": files["values/web/production.yaml"]})
	refresh := []byte(`{"metadata":{"annotations":{"argocd.argoproj.io/refresh":"normal"}}}`)
	if _, err := e.Dynamic.Resource(applications).Namespace(ns).Patch(ctx, "web", types.MergePatchType, refresh, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	e.WaitFor(t, "the new values applied", func() bool {
		cm, err := e.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "web-settings", metav1.GetOptions{})
		return err == nil && cm.Data["greeting"] == "hello again"
	})
	// A sync of shop leaves the count as it is.
	e.RequestSync(t, "shop", "")
	d, err := e.Clientset.AppsV1().Deployments(ns).Get(ctx, "shop", metav1.GetOptions{})
	if err != nil || *d.Spec.Replicas != 5 {
		t.Errorf("Deployment shop replicas after a sync: %v %v; want 5, left to the autoscaler", d.Spec.Replicas, err)
	}
	if a := e.App(t, "shop"); a.Status.Sync != tendv1.SyncSynced {
		t.Errorf("App shop is %s with the ignored difference; want Synced", a.Status.Sync)
	}
}

func status(e *platform.Env, gvr schema.GroupVersionResource, name string, fields ...string) string {
	u, err := e.Dynamic.Resource(gvr).Namespace(e.Namespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	v, _, _ := unstructured.NestedFieldNoCopy(u.Object, append([]string{"status"}, fields...)...)
	switch t := v.(type) {
	case string:
		return t
	case nil:
		return ""
	}
	b, _ := sigsyaml.Marshal(v)
	return string(bytes.TrimSpace(b))
}

func configMap(t *testing.T, e *platform.Env, name string) map[string]string {
	t.Helper()
	cm, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("ConfigMap %s: %v", name, err)
	}
	return cm.Data
}
