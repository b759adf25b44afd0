package cli

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/source/chart/charttest"
)

var fluxOCIRepos = schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "ocirepositories"}

// A Flux cluster that ships its manifests and charts as OCI artifacts, as
// `flux push artifact` and `helm push` write them to a registry: an
// OCIRepository of manifests read by a Kustomization, and an OCIRepository
// of a chart (Flux's Helm layer selector, credentials in a
// .dockerconfigjson Secret) read by a HelmRelease's chartRef. tend applies
// both, writes the OCIRepositories' and the Kustomization's revisions as
// Flux does ("<tag>@sha256:<digest>"), and applies a newer tag pushed
// later.
func TestCompatFluxOCIRepository(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	dyn := installCompat(t, cl)
	reg := charttest.NewRegistry(t, "flux", "pull-token")
	d1 := reg.PushArtifact(t, "fleet/manifests", "1.0.0", map[string]string{"apps/cm.yaml": configMapYAML("shop", "1")})
	reg.Push(t, charttest.Package(t, map[string]string{
		"Chart.yaml":        "apiVersion: v2\nname: web\nversion: 0.2.0\n",
		"values.yaml":       "mode: default\n",
		"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}-settings}\ndata: {mode: {{ .Values.mode }}, chart: {{ .Chart.Version | quote }}}\n",
	}))
	docker := fmt.Sprintf(`{"auths":{%q:{"username":"flux","password":"pull-token"}}}`, reg.Host)
	if _, err := cl.Clientset.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "registry"}, Type: corev1.SecretTypeDockerConfigJson,
		StringData: map[string]string{corev1.DockerConfigJsonKey: docker},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createYAML(t, dyn, fluxOCIRepos, fmt.Sprintf(`apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata: {name: manifests, namespace: %s}
spec: {interval: 1s, url: oci://%s/fleet/manifests, insecure: true, ref: {semver: ">=1.0.0"}, secretRef: {name: registry}}
`, ns, reg.Host))
	createYAML(t, dyn, fluxOCIRepos, fmt.Sprintf(`apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata: {name: web-chart, namespace: %s}
spec:
  interval: 10m
  url: oci://%s/charts/web
  insecure: true
  ref: {semver: "0.x"}
  secretRef: {name: registry}
  layerSelector: {mediaType: application/vnd.cncf.helm.chart.content.v1.tar+gzip, operation: copy}
`, ns, reg.Host))
	createYAML(t, dyn, fluxKustomization, fmt.Sprintf(`apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: apps, namespace: %s}
spec: {interval: 10m, path: ./apps, prune: true, sourceRef: {kind: OCIRepository, name: manifests}}
`, ns))
	createYAML(t, dyn, fluxHelmReleases, fmt.Sprintf(`apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: web, namespace: %s}
spec:
  interval: 10m
  chartRef: {kind: OCIRepository, name: web-chart}
  values: {mode: oci}
`, ns))
	for _, n := range []string{"manifests", "web-chart"} {
		logIfFailed(t, dyn, fluxOCIRepos, ns, n)
	}
	logIfFailed(t, dyn, fluxKustomization, ns, "apps")
	logIfFailed(t, dyn, fluxHelmReleases, ns, "web")

	cl.startControllerWith(t, func(o *controller.Options) { o.Compat = []string{"flux"} })

	want := "1.0.0@" + d1
	eventually(t, "Kustomization apps Ready at "+want, 2*time.Minute, func() bool {
		return configMapData(cl, ns, "shop", "value") == "1" &&
			strings.HasPrefix(condition(dyn, fluxKustomization, ns, "apps", "Ready"), "True/") &&
			getStatus(dyn, fluxKustomization, ns, "apps", "lastAppliedRevision") == want
	})
	eventually(t, "OCIRepository manifests Ready with artifact "+want, time.Minute, func() bool {
		return strings.HasPrefix(condition(dyn, fluxOCIRepos, ns, "manifests", "Ready"), "True/") &&
			getStatus(dyn, fluxOCIRepos, ns, "manifests", "artifact", "revision") == want &&
			getStatus(dyn, fluxOCIRepos, ns, "manifests", "artifact", "digest") == d1
	})
	eventually(t, "HelmRelease web released from the chart artifact", 2*time.Minute, func() bool {
		return configMapData(cl, ns, "web-settings", "mode") == "oci" && configMapData(cl, ns, "web-settings", "chart") == "0.2.0" &&
			strings.HasPrefix(condition(dyn, fluxHelmReleases, ns, "web", "Ready"), "True/")
	})

	d2 := reg.PushArtifact(t, "fleet/manifests", "1.1.0", map[string]string{"apps/cm.yaml": configMapYAML("shop", "2")})
	eventually(t, "the newer tag applied", 2*time.Minute, func() bool {
		return configMapData(cl, ns, "shop", "value") == "2" &&
			getStatus(dyn, fluxKustomization, ns, "apps", "lastAppliedRevision") == "1.1.0@"+d2
	})

	// The CLI pulls the artifacts as the controller does: the digest the
	// Source holds (nothing to diff), or a tag asked for.
	eventually(t, "the OCIRepository's status at the new digest", time.Minute, func() bool {
		return getStatus(dyn, fluxOCIRepos, ns, "manifests", "artifact", "digest") == d2
	})
	for _, app := range []string{"apps", "web"} {
		if code, out, stderr := cl.tend(t, "diff", app, "-n", ns); code != 0 {
			t.Errorf("tend diff %s: exit %d\n%s%s", app, code, out, stderr)
		}
	}
	code, out, stderr := cl.tend(t, "render", "apps", "-n", ns, "--revision", "1.0.0")
	if code != 0 || !strings.Contains(out, `value: "1"`) {
		t.Errorf("tend render apps --revision 1.0.0: exit %d, want the first artifact's ConfigMap\n%s%s", code, out, stderr)
	}
}

// configMapData returns one key of a ConfigMap, or "" when there is none.
func configMapData(cl *testCluster, ns, name, key string) string {
	cm, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return cm.Data[key]
}
