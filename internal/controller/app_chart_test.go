package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/source/chart/charttest"
	"github.com/tend-gitops/tend/internal/testenv"
)

// TestChartAppFollowsItsVersionRange: an App on a chart repository with a
// version range renders the newest version in range, and a version
// published later is rolled out at the App's next interval after the
// index is read again.
func TestChartAppFollowsItsVersionRange(t *testing.T) {
	e := startControllerWith(t, func(o *Options) { o.ChartIndexTTL = time.Second })
	repo := charttest.NewRepo(t, "", "")
	publish := func(version string) {
		repo.Add(t, charttest.Package(t, map[string]string{
			"Chart.yaml": fmt.Sprintf("apiVersion: v2\nname: web\nversion: %s\n", version),
			"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-chart\n" +
				"data:\n  version: {{ .Chart.Version | quote }}\n",
		}))
	}
	publish("1.0.0")
	publish("2.0.0") // out of range
	e.create(t,
		&tendv1.Source{ObjectMeta: metav1.ObjectMeta{Name: "charts"}, Spec: tendv1.SourceSpec{
			Helm: &tendv1.HelmRepositorySource{URL: repo.URL}, Interval: metav1.Duration{Duration: time.Second},
		}},
		newApp("web", "charts", "", e.Namespace, func(a *tendv1.App) {
			a.Spec.Chart = &tendv1.ChartSpec{Name: "web", Version: "~1.0.0"}
			a.Spec.Sync.Interval = metav1.Duration{Duration: time.Second}
		}),
	)
	chartVersion := func() string {
		cm, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(context.Background(), "web-chart", metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return cm.Data["version"]
	}
	eventually(t, "version 1.0.0 applied", 60*time.Second, func() bool { return chartVersion() == "1.0.0" })

	publish("1.0.1")
	eventually(t, "version 1.0.1 applied after it was published", 60*time.Second, func() bool { return chartVersion() == "1.0.1" })
}

// TestHelmCapabilitiesSeeCRDsInstalledLater: a chart whose template
// renders an object only when the cluster serves an API
// (.Capabilities.APIVersions.Has) renders it once that API's CRD is
// installed, after the App's first render: Helm's capabilities are
// discovered again when the cluster's CRDs change, not minutes later.
func TestHelmCapabilitiesSeeCRDsInstalledLater(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	group := e.Namespace + ".example.com"
	repo := newCtlRepo(t)
	repo.commit("chart", map[string]string{
		"chart/Chart.yaml": "apiVersion: v2\nname: gated\nversion: 0.1.0\n",
		"chart/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: always\ndata: {}\n" +
			"{{- if .Capabilities.APIVersions.Has \"" + group + "/v1\" }}\n---\n" +
			"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: gated\ndata: {}\n{{- end }}\n",
	})
	e.create(t, gitSource("repo", repo.URL), newApp("gated", "repo", "chart", e.Namespace, func(a *tendv1.App) {
		a.Spec.Helm = &tendv1.HelmSpec{ReleaseName: "gated"}
		a.Spec.Sync.Interval = metav1.Duration{Duration: 2 * time.Second}
	}))
	e.waitApp(t, "gated", "Synced", 60*time.Second, func(a *tendv1.App) bool { return a.Status.Sync == tendv1.SyncSynced })
	exists := func(name string) bool {
		_, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, name, metav1.GetOptions{})
		return err == nil
	}
	if !exists("always") || exists("gated") {
		t.Fatalf("before the CRD: always %v, gated %v; want only always", exists("always"), exists("gated"))
	}

	ext, err := apiextclient.NewForConfig(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	crd := testenv.WidgetCRD(group)
	if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = ext.ApiextensionsV1().CustomResourceDefinitions().Delete(context.Background(), crd.Name, metav1.DeleteOptions{})
	})
	eventually(t, "the gated ConfigMap applied once the CRD is installed", 60*time.Second, func() bool { return exists("gated") })
}
