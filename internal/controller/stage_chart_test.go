package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/source/chart/charttest"
)

// TestStagePromotesChartVersion: a chart version published to a chart
// repository is promoted as an image tag is: the Warehouse finds it, the
// Stage writes it into the spec.chart.version of an App manifest in git
// (rendered by the Stage's App, an App of Apps), and the chart App rolls
// the new version out; the promotion passes once the App runs it Healthy.
func TestStagePromotesChartVersion(t *testing.T) {
	e := startControllerWith(t, func(o *Options) { o.ChartIndexTTL = time.Second })
	ctx := context.Background()
	ns := e.Namespace
	charts := charttest.NewRepo(t, "", "")
	publish := func(version string) {
		charts.Add(t, charttest.Package(t, map[string]string{
			"Chart.yaml": fmt.Sprintf("apiVersion: v2\nname: web\nversion: %s\n", version),
			"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-chart\n" +
				"data:\n  version: {{ .Chart.Version | quote }}\n",
		}))
	}
	publish("1.0.0")
	repo := newCtlRepo(t)
	repo.commit("dev", map[string]string{
		"envs/dev/web-app.yaml": `# the chart dev runs
apiVersion: tend.dev/v1alpha1
kind: App
metadata:
  name: web-chart
spec:
  sourceRef: {name: charts}
  chart:
    name: web
    version: "1.0.0"
  destination: {namespace: ` + ns + `}
  sync: {interval: 1s}
`,
	})
	second := metav1.Duration{Duration: time.Second}
	e.create(t,
		&tendv1.Source{ObjectMeta: metav1.ObjectMeta{Name: "charts"}, Spec: tendv1.SourceSpec{
			Helm: &tendv1.HelmRepositorySource{URL: charts.URL}, Interval: second,
		}},
		gitSource("config", repo.URL),
		newApp("platform-dev", "config", "envs/dev", ns, func(a *tendv1.App) { a.Spec.Sync.Interval = second }),
		&tendv1.Warehouse{ObjectMeta: metav1.ObjectMeta{Name: "web-chart"}, Spec: tendv1.WarehouseSpec{
			Interval:      second,
			Subscriptions: []tendv1.Subscription{{Chart: &tendv1.ChartSubscription{RepoURL: charts.URL, Name: "web", Constraint: "^1"}}},
		}},
		&tendv1.Stage{ObjectMeta: metav1.ObjectMeta{Name: "dev"}, Spec: tendv1.StageSpec{
			Warehouse: tendv1.LocalObjectReference{Name: "web-chart"},
			Git:       tendv1.StageGit{SourceRef: tendv1.LocalObjectReference{Name: "config"}},
			Apps:      []tendv1.LocalObjectReference{{Name: "platform-dev"}},
			Updates:   []tendv1.StageUpdate{{Chart: "web", Value: &tendv1.ValueUpdate{File: "envs/dev/web-app.yaml", Key: "spec.chart.version", From: tendv1.ValueFromChartVersion}}},
		}},
	)
	chartVersion := func() string {
		cm, err := e.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "web-chart", metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return cm.Data["version"]
	}
	eventually(t, "chart 1.0.0 applied", time.Minute, func() bool { return chartVersion() == "1.0.0" })
	waitObject(t, e, "dev", "passed 1.0.0 (git held it already)", &tendv1.Stage{}, func(s *tendv1.Stage) bool {
		return s.Status.Freight != nil && s.Status.Freight.Versions == "chart web 1.0.0" && s.Status.Freight.VerifiedAt != nil
	})

	publish("1.1.0")
	s := waitObject(t, e, "dev", "passed 1.1.0", &tendv1.Stage{}, func(s *tendv1.Stage) bool {
		return s.Status.Freight != nil && s.Status.Freight.Versions == "chart web 1.1.0" && s.Status.Freight.VerifiedAt != nil &&
			meta.IsStatusConditionTrue(s.Status.Conditions, tendv1.ConditionReady)
	})
	eventually(t, "chart 1.1.0 applied", time.Minute, func() bool { return chartVersion() == "1.1.0" })
	repo.Pull()
	if got := repo.Git("show", s.Status.Freight.Revision+":envs/dev/web-app.yaml"); !strings.Contains(got, `version: "1.1.0"`) || !strings.Contains(got, "# the chart dev runs") {
		t.Errorf("web-app.yaml at the promotion:\n%s", got)
	}
}
