package flux

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/source/chart"
)

func convert(t *testing.T, docs ...string) *Result {
	t.Helper()
	var in []Document
	for i, d := range docs {
		in = append(in, Document{Where: "doc" + string(rune('1'+i)), Body: []byte(d)})
	}
	return Convert(in)
}

func mustConvert(t *testing.T, docs ...string) *Result {
	t.Helper()
	res := convert(t, docs...)
	if len(res.Errors) > 0 {
		t.Fatalf("Convert: %v", errors.Join(res.Errors...))
	}
	return res
}

func d(v time.Duration) metav1.Duration { return metav1.Duration{Duration: v} }

// A repository bootstrapped by Flux: its GitRepository, Kustomizations with
// dependsOn, SOPS and an overlay's options map to the same names and
// meaning, reading the same Secrets.
func TestConvertGitRepositoryAndKustomizations(t *testing.T) {
	res := mustConvert(t, `
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: flux-system, namespace: flux-system}
spec:
  interval: 1m
  timeout: 60s
  url: ssh://git@github.com/acme/fleet
  ref: {branch: main}
  secretRef: {name: flux-system}
`, `
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: apps, namespace: flux-system}
spec:
  interval: 10m
  retryInterval: 2m
  timeout: 5m
  path: ./apps/production
  prune: true
  wait: true
  sourceRef: {kind: GitRepository, name: flux-system}
  dependsOn: [{name: infra}]
  targetNamespace: shop
  decryption: {provider: sops, secretRef: {name: sops-age}}
  commonMetadata: {labels: {team: shop}}
  images: [{name: web, newTag: "1.2.3"}]
  patches:
  - target: {kind: Deployment}
    patch: '[{"op": "replace", "path": "/spec/replicas", "value": 2}]'
  components: [../components/monitoring]
  postBuild:
    substitute: {cluster: prod}
    substituteFrom: [{kind: ConfigMap, name: cluster-vars}, {kind: Secret, name: cluster-secrets, optional: true}]
`)
	if len(res.Sources) != 1 || len(res.Apps) != 1 || len(res.Warnings) != 0 {
		t.Fatalf("%d Sources, %d Apps, warnings %q", len(res.Sources), len(res.Apps), res.Warnings)
	}
	src := res.Sources[0]
	if src.Name != "flux-system" || src.Namespace != "flux-system" || !reflect.DeepEqual(src.Spec, tendv1.SourceSpec{
		Git:      &tendv1.GitSource{URL: "ssh://git@github.com/acme/fleet", Ref: tendv1.GitRef{Branch: "main"}, SecretRef: &tendv1.LocalObjectReference{Name: "flux-system"}},
		Interval: d(time.Minute), Timeout: d(time.Minute),
	}) {
		t.Errorf("Source %s/%s %+v", src.Namespace, src.Name, src.Spec)
	}
	app := res.Apps[0]
	want := tendv1.AppSpec{
		SourceRef: tendv1.NamespacedObjectReference{Name: "flux-system"},
		Path:      "apps/production", Recursive: true,
		Destination: tendv1.Destination{Namespace: "shop"},
		DependsOn:   []tendv1.NamespacedObjectReference{{Name: "infra"}},
		Decryption:  &tendv1.Decryption{SecretRef: tendv1.LocalObjectReference{Name: "sops-age"}},
		Sync: tendv1.SyncPolicy{Prune: true, SelfHeal: true, Interval: d(10 * time.Minute),
			Retry: &tendv1.RetryPolicy{Backoff: d(2 * time.Minute), MaxBackoff: d(2 * time.Minute)}},
		Health: tendv1.HealthSpec{Timeout: d(5 * time.Minute)},
		Kustomize: &tendv1.KustomizeSpec{
			CommonLabels: map[string]string{"team": "shop"},
			Images:       []tendv1.KustomizeImage{{Name: "web", NewTag: "1.2.3"}},
			Patches:      []tendv1.KustomizePatch{{Patch: `[{"op": "replace", "path": "/spec/replicas", "value": 2}]`, Target: &tendv1.PatchTarget{Kind: "Deployment"}}},
			Components:   []string{"../components/monitoring"},
		},
		PostBuild: &tendv1.PostBuild{
			Substitute: map[string]string{"cluster": "prod"},
			SubstituteFrom: []tendv1.SubstituteReference{
				{Kind: "ConfigMap", Name: "cluster-vars"}, {Kind: "Secret", Name: "cluster-secrets", Optional: true},
			},
		},
	}
	if app.Name != "apps" || app.Namespace != "flux-system" || !reflect.DeepEqual(app.Spec, want) {
		got, _ := json.MarshalIndent(app.Spec, "", "  ")
		exp, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("App %s/%s:\n%s\nwant:\n%s", app.Namespace, app.Name, got, exp)
	}
}

// HelmReleases from an HTTP repository, an OCI repository and a chart in
// git keep Flux's release names and read values from the same Secrets.
func TestConvertHelmReleases(t *testing.T) {
	res := mustConvert(t, `
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata: {name: bitnami, namespace: flux-system}
spec: {interval: 1h, url: https://charts.bitnami.com/bitnami}
`, `
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata: {name: podinfo, namespace: flux-system}
spec: {type: oci, interval: 1h, url: oci://ghcr.io/stefanprodan/charts, secretRef: {name: ghcr}}
`, `
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: redis, namespace: flux-system}
spec:
  interval: 30m
  targetNamespace: cache
  chart: {spec: {chart: redis, version: "19.x", sourceRef: {kind: HelmRepository, name: bitnami}}}
  install: {createNamespace: true, remediation: {retries: 3}}
  driftDetection: {mode: enabled}
  values: {architecture: standalone}
  valuesFrom: [{kind: Secret, name: redis-auth, valuesKey: values.yaml, optional: true}, {kind: Secret, name: redis-pw, valuesKey: password, targetPath: auth.password}]
  dependsOn: [{name: podinfo}]
`, `
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: podinfo, namespace: flux-system}
spec:
  interval: 5m
  releaseName: podinfo
  chart: {spec: {chart: podinfo, version: 6.7.0, sourceRef: {kind: HelmRepository, name: podinfo}}}
  commonMetadata: {labels: {team: web}}
  postRenderers:
  - kustomize:
      images: [{name: ghcr.io/stefanprodan/podinfo, newTag: 6.7.1}]
      patches: [{target: {kind: Deployment}, patch: '[{"op": "add", "path": "/spec/paused", "value": false}]'}]
`, `
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: local, namespace: flux-system}
spec:
  interval: 5m
  chart: {spec: {chart: ./charts/local, valuesFiles: [charts/local/values-prod.yaml], sourceRef: {kind: GitRepository, name: flux-system}}}
`)
	if len(res.Sources) != 2 || len(res.Apps) != 3 {
		t.Fatalf("%d Sources, %d Apps", len(res.Sources), len(res.Apps))
	}
	if s := res.Sources[0].Spec; s.Helm == nil || s.Helm.URL != "https://charts.bitnami.com/bitnami" {
		t.Errorf("bitnami: %+v", s)
	}
	if s := res.Sources[1].Spec; s.OCI == nil || s.OCI.URL != "oci://ghcr.io/stefanprodan/charts" || s.OCI.SecretRef.Name != "ghcr" {
		t.Errorf("podinfo: %+v", s)
	}
	redis := res.Apps[0].Spec
	if redis.Helm.ReleaseName != "cache-redis" || redis.Chart.Version != "19.x" || !redis.Destination.CreateNamespace ||
		redis.Destination.Namespace != "cache" || !redis.Sync.SelfHeal || !redis.Sync.Prune || string(redis.Helm.Values.Raw) != `{"architecture":"standalone"}` ||
		!reflect.DeepEqual(redis.Helm.ValuesFrom, []tendv1.ValuesReference{{Kind: "Secret", Name: "redis-auth", Key: "values.yaml", Optional: true}, {Kind: "Secret", Name: "redis-pw", Key: "password", TargetPath: "auth.password"}}) ||
		redis.DependsOn[0].Name != "podinfo" {
		t.Errorf("redis: %+v", redis)
	}
	if len(res.Warnings) != 2 || !strings.Contains(res.Warnings[0], "spec.install.remediation") || !strings.Contains(res.Warnings[1], "spec.postRenderers") {
		t.Errorf("warnings %q, want one about install remediation and one about post-renderers", res.Warnings)
	}
	if ks := res.Apps[1].Spec.Kustomize; ks == nil || !reflect.DeepEqual(ks, &tendv1.KustomizeSpec{
		CommonLabels: map[string]string{"team": "web"},
		Images:       []tendv1.KustomizeImage{{Name: "ghcr.io/stefanprodan/podinfo", NewTag: "6.7.1"}},
		Patches:      []tendv1.KustomizePatch{{Patch: `[{"op": "add", "path": "/spec/paused", "value": false}]`, Target: &tendv1.PatchTarget{Kind: "Deployment"}}},
	}) {
		t.Errorf("podinfo overlay from post-renderers and commonMetadata: %+v", ks)
	}
	if local := res.Apps[2].Spec; local.Path != "charts/local" || local.Chart != nil || local.Helm.ReleaseName != "local" ||
		!reflect.DeepEqual(local.Helm.ValuesFiles, []string{"charts/local/values-prod.yaml"}) {
		t.Errorf("local: %+v", local)
	}
}

// What tend cannot honour is an error naming the document, the object and
// the field; old API versions and misspelt fields too.
func TestConvertRefusesWhatItCannotHonour(t *testing.T) {
	res := convert(t, `
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: apps, namespace: flux-system}
spec:
  interval: 10m
  path: ./apps
  prune: true
  sourceRef: {kind: Bucket, name: manifests}
  healthChecks: [{kind: Deployment, name: web, namespace: x}]
  kubeConfig: {secretRef: {name: remote}}
`, `
apiVersion: kustomize.toolkit.fluxcd.io/v1beta2
kind: Kustomization
metadata: {name: old, namespace: flux-system}
spec: {interval: 1m, prune: true, sourceRef: {kind: GitRepository, name: x}}
`, `
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: typo, namespace: flux-system}
spec: {interval: 1m, url: https://x/y.git, ref: {brnach: main}}
`, `
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: apps, namespace: flux-system}
spec:
  interval: 5m
  chart: {spec: {chart: c, sourceRef: {kind: HelmRepository, name: r}}}
  postRenderers: [{}]
  valuesFrom: [{kind: ConfigMap, name: v, targetPath: a.b}]
  storageNamespace: elsewhere
`, `
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: fine, namespace: flux-system}
spec: {interval: 1m, url: https://x/fine.git}
`)
	// What converted completely is kept; the rest is left out, not
	// converted in part.
	if len(res.Apps) != 0 || len(res.Sources) != 1 || res.Sources[0].Name != "fine" {
		t.Errorf("converted %d Apps and Sources %v, want only Source fine", len(res.Apps), res.Sources)
	}
	err := errors.Join(res.Errors...)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"doc1: Kustomization flux-system/apps: spec.sourceRef.kind: Bucket sources are not converted",
		"doc1: Kustomization flux-system/apps: spec.healthChecks[0].apiVersion: required by tend",
		"doc1: Kustomization flux-system/apps: spec.kubeConfig",
		"doc2: Kustomization kustomize.toolkit.fluxcd.io/v1beta2: convert objects of Flux 2's current API (v1)",
		`doc3: GitRepository source.toolkit.fluxcd.io/v1: error unmarshaling JSON: while decoding JSON: json: unknown field "brnach"`,
		"doc4: HelmRelease flux-system/apps: spec.postRenderers",
		"doc4: HelmRelease flux-system/apps: spec.storageNamespace",
		"doc4: HelmRelease flux-system/apps: metadata.name: doc1: Kustomization flux-system/apps also becomes App flux-system/apps",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// OCIRepositories become OCI artifact Sources (tag, semver with its filter,
// digest, layer selector; Flux's default tag "latest"); Kustomizations
// render them, and a HelmRelease's chartRef to one renders the chart it
// holds. A copy of a layer that is not a chart, and OCIRepository fields
// tend does not honour, are refused by name.
func TestConvertOCIRepositories(t *testing.T) {
	res := mustConvert(t, `
apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata: {name: manifests, namespace: flux-system}
spec: {interval: 5m, url: oci://ghcr.io/org/manifests, ref: {semver: ">=1.0.0", semverFilter: ".*-rc.*"}, secretRef: {name: ghcr}, insecure: true}
`, `
apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata: {name: podinfo, namespace: flux-system}
spec:
  interval: 10m
  url: oci://ghcr.io/stefanprodan/charts/podinfo
  layerSelector: {mediaType: application/vnd.cncf.helm.chart.content.v1.tar+gzip, operation: copy}
`, `
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: apps, namespace: flux-system}
spec: {interval: 10m, path: ./apps, prune: true, sourceRef: {kind: OCIRepository, name: manifests}}
`, `
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: podinfo, namespace: flux-system}
spec:
  interval: 10m
  chartRef: {kind: OCIRepository, name: podinfo}
  values: {replicaCount: 2}
`)
	if len(res.Sources) != 2 || len(res.Apps) != 2 {
		t.Fatalf("%d Sources, %d Apps", len(res.Sources), len(res.Apps))
	}
	want := &tendv1.OCIRepositorySource{URL: "oci://ghcr.io/org/manifests", Insecure: true, SecretRef: &tendv1.LocalObjectReference{Name: "ghcr"},
		Ref: &tendv1.OCIRef{SemVer: ">=1.0.0", SemverFilter: ".*-rc.*"}}
	if got := res.Sources[0].Spec.OCI; !reflect.DeepEqual(got, want) || !res.Sources[0].Spec.OCIArtifact() {
		t.Errorf("manifests: %+v, want %+v", got, want)
	}
	chartSrc := res.Sources[1].Spec.OCI
	if chartSrc.Ref.Tag != "latest" || chartSrc.LayerSelector == nil || chartSrc.LayerSelector.MediaType != chart.ChartLayerMediaType {
		t.Errorf("podinfo chart Source: %+v (ref %+v)", chartSrc, chartSrc.Ref)
	}
	if a := res.Apps[0].Spec; a.SourceRef.Name != "manifests" || a.Path != "apps" {
		t.Errorf("apps: %+v", a)
	}
	if a := res.Apps[1].Spec; a.SourceRef.Name != "podinfo" || a.Path != "" || a.Chart != nil || a.Helm.ReleaseName != "podinfo" || string(a.Helm.Values.Raw) != `{"replicaCount":2}` {
		t.Errorf("podinfo HelmRelease: %+v", a)
	}

	bad := convert(t, `
apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata: {name: bad, namespace: flux-system}
spec:
  interval: 10m
  url: oci://ghcr.io/org/manifests
  provider: aws
  verify: {provider: cosign}
  layerSelector: {mediaType: application/vnd.cncf.flux.content.v1.tar+gzip, operation: copy}
`, `
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: hc, namespace: flux-system}
spec: {interval: 10m, chartRef: {kind: HelmChart, name: podinfo}}
`)
	msg := errors.Join(bad.Errors...).Error()
	for _, s := range []string{
		"doc1: OCIRepository flux-system/bad: spec.layerSelector.operation: copy keeps the layer",
		"doc1: OCIRepository flux-system/bad: spec.provider: not supported",
		"doc1: OCIRepository flux-system/bad: spec.verify: not supported",
		"doc2: HelmRelease flux-system/hc: spec.chartRef: HelmChart flux-system/podinfo is not in the input",
	} {
		if !strings.Contains(msg, s) {
			t.Errorf("errors lack %q:\n%s", s, msg)
		}
	}
	if len(bad.Sources)+len(bad.Apps) != 0 {
		t.Errorf("objects with errors were converted: %d Sources, %d Apps", len(bad.Sources), len(bad.Apps))
	}
}

// A HelmRelease's chartRef to a HelmChart renders the chart the HelmChart
// names, as spec.chart.spec would: from a HelmRepository (chart and
// version) or a GitRepository (the chart's directory and its values
// files), with the HelmChart before or after it in the input, in its own
// namespace or another. What the HelmChart cannot honour is refused by
// its field.
func TestConvertHelmReleaseChartRefToHelmChart(t *testing.T) {
	res := mustConvert(t, `
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: podinfo, namespace: apps}
spec:
  interval: 10m
  chartRef: {kind: HelmChart, name: podinfo, namespace: flux-system}
  values: {replicaCount: 2}
`, `
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmChart
metadata: {name: podinfo, namespace: flux-system}
spec: {interval: 10m, chart: podinfo, version: 6.x, sourceRef: {kind: HelmRepository, name: podinfo}}
`, `
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmChart
metadata: {name: web, namespace: apps}
spec: {interval: 10m, chart: ./charts/web, sourceRef: {kind: GitRepository, name: fleet}, valuesFiles: [charts/web/values.yaml, charts/web/prod.yaml]}
`, `
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: web, namespace: apps}
spec: {interval: 10m, chartRef: {kind: HelmChart, name: web}}
`)
	if len(res.Apps) != 2 {
		t.Fatalf("%d Apps, want 2", len(res.Apps))
	}
	for _, app := range res.Apps {
		a := app.Spec
		switch app.Name {
		case "podinfo":
			if a.SourceRef != (tendv1.NamespacedObjectReference{Name: "podinfo", Namespace: "flux-system"}) || a.Chart == nil ||
				*a.Chart != (tendv1.ChartSpec{Name: "podinfo", Version: "6.x"}) || string(a.Helm.Values.Raw) != `{"replicaCount":2}` {
				t.Errorf("podinfo: %+v (chart %+v)", a, a.Chart)
			}
		case "web":
			if a.SourceRef != (tendv1.NamespacedObjectReference{Name: "fleet", Namespace: "apps"}) || a.Path != "charts/web" || a.Chart != nil ||
				!reflect.DeepEqual(a.Helm.ValuesFiles, []string{"charts/web/values.yaml", "charts/web/prod.yaml"}) {
				t.Errorf("web: %+v", a)
			}
		}
	}

	bad := convert(t, `
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmChart
metadata: {name: bucket, namespace: ns}
spec: {interval: 10m, chart: x, sourceRef: {kind: Bucket, name: b}, verify: {provider: cosign}, reconcileStrategy: Revision}
`, `
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: x, namespace: ns}
spec: {interval: 10m, chartRef: {kind: HelmChart, name: bucket}}
`)
	msg := errors.Join(bad.Errors...).Error()
	for _, s := range []string{
		"doc2: HelmRelease ns/x: HelmChart ns/bucket spec.sourceRef.kind: Bucket sources are not converted",
		"doc2: HelmRelease ns/x: HelmChart ns/bucket spec.verify: not supported",
		"doc2: HelmRelease ns/x: HelmChart ns/bucket spec.reconcileStrategy: not supported",
	} {
		if !strings.Contains(msg, s) {
			t.Errorf("errors lack %q:\n%s", s, msg)
		}
	}
	if len(bad.Apps) != 0 || len(bad.Skipped) != 0 {
		t.Errorf("Apps %v, skipped %v; want none", bad.Apps, bad.Skipped)
	}
}

// Flux's multi-tenancy: a Kustomization's and a HelmRelease's
// serviceAccountName become the App's, which tend impersonates.
func TestConvertServiceAccountName(t *testing.T) {
	res := mustConvert(t, `
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: tenant, namespace: team-a}
spec: {interval: 1m, url: https://git.example.com/team-a, ref: {branch: main}}
`, `
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: apps, namespace: team-a}
spec:
  interval: 10m
  path: ./apps
  prune: true
  sourceRef: {kind: GitRepository, name: tenant}
  serviceAccountName: team-a-reconciler
`, `
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata: {name: charts, namespace: team-a}
spec: {interval: 1h, url: https://charts.example.com}
`, `
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: redis, namespace: team-a}
spec:
  interval: 10m
  serviceAccountName: team-a-helm
  chart:
    spec: {chart: redis, version: "1.0.0", sourceRef: {kind: HelmRepository, name: charts}}
`)
	got := map[string]string{}
	for _, a := range res.Apps {
		got[a.Name] = a.Spec.ServiceAccountName
	}
	if want := map[string]string{"apps": "team-a-reconciler", "redis": "team-a-helm"}; !reflect.DeepEqual(got, want) {
		t.Errorf("serviceAccountName of the Apps: %v, want %v (warnings %q)", got, want, res.Warnings)
	}
}

// healthCheckExprs become the App's health rules, the same CEL
// expressions (current, inProgress, failed as healthy, progressing,
// degraded), on Kustomizations and HelmReleases; an entry tend cannot
// read is refused by its index.
// healthChecks become the App's health checks; force, recreating what an
// immutable field's change makes the API server refuse.
func TestConvertHealthChecksAndForce(t *testing.T) {
	res := mustConvert(t, `
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: infra, namespace: flux-system}
spec:
  interval: 10m
  path: ./infra
  prune: true
  force: true
  sourceRef: {kind: GitRepository, name: fleet}
  healthChecks:
  - {apiVersion: apps/v1, kind: Deployment, name: ingress, namespace: ingress}
  - {apiVersion: apiextensions.k8s.io/v1, kind: CustomResourceDefinition, name: certificates.cert-manager.io}
`, `
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: apps, namespace: flux-system}
spec: {interval: 10m, path: ./apps, prune: true, sourceRef: {kind: GitRepository, name: fleet}}
`)
	byName := map[string]*tendv1.App{}
	for _, a := range res.Apps {
		byName[a.Name] = a
	}
	want := []tendv1.HealthCheck{
		{APIVersion: "apps/v1", Kind: "Deployment", Name: "ingress", Namespace: "ingress"},
		{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition", Name: "certificates.cert-manager.io"},
	}
	infra, apps := byName["infra"], byName["apps"]
	if infra == nil || apps == nil {
		t.Fatalf("Apps %v", res.Apps)
	}
	if got := infra.Spec.Health.Checks; !reflect.DeepEqual(got, want) {
		t.Errorf("checks = %+v, want %+v", got, want)
	}
	if !infra.Spec.Sync.Recreate || apps.Spec.Sync.Recreate || len(apps.Spec.Health.Checks) != 0 {
		t.Errorf("recreate: infra %v, apps %v (want true, false); apps' checks %v", infra.Spec.Sync.Recreate, apps.Spec.Sync.Recreate, apps.Spec.Health.Checks)
	}
}

func TestConvertHealthCheckExprs(t *testing.T) {
	res := mustConvert(t, `
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: clusters, namespace: flux-system}
spec:
  interval: 10m
  path: ./clusters
  prune: true
  wait: true
  sourceRef: {kind: GitRepository, name: fleet}
  healthCheckExprs:
  - apiVersion: cluster.x-k8s.io/v1beta1
    kind: Cluster
    failed: status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'False')
    current: status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'True')
    inProgress: status.phase != 'Provisioned'
`, `
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: db, namespace: flux-system}
spec:
  interval: 5m
  chart: {spec: {chart: db, sourceRef: {kind: HelmRepository, name: r}}}
  healthCheckExprs:
  - {apiVersion: v1, kind: ConfigMap, current: "has(data.ready)"}
`)
	want := []tendv1.HealthRule{{Group: "cluster.x-k8s.io", Kind: "Cluster",
		Degraded:    "status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'False')",
		Healthy:     "status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'True')",
		Progressing: "status.phase != 'Provisioned'"}}
	byName := map[string]*tendv1.App{}
	for _, a := range res.Apps {
		byName[a.Name] = a
	}
	if got := byName["clusters"].Spec.Health.Rules; !reflect.DeepEqual(got, want) {
		t.Errorf("Kustomization's rules = %+v, want %+v", got, want)
	}
	if got := byName["db"].Spec.Health.Rules; len(got) != 1 || got[0].Group != "" || got[0].Kind != "ConfigMap" || got[0].Healthy != "has(data.ready)" {
		t.Errorf("HelmRelease's rules = %+v", got)
	}
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "spec.healthCheckExprs: tend tries failed, then current, then inProgress") {
		t.Errorf("no warning about the order of the expressions: %q", res.Warnings)
	}

	bad := convert(t, `
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: bad, namespace: flux-system}
spec:
  interval: 10m
  prune: true
  sourceRef: {kind: GitRepository, name: fleet}
  healthCheckExprs:
  - {apiVersion: example.com/v1, current: "true"}
  - {apiVersion: example.com/v1, kind: Widget, inProgress: "true"}
  - {apiVersion: example.com/v1, kind: Gadget, current: "true"}
  - {apiVersion: example.com/v2, kind: Gadget, current: "false"}
`)
	err := errors.Join(bad.Errors...)
	for _, w := range []string{"spec.healthCheckExprs[0].kind: required", "spec.healthCheckExprs[1].current: required", "spec.healthCheckExprs[3]: a second entry for example.com/v2 Gadget"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("errors %v lack %q", err, w)
		}
	}
}
