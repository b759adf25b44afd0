package appspec

import (
	"strings"
	"testing"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/objstatus"
)

func TestOverlayMapsEveryField(t *testing.T) {
	ov, err := Overlay(&tendv1.KustomizeSpec{
		NamePrefix: "p-", NameSuffix: "-s", Namespace: "team",
		Images:            []tendv1.KustomizeImage{{Name: "nginx", NewTag: "1.27"}},
		Patches:           []tendv1.KustomizePatch{{Patch: "- {op: remove, path: /spec/x}", Target: &tendv1.PatchTarget{Kind: "Service", LabelSelector: "a=b"}}},
		Components:        []string{"../components/x"},
		CommonLabels:      map[string]string{"team": "a"},
		CommonAnnotations: map[string]string{"owner": "b"},
		Replicas:          []tendv1.KustomizeReplica{{Name: "web", Count: 2}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if ov.NamePrefix != "p-" || ov.NameSuffix != "-s" || ov.Namespace != "team" || ov.Images[0].NewTag != "1.27" ||
		ov.Patches[0].Target.LabelSelector != "a=b" || ov.Components[0] != "../components/x" || ov.Labels["team"] != "a" ||
		ov.Annotations["owner"] != "b" || ov.Replicas[0].Count != 2 {
		t.Errorf("Overlay = %+v", ov)
	}
	if ov, err := Overlay(&tendv1.KustomizeSpec{AllowRemoteBases: true}); ov != nil || err != nil {
		t.Errorf("no overlay fields: Overlay = %v, %v; want nil, nil", ov, err)
	}
}

func TestOverlayValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		ks   tendv1.KustomizeSpec
		want []string
	}{
		{"patch neither", tendv1.KustomizeSpec{Patches: []tendv1.KustomizePatch{{Patch: "kind: A"}, {}}},
			[]string{"spec.kustomize.patches[1]: set patch (inline) or path"}},
		{"patch both", tendv1.KustomizeSpec{Patches: []tendv1.KustomizePatch{{Patch: "kind: A", Path: "p.yaml"}}},
			[]string{"spec.kustomize.patches[0]: set patch or path, not both"}},
		{"patch not YAML", tendv1.KustomizeSpec{Patches: []tendv1.KustomizePatch{{Patch: "a: [b"}}},
			[]string{"spec.kustomize.patches[0]: patch is not YAML"}},
		{"json6902 without target", tendv1.KustomizeSpec{Patches: []tendv1.KustomizePatch{{Patch: "- {op: add, path: /a, value: 1}"}}},
			[]string{"spec.kustomize.patches[0]: a JSON 6902 patch needs a target"}},
		{"json6902 without op", tendv1.KustomizeSpec{Patches: []tendv1.KustomizePatch{{Patch: "- {path: /a}", Target: &tendv1.PatchTarget{Kind: "A"}}}},
			[]string{"spec.kustomize.patches[0]: JSON 6902 operation 0 has no op"}},
		{"strategic merge without kind", tendv1.KustomizeSpec{Patches: []tendv1.KustomizePatch{{Patch: "metadata: {name: a}"}}},
			[]string{"spec.kustomize.patches[0]: the strategic-merge patch has no kind"}},
		{"image", tendv1.KustomizeSpec{Images: []tendv1.KustomizeImage{{Name: "nginx"}}},
			[]string{`spec.kustomize.images[0]: image "nginx": set newName, newTag or digest`}},
		{"namespace", tendv1.KustomizeSpec{Namespace: "Team_A"},
			[]string{`spec.kustomize.namespace: "Team_A" is not a namespace name`}},
		{"labels", tendv1.KustomizeSpec{CommonLabels: map[string]string{"ok": "x", "bad key!": "v"}},
			[]string{`spec.kustomize.commonLabels: "bad key!"`}},
		{"replicas", tendv1.KustomizeSpec{Replicas: []tendv1.KustomizeReplica{{Name: "a", Count: -1}}},
			[]string{"spec.kustomize.replicas[0]: count -1"}},
		{"component", tendv1.KustomizeSpec{Components: []string{"/abs"}},
			[]string{`spec.kustomize.components[0]: "/abs"`}},
		{"all at once", tendv1.KustomizeSpec{Components: []string{""}, Replicas: []tendv1.KustomizeReplica{{}}},
			[]string{"spec.kustomize.components[0]", "spec.kustomize.replicas[0]: set name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Overlay(&tc.ks)
			if err == nil {
				t.Fatal("no error")
			}
			if !objstatus.IsPermanent(err) {
				t.Errorf("error %v is not permanent", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
