package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
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
	"github.com/tend-gitops/tend/internal/install"
	"github.com/tend-gitops/tend/internal/testenv"
)

var (
	argoApplications  = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}
	fluxGitRepos      = schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "gitrepositories"}
	fluxKustomization = schema.GroupVersionResource{Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Resource: "kustomizations"}
	fluxHelmReleases  = schema.GroupVersionResource{Group: "helm.toolkit.fluxcd.io", Version: "v2", Resource: "helmreleases"}
)

// installCompat runs `tend install --compat argo,flux --local-controller`
// into a namespace of the test's own (removed at the end, with the
// cluster-scoped RBAC named after it) and checks the Argo CD and Flux CRDs
// are served.
func installCompat(t *testing.T, cl *testCluster) dynamic.Interface {
	t.Helper()
	tendNS := cl.Namespace + "-tend"
	code, out, stderr := cl.tend(t, "install", "--compat", "argo,flux", "--local-controller", "--tend-namespace", tendNS)
	t.Cleanup(func() {
		_ = cl.Clientset.CoreV1().Namespaces().Delete(context.Background(), tendNS, metav1.DeleteOptions{})
		name := install.ClusterName(tendNS)
		_ = cl.c.Delete(context.Background(), &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}})
		_ = cl.c.Delete(context.Background(), &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}})
	})
	if code != ExitOK || !strings.Contains(out, "installed tend") {
		t.Fatalf("tend install --compat: exit %d: %s\n%s", code, stderr, out)
	}
	dyn, err := dynamic.NewForConfig(cl.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, gvr := range []schema.GroupVersionResource{argoApplications, fluxGitRepos, fluxKustomization} {
		if _, err := dyn.Resource(gvr).Namespace(cl.Namespace).List(context.Background(), metav1.ListOptions{}); err != nil {
			t.Fatalf("%s not served after tend install --compat: %v", gvr, err)
		}
	}
	// The controller may write them: the ClusterRole names their status.
	var role rbacv1.ClusterRole
	if err := cl.c.Get(context.Background(), client.ObjectKey{Name: install.ClusterName(tendNS)}, &role); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fmt.Sprint(role.Rules), "applications/status") || !strings.Contains(fmt.Sprint(role.Rules), "kustomizations/finalizers") {
		t.Errorf("ClusterRole lacks the compat kinds: %v", role.Rules)
	}
	return dyn
}

// compatCRDs installs the Argo CD and Flux CRDs alone (no tend install)
// and returns a dynamic client of the test cluster.
func compatCRDs(t *testing.T, cl *testCluster) dynamic.Interface {
	t.Helper()
	testenv.InstallCompatCRDs(t, cl.Config)
	dyn, err := dynamic.NewForConfig(cl.Config)
	if err != nil {
		t.Fatal(err)
	}
	return dyn
}

// createYAML creates the object of doc with the dynamic client.
func createYAML(t *testing.T, dyn dynamic.Interface, gvr schema.GroupVersionResource, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := sigsyaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	out, err := dyn.Resource(gvr).Namespace(u.GetNamespace()).Create(context.Background(), u, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return out
}

func getStatus(dyn dynamic.Interface, gvr schema.GroupVersionResource, ns, name string, fields ...string) string {
	u, err := dyn.Resource(gvr).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	v, _, _ := unstructured.NestedFieldNoCopy(u.Object, append([]string{"status"}, fields...)...)
	s, _ := v.(string)
	return s
}

// condition returns the condition of type typ of a status, as "status/message".
func condition(dyn dynamic.Interface, gvr schema.GroupVersionResource, ns, name, typ string) string {
	u, err := dyn.Resource(gvr).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == typ {
			return fmt.Sprintf("%v/%v/%v", m["status"], m["reason"], m["message"])
		}
	}
	return ""
}

// logIfFailed logs the object's status at the end of a failed test.
func logIfFailed(t *testing.T, dyn dynamic.Interface, gvr schema.GroupVersionResource, ns, name string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		u, err := dyn.Resource(gvr).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Logf("%s %s: %v", gvr.Resource, name, err)
			return
		}
		b, _ := sigsyaml.Marshal(map[string]any{"annotations": u.GetAnnotations(), "status": u.Object["status"]})
		t.Logf("%s %s:\n%s", gvr.Resource, name, b)
	})
}

// waitGone waits until the object is deleted.
func waitGone(t *testing.T, dyn dynamic.Interface, gvr schema.GroupVersionResource, ns, name string) {
	t.Helper()
	eventually(t, gvr.Resource+" "+name+" deleted", time.Minute, func() bool {
		_, err := dyn.Resource(gvr).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
}

func hasEvent(t *testing.T, cl *testCluster, name, reason, text string) bool {
	t.Helper()
	evs, err := cl.Clientset.EventsV1().Events(cl.Namespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs.Items {
		if e.Regarding.Name == name && e.Reason == reason && strings.Contains(e.Note, text) {
			return true
		}
	}
	return false
}

// Flux's GitRepository and Kustomizations in the cluster are reconciled as
// they are, their status in Flux's shape (Ready, lastAppliedRevision as
// "main@sha1:..."); an unsupported field makes its Kustomization Stalled
// with the field named; deleting a Kustomization under Flux's finalizer
// prunes its objects (prune: true) and tend removes the finalizer.
func TestCompatFluxObjectsReconciledAsTheyAre(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	dyn := installCompat(t, cl)
	repo := testenv.NewGitRepo(t, nil)
	rev := repo.Commit("fleet", map[string]string{
		"infra/cm.yaml":                configMapYAML("infra", "1"),
		"apps/cm.yaml":                 configMapYAML("shop", "2"),
		"charts/web/Chart.yaml":        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"charts/web/values.yaml":       "mode: default\n",
		"charts/web/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}-settings}\ndata: {mode: {{ .Values.mode }}}\n",
	})
	createYAML(t, dyn, fluxGitRepos, fmt.Sprintf(`apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: fleet, namespace: %s, finalizers: [finalizers.fluxcd.io]}
spec: {interval: 1m, url: %s, ref: {branch: main}}
`, ns, repo.URL))
	logIfFailed(t, dyn, fluxGitRepos, ns, "fleet")
	logIfFailed(t, dyn, fluxKustomization, ns, "infra")
	createYAML(t, dyn, fluxKustomization, fmt.Sprintf(`apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: infra, namespace: %s, finalizers: [finalizers.fluxcd.io]}
spec: {interval: 10m, path: ./infra, prune: true, sourceRef: {kind: GitRepository, name: fleet}}
`, ns))
	createYAML(t, dyn, fluxKustomization, fmt.Sprintf(`apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: apps, namespace: %[1]s}
spec:
  interval: 10m
  path: ./apps
  prune: true
  kubeConfig: {secretRef: {name: remote}}
  dependsOn: [{name: infra}]
  sourceRef: {kind: GitRepository, name: fleet}
`, ns))

	createYAML(t, dyn, fluxHelmReleases, fmt.Sprintf(`apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: web, namespace: %s, finalizers: [finalizers.fluxcd.io]}
spec:
  interval: 10m
  chart: {spec: {chart: ./charts/web, sourceRef: {kind: GitRepository, name: fleet}}}
  values: {mode: flux}
`, ns))
	logIfFailed(t, dyn, fluxHelmReleases, ns, "web")

	// A tend App of a Kustomization's name, not made from it, is left
	// alone; the Kustomization says so.
	mine := &tendv1.App{ObjectMeta: metav1.ObjectMeta{Name: "mine", Namespace: ns},
		Spec: tendv1.AppSpec{SourceRef: tendv1.NamespacedObjectReference{Name: "elsewhere"}, Suspend: true}}
	if err := cl.c.Create(ctx, mine); err != nil {
		t.Fatal(err)
	}
	createYAML(t, dyn, fluxKustomization, fmt.Sprintf(`apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: mine, namespace: %s}
spec: {interval: 10m, path: ./infra, prune: true, sourceRef: {kind: GitRepository, name: fleet}}
`, ns))

	cl.startControllerWith(t, func(o *controller.Options) { o.Compat = []string{"flux"} })

	eventually(t, "ConfigMap infra applied", 2*time.Minute, func() bool {
		cm, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "infra", metav1.GetOptions{})
		return err == nil && cm.Data["value"] == "1"
	})
	want := "main@sha1:" + rev
	eventually(t, "Kustomization infra Ready at "+want, time.Minute, func() bool {
		return strings.HasPrefix(condition(dyn, fluxKustomization, ns, "infra", "Ready"), "True/") &&
			getStatus(dyn, fluxKustomization, ns, "infra", "lastAppliedRevision") == want
	})
	eventually(t, "GitRepository fleet Ready with artifact "+want, time.Minute, func() bool {
		return strings.HasPrefix(condition(dyn, fluxGitRepos, ns, "fleet", "Ready"), "True/") &&
			getStatus(dyn, fluxGitRepos, ns, "fleet", "artifact", "revision") == want
	})
	eventually(t, "HelmRelease web released and Ready", 2*time.Minute, func() bool {
		cm, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "web-settings", metav1.GetOptions{})
		return err == nil && cm.Data["mode"] == "flux" &&
			strings.HasPrefix(condition(dyn, fluxHelmReleases, ns, "web", "Ready"), "True/") &&
			strings.HasPrefix(condition(dyn, fluxHelmReleases, ns, "web", "Released"), "True/")
	})
	eventually(t, "Kustomization apps Stalled naming spec.kubeConfig", time.Minute, func() bool {
		c := condition(dyn, fluxKustomization, ns, "apps", "Stalled")
		return strings.HasPrefix(c, "True/Unsupported/") && strings.Contains(c, "spec.kubeConfig") &&
			strings.HasPrefix(condition(dyn, fluxKustomization, ns, "apps", "Ready"), "False/Unsupported/")
	})
	if _, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "shop", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ConfigMap of the unsupported Kustomization: err %v, want NotFound", err)
	}
	eventually(t, "Kustomization mine Stalled on the name conflict", time.Minute, func() bool {
		return strings.Contains(condition(dyn, fluxKustomization, ns, "mine", "Stalled"), "True/NameConflict/") &&
			strings.Contains(condition(dyn, fluxKustomization, ns, "mine", "Stalled"), "not made from it")
	})
	if err := cl.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "mine"}, mine); err != nil || len(mine.OwnerReferences) != 0 || mine.Spec.Path != "" {
		t.Errorf("the App of the conflicting name was changed: %v, owners %v, path %q", err, mine.OwnerReferences, mine.Spec.Path)
	}

	for _, del := range []struct {
		gvr  schema.GroupVersionResource
		name string
	}{{fluxHelmReleases, "web"}, {fluxKustomization, "apps"}, {fluxKustomization, "mine"}, {fluxKustomization, "infra"}, {fluxGitRepos, "fleet"}} {
		if err := dyn.Resource(del.gvr).Namespace(ns).Delete(ctx, del.name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitGone(t, dyn, del.gvr, ns, del.name)
	}
	for _, cm := range []string{"infra", "web-settings"} {
		if _, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, cm, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("ConfigMap %s of a deleted Kustomization or HelmRelease: err %v, want NotFound (pruned, as Flux prunes)", cm, err)
		}
	}
	eventually(t, "the Source of the deleted GitRepository deleted", time.Minute, func() bool {
		return apierrors.IsNotFound(cl.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "fleet"}, &tendv1.Source{}))
	})
}

// A cluster Flux ran is taken over without a blip: objects left exactly as
// kustomize-controller applied them (its field manager and labels), the
// Kustomization's status.inventory listing them and one object since
// removed from git. With Flux gone and tend started: the Deployment is not
// changed (no rollout), nothing in git is recreated, the removed object is
// pruned, kustomize-controller's fields become tend's, and the next git
// change applies.
func TestCompatTakeOverFromFluxWithoutABlip(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	dyn := installCompat(t, cl)
	web := strings.Replace(webDeploymentYAML, "metadata: {name: web}", "metadata: {name: web, namespace: "+ns+"}", 1)
	repo := testenv.NewGitRepo(t, nil)
	rev := repo.Commit("apps", map[string]string{"apps/web.yaml": web, "apps/cfg.yaml": configMapYAML("cfg", "1")})

	// What Flux applied, as it applied it.
	deployments := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	configMaps := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	fluxLabels := map[string]string{"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": ns}
	leave := func(gvr schema.GroupVersionResource, doc string) *unstructured.Unstructured {
		t.Helper()
		u := &unstructured.Unstructured{}
		if err := sigsyaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		u.SetNamespace(ns)
		u.SetLabels(fluxLabels)
		out, err := dyn.Resource(gvr).Namespace(ns).Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: "kustomize-controller", Force: true})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	leave(deployments, web)
	logIfFailed(t, dyn, deployments, ns, "web")
	cfg := leave(configMaps, configMapYAML("cfg", "1"))
	leave(configMaps, configMapYAML("gone", "x"))
	eventually(t, "the Deployment Flux applied rolled out", time.Minute, func() bool {
		d, err := cl.Clientset.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Status.ObservedGeneration == d.Generation && d.Status.UpdatedReplicas == 1
	})
	before, err := cl.Clientset.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var rsBefore, podBefore types.UID
	eventually(t, "one ReplicaSet and one pod of web", time.Minute, func() bool {
		rs, err1 := cl.Clientset.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		pods, err2 := cl.Clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err1 != nil || err2 != nil || len(rs.Items) != 1 || len(pods.Items) != 1 {
			return false
		}
		rsBefore, podBefore = rs.Items[0].UID, pods.Items[0].UID
		return true
	})

	createYAML(t, dyn, fluxGitRepos, fmt.Sprintf(`apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: fleet, namespace: %s}
spec: {interval: 1m, url: %s, ref: {branch: main}}
`, ns, repo.URL))
	ks := createYAML(t, dyn, fluxKustomization, fmt.Sprintf(`apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: apps, namespace: %s}
spec: {interval: 10m, path: ./apps, prune: true, sourceRef: {kind: GitRepository, name: fleet}}
`, ns))
	logIfFailed(t, dyn, fluxKustomization, ns, "apps")
	_ = unstructured.SetNestedSlice(ks.Object, []any{
		map[string]any{"id": ns + "_web_apps_Deployment", "v": "v1"},
		map[string]any{"id": ns + "_cfg__ConfigMap", "v": "v1"},
		map[string]any{"id": ns + "_gone__ConfigMap", "v": "v1"},
	}, "status", "inventory", "entries")
	if _, err := dyn.Resource(fluxKustomization).Namespace(ns).UpdateStatus(ctx, ks, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The preview: the Deployment and cfg taken over, values unchanged;
	// gone, which left git, deleted.
	if code, _, stderr := cl.tend(t, "adopt"); code != ExitUsage || !strings.Contains(stderr, "--dry-run") {
		t.Errorf("tend adopt without --dry-run: exit %d: %s", code, stderr)
	}
	code, out, stderr := cl.tend(t, "adopt", "--dry-run")
	for _, want := range []string{
		"Kustomization " + ns + "/apps:",
		"taken over   apps/Deployment " + ns + "/web (fields of kustomize-controller become tend's)",
		"taken over   ConfigMap " + ns + "/cfg (fields of kustomize-controller become tend's)",
		"delete       ConfigMap " + ns + "/gone",
		"1 objects of 1 Apps would change; 0 cannot be adopted",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("tend adopt --dry-run output lacks %q:\n%s\nstderr: %s", want, out, stderr)
		}
	}
	if code != ExitDiff {
		t.Errorf("tend adopt --dry-run: exit %d, want %d (gone would be deleted): %s", code, ExitDiff, stderr)
	}
	if _, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "gone", metav1.GetOptions{}); err != nil {
		t.Errorf("tend adopt --dry-run changed the cluster: %v", err)
	}

	cl.startControllerWith(t, func(o *controller.Options) { o.Compat = []string{"flux"} })

	eventually(t, "Kustomization apps Ready at main@sha1:"+shortRev(rev)+" and gone pruned", 2*time.Minute, func() bool {
		_, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "gone", metav1.GetOptions{})
		return apierrors.IsNotFound(err) && strings.HasPrefix(condition(dyn, fluxKustomization, ns, "apps", "Ready"), "True/") &&
			getStatus(dyn, fluxKustomization, ns, "apps", "lastAppliedRevision") == "main@sha1:"+rev
	})
	after, err := cl.Clientset.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// tend's owner annotation bumps the generation (a Deployment's
	// annotations are copied to its ReplicaSets); the spec, the ReplicaSet
	// and the pod stay as Flux left them.
	if !equality.Semantic.DeepEqual(after.Spec, before.Spec) || after.UID != before.UID {
		b1, _ := sigsyaml.Marshal(before.Spec)
		b2, _ := sigsyaml.Marshal(after.Spec)
		t.Errorf("Deployment changed by the takeover (uid %s -> %s); spec before:\n%s\nafter:\n%s", before.UID, after.UID, b1, b2)
	}
	rs, err := cl.Clientset.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(rs.Items) != 1 || rs.Items[0].UID != rsBefore {
		t.Errorf("ReplicaSets after the takeover: %d (%v), want only the one Flux's rollout made", len(rs.Items), err)
	}
	pods, err := cl.Clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(pods.Items) != 1 || pods.Items[0].UID != podBefore {
		t.Errorf("pods after the takeover: %d (%v), want the one running before (not restarted)", len(pods.Items), err)
	}
	now, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "cfg", metav1.GetOptions{})
	if err != nil || now.UID != cfg.GetUID() {
		t.Fatalf("ConfigMap cfg re-created or gone: %v", err)
	}
	for _, mf := range now.ManagedFields {
		if mf.Manager == "kustomize-controller" && mf.FieldsV1 != nil && strings.Contains(mf.FieldsV1.GetRawString(), `"f:value"`) {
			t.Errorf("kustomize-controller still owns data.value of cfg after the takeover: %s", mf.FieldsV1.GetRawString())
		}
	}

	// The next git change applies (no conflict with the old manager).
	rev2 := repo.Commit("cfg 2", map[string]string{"apps/cfg.yaml": configMapYAML("cfg", "2")})
	request := []byte(`{"metadata":{"annotations":{"reconcile.fluxcd.io/requestedAt":"` + rev2 + `"}}}`)
	if _, err := dyn.Resource(fluxGitRepos).Namespace(ns).Patch(ctx, "fleet", types.MergePatchType, request, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "cfg at the next commit, the request handled", 2*time.Minute, func() bool {
		cm, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "cfg", metav1.GetOptions{})
		return err == nil && cm.Data["value"] == "2" && getStatus(dyn, fluxGitRepos, ns, "fleet", "lastHandledReconcileAt") == rev2
	})

	for _, del := range []struct {
		gvr  schema.GroupVersionResource
		name string
	}{{fluxKustomization, "apps"}, {fluxGitRepos, "fleet"}} {
		if err := dyn.Resource(del.gvr).Namespace(ns).Delete(ctx, del.name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitGone(t, dyn, del.gvr, ns, del.name)
	}
}

// A chart helm-controller installed counts as installed: the HelmRelease's
// App starts with the objects of the newest Helm release Secret, so its
// first sync is an upgrade (the pre-upgrade hook runs, the pre-install one
// does not), the release's object the chart no longer renders is pruned,
// and the one it still renders is kept as it was.
func TestCompatTakeOverHelmRelease(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	dyn := installCompat(t, cl)
	hook := func(name, phase string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + ", annotations: {helm.sh/hook: " + phase + "}}\ndata: {ran: \"yes\"}\n"
	}
	repo := testenv.NewGitRepo(t, nil)
	repo.Commit("chart", map[string]string{
		"charts/web/Chart.yaml":                 "apiVersion: v2\nname: web\nversion: 0.2.0\n",
		"charts/web/templates/cm.yaml":          "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}-settings}\ndata: {mode: {{ .Values.mode }}}\n",
		"charts/web/templates/pre-install.yaml": hook("install-hook", "pre-install"),
		"charts/web/templates/pre-upgrade.yaml": hook("upgrade-hook", "pre-upgrade"),
	})

	// What helm-controller installed: the objects, as it applied them,
	// and the release Secret (gzipped JSON, base64, as Helm stores it).
	manifest := ""
	for _, name := range []string{"web-settings", "web-old"} {
		doc := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + ", namespace: " + ns + "}\ndata: {mode: flux}\n"
		manifest += "---\n" + doc
		u := &unstructured.Unstructured{}
		if err := sigsyaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		u.SetLabels(map[string]string{"app.kubernetes.io/managed-by": "Helm", "helm.toolkit.fluxcd.io/name": "web", "helm.toolkit.fluxcd.io/namespace": ns})
		u.SetAnnotations(map[string]string{"meta.helm.sh/release-name": "web", "meta.helm.sh/release-namespace": ns})
		if _, err := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}).Namespace(ns).Apply(ctx, name, u, metav1.ApplyOptions{FieldManager: "helm-controller", Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	rel, err := json.Marshal(map[string]any{"name": "web", "namespace": ns, "version": 1, "manifest": manifest, "info": map[string]any{"status": "deployed"}})
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(rel)
	_ = zw.Close()
	release := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "sh.helm.release.v1.web.v1", Namespace: ns,
			Labels: map[string]string{"owner": "helm", "name": "web", "status": "deployed", "version": "1"}},
		Type: "helm.sh/release.v1",
		Data: map[string][]byte{"release": []byte(base64.StdEncoding.EncodeToString(gz.Bytes()))},
	}
	if err := cl.c.Create(ctx, release); err != nil {
		t.Fatal(err)
	}
	before, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "web-settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	createYAML(t, dyn, fluxGitRepos, fmt.Sprintf(`apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: fleet, namespace: %s}
spec: {interval: 1m, url: %s, ref: {branch: main}}
`, ns, repo.URL))
	createYAML(t, dyn, fluxHelmReleases, fmt.Sprintf(`apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: web, namespace: %s}
spec:
  interval: 10m
  chart: {spec: {chart: ./charts/web, sourceRef: {kind: GitRepository, name: fleet}}}
  values: {mode: flux}
`, ns))
	logIfFailed(t, dyn, fluxHelmReleases, ns, "web")

	cl.startControllerWith(t, func(o *controller.Options) { o.Compat = []string{"flux"} })

	eventually(t, "HelmRelease web Ready, web-old pruned", 2*time.Minute, func() bool {
		_, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "web-old", metav1.GetOptions{})
		return apierrors.IsNotFound(err) && strings.HasPrefix(condition(dyn, fluxHelmReleases, ns, "web", "Ready"), "True/")
	})
	if _, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "upgrade-hook", metav1.GetOptions{}); err != nil {
		t.Errorf("the pre-upgrade hook of an installed release did not run: %v", err)
	}
	if _, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "install-hook", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the pre-install hook ran for a release helm-controller had installed: err %v, want NotFound", err)
	}
	after, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "web-settings", metav1.GetOptions{})
	if err != nil || after.UID != before.UID || after.Data["mode"] != "flux" {
		t.Errorf("web-settings after the takeover: %v %v, want the same object", err, after)
	}
	if err := dyn.Resource(fluxHelmReleases).Namespace(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, dyn, fluxHelmReleases, ns, "web")
}

var (
	fluxAlerts    = schema.GroupVersionResource{Group: "notification.toolkit.fluxcd.io", Version: "v1beta3", Resource: "alerts"}
	fluxProviders = schema.GroupVersionResource{Group: "notification.toolkit.fluxcd.io", Version: "v1beta3", Resource: "providers"}
)

// A Flux Alert with its generic Provider sends the events of the
// Kustomizations it names, as a Notifier: a sync of the named one reaches
// the receiver, the other's does not. An Alert whose Provider does not
// exist yet says so in an event and works once the Provider is created.
// Deleting the Alert deletes its Notifier.
func TestCompatFluxAlertsNotify(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	dyn := installCompat(t, cl)
	var mu sync.Mutex
	var got []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			t.Errorf("delivery is not JSON: %v", err)
		}
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	delivered := func(app, kind string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range got {
			a, _ := m["app"].(map[string]any)
			if a["name"] == app && m["kind"] == kind {
				return true
			}
		}
		return false
	}

	repo := testenv.NewGitRepo(t, nil)
	repo.Commit("fleet", map[string]string{"infra/cm.yaml": configMapYAML("infra", "1"), "apps/cm.yaml": configMapYAML("shop", "1")})
	createYAML(t, dyn, fluxGitRepos, fmt.Sprintf(`apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: fleet, namespace: %s}
spec: {interval: 1m, url: %s, ref: {branch: main}}
`, ns, repo.URL))
	createYAML(t, dyn, fluxAlerts, fmt.Sprintf(`apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {name: on-call, namespace: %s}
spec:
  providerRef: {name: hook}
  eventSources: [{kind: Kustomization, name: apps}]
`, ns))

	cl.startControllerWith(t, func(o *controller.Options) { o.Compat = []string{"flux"} })
	eventually(t, "an event on Alert on-call naming the missing Provider", time.Minute, func() bool {
		evs, err := cl.Clientset.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, e := range evs.Items {
			if e.Regarding.Kind == "Alert" && e.Regarding.Name == "on-call" && strings.Contains(e.Note, "Provider "+ns+"/hook is not in the input") {
				return true
			}
		}
		return false
	})
	createYAML(t, dyn, fluxProviders, fmt.Sprintf(`apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {name: hook, namespace: %s}
spec: {type: generic, address: %s}
`, ns, srv.URL))
	eventually(t, "Notifier on-call made from the Alert and its Provider", time.Minute, func() bool {
		var n tendv1.Notifier
		return cl.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "on-call"}, &n) == nil &&
			n.Spec.Provider == "webhook" && n.Spec.Address == srv.URL && slices.Equal(n.Spec.Apps, []string{"apps"})
	})
	// The preview lists what the Alert becomes, and changes nothing.
	code, out, stderr := cl.tend(t, "adopt", "--dry-run")
	if want := "Alert " + ns + "/on-call: becomes Notifier on-call (webhook)"; code != ExitOK || !strings.Contains(out, want) ||
		!strings.Contains(out, "note: in the cluster: Alert "+ns+"/on-call: Provider "+ns+"/hook spec.type generic: tend posts its own JSON event") {
		t.Errorf("tend adopt --dry-run: exit %d, output lacks %q or the note on the generic Provider:\n%s%s", code, want, out, stderr)
	}
	kustomization := func(name string) {
		createYAML(t, dyn, fluxKustomization, fmt.Sprintf(`apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: %[2]s, namespace: %[1]s}
spec: {interval: 10m, path: ./%[2]s, prune: true, sourceRef: {kind: GitRepository, name: fleet}}
`, ns, name))
	}
	// infra syncs first; its events go through the dispatcher before
	// apps' do, and this Notifier does not send them.
	kustomization("infra")
	eventually(t, "App infra synced", time.Minute, func() bool {
		var a tendv1.App
		return cl.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "infra"}, &a) == nil && a.Status.Sync == tendv1.SyncSynced
	})
	kustomization("apps")
	eventually(t, "SyncSucceeded of App apps delivered", 2*time.Minute, func() bool { return delivered("apps", "SyncSucceeded") })
	if delivered("infra", "SyncSucceeded") || delivered("infra", "SyncStarted") {
		t.Errorf("an event of App infra was delivered; the Alert names only apps")
	}

	if err := dyn.Resource(fluxAlerts).Namespace(ns).Delete(ctx, "on-call", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Notifier on-call deleted with the Alert", time.Minute, func() bool {
		return apierrors.IsNotFound(cl.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "on-call"}, &tendv1.Notifier{}))
	})
}
