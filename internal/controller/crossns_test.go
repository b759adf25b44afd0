package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
)

// TestNoCrossNamespaceRefs: with --no-cross-namespace-refs, an App
// rendering from a Source of another namespace and an AppSet reading one
// are Stalled with a condition naming the field, and nothing is applied,
// though the controller watches both namespaces.
func TestNoCrossNamespaceRefs(t *testing.T) {
	other := fmt.Sprintf("crossns-%d", time.Now().UnixNano()%1_000_000)
	e := startControllerWith(t, func(o *Options) {
		o.NoCrossNamespaceRefs = true
		o.Namespaces = append(o.Namespaces, other)
	})
	ctx := context.Background()
	if _, err := e.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: other, Labels: map[string]string{testenv.TestLabel: "true"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.Clientset.CoreV1().Namespaces().Delete(context.Background(), other, metav1.DeleteOptions{})
	})
	repo := newCtlRepo(t)
	repo.commit("app", map[string]string{"apps/web/cm.yaml": configMapYAML("borrowed", "1")})
	shared := gitSource("shared", repo.URL)
	shared.Namespace = other
	if err := e.c.Create(ctx, shared); err != nil {
		t.Fatal(err)
	}
	e.create(t,
		newApp("web", "shared", "apps/web", e.Namespace, func(a *tendv1.App) { a.Spec.SourceRef.Namespace = other }),
		&tendv1.AppSet{ObjectMeta: metav1.ObjectMeta{Name: "apps"}, Spec: tendv1.AppSetSpec{
			Generators: []tendv1.Generator{{Directories: &tendv1.DirectoriesGenerator{
				SourceRef: tendv1.NamespacedObjectReference{Name: "shared", Namespace: other}, Include: []string{"apps/*"},
			}}},
			Template: tendv1.AppTemplate{Metadata: tendv1.AppTemplateMeta{Name: "gen-{{path.basename}}"}, Spec: tendv1.AppSpec{
				SourceRef: tendv1.NamespacedObjectReference{Name: "shared"}, Path: "{{path}}",
			}},
		}})
	e.waitApp(t, "web", "stalled on its Source in another namespace", time.Minute, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionStalled)
		return c != nil && c.Reason == ReasonCrossNamespaceRef &&
			strings.Contains(c.Message, fmt.Sprintf("spec.sourceRef names a Source in namespace %q", other)) && strings.Contains(c.Message, "--no-cross-namespace-refs")
	})
	testenv.Eventually(t, "AppSet apps Stalled on its generator's Source", time.Minute, func() bool {
		var set tendv1.AppSet
		if err := e.c.Get(ctx, types.NamespacedName{Namespace: e.Namespace, Name: "apps"}, &set); err != nil {
			return false
		}
		c := meta.FindStatusCondition(set.Status.Conditions, tendv1.ConditionStalled)
		return c != nil && c.Reason == AppSetReasonCrossNamespaceRef && strings.Contains(c.Message, "spec.generators[0].directories.sourceRef")
	})
	if _, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "borrowed", metav1.GetOptions{}); err == nil {
		t.Error("the App applied files of a Source in another namespace")
	}
	var apps tendv1.AppList
	if err := e.c.List(ctx, &apps); err == nil {
		for _, a := range apps.Items {
			if strings.HasPrefix(a.Name, "gen-") {
				t.Errorf("the AppSet generated App %s/%s from a Source in another namespace", a.Namespace, a.Name)
			}
		}
	}
}
