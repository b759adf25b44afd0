package argocd

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A clusters generator converts with its selector and values; the
// template's destination.server {{server}} becomes clusterRef {{name}}
// (tend's Apps name their Cluster), and the cluster parameters
// (metadata.labels.<key>, values.<key>) are accepted in the template.
func TestConvertApplicationSetClusters(t *testing.T) {
	set, err := ParseApplicationSet([]byte(`
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: guestbook, namespace: argocd}
spec:
  generators:
  - clusters:
      selector:
        matchLabels: {env: prod}
        matchExpressions: [{key: region, operator: In, values: [eu, us]}]
      values: {revision: "{{metadata.labels.channel}}"}
  template:
    metadata: {name: "{{name}}-guestbook", labels: {region: "{{metadata.labels.region}}"}}
    spec:
      project: default
      source: {repoURL: https://git.example.com/platform.git, targetRevision: main, path: "guestbook/{{values.revision}}"}
      destination: {server: "{{server}}", namespace: guestbook}
`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := ConvertApplicationSet(set, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Clusters {
		t.Errorf("SetResult.Clusters is false: the caller would not map the cluster Secrets onto Clusters")
	}
	gens := res.AppSet.Spec.Generators
	if len(gens) != 1 || gens[0].Clusters == nil {
		t.Fatalf("generators %+v, want one clusters generator", gens)
	}
	cg := gens[0].Clusters
	if cg.Selector == nil || !reflect.DeepEqual(cg.Selector.MatchLabels, map[string]string{"env": "prod"}) ||
		len(cg.Selector.MatchExpressions) != 1 || cg.Selector.MatchExpressions[0].Key != "region" {
		t.Errorf("selector %+v", cg.Selector)
	}
	if got, want := cg.Values, map[string]string{"revision": "{{metadata.labels.channel}}"}; !reflect.DeepEqual(got, want) {
		t.Errorf("values %v, want %v", got, want)
	}
	d := res.AppSet.Spec.Template.Spec.Destination
	if d.ClusterRef == nil || d.ClusterRef.Name != "{{name}}" || d.Namespace != "guestbook" {
		t.Errorf("template destination %+v, want clusterRef {{name}} and namespace guestbook", d)
	}

	// Go templates: {{ .server }} becomes {{ .name }}; a name placeholder
	// is kept, with a warning about Cluster names.
	for _, tc := range []struct{ dest, goTemplate, want string }{
		{`{server: "{{ .server }}", namespace: x}`, "true", "{{ .name }}"},
		{`{name: "{{.name}}", namespace: x}`, "true", "{{.name}}"},
		{`{name: "{{name}}", namespace: x}`, "false", "{{name}}"},
	} {
		set, err := ParseApplicationSet([]byte(`
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: guestbook, namespace: argocd}
spec:
  goTemplate: ` + tc.goTemplate + `
  generators: [{clusters: {}}]
  template:
    metadata: {name: "guestbook"}
    spec:
      project: default
      source: {repoURL: https://git.example.com/platform.git, targetRevision: main, path: guestbook}
      destination: ` + tc.dest + `
`))
		if err != nil {
			t.Fatal(err)
		}
		res, err := ConvertApplicationSet(set, Options{})
		if err != nil {
			t.Fatalf("%s: %v", tc.dest, err)
		}
		gen := res.AppSet.Spec.Generators[0].Clusters
		if gen == nil || gen.Selector != nil {
			t.Errorf("%s: clusters generator %+v, want one without selector", tc.dest, gen)
		}
		if ref := res.AppSet.Spec.Template.Spec.Destination.ClusterRef; ref == nil || ref.Name != tc.want {
			t.Errorf("%s: clusterRef %+v, want %q", tc.dest, ref, tc.want)
		}
		if strings.Contains(tc.dest, "name:") && !strings.Contains(strings.Join(res.Warnings, "\n"), "becomes destination.clusterRef.name") {
			t.Errorf("%s: no warning about Cluster names: %v", tc.dest, res.Warnings)
		}
	}

	bad, err := ParseApplicationSet([]byte(`
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: bad, namespace: argocd}
spec:
  generators:
  - clusters: {flatList: true, template: {metadata: {}}, selector: {matchExpressions: [{key: a, operator: Near}]}}
  - clusters: {selectr: {}}
  - list: {elements: [{name: a, url: "https://1.2.3.4"}]}
  template:
    metadata: {name: "{{name}}-{{metadata.labels.env}}"}
    spec:
      project: default
      source: {repoURL: https://git.example.com/x.git, path: x}
      destination: {server: "{{url}}", namespace: x}
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = ConvertApplicationSet(bad, Options{})
	for _, want := range []string{
		"spec.generators[0].clusters.flatList: not supported",
		"spec.generators[0].clusters.template: not supported",
		`spec.generators[0].clusters.selector: "Near" is not a valid label selector operator`,
		`spec.generators[1].clusters: error unmarshaling JSON: while decoding JSON: json: unknown field "selectr"`,
		`spec.template.spec.destination.server: "{{url}}": tend's Apps name their cluster`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// A matrix or merge inside a matrix or merge (the one level Argo CD
// allows) converts to tend's nested matrix and merge, with clusters and
// git generators inside.
func TestConvertApplicationSetNestedMatrixMerge(t *testing.T) {
	set, err := ParseApplicationSet([]byte(`
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: fleet, namespace: argocd}
spec:
  generators:
  - matrix:
      generators:
      - merge:
          mergeKeys: [name]
          generators:
          - clusters: {selector: {matchLabels: {tier: edge}}}
          - list: {elements: [{name: edge-1, replicas: "3"}]}
      - git: {repoURL: https://git.example.com/platform.git, revision: main, directories: [{path: "apps/*"}]}
  - merge:
      mergeKeys: [app]
      generators:
      - matrix:
          generators:
          - list: {elements: [{app: web}]}
          - list: {elements: [{env: dev}]}
      - list: {elements: [{app: web, env: prod}]}
  template:
    metadata: {name: "{{name}}-{{path.basename}}"}
    spec:
      project: default
      source: {repoURL: https://git.example.com/platform.git, targetRevision: main, path: "{{path}}"}
      destination: {name: "{{name}}", namespace: "{{replicas}}"}
`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := ConvertApplicationSet(set, Options{})
	if err != nil {
		t.Fatal(err)
	}
	gens := res.AppSet.Spec.Generators
	if len(gens) != 2 || gens[0].Matrix == nil || gens[1].Merge == nil {
		t.Fatalf("generators %+v", gens)
	}
	inner := gens[0].Matrix.Generators
	if len(inner) != 2 || inner[0].Merge == nil || inner[1].Directories == nil {
		t.Fatalf("matrix generators %+v, want a merge and directories", inner)
	}
	m := inner[0].Merge
	if !reflect.DeepEqual(m.MergeKeys, []string{"name"}) || len(m.Generators) != 2 || m.Generators[0].Clusters == nil ||
		m.Generators[0].Clusters.Selector.MatchLabels["tier"] != "edge" || m.Generators[1].List.Elements[0]["replicas"] != "3" {
		t.Errorf("nested merge %+v", m)
	}
	outer := gens[1].Merge
	if len(outer.Generators) != 2 || outer.Generators[0].Matrix == nil || len(outer.Generators[0].Matrix.Generators) != 2 ||
		outer.Generators[0].Matrix.Generators[1].List.Elements[0]["env"] != "dev" {
		t.Errorf("merge of a matrix %+v", outer)
	}
	if ref := res.AppSet.Spec.Template.Spec.Destination.ClusterRef; ref == nil || ref.Name != "{{name}}" {
		t.Errorf("clusterRef %+v, want {{name}}", ref)
	}

	bad, err := ParseApplicationSet([]byte(`
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: bad, namespace: argocd}
spec:
  generators:
  - matrix:
      generators:
      - matrix: {generators: [{list: {elements: [{a: "1"}]}}], template: {metadata: {}}}
        merge: {generators: []}
      - merge: {generators: [{list: {elements: [{a: "1"}]}}, {list: {elements: []}}], mergeKeys: []}
      - merge: {generatrs: []}
  template:
    metadata: {name: "{{a}}"}
    spec:
      project: default
      source: {repoURL: https://git.example.com/x.git, path: x}
      destination: {namespace: x}
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = ConvertApplicationSet(bad, Options{})
	for _, want := range []string{
		"spec.generators[0].matrix.generators[0]: set exactly one of matrix or merge",
		"spec.generators[0].matrix.generators[1].merge.mergeKeys: required",
		`spec.generators[0].matrix.generators[2].merge: error unmarshaling JSON: while decoding JSON: json: unknown field "generatrs"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	bad.Spec.Generators[0].Matrix.Generators[0].Merge = Raw{}
	_, err = ConvertApplicationSet(bad, Options{})
	for _, want := range []string{
		"spec.generators[0].matrix.generators[0].matrix.template: per-generator templates are not supported",
		"spec.generators[0].matrix.generators[0].matrix.generators: a matrix combines exactly two generators",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// An Argo CD cluster Secret maps onto a Cluster of its name, reading it as
// it is, with its labels and annotations for a clusters generator.
func TestClusterFromSecret(t *testing.T) {
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "prod-eu", Namespace: "argocd",
		Labels:      map[string]string{SecretTypeLabel: "cluster", "env": "prod"},
		Annotations: map[string]string{"team": "payments", corev1.LastAppliedConfigAnnotation: `{"data":{"config":"c2VjcmV0"}}`}}}
	cl := ClusterFromSecret(sec, "platform")
	if _, ok := cl.Annotations[corev1.LastAppliedConfigAnnotation]; ok {
		t.Errorf("the Cluster carries the Secret's last-applied-configuration, which holds its data")
	}
	if cl.Name != "prod-eu" || cl.Namespace != "platform" || cl.Spec.KubeconfigSecretRef.Name != "prod-eu" {
		t.Errorf("Cluster %s/%s reading Secret %q", cl.Namespace, cl.Name, cl.Spec.KubeconfigSecretRef.Name)
	}
	if cl.Labels["env"] != "prod" || cl.Labels[SecretTypeLabel] != "cluster" || cl.Annotations["team"] != "payments" {
		t.Errorf("labels %v, annotations %v: want the Secret's", cl.Labels, cl.Annotations)
	}
	cl.Labels["env"] = "dev"
	if sec.Labels["env"] != "prod" {
		t.Errorf("the Cluster shares its labels with the Secret")
	}
}
