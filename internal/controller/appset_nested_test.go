package controller

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/artifact"
)

// A matrix or merge holds one more level of matrix or merge, over
// directories, files and lists: a matrix of a matrix, a merge of a matrix
// and a merge. Their Sources are found for SourceChanged, and a generator
// at the innermost level that sets nothing is refused by its path.
func TestAppSetNestedLevels(t *testing.T) {
	root := appSetFiles(t, map[string]string{
		"apps/web/k.yaml":       "{}",
		"apps/db/k.yaml":        "{}",
		"apps/old/k.yaml":       "{}",
		"overrides/web.yaml":    "{name: web, env: prod, replicas: \"5\"}",
		"overrides/ignore.yaml": "{name: web, env: prod, replicas: \"7\"}",
	})
	g := appSetGen(t, root)
	repo := v1alpha1.NamespacedObjectReference{Name: "repo"}
	dirs := v1alpha1.LeafGenerator{Directories: &v1alpha1.DirectoriesGenerator{SourceRef: repo, Include: []string{"apps/*"}, Exclude: []string{"apps/old"}}}
	envs := v1alpha1.LeafGenerator{List: &v1alpha1.ListGenerator{Elements: []map[string]string{{"env": "dev"}, {"env": "prod"}}}}
	files := v1alpha1.LeafGenerator{Files: &v1alpha1.FilesGenerator{SourceRef: v1alpha1.NamespacedObjectReference{Namespace: "shared", Name: "overrides"},
		Include: []string{"overrides/*.yaml"}, Exclude: []string{"overrides/ignore.yaml"}}}
	set := &v1alpha1.AppSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"}, Spec: v1alpha1.AppSetSpec{Generators: []v1alpha1.Generator{
		{Matrix: &v1alpha1.MatrixGenerator{Generators: []v1alpha1.NestedGenerator{
			{Matrix: &v1alpha1.NestedMatrixGenerator{Generators: []v1alpha1.LeafGenerator{dirs, envs}}},
			{List: &v1alpha1.ListGenerator{Elements: []map[string]string{{"region": "eu"}}}},
		}}},
	}}}
	ps, err := g.params(set)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.values["name"]+"-"+p.values["env"]+"-"+p.values["region"])
	}
	if want := []string{"db-dev-eu", "db-prod-eu", "web-dev-eu", "web-prod-eu"}; !reflect.DeepEqual(got, want) {
		t.Errorf("matrix of a matrix = %v, want %v", got, want)
	}
	if got, want := ps[0].origin, "directory apps/db × list element 0 × list element 0"; got != want {
		t.Errorf("origin = %q, want %q", got, want)
	}
	if tree := ps[3].tree; tree["region"] != "eu" || tree["env"] != "prod" || tree["path"].(map[string]any)["basename"] != "web" {
		t.Errorf("nested parameters of the last set: %v", tree)
	}

	// A merge whose base is a matrix, overridden by a merge of a files
	// generator (the overrides read from a Source in another namespace)
	// and a list.
	set.Spec.Generators[0] = v1alpha1.Generator{Merge: &v1alpha1.MergeGenerator{MergeKeys: []string{"name", "env"}, Generators: []v1alpha1.NestedGenerator{
		{Matrix: &v1alpha1.NestedMatrixGenerator{Generators: []v1alpha1.LeafGenerator{dirs, envs}}},
		{Merge: &v1alpha1.NestedMergeGenerator{MergeKeys: []string{"name"}, Generators: []v1alpha1.LeafGenerator{
			files,
			{List: &v1alpha1.ListGenerator{Elements: []map[string]string{{"name": "web", "owner": "alice"}}}},
		}}},
	}}}
	g.artifacts.Set(types.NamespacedName{Namespace: "shared", Name: "overrides"}, artifact.Artifact{Dir: root, Revision: "r1"}, nil)
	ps, err = g.params(set)
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, p := range ps {
		got = append(got, p.values["name"]+"-"+p.values["env"]+":"+p.values["replicas"]+":"+p.values["owner"])
	}
	if want := []string{"db-dev::", "db-prod::", "web-dev::", "web-prod:5:alice"}; !reflect.DeepEqual(got, want) {
		t.Errorf("merge of a matrix and a merge = %v, want %v", got, want)
	}
	want := []types.NamespacedName{{Namespace: "ns", Name: "repo"}, {Namespace: "shared", Name: "overrides"}}
	if got := appSetSources(set); !reflect.DeepEqual(got, want) {
		t.Errorf("sources = %v, want %v", got, want)
	}
	if appSetReadsClusters(set) {
		t.Errorf("an AppSet without clusters generator is said to read Clusters")
	}

	// Errors name the innermost generator.
	set.Spec.Generators[0].Merge.Generators[1].Merge.Generators[1] = v1alpha1.LeafGenerator{}
	_, err = g.params(set)
	var stalled *appSetStalled
	if !errors.As(err, &stalled) || !strings.Contains(err.Error(), "spec.generators[0].merge.generators[1].merge.generators[1]: set exactly one of directories, files, list or clusters") {
		t.Errorf("empty innermost generator: got %v", err)
	}
	set.Spec.Generators[0].Merge.Generators[1] = v1alpha1.NestedGenerator{Merge: &v1alpha1.NestedMergeGenerator{Generators: []v1alpha1.LeafGenerator{dirs, envs}}}
	_, err = g.params(set)
	if !errors.As(err, &stalled) || !strings.Contains(err.Error(), "spec.generators[0].merge.generators[1].merge.mergeKeys is empty") {
		t.Errorf("nested merge without keys: got %v", err)
	}
	set.Spec.Generators[0].Merge.Generators[1] = v1alpha1.NestedGenerator{Matrix: &v1alpha1.NestedMatrixGenerator{Generators: []v1alpha1.LeafGenerator{dirs}}}
	_, err = g.params(set)
	if !errors.As(err, &stalled) || !strings.Contains(err.Error(), "spec.generators[0].merge.generators[1].matrix.generators has 1 generators") {
		t.Errorf("nested matrix of one: got %v", err)
	}
}

// Every leaf generator works at every level it may appear at: the top,
// inside a matrix or merge, and inside a matrix or merge nested in one.
// Each field matters there: excludes leave directories and files out, a
// Source's namespace picks its checkout, a selector's labels and
// expressions pick Clusters, values are templated per Cluster.
func TestAppSetGeneratorsAtEveryLevel(t *testing.T) {
	root := appSetFiles(t, map[string]string{
		"apps/web/k.yaml":    "{}",
		"apps/db/k.yaml":     "{}",
		"apps/old/k.yaml":    "{}",
		"conf/web.yaml":      "{name: web-conf}",
		"conf/ignored.yaml":  "{name: ignored}",
		"conf/notyaml.txt":   "x",
		"elsewhere/x/k.yaml": "{}",
	})
	g := appSetGen(t, t.TempDir()) // ns/repo: an empty checkout
	g.artifacts.Set(types.NamespacedName{Namespace: "shared", Name: "repo"}, artifact.Artifact{Dir: root, Revision: "r1"}, nil)
	g.clusters = func(namespace string) ([]appSetCluster, error) {
		if namespace != "ns" {
			t.Errorf("Clusters listed in namespace %q, want the AppSet's", namespace)
		}
		return []appSetCluster{
			{name: "dev-eu", labels: map[string]string{"env": "dev", "region": "eu"}},
			{name: "prod-eu", server: "https://prod-eu", labels: map[string]string{"env": "prod", "region": "eu"}},
			{name: "prod-us", labels: map[string]string{"env": "prod", "region": "us"}},
		}, nil
	}
	shared := v1alpha1.NamespacedObjectReference{Namespace: "shared", Name: "repo"}
	leaves := []struct {
		kind string
		leaf v1alpha1.LeafGenerator
		want string // names of the sets, and values.v for clusters
	}{
		{"directories", v1alpha1.LeafGenerator{Directories: &v1alpha1.DirectoriesGenerator{SourceRef: shared, Include: []string{"apps/*"}, Exclude: []string{"apps/old"}}}, "db,web"},
		{"files", v1alpha1.LeafGenerator{Files: &v1alpha1.FilesGenerator{SourceRef: shared, Include: []string{"conf/*.yaml"}, Exclude: []string{"conf/ignored.yaml"}}}, "web-conf"},
		{"list", v1alpha1.LeafGenerator{List: &v1alpha1.ListGenerator{Elements: []map[string]string{{"name": "a"}, {"name": "b"}}}}, "a,b"},
		{"clusters", v1alpha1.LeafGenerator{Clusters: &v1alpha1.ClustersGenerator{
			Selector: &metav1.LabelSelector{
				MatchLabels:      map[string]string{"env": "prod"},
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "region", Operator: metav1.LabelSelectorOpIn, Values: []string{"eu"}}},
			},
			Values: map[string]string{"v": "x-{{name}}-{{server}}"},
		}}, "prod-eu:x-prod-eu-https://prod-eu"},
	}
	partner := v1alpha1.LeafGenerator{List: &v1alpha1.ListGenerator{Elements: []map[string]string{{"k": "v"}}}}
	override := v1alpha1.LeafGenerator{List: &v1alpha1.ListGenerator{Elements: []map[string]string{{"name": "none", "o": "1"}}}}
	nested := func(l v1alpha1.LeafGenerator) v1alpha1.NestedGenerator {
		return v1alpha1.NestedGenerator{Directories: l.Directories, Files: l.Files, List: l.List, Clusters: l.Clusters}
	}
	keys := []string{"name"}
	levels := []struct {
		at   string
		wrap func(v1alpha1.LeafGenerator) v1alpha1.Generator
	}{
		{"top", func(l v1alpha1.LeafGenerator) v1alpha1.Generator {
			return v1alpha1.Generator{Directories: l.Directories, Files: l.Files, List: l.List, Clusters: l.Clusters}
		}},
		{"matrix", func(l v1alpha1.LeafGenerator) v1alpha1.Generator {
			return v1alpha1.Generator{Matrix: &v1alpha1.MatrixGenerator{Generators: []v1alpha1.NestedGenerator{nested(l), nested(partner)}}}
		}},
		{"merge", func(l v1alpha1.LeafGenerator) v1alpha1.Generator {
			return v1alpha1.Generator{Merge: &v1alpha1.MergeGenerator{MergeKeys: keys, Generators: []v1alpha1.NestedGenerator{nested(l), nested(override)}}}
		}},
		{"matrix of a matrix", func(l v1alpha1.LeafGenerator) v1alpha1.Generator {
			return v1alpha1.Generator{Matrix: &v1alpha1.MatrixGenerator{Generators: []v1alpha1.NestedGenerator{
				{Matrix: &v1alpha1.NestedMatrixGenerator{Generators: []v1alpha1.LeafGenerator{l, partner}}},
				{List: &v1alpha1.ListGenerator{Elements: []map[string]string{{"k2": "v"}}}},
			}}}
		}},
		{"matrix of a merge", func(l v1alpha1.LeafGenerator) v1alpha1.Generator {
			return v1alpha1.Generator{Matrix: &v1alpha1.MatrixGenerator{Generators: []v1alpha1.NestedGenerator{
				{Merge: &v1alpha1.NestedMergeGenerator{MergeKeys: keys, Generators: []v1alpha1.LeafGenerator{l, override}}},
				nested(partner),
			}}}
		}},
		{"merge of a matrix", func(l v1alpha1.LeafGenerator) v1alpha1.Generator {
			return v1alpha1.Generator{Merge: &v1alpha1.MergeGenerator{MergeKeys: keys, Generators: []v1alpha1.NestedGenerator{
				{Matrix: &v1alpha1.NestedMatrixGenerator{Generators: []v1alpha1.LeafGenerator{l, partner}}},
				nested(override),
			}}}
		}},
		{"merge of a merge", func(l v1alpha1.LeafGenerator) v1alpha1.Generator {
			return v1alpha1.Generator{Merge: &v1alpha1.MergeGenerator{MergeKeys: keys, Generators: []v1alpha1.NestedGenerator{
				{Merge: &v1alpha1.NestedMergeGenerator{MergeKeys: keys, Generators: []v1alpha1.LeafGenerator{l, override}}},
				nested(override),
			}}}
		}},
	}
	for _, lv := range levels {
		for _, lf := range leaves {
			set := &v1alpha1.AppSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"},
				Spec: v1alpha1.AppSetSpec{Generators: []v1alpha1.Generator{lv.wrap(lf.leaf)}}}
			ps, err := g.params(set)
			if err != nil {
				t.Errorf("%s %s: %v", lv.at, lf.kind, err)
				continue
			}
			var got []string
			for _, p := range ps {
				s := p.values["name"]
				if v, ok := p.values["values.v"]; ok {
					s += ":" + v
					if p.tree["values"].(map[string]any)["v"] != v {
						t.Errorf("%s %s: Go template parameters %v lack values.v", lv.at, lf.kind, p.tree)
					}
				}
				got = append(got, s)
			}
			if strings.Join(got, ",") != lf.want {
				t.Errorf("%s %s: sets %v, want %s", lv.at, lf.kind, got, lf.want)
			}
			if srcs := appSetSources(set); lf.leaf.Directories != nil || lf.leaf.Files != nil {
				if len(srcs) != 1 || srcs[0] != (types.NamespacedName{Namespace: "shared", Name: "repo"}) {
					t.Errorf("%s %s: sources %v, want shared/repo", lv.at, lf.kind, srcs)
				}
			}
			if got, want := appSetReadsClusters(set), lf.leaf.Clusters != nil; got != want {
				t.Errorf("%s %s: reads Clusters = %v, want %v", lv.at, lf.kind, got, want)
			}
		}
	}
}
