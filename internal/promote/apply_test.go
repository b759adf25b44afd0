package promote

import (
	"strings"
	"testing"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// A Stage's updates with every source of a value (the image's tag,
// digest, reference and repository, the chart's version), Flux markers and
// a kustomization, in one pass; an update naming what the freight lacks
// is an error naming it.
func TestApply(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"app.yaml":                "spec:\n  chart: {name: web, version: 1.0.0}\n",
		"values.yaml":             "image:\n  pullPolicy: IfNotPresent\n",
		"deploy.yaml":             "image: old:0.1 # {\"$imagepolicy\": \"flux-system:web\"}\n",
		"envs/kustomization.yaml": "resources: []\n",
	})
	f := &tendv1.Freight{
		Images: []tendv1.FreightImage{web},
		Charts: []tendv1.FreightChart{{RepoURL: "https://charts.example.com", Name: "web", Version: "1.3.0"}},
	}
	updates := []tendv1.StageUpdate{
		{Chart: "web", Value: &tendv1.ValueUpdate{File: "app.yaml", Key: "spec.chart.version", From: tendv1.ValueFromChartVersion}},
		{Image: web.Repository, Value: &tendv1.ValueUpdate{File: "values.yaml", Key: "image.tag", From: tendv1.ValueFromTag}},
		{Image: web.Repository, Value: &tendv1.ValueUpdate{File: "values.yaml", Key: "image.digest", From: tendv1.ValueFromDigest}},
		{Image: web.Repository, Value: &tendv1.ValueUpdate{File: "values.yaml", Key: "image.ref", From: tendv1.ValueFromReference}},
		{Image: web.Repository, Value: &tendv1.ValueUpdate{File: "values.yaml", Key: "image.repository", From: tendv1.ValueFromRepository}},
		{Image: web.Repository, Markers: &tendv1.MarkersUpdate{Policy: "flux-system:web"}},
		{Image: web.Repository, Kustomize: &tendv1.KustomizeImageUpdate{Path: "envs", Digest: true}},
	}
	changed, err := Apply(dir, f, updates)
	if err != nil || !changed {
		t.Fatalf("changed %v, %v", changed, err)
	}
	for file, wants := range map[string][]string{
		"app.yaml":                {"version: 1.3.0"},
		"values.yaml":             {`tag: "1.10"`, "digest: " + web.Digest, "ref: registry.example.com/team/web:1.10", "repository: registry.example.com/team/web"},
		"deploy.yaml":             {"image: registry.example.com/team/web:1.10 #"},
		"envs/kustomization.yaml": {"newTag: \"1.10\"", "digest: " + web.Digest},
	} {
		got := read(t, dir, file)
		for _, want := range wants {
			if !strings.Contains(got, want) {
				t.Errorf("%s lacks %q:\n%s", file, want, got)
			}
		}
	}
	if changed, err := Apply(dir, f, updates); err != nil || changed {
		t.Errorf("second pass: changed %v, %v", changed, err)
	}
	for _, tc := range []struct {
		u    tendv1.StageUpdate
		want string
	}{
		{tendv1.StageUpdate{Image: "other/repo", Kustomize: &tendv1.KustomizeImageUpdate{Path: "envs"}}, `spec.updates[0]: image "other/repo" is not in the freight`},
		{tendv1.StageUpdate{Value: &tendv1.ValueUpdate{File: "values.yaml", Key: "x", From: tendv1.ValueFromTag}}, "spec.updates[0]: set image"},
		{tendv1.StageUpdate{Chart: "db", Value: &tendv1.ValueUpdate{File: "app.yaml", Key: "x", From: tendv1.ValueFromChartVersion}}, `chart "db" is not in the freight`},
		{tendv1.StageUpdate{Image: web.Repository}, "set one of kustomize, value or markers"},
	} {
		if _, err := Apply(dir, f, []tendv1.StageUpdate{tc.u}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.u, err, tc.want)
		}
	}
}
