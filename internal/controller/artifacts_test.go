package controller

import (
	"reflect"
	"testing"

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
