package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/source/chart/charttest"
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
