package cli

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/testenv"
)

// A Flux Kustomization's healthCheckExprs decide its custom resources'
// health as they do under Flux, written as they are (top-level `status`):
// a Widget whose phase says Broken makes the Kustomization Ready False,
// naming the Widget, although its status has nothing the kstatus
// conventions would call failed; Provisioned makes it Ready True.
func TestCompatFluxHealthCheckExprs(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	dyn := compatCRDs(t, cl)
	group := ns + ".hc.tend.dev"
	ext, err := apiextclient.NewForConfig(cl.Config)
	if err != nil {
		t.Fatal(err)
	}
	crd, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, testenv.WidgetCRD(group), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = ext.ApiextensionsV1().CustomResourceDefinitions().Delete(context.Background(), crd.Name, metav1.DeleteOptions{})
	})
	eventually(t, "the Widget CRD served", time.Minute, func() bool {
		_, err := cl.Clientset.Discovery().ServerResourcesForGroupVersion(group + "/v1")
		return err == nil
	})
	widget := func(phase string) map[string]string {
		return map[string]string{"widgets/w.yaml": fmt.Sprintf("apiVersion: %s/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  size: 1\nstatus:\n  phase: %s\n", group, phase)}
	}
	repo := testenv.NewGitRepo(t, widget("Provisioned"))
	createYAML(t, dyn, fluxGitRepos, fmt.Sprintf(`apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: fleet, namespace: %s}
spec: {interval: 1s, url: %s, ref: {branch: main}}
`, ns, repo.URL))
	createYAML(t, dyn, fluxKustomization, fmt.Sprintf(`apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: widgets, namespace: %s}
spec:
  interval: 10m
  path: ./widgets
  prune: true
  wait: true
  timeout: 1m
  sourceRef: {kind: GitRepository, name: fleet}
  healthCheckExprs:
  - apiVersion: %s/v1
    kind: Widget
    failed: status.phase == 'Broken'
    current: status.phase == 'Provisioned'
`, ns, group))
	logIfFailed(t, dyn, fluxKustomization, ns, "widgets")
	cl.startControllerWith(t, func(o *controller.Options) { o.Compat = []string{"flux"} })

	eventually(t, "Kustomization widgets Ready with the Widget Provisioned", 2*time.Minute, func() bool {
		return strings.HasPrefix(condition(dyn, fluxKustomization, ns, "widgets", "Ready"), "True/")
	})
	repo.Commit("broken", widget("Broken"))
	eventually(t, "Kustomization widgets not Ready, naming the Widget", 2*time.Minute, func() bool {
		c := condition(dyn, fluxKustomization, ns, "widgets", "Ready")
		return strings.HasPrefix(c, "False/") && strings.Contains(c, "Widget")
	})
	// The Widget is applied as git says: only its health changed.
	w, err := dyn.Resource(schema.GroupVersionResource{Group: group, Version: "v1", Resource: "widgets"}).Namespace(ns).Get(ctx, "w", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if phase, _, _ := unstructured.NestedString(w.Object, "status", "phase"); phase != "Broken" {
		t.Errorf("Widget w's phase = %q, want Broken", phase)
	}
}
