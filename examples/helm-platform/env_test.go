package example_test

import (
	"context"
	"encoding/json"
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

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
	"github.com/tend-gitops/tend/internal/testenv/platform"
)

// env is the platform test's environment (the cluster, the controller in
// this process, clients) with this example's checks.
type env struct {
	*platform.Env
	c   client.Client
	dyn dynamic.Interface
	// ns maps the namespaces the example declares to this run's.
	ns map[string]string
}

func setup(t *testing.T) *env {
	t.Helper()
	pe := platform.Start(t, platform.Options{Apps: apps, CRDs: exampleCRDs})
	e := &env{Env: pe, c: pe.Client, dyn: pe.Dynamic, ns: map[string]string{}}
	for _, name := range exampleNamespaces {
		e.ns[name] = pe.Namespace + "-" + name
	}
	return e
}

// createNamespace creates a namespace for the test that is deleted when
// the test ends.
func (e *env) createNamespace(t *testing.T, name string) {
	t.Helper()
	e.Create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{testenv.TestLabel: "true"}}})
	t.Cleanup(func() {
		if err := e.Clientset.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
}

// get reads a custom resource; ns is empty for cluster-scoped ones.
func (e *env) get(t *testing.T, gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	t.Helper()
	u, err := e.dyn.Resource(gvr).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("%s %s/%s: %v", gvr.Resource, ns, name, err)
	}
	return u
}

// waitObject waits until a custom resource exists and returns it.
func (e *env) waitObject(t *testing.T, gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	t.Helper()
	var u *unstructured.Unstructured
	e.WaitFor(t, gvr.Resource+" "+name, func() bool {
		var err error
		u, err = e.dyn.Resource(gvr).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
		return err == nil
	})
	return u
}

// setStatus writes a custom resource's status as its operator does (a
// merge patch of the status subresource, so lists are replaced).
func (e *env) setStatus(t *testing.T, gvr schema.GroupVersionResource, ns, name, manager string, status map[string]any) {
	t.Helper()
	patch, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.dyn.Resource(gvr).Namespace(ns).Patch(context.Background(), name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: manager}, "status"); err != nil {
		t.Fatalf("%s %s/%s status: %v", gvr.Resource, ns, name, err)
	}
}

// condition builds a status condition as operators write them.
func condition(typ, status, reason, msg string) map[string]any {
	return map[string]any{
		"type": typ, "status": status, "reason": reason, "message": msg,
		"lastTransitionTime": time.Now().UTC().Format(time.RFC3339),
	}
}

func readyCondition(a *tendv1.App) *metav1.Condition {
	for i, c := range a.Status.Conditions {
		if c.Type == tendv1.ConditionReady {
			return &a.Status.Conditions[i]
		}
	}
	return nil
}
