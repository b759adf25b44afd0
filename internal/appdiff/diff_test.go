package appdiff_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/appdiff"
	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestDiffOfAnotherCluster: an App that deploys to another Cluster is
// refused before anything is fetched or asked of a cluster.
func TestDiffOfAnotherCluster(t *testing.T) {
	app := &tendv1.App{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "web"}, Spec: tendv1.AppSpec{
		Destination: tendv1.Destination{ClusterRef: &tendv1.LocalObjectReference{Name: "edge"}},
	}}
	_, err := (&appdiff.Differ{}).Diff(context.Background(), app, &tendv1.Source{}, appdiff.Options{})
	var oc *appdiff.OtherClusterError
	if !errors.As(err, &oc) || oc.Cluster != "edge" || !strings.Contains(err.Error(), "the App team/web deploys to Cluster edge") {
		t.Fatalf("diff of an App of Cluster edge: %v", err)
	}
}

// TestRenderBeforeTheSourceFetched: an App whose Source has fetched
// nothing yet is the user's to wait for, and the error says which Source.
func TestRenderBeforeTheSourceFetched(t *testing.T) {
	env := testenv.New(t)
	testenv.InstallCRDs(t, env.Config)
	c, err := client.New(env.Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	src := &tendv1.Source{ObjectMeta: metav1.ObjectMeta{Namespace: env.Namespace, Name: "platform"}, Spec: tendv1.SourceSpec{
		Git: &tendv1.GitSource{URL: "https://git.example.com/platform.git"},
	}}
	if err := c.Create(ctx, src); err != nil {
		t.Fatal(err)
	}
	app := &tendv1.App{ObjectMeta: metav1.ObjectMeta{Namespace: env.Namespace, Name: "web"}, Spec: tendv1.AppSpec{
		SourceRef: tendv1.NamespacedObjectReference{Name: "platform"}, Path: "apps/web",
	}}
	_, err = (&appdiff.Differ{Config: env.Config, Client: c}).Render(ctx, app, src, "", appdiff.Known{})
	var (
		ie *appdiff.InputError
		nf *appdiff.NotFetchedError
	)
	if !errors.As(err, &ie) || !errors.As(err, &nf) || !strings.Contains(err.Error(), "the Source "+env.Namespace+"/platform has not fetched a revision yet") {
		t.Fatalf("render before the Source fetched: %v", err)
	}
}
