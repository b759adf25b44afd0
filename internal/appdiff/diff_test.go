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

// TestRenderSeveralSources: `tend render` of an App with spec.sources
// renders each Source (here two git repositories, not in the cluster yet)
// into one set at their revisions joined; an object in two of them is an
// input error naming both, and --revision, which names one revision, is
// refused.
func TestRenderSeveralSources(t *testing.T) {
	env := testenv.New(t)
	testenv.InstallCRDs(t, env.Config)
	c, err := client.New(env.Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cm := func(name string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + "}\n"
	}
	platform, extras := testenv.NewGitRepo(t, nil), testenv.NewGitRepo(t, nil)
	revA := platform.Commit("platform", map[string]string{"base/cm.yaml": cm("base")})
	revB := extras.Commit("extras", map[string]string{"dashboards/cm.yaml": cm("dashboard"), "dup/cm.yaml": cm("base")})
	source := func(name, url string) *tendv1.Source {
		return &tendv1.Source{ObjectMeta: metav1.ObjectMeta{Namespace: env.Namespace, Name: name}, Spec: tendv1.SourceSpec{
			Git: &tendv1.GitSource{URL: url, Ref: tendv1.GitRef{Branch: "main"}},
		}}
	}
	known := appdiff.Known{Sources: map[string]*tendv1.Source{"platform": source("platform", platform.URL), "extras": source("extras", extras.URL)}}
	app := &tendv1.App{ObjectMeta: metav1.ObjectMeta{Namespace: env.Namespace, Name: "web"}, Spec: tendv1.AppSpec{
		SourceRef: tendv1.NamespacedObjectReference{Name: "platform"}, Path: "base",
		Sources: []tendv1.AppSource{{SourceRef: tendv1.NamespacedObjectReference{Name: "extras"}, Path: "dashboards"}},
	}}
	d := &appdiff.Differ{Config: env.Config, Client: c}
	res, err := d.Render(ctx, app, known.Sources["platform"], "", known)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range res.Objects {
		names = append(names, o.GetName())
	}
	if got := strings.Join(names, ","); got != "base,dashboard" || res.Revision != revA+", "+revB {
		t.Errorf("rendered %s at %q, want base,dashboard at %q", got, res.Revision, revA+", "+revB)
	}

	app.Spec.Sources[0].Path = "dup"
	_, err = d.Render(ctx, app, known.Sources["platform"], "", known)
	var ie *appdiff.InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "ConfigMap "+env.Namespace+"/base is rendered by both spec.sourceRef (Source platform) and spec.sources[0] (Source extras)") {
		t.Errorf("an object in two Sources: %v", err)
	}
	_, err = d.Render(ctx, app, known.Sources["platform"], revA, known)
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "--revision: the App "+env.Namespace+"/web renders 2 Sources") {
		t.Errorf("--revision with spec.sources: %v", err)
	}
}
