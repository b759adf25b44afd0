package example_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/tend-gitops/tend/internal/source/chart/charttest"
	"github.com/tend-gitops/tend/internal/testenv"
	"github.com/tend-gitops/tend/internal/testenv/platform"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var (
	gitRepositories = schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "gitrepositories"}
	ociRepositories = schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "ocirepositories"}
	kustomizations  = schema.GroupVersionResource{Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Resource: "kustomizations"}
	helmReleases    = schema.GroupVersionResource{Group: "helm.toolkit.fluxcd.io", Version: "v2", Resource: "helmreleases"}
)

const (
	gitPlaceholder      = "https://git.example.org/platform/fleet.git"
	registryPlaceholder = "  url: oci://registry.example.org/charts/podinfo\n"
)

// TestFluxPlatform runs this repository, written as a Flux user writes
// theirs, unchanged under `tend controller --compat flux`: bootstrapped as
// `flux bootstrap` leaves a cluster (gotk-sync.yaml applied, the deploy
// key and SOPS key Secrets created), the flux-system Kustomization applies
// the others; infrastructure installs a HelmRelease from an OCIRepository
// (the chart `helm push`ed to a registry) with valuesFrom, a SOPS Secret
// and the cluster's variables; apps waits for it (dependsOn), then
// substitutes those variables (postBuild from a ConfigMap and a SOPS
// Secret), decrypts its own Secret and adds a component. A later commit
// changes an image and removes an object: tend applies one and prunes the
// other. Flux's objects report it all in their own status.
func TestFluxPlatform(t *testing.T) {
	e := platform.Start(t, platform.Options{
		Apps:    []string{"flux-system", "apps", "infrastructure", "podinfo"},
		Compat:  []string{"flux"},
		Timeout: 2 * time.Minute,
	})
	ns := e.Namespace
	ctx := context.Background()

	reg := charttest.NewRegistry(t, "", "")
	reg.Push(t, charttest.Package(t, map[string]string{
		"Chart.yaml":  "apiVersion: v2\nname: podinfo\nversion: 6.5.0\n",
		"values.yaml": "replicaCount: 1\nui: {message: hello, color: '#000000'}\n",
		"templates/ui.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}-ui}\n" +
			"data: {message: {{ .Values.ui.message | quote }}, color: {{ .Values.ui.color | quote }}, replicas: {{ .Values.replicaCount | quote }}}\n",
	}))

	// The repository as the team keeps it, pointed at this test's git
	// server, registry (plain HTTP on loopback) and namespace.
	repo := testenv.NewGitRepo(t, nil)
	files := testenv.DirFiles(t, ".")
	for p, content := range files {
		if !strings.HasSuffix(p, ".yaml") {
			continue
		}
		content = strings.ReplaceAll(content, gitPlaceholder, repo.URL)
		content = strings.ReplaceAll(content, registryPlaceholder, "  url: oci://"+reg.Host+"/charts/podinfo\n  insecure: true\n")
		files[p] = strings.ReplaceAll(content, "namespace: flux-system", "namespace: "+ns)
	}
	for _, p := range []string{"example_test.go", "README.md"} {
		delete(files, p)
	}
	rev := repo.Commit("production cluster", files)

	// What `flux bootstrap` leaves: the deploy key Secret, the SOPS key
	// (kubectl create secret generic sops-age --from-file=age.agekey), and
	// gotk-sync.yaml applied.
	for name, data := range map[string]map[string][]byte{
		"flux-system": {"username": []byte("git"), "password": []byte("deploy-token")},
		"sops-age":    {"age.agekey": []byte(files["demo.agekey"])},
	} {
		e.Create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: data})
	}
	for _, u := range decodeAll(t, files["clusters/production/flux-system/gotk-sync.yaml"]) {
		gvr := gitRepositories
		if u.GetKind() == "Kustomization" {
			gvr = kustomizations
		}
		if _, err := e.Dynamic.Resource(gvr).Namespace(ns).Create(ctx, u, metav1.CreateOptions{}); err != nil {
			t.Fatalf("apply gotk-sync.yaml: %v", err)
		}
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, gvr := range []schema.GroupVersionResource{gitRepositories, ociRepositories, kustomizations, helmReleases} {
			l, _ := e.Dynamic.Resource(gvr).Namespace(ns).List(context.Background(), metav1.ListOptions{})
			for _, u := range l.Items {
				st, _ := sigsyaml.Marshal(u.Object["status"])
				t.Logf("%s %s status:\n%s", u.GetKind(), u.GetName(), st)
			}
		}
	})
	t.Cleanup(func() {
		// As `flux uninstall` would not: deleting the root Kustomization
		// prunes everything it applied, the other Kustomizations (and
		// with them their objects) included.
		_ = e.Dynamic.Resource(kustomizations).Namespace(ns).Delete(context.Background(), "flux-system", metav1.DeleteOptions{})
		e.WaitFor(t, "the platform pruned", func() bool {
			l, err := e.Dynamic.Resource(kustomizations).Namespace(ns).List(context.Background(), metav1.ListOptions{})
			return err == nil && len(l.Items) == 0
		})
	})

	want := "main@sha1:" + rev
	for _, k := range []string{"flux-system", "infrastructure", "apps"} {
		e.WaitFor(t, "Kustomization "+k+" Ready at "+want, func() bool {
			return fluxReady(e, kustomizations, k) && status(e, kustomizations, k, "lastAppliedRevision") == want
		})
	}
	e.WaitFor(t, "HelmRelease podinfo Ready, OCIRepository podinfo at 6.5.0", func() bool {
		return fluxReady(e, helmReleases, "podinfo") && fluxReady(e, ociRepositories, "podinfo") &&
			strings.HasPrefix(status(e, ociRepositories, "podinfo", "artifact", "revision"), "6.5.0@sha256:")
	})

	// infrastructure: the chart from the registry, its values from the
	// values.yaml ConfigMap (with the cluster's name substituted) and a
	// targetPath.
	ui := configMap(t, e, "podinfo-ui")
	if ui["message"] != "Hello from production" || ui["color"] != "#34577c" || ui["replicas"] != "1" {
		t.Errorf("podinfo-ui = %v; want the message of values.yaml with ${cluster_name} substituted and ui.color from valuesFrom targetPath", ui)
	}
	// apps: variables from the ConfigMap and the decrypted Secret of
	// infrastructure, defaults, its own SOPS Secret, the component's label,
	// the image override.
	if got := configMap(t, e, "shop-config"); got["SHOP_URL"] != "https://shop.example.org" || got["CLUSTER"] != "production" || got["LOG_LEVEL"] != "info" {
		t.Errorf("shop-config = %v; want postBuild substitution from cluster-vars and defaults", got)
	}
	if got := secret(t, e, "shop-mail")["SMTP_PASSWORD"]; got != "s3cret-smtp-demo" {
		t.Errorf("shop-mail SMTP_PASSWORD = %q; want the value of the SOPS-encrypted cluster-secrets", got)
	}
	if got := secret(t, e, "shop-db")["DATABASE_URL"]; got != "postgres://shop:s3cret-db-demo@postgres/shop" {
		t.Errorf("shop-db DATABASE_URL = %q; want it decrypted", got)
	}
	shop, err := e.Clientset.AppsV1().Deployments(ns).Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *shop.Spec.Replicas != 2 || shop.Spec.Template.Spec.Containers[0].Image != "ghcr.io/example/shop:1.5.0" || shop.Labels["monitoring"] != "enabled" {
		t.Errorf("Deployment shop: replicas %d, image %s, labels %v; want 2, the image override and the component's label",
			*shop.Spec.Replicas, shop.Spec.Template.Spec.Containers[0].Image, shop.Labels)
	}
	// dependsOn: apps applied only once infrastructure was Ready.
	if infra, apps := readySince(t, e, "infrastructure"), readySince(t, e, "apps"); apps.Before(&infra) {
		t.Errorf("apps Ready at %s, before infrastructure (%s) it depends on", apps, infra)
	}

	// The next commit: a new image, and the mail Secret removed from git.
	files["apps/production/kustomization.yaml"] = strings.Replace(files["apps/production/kustomization.yaml"], "newTag: 1.5.0", "newTag: 1.6.0", 1)
	files["apps/base/shop/kustomization.yaml"] = strings.Replace(files["apps/base/shop/kustomization.yaml"], "  - mail.yaml\n", "", 1)
	rev2 := repo.Commit("shop 1.6.0; mail moves out", map[string]string{
		"apps/production/kustomization.yaml": files["apps/production/kustomization.yaml"],
		"apps/base/shop/kustomization.yaml":  files["apps/base/shop/kustomization.yaml"],
		"apps/base/shop/mail.yaml":           "",
	})
	// `flux reconcile source git flux-system`.
	req := []byte(`{"metadata":{"annotations":{"reconcile.fluxcd.io/requestedAt":"` + time.Now().Format(time.RFC3339Nano) + `"}}}`)
	if _, err := e.Dynamic.Resource(gitRepositories).Namespace(ns).Patch(ctx, "flux-system", types.MergePatchType, req, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	e.WaitFor(t, "apps at "+rev2+": the new image applied, the mail Secret pruned", func() bool {
		d, err := e.Clientset.AppsV1().Deployments(ns).Get(ctx, "shop", metav1.GetOptions{})
		_, gone := e.Clientset.CoreV1().Secrets(ns).Get(ctx, "shop-mail", metav1.GetOptions{})
		return err == nil && d.Spec.Template.Spec.Containers[0].Image == "ghcr.io/example/shop:1.6.0" && apierrors.IsNotFound(gone) &&
			status(e, kustomizations, "apps", "lastAppliedRevision") == "main@sha1:"+rev2
	})
}

func decodeAll(t *testing.T, doc string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader([]byte(doc)), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

func get(e *platform.Env, gvr schema.GroupVersionResource, name string) *unstructured.Unstructured {
	u, err := e.Dynamic.Resource(gvr).Namespace(e.Namespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return &unstructured.Unstructured{Object: map[string]any{}}
	}
	return u
}

func status(e *platform.Env, gvr schema.GroupVersionResource, name string, fields ...string) string {
	s, _, _ := unstructured.NestedString(get(e, gvr, name).Object, append([]string{"status"}, fields...)...)
	return s
}

// readyCondition is the Ready condition of a Flux object, nil when it has
// none.
func readyCondition(e *platform.Env, gvr schema.GroupVersionResource, name string) map[string]any {
	conds, _, _ := unstructured.NestedSlice(get(e, gvr, name).Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Ready" {
			return m
		}
	}
	return nil
}

func fluxReady(e *platform.Env, gvr schema.GroupVersionResource, name string) bool {
	c := readyCondition(e, gvr, name)
	return c != nil && c["status"] == "True"
}

func readySince(t *testing.T, e *platform.Env, kustomization string) metav1.Time {
	t.Helper()
	c := readyCondition(e, kustomizations, kustomization)
	var at metav1.Time
	if s, _ := c["lastTransitionTime"].(string); at.UnmarshalQueryParameter(s) != nil || s == "" {
		t.Fatalf("Kustomization %s Ready condition %v has no transition time", kustomization, c)
	}
	return at
}

func configMap(t *testing.T, e *platform.Env, name string) map[string]string {
	t.Helper()
	cm, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("ConfigMap %s: %v", name, err)
	}
	return cm.Data
}

func secret(t *testing.T, e *platform.Env, name string) map[string]string {
	t.Helper()
	s, err := e.Clientset.CoreV1().Secrets(e.Namespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Secret %s: %v", name, err)
	}
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out
}
