package install

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pmezard/go-difflib/difflib"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chartloader "helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"helm.sh/helm/v4/pkg/strvals"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/tend-gitops/tend/internal/dashboard"
	"github.com/tend-gitops/tend/internal/dashboard/auth"
	"github.com/tend-gitops/tend/internal/testenv"
)

var chartPath = filepath.Join("..", "..", filepath.FromSlash(ChartDir))

func TestChartIsCurrent(t *testing.T) {
	files, err := Chart()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for _, f := range files {
		want[f.Path] = f.Data
	}
	got := map[string][]byte{}
	err = filepath.WalkDir(chartPath, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(chartPath, path)
		got[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatalf("%v: run `go run ./internal/install/gen`", err)
	}
	for path, w := range want {
		g, ok := got[path]
		if !ok {
			t.Errorf("%s/%s is missing: run `go run ./internal/install/gen`", ChartDir, path)
			continue
		}
		if !bytes.Equal(g, w) {
			t.Errorf("%s/%s is stale: run `go run ./internal/install/gen`\n%s", ChartDir, path, diff(string(g), string(w)))
		}
	}
	for path := range got {
		if _, ok := want[path]; !ok {
			t.Errorf("%s/%s is not generated: run `go run ./internal/install/gen`", ChartDir, path)
		}
	}
}

func diff(a, b string) string {
	d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(a), B: difflib.SplitLines(b), FromFile: "have", ToFile: "want", Context: 2,
	})
	if len(d) > 4000 {
		d = d[:4000] + "\n[...]"
	}
	return d
}

// TestChartReadsOnlyItsValues renders strictly, as `helm lint --strict`
// does: a template that reads a value values.yaml lacks fails.
func TestChartReadsOnlyItsValues(t *testing.T) {
	for _, vals := range []map[string]any{nil, setValues(t, "rbac.mode=clusterAdmin", "compat={argo,flux}", "webhook.ingress.enabled=true",
		"dashboard.ingress.enabled=true", "dashboard.policy[0].groups={dev}", "dashboard.policy[0].role=viewer", "dashboard.url=https://t.example.com",
		"monitoring.dashboard.enabled=true", "monitoring.serviceMonitor.enabled=true", "monitoring.prometheusRule.enabled=true")} {
		objs, err := render(t, engine.Engine{Strict: true}, DefaultNamespace, "", vals)
		if err != nil {
			t.Errorf("values %v: %v", vals, err)
		}
		// With everything on, no two objects share a name (the Grafana
		// dashboard's ConfigMap and the dashboard's policy did once).
		seen := map[string]bool{}
		for _, o := range objs {
			key := o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
			if seen[key] {
				t.Errorf("values %v: two objects %s", vals, key)
			}
			seen[key] = true
		}
	}
}

// setValues parses values as `helm --set` does.
func setValues(t testing.TB, set ...string) map[string]any {
	t.Helper()
	vals := map[string]any{}
	for _, s := range set {
		if err := strvals.ParseInto(s, vals); err != nil {
			t.Fatalf("--set %s: %v", s, err)
		}
	}
	return vals
}

// renderChart renders charts/tend with the Helm SDK as `helm install
// --dry-run` would, in namespace, and returns its objects. A non-empty
// appVersion replaces the chart's, as `helm package --app-version` does.
func renderChart(t testing.TB, namespace, appVersion string, vals map[string]any) ([]*unstructured.Unstructured, error) {
	t.Helper()
	return render(t, engine.Engine{}, namespace, appVersion, vals)
}

func render(t testing.TB, eng engine.Engine, namespace, appVersion string, vals map[string]any) ([]*unstructured.Unstructured, error) {
	t.Helper()
	c, err := chartloader.LoadDir(chartPath)
	if err != nil {
		t.Fatal(err)
	}
	if appVersion != "" {
		c.Metadata.AppVersion = appVersion
	}
	top, err := util.ToRenderValues(c, vals, common.ReleaseOptions{Name: "tend", Namespace: namespace, Revision: 1, IsInstall: true}, common.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	out, err := eng.RenderWithContext(context.Background(), c, top)
	if err != nil {
		return nil, err
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range out {
			if !yield(k) {
				return
			}
		}
	})
	var objs []*unstructured.Unstructured
	for _, name := range names {
		if !strings.HasSuffix(name, ".yaml") {
			continue // NOTES.txt, _helpers.tpl
		}
		docs, err := parseDocs(out[name])
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out[name])
		}
		objs = append(objs, docs...)
	}
	return objs, nil
}

func parseDocs(s string) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(s)))
	var out []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, err
		}
		if len(m) > 0 {
			out = append(out, &unstructured.Unstructured{Object: m})
		}
	}
}

func mustRender(t testing.TB, namespace string, vals map[string]any) []*unstructured.Unstructured {
	t.Helper()
	objs, err := renderChart(t, namespace, "", vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return objs
}

// normalized returns u as JSON values without what the chart adds to
// Manifests' objects by design: Helm's labels, the CRDs' resource policy
// and the Service type the API defaults to.
func normalized(u *unstructured.Unstructured) map[string]any {
	b, err := json.Marshal(u.Object)
	if err != nil {
		panic(err)
	}
	c := &unstructured.Unstructured{}
	if err := json.Unmarshal(b, &c.Object); err != nil {
		panic(err)
	}
	l := c.GetLabels()
	for _, k := range []string{"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance"} {
		delete(l, k)
	}
	if c.SetLabels(l); len(l) == 0 {
		unstructured.RemoveNestedField(c.Object, "metadata", "labels")
	}
	a := c.GetAnnotations()
	delete(a, "helm.sh/resource-policy")
	if c.SetAnnotations(a); len(a) == 0 {
		unstructured.RemoveNestedField(c.Object, "metadata", "annotations")
	}
	if typ, _, _ := unstructured.NestedString(c.Object, "spec", "type"); c.GetKind() == "Service" && typ == "ClusterIP" {
		unstructured.RemoveNestedField(c.Object, "spec", "type")
	}
	return c.Object
}

func objectKey(u *unstructured.Unstructured) string {
	return u.GetKind() + " " + u.GetNamespace() + "/" + u.GetName()
}

// sameObjects fails unless got and want hold the same objects, up to
// normalized.
func sameObjects(t *testing.T, got, want []*unstructured.Unstructured) {
	t.Helper()
	index := func(objs []*unstructured.Unstructured) map[string]map[string]any {
		m := map[string]map[string]any{}
		for _, o := range objs {
			if o.GetKind() == "Namespace" {
				continue // Helm's --create-namespace
			}
			m[objectKey(o)] = normalized(o)
		}
		return m
	}
	g, w := index(got), index(want)
	for k, wo := range w {
		gou, ok := g[k]
		if !ok {
			t.Errorf("chart lacks %s", k)
			continue
		}
		if !reflect.DeepEqual(gou, wo) {
			gy, _ := yaml.Marshal(gou)
			wy, _ := yaml.Marshal(wo)
			t.Errorf("chart's %s differs:\n%s", k, diff(string(gy), string(wy)))
		}
	}
	for k := range g {
		if _, ok := w[k]; !ok {
			t.Errorf("chart has %s, the install does not", k)
		}
	}
}

func readInstall(t *testing.T, name string) []*unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "install", name))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := parseDocs(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// TestChartIsTheInstall is the one-source-of-truth check: the chart
// renders what config/install and Manifests install, for every Options
// the chart has values for.
func TestChartIsTheInstall(t *testing.T) {
	t.Run("defaults are config/install/tend.yaml", func(t *testing.T) {
		sameObjects(t, mustRender(t, DefaultNamespace, nil), readInstall(t, "tend.yaml"))
	})
	t.Run("clusterAdmin is config/install/tend-cluster-admin.yaml", func(t *testing.T) {
		sameObjects(t, mustRender(t, DefaultNamespace, setValues(t, "rbac.mode=clusterAdmin")), readInstall(t, "tend-cluster-admin.yaml"))
	})
	for _, tc := range []struct {
		name       string
		namespace  string
		appVersion string
		set        []string
		opts       Options
	}{
		{
			name: "namespace version replicas compat", namespace: "gitops", appVersion: "v1.2.3",
			set:  []string{"replicas=3", "compat={argo,flux}", "argoDecryptionSecret=sops-age"},
			opts: Options{Namespace: "gitops", Version: "v1.2.3", Replicas: 3, Compat: []string{"argo", "flux"}, ArgoDecryptionSecret: "sops-age"},
		},
		{
			name: "image and cluster admin elsewhere", namespace: "gitops",
			set:  []string{"image.repository=registry.example.com/tend", "image.tag=v9", "rbac.mode=clusterAdmin", "compat={flux}"},
			opts: Options{Namespace: "gitops", Image: "registry.example.com/tend:v9", ClusterAdmin: true, Compat: []string{"flux"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := renderChart(t, tc.namespace, tc.appVersion, setValues(t, tc.set...))
			if err != nil {
				t.Fatal(err)
			}
			want, err := Manifests(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			sameObjects(t, got, want)
		})
	}
}

func one(t *testing.T, objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	t.Helper()
	found := find(objs, kind)
	if len(found) != 1 {
		t.Fatalf("%d objects of kind %s, want 1: %v", len(found), kind, kinds(objs))
	}
	return found[0]
}

func podSpec(t *testing.T, objs []*unstructured.Unstructured) map[string]any {
	t.Helper()
	m, _, _ := unstructured.NestedMap(one(t, objs, "Deployment").Object, "spec", "template", "spec")
	return m
}

func container(t *testing.T, objs []*unstructured.Unstructured) map[string]any {
	t.Helper()
	return podSpec(t, objs)["containers"].([]any)[0].(map[string]any)
}

func args(t *testing.T, objs []*unstructured.Unstructured) []string {
	t.Helper()
	a, _, _ := unstructured.NestedStringSlice(container(t, objs), "args")
	return a
}

// valueCases set chart values and check what a user would see of them in
// the rendered objects.
var valueCases = []struct {
	name  string
	set   []string
	check func(t *testing.T, objs []*unstructured.Unstructured)
}{
	{"image", []string{"image.repository=registry.example.com/tend", "image.tag=v9", "image.pullPolicy=Always"}, func(t *testing.T, objs []*unstructured.Unstructured) {
		c := container(t, objs)
		if c["image"] != "registry.example.com/tend:v9" || c["imagePullPolicy"] != "Always" {
			t.Errorf("image %v, pull policy %v", c["image"], c["imagePullPolicy"])
		}
	}},
	{"imagePullSecrets", []string{"imagePullSecrets[0].name=regcred"}, func(t *testing.T, objs []*unstructured.Unstructured) {
		if got := fmt.Sprint(podSpec(t, objs)["imagePullSecrets"]); got != "[map[name:regcred]]" {
			t.Errorf("imagePullSecrets = %s", got)
		}
	}},
	{"replicas", []string{"replicas=5"}, func(t *testing.T, objs []*unstructured.Unstructured) {
		if got, _, _ := unstructured.NestedFieldNoCopy(one(t, objs, "Deployment").Object, "spec", "replicas"); fmt.Sprint(got) != "5" {
			t.Errorf("replicas = %v", got)
		}
	}},
	{"resources", []string{"resources.limits.cpu=1", "resources.requests.memory=128Mi"}, func(t *testing.T, objs []*unstructured.Unstructured) {
		// Merged with the defaults, as Helm does.
		if got := fmt.Sprint(container(t, objs)["resources"]); got != "map[limits:map[cpu:1 memory:512Mi] requests:map[cpu:50m memory:128Mi]]" {
			t.Errorf("resources = %s", got)
		}
	}},
	{"rbac.mode clusterAdmin", []string{"rbac.mode=clusterAdmin"}, func(t *testing.T, objs []*unstructured.Unstructured) {
		if n := len(find(objs, "ClusterRole")) + len(find(objs, "Role")) + len(find(objs, "RoleBinding")); n != 0 {
			t.Errorf("clusterAdmin renders least-privilege RBAC: %v", kinds(objs))
		}
		crb := one(t, objs, "ClusterRoleBinding")
		if ref, _, _ := unstructured.NestedString(crb.Object, "roleRef", "name"); ref != "cluster-admin" || crb.GetName() != "tend-cluster-admin" {
			t.Errorf("ClusterRoleBinding %s refers to %s", crb.GetName(), ref)
		}
	}},
	{"watchNamespaces and extraArgs", []string{"watchNamespaces={team-a,team-b}", "extraArgs={--app-workers=16,--log-json}"}, func(t *testing.T, objs []*unstructured.Unstructured) {
		a := args(t, objs)
		if got, want := a[len(a)-3:], []string{"--watch-namespace=team-a,team-b", "--app-workers=16", "--log-json"}; !slices.Equal(got, want) {
			t.Errorf("args %v, want them to end with %v", a, want)
		}
	}},
	{"compat", []string{"compat={flux}"}, func(t *testing.T, objs []*unstructured.Unstructured) {
		if !slices.Contains(args(t, objs), "--compat=flux") {
			t.Errorf("args %v lack --compat=flux", args(t, objs))
		}
		if got := len(find(objs, "CustomResourceDefinition")); got <= 8 {
			t.Errorf("%d CRDs: want Flux's besides tend's 8", got)
		}
	}},
	{"compatCRDs false", []string{"compat={argo}", "compatCRDs=false", "argoDecryptionSecret=sops-age"}, func(t *testing.T, objs []*unstructured.Unstructured) {
		if got := len(find(objs, "CustomResourceDefinition")); got != 8 {
			t.Errorf("%d CRDs, want tend's 8 only", got)
		}
		if a := args(t, objs); !slices.Contains(a, "--compat=argo") || !slices.Contains(a, "--argo-decryption-secret=sops-age") {
			t.Errorf("args %v", a)
		}
		rules, _, _ := unstructured.NestedSlice(one(t, objs, "ClusterRole").Object, "rules")
		if !strings.Contains(fmt.Sprint(rules), "argoproj.io") {
			t.Error("ClusterRole lacks the Argo CD rules")
		}
	}},
	{"webhook.service", []string{"webhook.service.type=LoadBalancer", "webhook.service.annotations.example\\.com/lb=internal"}, func(t *testing.T, objs []*unstructured.Unstructured) {
		svc := one(t, objs, "Service")
		if typ, _, _ := unstructured.NestedString(svc.Object, "spec", "type"); typ != "LoadBalancer" || svc.GetAnnotations()["example.com/lb"] != "internal" {
			t.Errorf("Service type %s, annotations %v", typ, svc.GetAnnotations())
		}
	}},
	{"webhook.ingress", []string{"webhook.ingress.enabled=true", "webhook.ingress.className=nginx", "webhook.ingress.host=tend.example.com",
		"webhook.ingress.annotations.cert-manager\\.io/cluster-issuer=le", "webhook.ingress.tls[0].secretName=tend-tls", "webhook.ingress.tls[0].hosts={tend.example.com}"},
		func(t *testing.T, objs []*unstructured.Unstructured) {
			ing := one(t, objs, "Ingress")
			want := map[string]any{
				"ingressClassName": "nginx",
				"tls":              []any{map[string]any{"secretName": "tend-tls", "hosts": []any{"tend.example.com"}}},
				"rules": []any{map[string]any{"host": "tend.example.com", "http": map[string]any{"paths": []any{map[string]any{
					"path": "/hooks/", "pathType": "Prefix",
					"backend": map[string]any{"service": map[string]any{"name": "tend", "port": map[string]any{"name": "http-webhook"}}},
				}}}}},
			}
			if spec := normalized(ing)["spec"]; !reflect.DeepEqual(spec, want) {
				t.Errorf("Ingress spec = %v\nwant %v", spec, want)
			}
			if ing.GetAnnotations()["cert-manager.io/cluster-issuer"] != "le" || ing.GetNamespace() != DefaultNamespace {
				t.Errorf("Ingress %s/%s annotations %v", ing.GetNamespace(), ing.GetName(), ing.GetAnnotations())
			}
		}},
	{"dashboard sign-in", []string{"dashboard.url=https://tend.example.com", "dashboard.oidc.issuer=https://dex.example.com", "dashboard.oidc.clientID=tend",
		"dashboard.oidc.scopes={openid,email}", "dashboard.oidc.groupsClaim=roles"}, func(t *testing.T, objs []*unstructured.Unstructured) {
		want := []string{"--dashboard-addr=:8090", "--dashboard-url=https://tend.example.com", "--dashboard-oidc-issuer=https://dex.example.com",
			"--dashboard-oidc-client-id=tend", "--dashboard-oidc-scopes=openid,email", "--dashboard-oidc-groups-claim=roles"}
		if a := args(t, objs); !containsAll(a, want) {
			t.Errorf("args %v lack %v", a, want)
		}
	}},
	{"dashboard.policy", []string{"dashboard.policy[0].groups={platform}", "dashboard.policy[0].role=admin",
		"dashboard.policy[1].groups={team-a}", "dashboard.policy[1].role=operator", "dashboard.policy[1].namespaces={team-a-*}"},
		func(t *testing.T, objs []*unstructured.Unstructured) {
			cm := one(t, objs, "ConfigMap")
			if cm.GetName() != dashboard.DefaultTeamName || cm.GetNamespace() != DefaultNamespace {
				t.Fatalf("policy ConfigMap %s/%s, want %s/%s, where the controller reads it", cm.GetNamespace(), cm.GetName(), DefaultNamespace, dashboard.DefaultTeamName)
			}
			data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
			grants, err := auth.ParseGrants(data)
			if err != nil {
				t.Fatal(err)
			}
			if len(grants) != 2 || grants[0].Role != auth.Admin || grants[1].Role != auth.Operator || !slices.Equal(grants[1].Namespaces, []string{"team-a-*"}) {
				t.Errorf("grants %+v", grants)
			}
		}},
	{"dashboard.ingress", []string{"dashboard.ingress.enabled=true", "dashboard.ingress.className=nginx", "dashboard.ingress.host=tend.example.com",
		"dashboard.ingress.annotations.cert-manager\\.io/cluster-issuer=le", "dashboard.ingress.tls[0].secretName=tend-tls", "dashboard.ingress.tls[0].hosts={tend.example.com}"},
		func(t *testing.T, objs []*unstructured.Unstructured) {
			ing := one(t, objs, "Ingress")
			want := map[string]any{
				"ingressClassName": "nginx",
				"tls":              []any{map[string]any{"secretName": "tend-tls", "hosts": []any{"tend.example.com"}}},
				"rules": []any{map[string]any{"host": "tend.example.com", "http": map[string]any{"paths": []any{map[string]any{
					"path": "/", "pathType": "Prefix",
					"backend": map[string]any{"service": map[string]any{"name": "tend", "port": map[string]any{"name": "http-dashboard"}}},
				}}}}},
			}
			if spec := normalized(ing)["spec"]; !reflect.DeepEqual(spec, want) {
				t.Errorf("Ingress spec = %v\nwant %v", spec, want)
			}
			if ing.GetAnnotations()["cert-manager.io/cluster-issuer"] != "le" || ing.GetName() != "tend-dashboard" {
				t.Errorf("Ingress %s annotations %v", ing.GetName(), ing.GetAnnotations())
			}
		}},
	{"webhook.ingress with compat flux", []string{"webhook.ingress.enabled=true", "compat={flux}"}, func(t *testing.T, objs []*unstructured.Unstructured) {
		ing := one(t, objs, "Ingress")
		rules, _, _ := unstructured.NestedSlice(ing.Object, "spec", "rules")
		paths, _, _ := unstructured.NestedSlice(rules[0].(map[string]any), "http", "paths")
		var got []string
		for _, p := range paths {
			got = append(got, p.(map[string]any)["path"].(string))
		}
		if want := []string{"/hooks/", "/hook/"}; !slices.Equal(got, want) {
			t.Errorf("Ingress paths %v, want %v (Flux's Receivers)", got, want)
		}
		if _, ok := rules[0].(map[string]any)["host"]; ok {
			t.Errorf("Ingress rule has a host without webhook.ingress.host: %v", rules[0])
		}
	}},
	{"pod scheduling", []string{"podAnnotations.example\\.com/team=gitops", "nodeSelector.disk=ssd", "tolerations[0].key=dedicated", "tolerations[0].operator=Exists", "affinity=null"},
		func(t *testing.T, objs []*unstructured.Unstructured) {
			ann, _, _ := unstructured.NestedStringMap(one(t, objs, "Deployment").Object, "spec", "template", "metadata", "annotations")
			pod := podSpec(t, objs)
			if ann["example.com/team"] != "gitops" {
				t.Errorf("pod annotations %v", ann)
			}
			if got := fmt.Sprint(pod["nodeSelector"], pod["tolerations"]); got != "map[disk:ssd] [map[key:dedicated operator:Exists]]" {
				t.Errorf("nodeSelector and tolerations: %s", got)
			}
			if a, ok := pod["affinity"]; ok {
				t.Errorf("affinity=null left %v", a)
			}
		}},
	{"monitoring", []string{"monitoring.dashboard.enabled=true", "monitoring.serviceMonitor.enabled=true", "monitoring.serviceMonitor.labels.release=kps",
		"monitoring.prometheusRule.enabled=true", "monitoring.prometheusRule.labels.role=alerts"}, func(t *testing.T, objs []*unstructured.Unstructured) {
		cm := one(t, objs, "ConfigMap")
		if cm.GetLabels()["grafana_dashboard"] != "1" || !json.Valid([]byte(fmt.Sprint(cm.Object["data"].(map[string]any)["tend.json"]))) {
			t.Errorf("dashboard ConfigMap %s: labels %v, or its JSON does not parse", cm.GetName(), cm.GetLabels())
		}
		sm := one(t, objs, "ServiceMonitor")
		if sm.GetLabels()["release"] != "kps" || sm.GetNamespace() != DefaultNamespace {
			t.Errorf("ServiceMonitor %s/%s labels %v", sm.GetNamespace(), sm.GetName(), sm.GetLabels())
		}
		pr := one(t, objs, "PrometheusRule")
		if pr.GetLabels()["role"] != "alerts" {
			t.Errorf("PrometheusRule labels %v", pr.GetLabels())
		}
		// Prometheus' templates in the alerts come out as they are, and
		// the alerts watch the release namespace.
		y, _ := yaml.Marshal(pr.Object)
		if !strings.Contains(string(y), "{{ $labels.namespace }}") || !strings.Contains(string(y), `namespace="tend-system"`) {
			t.Errorf("PrometheusRule:\n%s", y)
		}
	}},
}

func TestChartValues(t *testing.T) {
	// Off by default.
	defaults := mustRender(t, DefaultNamespace, nil)
	for _, kind := range []string{"Ingress", "ConfigMap", "ServiceMonitor", "PrometheusRule"} {
		if n := len(find(defaults, kind)); n != 0 {
			t.Errorf("default values render %d %s", n, kind)
		}
	}
	set := map[string]bool{}
	for _, tc := range valueCases {
		t.Run(tc.name, func(t *testing.T) {
			vals := setValues(t, tc.set...)
			for _, p := range leafPaths("", vals) {
				set[p] = true
			}
			tc.check(t, mustRender(t, DefaultNamespace, vals))
		})
	}
	// Every value of values.yaml has a case above.
	vals, err := chartValues()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vals {
		covered := false
		for p := range set {
			covered = covered || p == v.Path || strings.HasPrefix(p, v.Path+".") || strings.HasPrefix(p, v.Path+"[")
		}
		if !covered {
			t.Errorf("value %s: no case checks that it takes effect", v.Path)
		}
	}
}

func leafPaths(prefix string, m map[string]any) []string {
	var out []string
	for k, v := range m {
		p := strings.TrimPrefix(prefix+"."+k, ".")
		if sub, ok := v.(map[string]any); ok {
			out = append(out, leafPaths(p, sub)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

func TestChartRefusesBadValues(t *testing.T) {
	for _, tc := range []struct {
		set  []string
		want string
	}{
		{[]string{"rbac.mode=root"}, "rbac.mode"},
		{[]string{"compat={argocd}"}, `compat "argocd"`},
		{[]string{"argoDecryptionSecret=sops-age"}, "add argo to compat"},
		{[]string{"dashboard.oidc.issuer=https://dex.example.com"}, "dashboard.oidc.clientID and dashboard.url"},
	} {
		_, err := renderChart(t, DefaultNamespace, "", setValues(t, tc.set...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want it to mention %s", tc.set, err, tc.want)
		}
	}
}

// TestChartInstall applies the chart, rendered for a release namespace of
// its own, to the local control plane and waits until the controller
// Deployment is Available: the objects are valid, the pods pass the
// restricted Pod Security admission and the kwok nodes run them.
func TestChartInstall(t *testing.T) {
	env := testenv.New(t)
	ns := env.Namespace
	ctx := context.Background()
	// As README.md says to: the chart does not make the namespace.
	patch := []byte(`{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"restricted"}}}`)
	if _, err := env.Clientset.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	objs, err := renderChart(t, ns, "", setValues(t, "image.repository=registry.example.com/tend", "image.tag=chart-test",
		"watchNamespaces={"+ns+"}", "webhook.ingress.enabled=true", "podAnnotations.example\\.com/test=chart"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, o := range objs {
			if o.GetKind() == "CustomResourceDefinition" || o.GetNamespace() != "" {
				continue // shared with other tests; or deleted with the namespace
			}
			if err := env.Client.Delete(ctx, o.DeepCopy()); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete %s %s: %v", o.GetKind(), o.GetName(), err)
			}
		}
	})
	// In Helm's install order: CRDs, RBAC, then what runs.
	order := map[string]int{"CustomResourceDefinition": 0, "ServiceAccount": 1, "ClusterRole": 2, "ClusterRoleBinding": 3, "Role": 4, "RoleBinding": 5, "Service": 6, "Deployment": 7, "Ingress": 8}
	sort.SliceStable(objs, func(i, j int) bool { return order[objs[i].GetKind()] < order[objs[j].GetKind()] })
	for _, o := range objs {
		if o.GetKind() == "ClusterRole" || o.GetKind() == "ClusterRoleBinding" {
			if want := "tend-" + ns; o.GetName() != want {
				t.Errorf("%s named %s, want %s (per namespace)", o.GetKind(), o.GetName(), want)
			}
		}
		// CRDs are shared with the tests of other packages: take them
		// over like `kubectl apply --server-side --force-conflicts`.
		if err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()), client.FieldOwner("tend-chart-test"), client.ForceOwnership); err != nil {
			t.Fatalf("apply %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}

	var d appsv1.Deployment
	testenv.Eventually(t, "the Deployment to be Available", 2*time.Minute, func() bool {
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: Name}, &d); err != nil {
			return false
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue {
				return d.Status.ObservedGeneration == d.Generation && d.Spec.Replicas != nil && d.Status.ReadyReplicas == *d.Spec.Replicas
			}
		}
		return false
	})
	pods, err := env.Clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=tend"})
	if err != nil {
		t.Fatal(err)
	}
	if int32(len(pods.Items)) < *d.Spec.Replicas {
		t.Fatalf("%d pods for %d replicas", len(pods.Items), *d.Spec.Replicas)
	}
	for _, p := range pods.Items {
		c := p.Spec.Containers[0]
		if c.Image != "registry.example.com/tend:chart-test" || !slices.Contains(c.Args, "--watch-namespace="+ns) || p.Annotations["example.com/test"] != "chart" {
			t.Errorf("pod %s: image %s, args %v, annotations %v", p.Name, c.Image, c.Args, p.Annotations)
		}
	}
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
