package render

import (
	"context"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tend-gitops/tend/internal/source/chart/charttest"
	"github.com/tend-gitops/tend/internal/testenv"
)

// lookupChart looks up a ConfigMap in the release namespace and reports
// what .Capabilities says.
var lookupChart = map[string]string{
	"app/Chart.yaml": "apiVersion: v2\nname: app\nversion: 1.0.0\n",
	"app/templates/cm.yaml": `{{- $cm := lookup "v1" "ConfigMap" .Release.Namespace "settings" -}}
{{- $missing := lookup "v1" "ConfigMap" .Release.Namespace "does-not-exist" -}}
{{- $all := lookup "v1" "ConfigMap" .Release.Namespace "" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-report
data:
  found: {{ dig "data" "color" "none" $cm | quote }}
  missingEmpty: {{ empty $missing | quote }}
  listed: "{{ range $all.items }}{{ .metadata.name }},{{ end }}"
  kube: {{ .Capabilities.KubeVersion.Version | quote }}
  hasApps: {{ .Capabilities.APIVersions.Has "apps/v1" | quote }}
  hasDeploymentKind: {{ .Capabilities.APIVersions.Has "apps/v1/Deployment" | quote }}
  hasWidgets: {{ .Capabilities.APIVersions.Has "example.com/v1" | quote }}
`,
}

func TestHelmLookupAndCapabilitiesFromCluster(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	_, err := env.Clientset.CoreV1().ConfigMaps(env.Namespace).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "settings"},
		Data:       map[string]string{"color": "teal"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	charttest.WriteFiles(t, root, lookupChart)
	opts := Options{Path: "app", Namespace: env.Namespace, Helm: &HelmOptions{ReleaseName: "r"}}

	cluster, err := DiscoverCluster(env.Config)
	if err != nil {
		t.Fatalf("DiscoverCluster: %v", err)
	}
	if !strings.HasPrefix(cluster.KubeVersion, "v1.") {
		t.Fatalf("discovered KubeVersion %q", cluster.KubeVersion)
	}
	for _, v := range []string{"v1", "apps/v1", "apps/v1/Deployment"} {
		if !slices.Contains(cluster.APIVersions, v) {
			t.Errorf("discovered APIVersions lack %q", v)
		}
	}

	res := helmRender(t, &Renderer{Cluster: cluster}, root, opts)
	cm := helmFind(t, res.Objects(), "ConfigMap", "r-report")
	if got := helmData(t, cm, "listed"); !strings.Contains(got, "settings,") {
		t.Errorf("with the cluster: listing ConfigMaps gave %q, want it to include settings", got)
	}
	for key, want := range map[string]string{
		"found":             "teal",
		"missingEmpty":      "true",
		"kube":              cluster.KubeVersion,
		"hasApps":           "true",
		"hasDeploymentKind": "true",
		"hasWidgets":        "false",
	} {
		if got := helmData(t, cm, key); got != want {
			t.Errorf("with the cluster: data.%s = %q, want %q", key, got, want)
		}
	}

	// Extra API versions the cluster advertises (here made up) are visible.
	withWidgets := *cluster
	withWidgets.APIVersions = append(slices.Clone(cluster.APIVersions), "example.com/v1")
	res = helmRender(t, &Renderer{Cluster: &withWidgets}, root, opts)
	if got, want := helmData(t, helmFind(t, res.Objects(), "ConfigMap", "r-report"), "hasWidgets"), "true"; got != want {
		t.Errorf("with example.com/v1 advertised: hasWidgets = %q, want %q", got, want)
	}

	// Without a cluster, lookup answers nothing, as `helm template` does.
	res = helmRender(t, &Renderer{}, root, opts)
	cm = helmFind(t, res.Objects(), "ConfigMap", "r-report")
	if got, want := helmData(t, cm, "found"), "none"; got != want {
		t.Errorf("without a cluster: data.found = %q, want %q", got, want)
	}
	if got, want := helmData(t, cm, "listed"), ""; got != want {
		t.Errorf("without a cluster: data.listed = %q, want %q", got, want)
	}
}
