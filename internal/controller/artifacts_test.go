package controller

import (
	"reflect"
	"testing"

	"github.com/tend-gitops/tend/internal/source/git"
	"k8s.io/apimachinery/pkg/types"
)

func TestArtifactsChangedBetween(t *testing.T) {
	a := NewArtifacts()
	src := types.NamespacedName{Namespace: "ns", Name: "repo"}
	a.Set(src, Artifact{Revision: "a"}, nil)
	a.Set(src, Artifact{Revision: "b"}, []string{"apps/x/f.yaml"})
	a.Set(src, Artifact{Revision: "c"}, []string{"apps/y/g.yaml", "apps/x/f.yaml"})
	for _, tc := range []struct {
		from, to string
		want     []string
	}{
		{"a", "b", []string{"apps/x/f.yaml"}},
		{"a", "c", []string{"apps/x/f.yaml", "apps/y/g.yaml"}},
		{"b", "c", []string{"apps/x/f.yaml", "apps/y/g.yaml"}},
		{"c", "c", []string{}},
		{"zzz", "c", nil},
	} {
		if got := a.ChangedBetween(src, tc.from, tc.to); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ChangedBetween(%s, %s) = %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
	a.Set(src, Artifact{Revision: "d"}, nil) // a fetch whose changes are unknown
	if got := a.ChangedBetween(src, "c", "d"); got != nil {
		t.Errorf("unknown step: got %v, want nil", got)
	}
	if got := a.ChangedBetween(src, "a", "d"); got != nil {
		t.Errorf("through an unknown step: got %v, want nil", got)
	}
}

// TestChangedSinceAFetchNotYetRecorded: an App that renders a commit the
// Fetcher has checked out before the Source reconciler recorded it still
// learns which files changed, from the fetch itself.
func TestChangedSinceAFetchNotYetRecorded(t *testing.T) {
	a := NewArtifacts()
	src := types.NamespacedName{Namespace: "ns", Name: "repo"}
	a.Set(src, Artifact{Revision: "a"}, nil)
	a.Set(src, Artifact{Revision: "b"}, []string{"apps/x/f.yaml"})
	r := &AppReconciler{Artifacts: a}
	for _, tc := range []struct {
		name     string
		from, to string
		onDisk   *git.Checkout
		want     []string
	}{
		{"recorded", "a", "b", nil, []string{"apps/x/f.yaml"}},
		{"fetched from the recorded commit", "b", "c", &git.Checkout{Revision: "c", Previous: "b", ChangedFiles: []string{"apps/y/g.yaml"}}, []string{"apps/y/g.yaml"}},
		{"fetched, App two commits behind", "a", "c", &git.Checkout{Revision: "c", Previous: "b", ChangedFiles: []string{"apps/y/g.yaml", "apps/x/f.yaml"}}, []string{"apps/x/f.yaml", "apps/y/g.yaml"}},
		{"fetch with unknown changes", "b", "c", &git.Checkout{Revision: "c", Previous: "b"}, nil},
		{"first fetch", "b", "c", &git.Checkout{Revision: "c", ChangedFiles: []string{"apps/y/g.yaml"}}, nil},
		{"App behind a commit never seen", "zzz", "c", &git.Checkout{Revision: "c", Previous: "b", ChangedFiles: []string{"apps/y/g.yaml"}}, nil},
		{"not recorded and not fetched", "b", "c", nil, nil},
	} {
		if got := r.changedSince(src, tc.from, tc.to, tc.onDisk); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: changedSince(%s, %s) = %v, want %v", tc.name, tc.from, tc.to, got, tc.want)
		}
	}
}
