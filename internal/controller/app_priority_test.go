package controller

import (
	"testing"

	"github.com/tend-gitops/tend/internal/artifact"
	"k8s.io/apimachinery/pkg/types"
)

func TestUnaffectedAppsWaitAfterANewRevision(t *testing.T) {
	src := types.NamespacedName{Namespace: "ns", Name: "repo"}
	web := types.NamespacedName{Namespace: "ns", Name: "web"}
	db := types.NamespacedName{Namespace: "ns", Name: "db"}
	fresh := types.NamespacedName{Namespace: "ns", Name: "fresh"}
	r := &AppReconciler{Artifacts: artifact.NewStore(t.TempDir(), nil), state: map[types.NamespacedName]*appState{}}
	r.Artifacts.Set(src, artifact.Artifact{Revision: "r1"}, nil)
	r.Artifacts.Set(src, artifact.Artifact{Revision: "r2"}, []string{"apps/web/deploy.yaml"})
	r.Artifacts.Set(src, artifact.Artifact{Revision: "r3"}, []string{"apps/db/values.yaml"})
	r.stateFor(web).rendered.Store(&rendered{rev: "r1", files: []string{"apps/web/deploy.yaml", "apps/web/svc.yaml"}})
	r.stateFor(db).rendered.Store(&rendered{rev: "r2", files: []string{"apps/db/cluster.yaml"}})
	r.stateFor(fresh) // never rendered

	for _, tc := range []struct {
		app  types.NamespacedName
		rev  string
		want bool
	}{
		{web, "r2", false}, // its file changed
		{web, "r3", false}, // r1..r3 includes its change
		{db, "r3", true},   // values.yaml is not a file it read
		{fresh, "r3", false},
		{types.NamespacedName{Namespace: "ns", Name: "unknown"}, "r3", false},
		{web, "r9", false}, // a revision never seen: unsure
	} {
		if got := r.unaffected(tc.app, src, tc.rev); got != tc.want {
			t.Errorf("unaffected(%s, %s) = %v, want %v", tc.app.Name, tc.rev, got, tc.want)
		}
	}
}
