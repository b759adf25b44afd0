package argocd

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

func convertYAML(t *testing.T, doc string, opts Options) (*Result, error) {
	t.Helper()
	app, err := ParseApplication([]byte(doc))
	if err != nil {
		t.Fatalf("ParseApplication: %v", err)
	}
	return Convert(app, opts)
}

func mustConvert(t *testing.T, doc string, opts Options) *Result {
	t.Helper()
	res, err := convertYAML(t, doc, opts)
	if err != nil {
		t.Fatalf("Convert: %v", err)
	}
	return res
}

// A kustomize overlay from git with automated sync, the options teams use
// most: everything maps to the field of the same meaning.
func TestConvertGitKustomizeApplication(t *testing.T) {
	res := mustConvert(t, `
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: shop, namespace: argocd, labels: {team: web}, finalizers: [resources-finalizer.argocd.argoproj.io/background]}
spec:
  project: default
  source:
    repoURL: https://git.example.com/platform.git
    path: apps/shop/overlays/prod
    targetRevision: main
    kustomize:
      namePrefix: prod-
      namespace: shop
      images: ["nginx=registry.example.com/nginx:1.27", "redis:7.2", "app@sha256:abc"]
      commonLabels: {env: prod}
      replicas: [{name: web, count: 3}, {name: worker, count: "2"}]
      patches:
      - target: {kind: Deployment, name: web}
        patch: '[{"op": "add", "path": "/spec/paused", "value": false}]'
      components: [../../components/tls]
  destination: {server: https://kubernetes.default.svc, namespace: shop}
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true, ServerSideApply=true, PruneLast=true, RespectIgnoreDifferences=true]
    managedNamespaceMetadata: {labels: {istio-injection: enabled}, annotations: {owner: web}}
    retry: {limit: 5, backoff: {duration: 5s, factor: 2, maxDuration: "180"}}
  ignoreDifferences:
  - {group: apps, kind: Deployment, jsonPointers: [/spec/replicas], managedFieldsManagers: [kube-controller-manager]}
  - {kind: ConfigMap, name: flags, jqPathExpressions: [.data.generated]}
`, Options{})
	if len(res.Warnings) != 0 {
		t.Errorf("warnings %q, want none", res.Warnings)
	}
	src := res.Source
	if src.Namespace != "argocd" || src.Spec.Git == nil || src.Spec.Git.URL != "https://git.example.com/platform.git" ||
		src.Spec.Git.Ref != (tendv1.GitRef{Branch: "main"}) || !strings.HasPrefix(src.Name, "argocd-platform-") {
		t.Errorf("Source %s/%s %+v", src.Namespace, src.Name, src.Spec.Git)
	}
	app := res.App
	want := tendv1.AppSpec{
		DeletionPolicy: tendv1.DeletionDelete,
		SourceRef:      tendv1.NamespacedObjectReference{Name: src.Name},
		Path:           "apps/shop/overlays/prod",
		Kustomize: &tendv1.KustomizeSpec{
			NamePrefix: "prod-", Namespace: "shop",
			Images: []tendv1.KustomizeImage{
				{Name: "nginx", NewName: "registry.example.com/nginx", NewTag: "1.27"},
				{Name: "redis", NewTag: "7.2"},
				{Name: "app", Digest: "sha256:abc"},
			},
			CommonLabels: map[string]string{"env": "prod"},
			Replicas:     []tendv1.KustomizeReplica{{Name: "web", Count: 3}, {Name: "worker", Count: 2}},
			Patches: []tendv1.KustomizePatch{{
				Patch:  `[{"op": "add", "path": "/spec/paused", "value": false}]`,
				Target: &tendv1.PatchTarget{Kind: "Deployment", Name: "web"},
			}},
			Components: []string{"../../components/tls"},
		},
		Destination: tendv1.Destination{Namespace: "shop", CreateNamespace: true, NamespaceMetadata: &tendv1.NamespaceMetadata{
			Labels: map[string]string{"istio-injection": "enabled"}, Annotations: map[string]string{"owner": "web"}}},
		Sync: tendv1.SyncPolicy{
			Prune: true, SelfHeal: true,
			Retry: &tendv1.RetryPolicy{Limit: 5, Backoff: duration(5 * time.Second), MaxBackoff: duration(3 * time.Minute)},
		},
		IgnoreDifferences: []tendv1.IgnoreDifference{
			{Group: "apps", Kind: "Deployment", JSONPointers: []string{"/spec/replicas"}, Managers: []string{"kube-controller-manager"}},
			{Kind: "ConfigMap", Name: "flags", JQPathExpressions: []string{".data.generated"}},
		},
	}
	if !reflect.DeepEqual(app.Spec, want) {
		got, _ := json.MarshalIndent(app.Spec, "", "  ")
		exp, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("App spec:\n%s\nwant:\n%s", got, exp)
	}
	if app.Name != "shop" || app.Namespace != "argocd" || app.Labels["team"] != "web" || app.Kind != "App" {
		t.Errorf("App %s %s/%s labels %v", app.Kind, app.Namespace, app.Name, app.Labels)
	}
}

// Helm values are merged as Argo CD passes them: valuesObject over values,
// then parameters as --set (and --set-string), commas kept in one value.
func TestConvertHelmValuesAndChartSources(t *testing.T) {
	res := mustConvert(t, `
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: grafana, namespace: argocd}
spec:
  project: monitoring
  source:
    repoURL: https://grafana.github.io/helm-charts
    chart: grafana
    targetRevision: 8.5.*
    helm:
      releaseName: graf
      valuesObject: {replicas: 2, ingress: {enabled: true}}
      parameters:
      - {name: "ingress.hosts[0]", value: grafana.example.com}
      - {name: env.LIST, value: "a,b"}
      - {name: image.tag, value: "10", forceString: true}
  destination: {name: in-cluster, namespace: monitoring}
`, Options{Namespace: "tend-system"})
	if res.Source.Spec.Helm == nil || res.Source.Spec.Helm.URL != "https://grafana.github.io/helm-charts" || res.Source.Namespace != "tend-system" {
		t.Errorf("Source %+v", res.Source.Spec)
	}
	spec := res.App.Spec
	if spec.Chart == nil || *spec.Chart != (tendv1.ChartSpec{Name: "grafana", Version: "8.5.*"}) || !spec.Sync.Manual {
		t.Errorf("chart %+v, manual %v", spec.Chart, spec.Sync.Manual)
	}
	if spec.DeletionPolicy != tendv1.DeletionOrphan {
		t.Errorf("deletionPolicy %q of an Application without the resources finalizer, want Orphan (Argo CD keeps its objects)", spec.DeletionPolicy)
	}
	var vals map[string]any
	if err := json.Unmarshal(spec.Helm.Values.Raw, &vals); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"replicas": 2.0,
		"ingress":  map[string]any{"enabled": true, "hosts": []any{"grafana.example.com"}},
		"env":      map[string]any{"LIST": "a,b"},
		"image":    map[string]any{"tag": "10"},
	}
	if !reflect.DeepEqual(vals, want) || spec.Helm.ReleaseName != "graf" {
		t.Errorf("values %v release %q, want %v graf", vals, spec.Helm.ReleaseName, want)
	}
	if len(res.Warnings) != 0 || res.App.Spec.Project != "monitoring" {
		t.Errorf("warnings %q, project %q: want none, and the App in the Project the AppProject maps to", res.Warnings, res.App.Spec.Project)
	}

	// A registry without a scheme is an OCI chart registry, as in Argo CD.
	res = mustConvert(t, `
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: podinfo, namespace: argocd}
spec:
  project: default
  source: {repoURL: ghcr.io/stefanprodan/charts, chart: podinfo, targetRevision: 6.7.0, helm: {values: "replicaCount: 2"}}
  destination: {server: https://kubernetes.default.svc, namespace: podinfo}
`, Options{})
	if res.Source.Spec.OCI == nil || res.Source.Spec.OCI.URL != "oci://ghcr.io/stefanprodan/charts" {
		t.Errorf("Source %+v, want OCI oci://ghcr.io/stefanprodan/charts", res.Source.Spec)
	}
	if got := string(res.App.Spec.Helm.Values.Raw); got != `{"replicaCount":2}` {
		t.Errorf("values %s", got)
	}
}

func TestConvertGitRevisions(t *testing.T) {
	for rev, want := range map[string]tendv1.GitRef{
		"":     {},
		"HEAD": {},
		"0123456789abcdef0123456789abcdef01234567": {Commit: "0123456789abcdef0123456789abcdef01234567"},
		"v1.4.2":          {Tag: "v1.4.2"},
		"2.0":             {Tag: "2.0"},
		"release/2026-12": {Branch: "release/2026-12"},
		">=1.0.0 <2.0.0":  {SemVer: ">=1.0.0 <2.0.0"},
		"1.2.*":           {SemVer: "1.2.*"},
		"1.x":             {SemVer: "1.x"},
		"next":            {Branch: "next"},
		"fix-x":           {Branch: "fix-x"},
	} {
		c := &converter{}
		if got := c.gitRef("https://example.com/r.git", rev, "f"); got != want {
			t.Errorf("targetRevision %q: %+v, want %+v", rev, got, want)
		}
	}
	// A resolver decides between branch and tag, as Argo CD asks git.
	c := &converter{opts: Options{RefKind: func(string, string) (RefKind, error) { return RefTag, nil }}}
	if got := c.gitRef("u", "stable", "f"); got != (tendv1.GitRef{Tag: "stable"}) {
		t.Errorf("resolved tag: %+v", got)
	}
	// Applications of one repository and revision share a Source.
	if a, b := sourceName("https://x/r.git", "branch:main"), sourceName("https://x/r.git", "branch:main"); a != b {
		t.Errorf("one repository and revision: %s and %s", a, b)
	}
	if a, b := sourceName("https://x/r.git", "branch:main"), sourceName("https://x/r.git", "tag:main"); a == b {
		t.Errorf("different revisions share Source %s", a)
	}
}

// What tend cannot honour is an error naming each field, all at once.
func TestConvertRefusesWhatItCannotHonour(t *testing.T) {
	_, err := convertYAML(t, `
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: legacy, namespace: argocd}
spec:
  project: default
  source:
    repoURL: https://git.example.com/platform.git
    path: legacy
    directory: {recurse: true, include: "{*.yaml"}
    helm: {fileParameters: [{name: cert, path: cert.pem}], valueFiles: [$values/x.yaml]}
    kustomize: {forceCommonLabels: true, images: ["="]}
  destination: {server: https://prod.example.com:6443, namespace: legacy}
  syncPolicy:
    syncOptions: [Replace=true]
    retry: {limit: 0, backoff: {factor: 3}}
`, Options{})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"converting Argo CD Application argocd/legacy",
		`spec.source.directory.include: glob "{*.yaml": unmatched {`,
		"spec.source.helm.fileParameters",
		"spec.source.helm.valueFiles[0]",
		"spec.source.kustomize.forceCommonLabels",
		"spec.source.kustomize.images[0]",
		"spec.destination: cluster https://prod.example.com:6443",
		`spec.syncPolicy.syncOptions[0]: sync option "Replace=true" is not supported`,
		"spec.syncPolicy.retry.limit",
		"spec.syncPolicy.retry.backoff.factor",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}

	// A $ref no source names is refused, and so is an Application of
	// only ref sources.
	_, err = convertYAML(t, `
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: multi, namespace: argocd}
spec:
  project: default
  sources:
  - {repoURL: https://a/x.git, ref: values}
  destination: {namespace: x}
`, Options{})
	if want := "spec.sources: no source renders anything"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error lacks %q:\n%v", want, err)
	}
	_, err = convertYAML(t, `
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: multi, namespace: argocd}
spec:
  project: default
  sources:
  - {repoURL: https://a/x.git, ref: values}
  - {repoURL: https://charts, chart: c, helm: {valueFiles: [$values/c.yaml, $other/d.yaml, $values/../e.yaml]}}
  destination: {namespace: x}
`, Options{})
	for _, want := range []string{
		`spec.sources[1].helm.valueFiles[1]: "$other/d.yaml": no source of spec.sources has ref "other"`,
		`spec.sources[1].helm.valueFiles[2]: "$values/../e.yaml": name a file inside the values repository`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// A multi-source Application with a chart and `ref` sources of values
// files: one App rendering the chart, its values files read from the ref
// sources' Sources, in order.
func TestConvertMultiSourceValues(t *testing.T) {
	res := mustConvert(t, `
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: web, namespace: argocd}
spec:
  project: default
  sources:
  - repoURL: https://charts.example.com
    chart: web
    targetRevision: 1.2.x
    helm:
      ignoreMissingValueFiles: true
      valueFiles: [$values/web/values.yaml, $env/prod.yaml]
      valuesObject: {replicas: 2}
  - {repoURL: https://git.example.com/platform.git, targetRevision: main, ref: values}
  - {repoURL: https://git.example.com/env.git, targetRevision: v1.0.0, ref: env}
  destination: {namespace: web}
`, Options{})
	if res.App.Spec.Chart == nil || res.App.Spec.Chart.Name != "web" || res.Source.Spec.Helm == nil {
		t.Fatalf("the chart source does not render: %+v, %+v", res.App.Spec, res.Source.Spec)
	}
	if len(res.OtherSources) != 2 {
		t.Fatalf("values sources %+v, want the two ref sources", res.OtherSources)
	}
	byURL := map[string]string{}
	for _, s := range res.OtherSources {
		byURL[s.Spec.Git.URL] = s.Name
	}
	want := []tendv1.ValuesReference{
		{Kind: "Source", Name: byURL["https://git.example.com/platform.git"], Key: "web/values.yaml", Optional: true},
		{Kind: "Source", Name: byURL["https://git.example.com/env.git"], Key: "prod.yaml", Optional: true},
	}
	if got := res.App.Spec.Helm.ValuesFrom; !reflect.DeepEqual(got, want) || want[0].Name == "" || want[1].Name == "" {
		t.Errorf("valuesFrom %+v, want %+v", got, want)
	}
	if env := res.OtherSources[0]; env.Spec.Git.URL == "https://git.example.com/env.git" && env.Spec.Git.Ref.Tag != "v1.0.0" {
		t.Errorf("ref source env at %+v, want tag v1.0.0", env.Spec.Git.Ref)
	}
	if string(res.App.Spec.Helm.Values.Raw) != `{"replicas":2}` {
		t.Errorf("values %s", res.App.Spec.Helm.Values.Raw)
	}
}

// A multi-source Application with more than one source that renders (a
// path that is also a ref source, a chart with its values, another path):
// one App, the first rendering source its own, the others its
// spec.sources, each with its options; their Sources beside it.
func TestConvertMultiSourceRendering(t *testing.T) {
	res := mustConvert(t, `
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: certs, namespace: argocd}
spec:
  project: default
  sources:
  - {repoURL: https://git.example.com/platform.git, targetRevision: main, path: issuers, ref: values}
  - repoURL: https://charts.jetstack.io
    chart: cert-manager
    targetRevision: 1.16.x
    helm: {releaseName: cm, valueFiles: [$values/cert-manager/values.yaml]}
  - repoURL: https://git.example.com/extras.git
    targetRevision: main
    path: dashboards
    directory: {recurse: true, exclude: "*.json"}
  - {repoURL: https://git.example.com/env.git, targetRevision: main, ref: env}
  destination: {namespace: cert-manager}
`, Options{})
	app := res.App
	if app.Spec.Path != "issuers" || res.Source.Spec.Git == nil || res.Source.Spec.Git.URL != "https://git.example.com/platform.git" {
		t.Fatalf("the first rendering source is not the App's own: path %q, Source %+v", app.Spec.Path, res.Source.Spec)
	}
	if len(app.Spec.Sources) != 2 {
		t.Fatalf("spec.sources %+v, want the chart and the dashboards path", app.Spec.Sources)
	}
	byName := map[string]*tendv1.Source{res.Source.Name: res.Source}
	for _, s := range res.OtherSources {
		byName[s.Name] = s
	}
	chart, extras := app.Spec.Sources[0], app.Spec.Sources[1]
	if chart.Chart == nil || chart.Chart.Name != "cert-manager" || chart.Chart.Version != "1.16.x" || chart.Helm == nil || chart.Helm.ReleaseName != "cm" {
		t.Errorf("chart source %+v", chart)
	}
	if src := byName[chart.SourceRef.Name]; src == nil || src.Spec.Helm == nil || src.Spec.Helm.URL != "https://charts.jetstack.io" {
		t.Errorf("the chart's Source %q is not among the Sources: %+v", chart.SourceRef.Name, res.OtherSources)
	}
	want := []tendv1.ValuesReference{{Kind: "Source", Name: res.Source.Name, Key: "cert-manager/values.yaml"}}
	if got := chart.Helm.ValuesFrom; !reflect.DeepEqual(got, want) {
		t.Errorf("chart valuesFrom %+v, want %+v (the platform repository, also the App's own Source)", got, want)
	}
	if extras.Path != "dashboards" || !extras.Recursive || !reflect.DeepEqual(extras.Exclude, []string{"*.json"}) {
		t.Errorf("dashboards source %+v", extras)
	}
	if src := byName[extras.SourceRef.Name]; src == nil || src.Spec.Git.URL != "https://git.example.com/extras.git" {
		t.Errorf("the dashboards' Source %q is not among the Sources", extras.SourceRef.Name)
	}
	// The three rendering sources take the App's revisions in order; the
	// env ref source its Source's.
	if len(res.SourceNames) != 4 || res.SourceNames[0] != "" || res.SourceNames[1] != "" || res.SourceNames[2] != "" || res.SourceNames[3] == "" || byName[res.SourceNames[3]] == nil {
		t.Errorf("source names %q", res.SourceNames)
	}
	if len(res.OtherSources) != 3 {
		t.Errorf("other Sources %d, want 3 (chart, extras, env; platform is the App's own)", len(res.OtherSources))
	}
}

// A misspelt field is an error naming it, not a silently different App.
func TestParseApplicationRejectsUnknownFields(t *testing.T) {
	_, err := ParseApplication([]byte(`
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: typo}
spec:
  source: {repoURL: https://a/x.git, targetRevison: main}
  destination: {namespace: x}
`))
	if err == nil || !strings.Contains(err.Error(), "targetRevison") {
		t.Errorf("misspelt field: %v", err)
	}
	if _, err := ParseApplication([]byte("apiVersion: tend.dev/v1alpha1\nkind: App\nmetadata: {name: a}\nspec: {destination: {}}\n")); err == nil || !strings.Contains(err.Error(), "not an Argo CD Application") {
		t.Errorf("a tend App: %v", err)
	}
}

// Remote destinations name a tend Cluster through Options.Cluster.
func TestConvertRemoteDestination(t *testing.T) {
	opts := Options{Cluster: func(server, name string) (string, error) {
		if server == "https://prod.example.com:6443" || name == "prod" {
			return "prod", nil
		}
		return "", errors.New("no Argo CD cluster Secret for " + server + name)
	}}
	for _, dst := range []string{"{server: https://prod.example.com:6443}", "{name: prod}"} {
		res := mustConvert(t, "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: a, namespace: argocd}\nspec:\n  project: default\n  source: {repoURL: https://a/x.git}\n  destination: "+dst+"\n", opts)
		if ref := res.App.Spec.Destination.ClusterRef; ref == nil || ref.Name != "prod" {
			t.Errorf("destination %s: clusterRef %+v", dst, ref)
		}
	}
	_, err := convertYAML(t, "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: a, namespace: argocd}\nspec:\n  project: default\n  source: {repoURL: https://a/x.git}\n  destination: {name: staging}\n", opts)
	if err == nil || !strings.Contains(err.Error(), "no Argo CD cluster Secret for staging") {
		t.Errorf("unknown cluster: %v", err)
	}
}

func duration(d time.Duration) metav1.Duration { return metav1.Duration{Duration: d} }

// Options.Credentials names the Secret of a repository URL on the Source,
// whatever kind of Source it is.
func TestConvertNamesCredentials(t *testing.T) {
	opts := Options{Credentials: func(url string) string {
		if strings.Contains(url, "private") {
			return "repo-private"
		}
		return ""
	}}
	for _, tc := range []struct {
		source string
		ref    func(*tendv1.Source) *tendv1.LocalObjectReference
	}{
		{"{repoURL: https://git.example.com/private.git}", func(s *tendv1.Source) *tendv1.LocalObjectReference { return s.Spec.Git.SecretRef }},
		{"{repoURL: https://charts.example.com/private, chart: c}", func(s *tendv1.Source) *tendv1.LocalObjectReference { return s.Spec.Helm.SecretRef }},
		{"{repoURL: registry.example.com/private, chart: c}", func(s *tendv1.Source) *tendv1.LocalObjectReference { return s.Spec.OCI.SecretRef }},
	} {
		res := mustConvert(t, "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: a, namespace: argocd}\nspec:\n  project: default\n  source: "+tc.source+"\n  destination: {namespace: x}\n", opts)
		if ref := tc.ref(res.Source); ref == nil || ref.Name != "repo-private" {
			t.Errorf("%s: secretRef %+v, want repo-private", tc.source, ref)
		}
	}
	res := mustConvert(t, "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: a, namespace: argocd}\nspec:\n  project: default\n  source: {repoURL: https://git.example.com/public.git}\n  destination: {namespace: x}\n", opts)
	if res.Source.Spec.Git.SecretRef != nil {
		t.Errorf("public repository: secretRef %+v", res.Source.Spec.Git.SecretRef)
	}
}

// An ApplicationSet over a repository's directories (and a list) becomes an
// AppSet with the same generators and the template converted as an
// Application is; Go templates, other generators and placeholders tend
// does not fill are refused by name.
func TestConvertApplicationSet(t *testing.T) {
	set, err := ParseApplicationSet([]byte(`
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: apps, namespace: argocd}
spec:
  generators:
  - git:
      repoURL: https://git.example.com/platform.git
      revision: main
      directories: [{path: "apps/*"}, {path: apps/legacy, exclude: true}]
  - list:
      elements: [{name: extra, path: extra/app}]
  template:
    metadata: {name: "{{path.basename}}", labels: {team: "{{name}}"}, finalizers: [resources-finalizer.argocd.argoproj.io]}
    spec:
      project: default
      source: {repoURL: https://git.example.com/platform.git, targetRevision: main, path: "{{path}}"}
      destination: {server: https://kubernetes.default.svc, namespace: "{{path.basename}}"}
      syncPolicy: {automated: {prune: true}, syncOptions: [CreateNamespace=true]}
`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := ConvertApplicationSet(set, Options{})
	if err != nil {
		t.Fatal(err)
	}
	as := res.AppSet
	if len(res.Sources) != 2 || res.Sources[0].Name != res.Sources[1].Name {
		t.Errorf("Sources %v: want the generator's and the template's, the same one", res.Sources)
	}
	gens := as.Spec.Generators
	if len(gens) != 2 || gens[0].Directories == nil || !reflect.DeepEqual(gens[0].Directories.Include, []string{"apps/*"}) ||
		!reflect.DeepEqual(gens[0].Directories.Exclude, []string{"apps/legacy"}) || gens[0].Directories.SourceRef.Name != res.Sources[0].Name ||
		gens[1].List == nil || gens[1].List.Elements[0]["path"] != "extra/app" {
		t.Errorf("generators %+v", gens)
	}
	tpl := as.Spec.Template
	if tpl.Metadata.Name != "{{path.basename}}" || tpl.Spec.Path != "{{path}}" || tpl.Spec.Destination.Namespace != "{{path.basename}}" ||
		!tpl.Spec.Destination.CreateNamespace || !tpl.Spec.Sync.Prune || !as.Spec.PruneApps {
		t.Errorf("template %+v, pruneApps %v", tpl, as.Spec.PruneApps)
	}
	if tpl.Spec.DeletionPolicy != tendv1.DeletionDelete {
		t.Errorf("template deletionPolicy %q, want Delete: the template's Applications carry the resources finalizer", tpl.Spec.DeletionPolicy)
	}

	bad, err := ParseApplicationSet([]byte(`
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: clusters, namespace: argocd}
spec:
  goTemplateOptions: [strict]
  generators:
  - scmProvider: {}
  - list: {elements: [{cluster: a}]}
  template:
    metadata: {name: "{{cluster}}-{{path.basenameNormalized}}"}
    spec:
      project: default
      source: {repoURL: "https://git.example.com/{{cluster}}.git"}
      destination: {namespace: x}
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = ConvertApplicationSet(bad, Options{})
	for _, want := range []string{
		"converting Argo CD ApplicationSet argocd/clusters",
		`spec.goTemplateOptions[0]: "strict": only missingkey= options`,
		"spec.generators[0].scmProvider: generator not supported",
		"spec.generators[1].list.elements[0]: tend's list elements need a name",
		"spec.template.spec.source: repoURL and targetRevision cannot hold placeholders",
		"placeholder {{path.basenameNormalized}} is not filled",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// Matrix and merge generators over git directories, git files and lists
// convert to tend's; a files generator's keys are accepted in the
// template; a matrix or merge nested twice, a matrix of three and a merge
// without keys are refused by field.
func TestConvertApplicationSetMatrixMergeFiles(t *testing.T) {
	set, err := ParseApplicationSet([]byte(`
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: fleet, namespace: argocd}
spec:
  generators:
  - matrix:
      generators:
      - git:
          repoURL: https://git.example.com/platform.git
          revision: main
          files: [{path: "clusters/*/config.json"}, {path: clusters/old/config.json, exclude: true}]
      - list:
          elements: [{env: dev}, {env: prod}]
  - merge:
      mergeKeys: [name]
      generators:
      - git: {repoURL: https://git.example.com/platform.git, revision: main, directories: [{path: "apps/*"}]}
      - list: {elements: [{name: web, replicas: "3"}]}
  template:
    metadata: {name: "{{cluster.name}}-{{env}}"}
    spec:
      project: default
      source: {repoURL: https://git.example.com/platform.git, targetRevision: main, path: "{{path[0]}}/{{path.basename}}"}
      destination: {server: https://kubernetes.default.svc, namespace: "{{env}}"}
`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := ConvertApplicationSet(set, Options{})
	if err != nil {
		t.Fatal(err)
	}
	gens := res.AppSet.Spec.Generators
	if len(gens) != 2 || gens[0].Matrix == nil || len(gens[0].Matrix.Generators) != 2 || gens[1].Merge == nil {
		t.Fatalf("generators %+v", gens)
	}
	files := gens[0].Matrix.Generators[0].Files
	if files == nil || !reflect.DeepEqual(files.Include, []string{"clusters/*/config.json"}) || !reflect.DeepEqual(files.Exclude, []string{"clusters/old/config.json"}) ||
		files.SourceRef.Name != res.Sources[0].Name {
		t.Errorf("files generator %+v", files)
	}
	if l := gens[0].Matrix.Generators[1].List; l == nil || len(l.Elements) != 2 || l.Elements[1]["env"] != "prod" {
		t.Errorf("matrix list %+v", l)
	}
	m := gens[1].Merge
	if !reflect.DeepEqual(m.MergeKeys, []string{"name"}) || len(m.Generators) != 2 || m.Generators[0].Directories == nil || m.Generators[1].List.Elements[0]["replicas"] != "3" {
		t.Errorf("merge %+v", m)
	}

	bad, err := ParseApplicationSet([]byte(`
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: bad, namespace: argocd}
spec:
  generators:
  - matrix:
      generators:
      - list: {elements: [{a: "1"}]}
      - matrix: {generators: [{list: {elements: [{b: "1"}]}}, {merge: {mergeKeys: [b], generators: []}}]}
      - git: {repoURL: https://git.example.com/x.git, directories: [{path: "envs/{{a}}"}]}
  - merge:
      generators:
      - list: {elements: [{name: a}]}
      - git: {repoURL: https://git.example.com/x.git, directories: [{path: a}], files: [{path: b.json}]}
  template:
    metadata: {name: "{{a}}"}
    spec:
      project: default
      source: {repoURL: https://git.example.com/x.git, path: "{{b}}"}
      destination: {namespace: x}
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = ConvertApplicationSet(bad, Options{})
	for _, want := range []string{
		"spec.generators[0].matrix.generators: a matrix combines exactly two generators",
		"spec.generators[0].matrix.generators[1].matrix.generators[1].merge: a matrix or merge nests one level only",
		"spec.generators[1].merge.mergeKeys: required",
		"spec.generators[0].matrix.generators[2].git: placeholders in a generator",
		"spec.generators[1].merge.generators[1].git: set exactly one of directories or files",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// An ApplicationSet with goTemplate converts to an AppSet with goTemplate
// and its options; its template's Go templates pass through as they are.
func TestConvertApplicationSetGoTemplate(t *testing.T) {
	set, err := ParseApplicationSet([]byte(`
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: apps, namespace: argocd}
spec:
  goTemplate: true
  goTemplateOptions: ["missingkey=error"]
  generators:
  - git: {repoURL: https://git.example.com/platform.git, revision: main, directories: [{path: "apps/*"}]}
  template:
    metadata: {name: "{{ .path.basename | lower }}"}
    spec:
      project: default
      source: {repoURL: https://git.example.com/platform.git, targetRevision: main, path: "{{ .path.path }}"}
      destination: {server: https://kubernetes.default.svc, namespace: "{{ index .path.segments 1 }}"}
`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := ConvertApplicationSet(set, Options{})
	if err != nil {
		t.Fatal(err)
	}
	as := res.AppSet
	if !as.Spec.GoTemplate || !reflect.DeepEqual(as.Spec.GoTemplateOptions, []string{"missingkey=error"}) {
		t.Errorf("goTemplate %v, options %v", as.Spec.GoTemplate, as.Spec.GoTemplateOptions)
	}
	if tpl := as.Spec.Template; tpl.Metadata.Name != "{{ .path.basename | lower }}" || tpl.Spec.Path != "{{ .path.path }}" ||
		tpl.Spec.Destination.Namespace != "{{ index .path.segments 1 }}" {
		t.Errorf("template %+v", tpl)
	}
}

// directory.include and exclude become the App's include and exclude.
func TestConvertDirectoryIncludeExclude(t *testing.T) {
	res := mustConvert(t, `
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: web, namespace: argocd}
spec:
  project: default
  source:
    repoURL: https://git.example.com/platform.git
    path: web
    directory: {recurse: true, include: "{*.yaml,*.yml}", exclude: "{config.yaml,env-*/*}"}
  destination: {server: https://kubernetes.default.svc, namespace: web}
`, Options{})
	spec := res.App.Spec
	if !spec.Recursive || !reflect.DeepEqual(spec.Include, []string{"{*.yaml,*.yml}"}) || !reflect.DeepEqual(spec.Exclude, []string{"{config.yaml,env-*/*}"}) {
		t.Errorf("recursive %v include %q exclude %q", spec.Recursive, spec.Include, spec.Exclude)
	}
}

// Options.DecryptionSecret gives the App the SOPS keys Argo CD's
// repo-server has (KSOPS): spec.decryption names it; without it the App
// has none.
func TestConvertDecryptionSecret(t *testing.T) {
	doc := `
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: vault, namespace: argocd}
spec:
  project: default
  source: {repoURL: https://git.example.com/platform.git, path: apps/vault, targetRevision: main}
  destination: {server: https://kubernetes.default.svc, namespace: vault}
`
	if d := mustConvert(t, doc, Options{DecryptionSecret: "sops-age"}).App.Spec.Decryption; d == nil || d.SecretRef.Name != "sops-age" {
		t.Errorf("spec.decryption = %+v, want the Secret sops-age", d)
	}
	if d := mustConvert(t, doc, Options{}).App.Spec.Decryption; d != nil {
		t.Errorf("spec.decryption = %+v without the option, want none", d)
	}
}
