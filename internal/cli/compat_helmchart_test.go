package cli

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/source/chart/charttest"
)

var (
	fluxHelmRepos  = schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "helmrepositories"}
	fluxHelmCharts = schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "helmcharts"}
)

// A HelmRelease whose chartRef names a HelmChart installs the chart the
// HelmChart names, from its HelmRepository, as spec.chart would: while the
// HelmChart is missing the HelmRelease says so; once it exists the chart
// is installed; a new version in the HelmChart is installed at once. The
// HelmChart's status says which version was pulled (flux get sources
// chart), and why not when the version does not exist.
func TestCompatFluxHelmReleaseChartRefToHelmChart(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	dyn := installCompat(t, cl)
	charts := charttest.NewRepo(t, "", "")
	for _, v := range []string{"1.2.0", "1.3.0"} {
		charts.Add(t, charttest.Package(t, map[string]string{
			"Chart.yaml":        "apiVersion: v2\nname: web\nversion: " + v + "\n",
			"values.yaml":       "greeting: hello\n",
			"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \"{{ .Release.Name }}-settings\"}\ndata:\n  greeting: {{ .Values.greeting | quote }}\n  version: {{ .Chart.Version | quote }}\n",
		}))
	}
	createYAML(t, dyn, fluxHelmRepos, fmt.Sprintf(`apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata: {name: charts, namespace: %s}
spec: {interval: 1h, url: %s}
`, ns, charts.URL))
	createYAML(t, dyn, fluxHelmReleases, fmt.Sprintf(`apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: web, namespace: %s}
spec:
  interval: 1h
  chartRef: {kind: HelmChart, name: web}
  values: {greeting: from the release}
`, ns))
	logIfFailed(t, dyn, fluxHelmReleases, ns, "web")
	cl.startControllerWith(t, func(o *controller.Options) { o.Compat = []string{"flux"} })

	eventually(t, "HelmRelease web names the missing HelmChart", time.Minute, func() bool {
		c := condition(dyn, fluxHelmReleases, ns, "web", "Ready")
		return strings.HasPrefix(c, "False/") && strings.Contains(c, "HelmChart "+ns+"/web is not in the input")
	})
	createYAML(t, dyn, fluxHelmCharts, fmt.Sprintf(`apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmChart
metadata: {name: web, namespace: %s}
spec: {interval: 1h, chart: web, version: 1.2.0, sourceRef: {kind: HelmRepository, name: charts}}
`, ns))
	logIfFailed(t, dyn, fluxHelmCharts, ns, "web")
	settings := func(version string) {
		t.Helper()
		eventually(t, "web-settings of chart "+version, 2*time.Minute, func() bool {
			cm, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "web-settings", metav1.GetOptions{})
			return err == nil && cm.Data["version"] == version && cm.Data["greeting"] == "from the release" &&
				strings.HasPrefix(condition(dyn, fluxHelmReleases, ns, "web", "Ready"), "True/") &&
				getStatus(dyn, fluxHelmReleases, ns, "web", "lastAttemptedRevision") == version
		})
		eventually(t, "HelmChart web pulled "+version, time.Minute, func() bool {
			return condition(dyn, fluxHelmCharts, ns, "web", "Ready") == "True/ChartPullSucceeded/pulled 'web' chart with version '"+version+"'" &&
				getStatus(dyn, fluxHelmCharts, ns, "web", "observedChartName") == "web"
		})
	}
	setVersion := func(version string) {
		t.Helper()
		if _, err := dyn.Resource(fluxHelmCharts).Namespace(ns).Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"version":"`+version+`"}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	settings("1.2.0")
	setVersion("1.3.0")
	settings("1.3.0")

	// A version the repository does not have: the HelmChart says so;
	// what 1.3.0 installed stays.
	setVersion("9.9.9")
	eventually(t, "HelmChart web says 9.9.9 was not pulled", time.Minute, func() bool {
		c := condition(dyn, fluxHelmCharts, ns, "web", "Ready")
		return strings.HasPrefix(c, "False/ChartPullFailed/") && strings.Contains(c, "9.9.9")
	})
	if cm, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "web-settings", metav1.GetOptions{}); err != nil || cm.Data["version"] != "1.3.0" {
		t.Errorf("web-settings after a missing version: %v, %v; want 1.3.0 kept", cm.Data, err)
	}
}
