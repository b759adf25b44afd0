package cli

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsyaml "sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/source/chart/charttest"
	"github.com/tend-gitops/tend/internal/testenv"
)

// Argo CD Applications in the cluster are reconciled as they are: synced
// from a repository that needs the credentials of an Argo CD repository
// Secret, their status written as Argo CD writes it and kept current on a
// new commit; an unsupported field stops only its Application, named in a
// condition and an event; deleting an Application deletes its objects only
// under Argo CD's resources finalizer, which tend removes.
func TestCompatArgoCDApplicationsReconciledAsTheyAre(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	dyn := installCompat(t, cl)
	repo := testenv.NewGitRepo(t, nil, testenv.GitBasicAuth("deploy", "s3cret-token"))
	rev := repo.Commit("apps", map[string]string{
		"apps/web/cm.yaml":  configMapYAML("settings", "web-1"),
		"apps/keep/cm.yaml": configMapYAML("settings", "keep"),
	})
	repoSecret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "repo-platform", Namespace: ns, Labels: map[string]string{"argocd.argoproj.io/secret-type": "repository"}},
		StringData: map[string]string{"url": repo.URL, "username": "deploy", "password": "s3cret-token", "type": "git"},
	}
	if err := cl.c.Create(ctx, repoSecret); err != nil {
		t.Fatal(err)
	}
	application := func(name, path, extra string) string {
		return strings.Replace(strings.Replace(argoApplication(name, repo.URL, path, ns), "namespace: argocd", "namespace: "+ns, 1),
			"    kustomize:\n", extra+"    kustomize:\n", 1)
	}
	createYAML(t, dyn, argoApplications, application("web", "apps/web", ""))
	logIfFailed(t, dyn, argoApplications, ns, "web")
	keep := strings.Replace(application("keep", "apps/keep", ""), "  finalizers: [resources-finalizer.argocd.argoproj.io]\n", "", 1)
	createYAML(t, dyn, argoApplications, keep)
	createYAML(t, dyn, argoApplications, application("plugged", "apps/web", "    plugin: {name: cmp-jsonnet}\n"))

	cl.startControllerWith(t, func(o *controller.Options) { o.Compat = []string{"argo"} })

	for app, value := range map[string]string{"web": "web-1", "keep": "keep"} {
		eventually(t, "ConfigMap of Application "+app+" applied", 2*time.Minute, func() bool {
			cm, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, app+"-settings", metav1.GetOptions{})
			return err == nil && cm.Data["value"] == value && cm.Labels["converted"] == "from-argocd"
		})
	}
	eventually(t, "Application web Synced and Healthy at "+shortRev(rev)+" in Argo CD's status fields", time.Minute, func() bool {
		return getStatus(dyn, argoApplications, ns, "web", "sync", "status") == "Synced" &&
			getStatus(dyn, argoApplications, ns, "web", "sync", "revision") == rev &&
			getStatus(dyn, argoApplications, ns, "web", "health", "status") == "Healthy" &&
			getStatus(dyn, argoApplications, ns, "web", "operationState", "phase") == "Succeeded"
	})
	// A new commit is applied and reported after a refresh asked for as
	// Argo CD's CLI and UI ask (tend removes the annotation as Argo CD does).
	rev2 := repo.Commit("web 2", map[string]string{"apps/web/cm.yaml": configMapYAML("settings", "web-2")})
	refresh := []byte(`{"metadata":{"annotations":{"argocd.argoproj.io/refresh":"normal"}}}`)
	if _, err := dyn.Resource(argoApplications).Namespace(ns).Patch(ctx, "web", types.MergePatchType, refresh, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Application web at "+shortRev(rev2)+", its refresh annotation removed", 2*time.Minute, func() bool {
		cm, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "web-settings", metav1.GetOptions{})
		u, gerr := dyn.Resource(argoApplications).Namespace(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && cm.Data["value"] == "web-2" && gerr == nil && u.GetAnnotations()["argocd.argoproj.io/refresh"] == "" &&
			getStatus(dyn, argoApplications, ns, "web", "sync", "revision") == rev2
	})

	// The unsupported field is named; nothing is made of that Application.
	eventually(t, "InvalidSpecError on Application plugged", time.Minute, func() bool {
		c := condition(dyn, argoApplications, ns, "plugged", "InvalidSpecError")
		return strings.Contains(c, "spec.source.plugin") && strings.Contains(c, "docs/adopt.md")
	})
	eventually(t, "an Unsupported event on Application plugged", 30*time.Second, func() bool {
		return hasEvent(t, cl, "plugged", "Unsupported", "spec.source.plugin")
	})
	if err := cl.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plugged"}, &tendv1.App{}); !apierrors.IsNotFound(err) {
		t.Errorf("App of the unsupported Application: err %v, want NotFound", err)
	}
	var web tendv1.App
	if err := cl.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, &web); err != nil || web.Spec.DeletionPolicy != tendv1.DeletionDelete ||
		len(web.OwnerReferences) != 1 || web.OwnerReferences[0].Kind != "Application" {
		t.Errorf("App web: %v, deletionPolicy %q, owners %v", err, web.Spec.DeletionPolicy, web.OwnerReferences)
	}

	// Deleting: under the resources finalizer the objects go, and tend
	// removes the finalizer; without it they stay.
	for _, name := range []string{"web", "keep", "plugged"} {
		if err := dyn.Resource(argoApplications).Namespace(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitGone(t, dyn, argoApplications, ns, name)
	}
	eventually(t, "Apps web and keep deleted", time.Minute, func() bool {
		var apps tendv1.AppList
		return cl.c.List(ctx, &apps, client.InNamespace(ns)) == nil && len(apps.Items) == 0
	})
	if _, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "web-settings", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ConfigMap of the deleted Application web (resources finalizer): err %v, want NotFound", err)
	}
	if _, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "keep-settings", metav1.GetOptions{}); err != nil {
		t.Errorf("ConfigMap of the deleted Application keep (no finalizer): %v, want it kept as Argo CD keeps it", err)
	}
}

// A cluster Argo CD ran (with ServerSideApply=true) is taken over the same
// way: the objects as argocd-controller applied them, with its tracking
// label, and the Application's status.resources listing one object since
// removed from git, which is pruned; the rest is unchanged and becomes
// tend's.
func TestCompatTakeOverFromArgoCD(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	dyn := installCompat(t, cl)
	repo := testenv.NewGitRepo(t, nil)
	repo.Commit("apps", map[string]string{"apps/web/cfg.yaml": configMapYAML("cfg", "1")})

	before := leftByArgoCD(t, cl, dyn, strings.Replace(argoApplication("web", repo.URL, "apps/web", ns), "namespace: argocd", "namespace: "+ns, 1))
	logIfFailed(t, dyn, argoApplications, ns, "web")

	cl.startControllerWith(t, func(o *controller.Options) { o.Compat = []string{"argo"} })

	eventually(t, "Application web Synced and web-gone pruned", 2*time.Minute, func() bool {
		_, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "web-gone", metav1.GetOptions{})
		return apierrors.IsNotFound(err) && getStatus(dyn, argoApplications, ns, "web", "sync", "status") == "Synced"
	})
	after, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "web-cfg", metav1.GetOptions{})
	if err != nil || after.UID != before.UID || after.Data["value"] != "1" || after.Labels["app.kubernetes.io/instance"] != "web" {
		t.Fatalf("web-cfg after the takeover: %v %v, want the same object, value and tracking label", err, after)
	}
	for _, mf := range after.ManagedFields {
		if mf.Manager == "argocd-controller" && mf.FieldsV1 != nil && strings.Contains(mf.FieldsV1.GetRawString(), `"f:value"`) {
			t.Errorf("argocd-controller still owns data.value after the takeover: %s", mf.FieldsV1.GetRawString())
		}
	}
	if err := dyn.Resource(argoApplications).Namespace(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, dyn, argoApplications, ns, "web")
}

// leftByArgoCD is what Argo CD leaves of the Application application
// (named web) in the test's namespace: ConfigMaps web-cfg and web-gone
// applied by argocd-controller with its tracking label, and the
// Application listing both in status.resources. It returns web-cfg as
// applied.
func leftByArgoCD(t *testing.T, cl *testCluster, dyn dynamic.Interface, application string) *corev1.ConfigMap {
	t.Helper()
	ctx := context.Background()
	ns := cl.Namespace
	configMaps := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	for _, doc := range []string{configMapYAML("web-cfg", "1"), configMapYAML("web-gone", "x")} {
		u := &unstructured.Unstructured{}
		if err := sigsyaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		u.SetNamespace(ns)
		u.SetLabels(map[string]string{"converted": "from-argocd", "app.kubernetes.io/instance": "web"})
		if _, err := dyn.Resource(configMaps).Namespace(ns).Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: "argocd-controller", Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	before, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "web-cfg", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	app := createYAML(t, dyn, argoApplications, application)
	_ = unstructured.SetNestedSlice(app.Object, []any{
		map[string]any{"version": "v1", "kind": "ConfigMap", "namespace": ns, "name": "web-cfg", "status": "Synced"},
		map[string]any{"version": "v1", "kind": "ConfigMap", "namespace": ns, "name": "web-gone", "status": "Synced"},
	}, "status", "resources")
	// Argo CD's CRD has no status subresource: the status is written with
	// the object.
	if _, err := dyn.Resource(argoApplications).Namespace(ns).Update(ctx, app, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return before
}

// An Argo CD ApplicationSet in the cluster becomes an AppSet whose Apps
// tend generates and syncs; its status says so in Argo CD's shape
// (ResourcesUpToDate, the generated Apps as resources).
func TestCompatArgoCDApplicationSet(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	dyn := installCompat(t, cl)
	repo := testenv.NewGitRepo(t, nil)
	repo.Commit("apps", map[string]string{
		"apps/a/cm.yaml": configMapYAML("settings", "a"),
		"apps/b/cm.yaml": configMapYAML("settings", "b"),
	})
	appSets := schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applicationsets"}
	createYAML(t, dyn, appSets, fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: apps, namespace: %[1]s}
spec:
  generators:
  - list:
      elements: [{name: a}, {name: b}]
  template:
    metadata: {name: "{{name}}"}
    spec:
      project: default
      source:
        repoURL: %[2]s
        targetRevision: main
        path: "apps/{{name}}"
        kustomize: {namePrefix: "{{name}}-"}
      destination: {server: https://kubernetes.default.svc, namespace: %[1]s}
      syncPolicy: {automated: {prune: true}}
`, ns, repo.URL))
	logIfFailed(t, dyn, appSets, ns, "apps")

	cl.startControllerWith(t, func(o *controller.Options) { o.Compat = []string{"argo"} })

	for _, name := range []string{"a", "b"} {
		eventually(t, "ConfigMap of the generated App "+name, 2*time.Minute, func() bool {
			cm, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, name+"-settings", metav1.GetOptions{})
			return err == nil && cm.Data["value"] == name
		})
	}
	eventually(t, "ApplicationSet apps ResourcesUpToDate with two Synced Apps", time.Minute, func() bool {
		u, err := dyn.Resource(appSets).Namespace(ns).Get(ctx, "apps", metav1.GetOptions{})
		if err != nil {
			return false
		}
		res, _, _ := unstructured.NestedSlice(u.Object, "status", "resources")
		synced := 0
		for _, r := range res {
			if m, _ := r.(map[string]any); m["status"] == "Synced" {
				synced++
			}
		}
		return strings.HasPrefix(condition(dyn, appSets, ns, "apps", "ResourcesUpToDate"), "True/") && synced == 2
	})
	if err := dyn.Resource(appSets).Namespace(ns).Delete(ctx, "apps", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, dyn, appSets, ns, "apps")
	eventually(t, "the AppSet and its Apps deleted with the ApplicationSet", time.Minute, func() bool {
		var apps tendv1.AppList
		var sets tendv1.AppSetList
		return cl.c.List(ctx, &apps, client.InNamespace(ns)) == nil && len(apps.Items) == 0 &&
			cl.c.List(ctx, &sets, client.InNamespace(ns)) == nil && len(sets.Items) == 0
	})
}

// A multi-source Argo CD Application: a chart from a chart repository with
// values files from a git repository (`ref: values`, `$values/...`), that
// source also rendering a path of its own. tend renders both into one App
// (spec.sources); a commit to the git repository is applied after a
// refresh, to the chart's values and the path's objects alike; `tend
// diff` reads the same files and finds nothing to change.
func TestCompatArgoCDMultiSourceValues(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	dyn := installCompat(t, cl)
	charts := charttest.NewRepo(t, "", "")
	charts.Add(t, charttest.Package(t, map[string]string{
		"Chart.yaml":        "apiVersion: v2\nname: web\nversion: 1.2.0\n",
		"values.yaml":       "greeting: chart-default\nreplicas: 1\n",
		"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \"{{ .Release.Name }}-settings\"}\ndata:\n  greeting: {{ .Values.greeting | quote }}\n  replicas: {{ .Values.replicas | quote }}\n",
	}))
	values := testenv.NewGitRepo(t, nil)
	values.Commit("values", map[string]string{
		"envs/prod/web.yaml": "greeting: hello from git\n",
		"manifests/cm.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-extra}\ndata: {greeting: hello from git}\n",
	})
	createYAML(t, dyn, argoApplications, fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: web, namespace: %[1]s, finalizers: [resources-finalizer.argocd.argoproj.io]}
spec:
  project: default
  sources:
  - repoURL: %[2]s
    chart: web
    targetRevision: 1.x
    helm:
      valueFiles: [$values/envs/prod/web.yaml]
      valuesObject: {replicas: 3}
  - repoURL: %[3]s
    targetRevision: main
    ref: values
    path: manifests
  destination: {server: https://kubernetes.default.svc, namespace: %[1]s}
  syncPolicy: {automated: {prune: true}}
`, ns, charts.URL, values.URL))
	logIfFailed(t, dyn, argoApplications, ns, "web")

	cl.startControllerWith(t, func(o *controller.Options) { o.Compat = []string{"argo"} })

	settings := func(greeting string) {
		t.Helper()
		eventually(t, "web-settings greeting "+greeting, 2*time.Minute, func() bool {
			cm, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "web-settings", metav1.GetOptions{})
			if err != nil || cm.Data["greeting"] != greeting || cm.Data["replicas"] != "3" {
				return false
			}
			extra, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "web-extra", metav1.GetOptions{})
			return err == nil && extra.Data["greeting"] == greeting &&
				getStatus(dyn, argoApplications, ns, "web", "sync", "status") == "Synced"
		})
	}
	settings("hello from git")
	if code, out, stderr := cl.tend(t, "diff", "web"); code != 0 {
		t.Errorf("tend diff web: exit %d\n%s%s", code, out, stderr)
	}

	rev := values.Commit("prod greets again", map[string]string{
		"envs/prod/web.yaml": "greeting: hello again\n",
		"manifests/cm.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-extra}\ndata: {greeting: hello again}\n",
	})
	refresh := []byte(`{"metadata":{"annotations":{"argocd.argoproj.io/refresh":"normal"}}}`)
	if _, err := dyn.Resource(argoApplications).Namespace(ns).Patch(ctx, "web", types.MergePatchType, refresh, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	settings("hello again")
	// As Argo CD writes a multi-source Application's status: one
	// revision per source, the chart's version and the git commit.
	eventually(t, "status.sync.revisions [1.2.0, "+rev+"]", time.Minute, func() bool {
		u, err := dyn.Resource(argoApplications).Namespace(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false
		}
		revs, _, _ := unstructured.NestedStringSlice(u.Object, "status", "sync", "revisions")
		synced, _, _ := unstructured.NestedStringSlice(u.Object, "status", "operationState", "syncResult", "revisions")
		return slices.Equal(revs, []string{"1.2.0", rev}) && slices.Equal(synced, revs)
	})
}

// An ApplicationSet with a clusters generator, run as it is: every Argo
// CD cluster Secret of its namespace becomes a Cluster (no Application
// deploys to them yet), the selector picks the labelled one, and the
// generated App deploys through it.
func TestCompatArgoCDApplicationSetClusters(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	dyn := installCompat(t, cl)
	raw, err := os.ReadFile(cl.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for name, env := range map[string]string{"cluster-prod": "prod", "cluster-dev": "dev"} {
		sec := testenv.ArgoCDClusterSecret(t, raw, name, env)
		sec.Namespace = ns
		sec.Labels["env"] = env
		sec.Annotations = map[string]string{"team": "payments", corev1.LastAppliedConfigAnnotation: `{"data":{"config":"secret"}}`}
		if err := cl.c.Create(ctx, sec); err != nil {
			t.Fatal(err)
		}
	}
	repo := testenv.NewGitRepo(t, nil)
	repo.Commit("apps", map[string]string{"apps/web/cm.yaml": configMapYAML("settings", "web")})
	appSets := schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applicationsets"}
	createYAML(t, dyn, appSets, fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: web, namespace: %[1]s}
spec:
  generators:
  - clusters:
      selector: {matchLabels: {env: prod}}
      values: {team: "{{metadata.annotations.team}}"}
  template:
    metadata: {name: "web-{{name}}"}
    spec:
      project: default
      source:
        repoURL: %[2]s
        targetRevision: main
        path: apps/web
        kustomize: {nameSuffix: "-{{values.team}}"}
      destination: {server: "{{server}}", namespace: %[1]s}
      syncPolicy: {automated: {prune: true}}
`, ns, repo.URL))
	logIfFailed(t, dyn, appSets, ns, "web")

	cl.startControllerWith(t, func(o *controller.Options) { o.Compat = []string{"argo"} })

	eventually(t, "the ConfigMap of App web-cluster-prod, applied through Cluster cluster-prod", 2*time.Minute, func() bool {
		cm, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "settings-payments", metav1.GetOptions{})
		return err == nil && cm.Data["value"] == "web"
	})
	var app tendv1.App
	if err := cl.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-cluster-prod"}, &app); err != nil {
		t.Fatal(err)
	}
	if app.Spec.Destination.ClusterRef == nil || app.Spec.Destination.ClusterRef.Name != "cluster-prod" {
		t.Errorf("App web-cluster-prod deploys to %+v, want Cluster cluster-prod", app.Spec.Destination.ClusterRef)
	}
	var apps tendv1.AppList
	if err := cl.c.List(ctx, &apps, client.InNamespace(ns)); err != nil || len(apps.Items) != 1 {
		t.Errorf("Apps %v (%v): want only web-cluster-prod (the selector leaves dev out)", len(apps.Items), err)
	}
	for _, name := range []string{"cluster-prod", "cluster-dev"} {
		var c tendv1.Cluster
		if err := cl.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &c); err != nil {
			t.Errorf("Cluster %s for the Argo CD cluster Secret: %v", name, err)
			continue
		}
		if _, ok := c.Annotations[corev1.LastAppliedConfigAnnotation]; ok {
			t.Errorf("Cluster %s carries the Secret's last-applied-configuration", name)
		}
	}
}
