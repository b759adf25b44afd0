package cli

import (
	"strings"
	"testing"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
)

// TestStatusShowsTheFailedRevision: when the newest revision fails to apply
// or to render, the App says Failed at that revision, still names the last
// good one, and `tend status` exits 1; a fix makes it Synced again.
func TestStatusShowsTheFailedRevision(t *testing.T) {
	cl := newCluster(t)
	cl.startController(t)
	repo := testenv.NewGitRepo(t, nil)
	rev1 := repo.Commit("good", map[string]string{"apps/web/a.yaml": configMapYAML("a", "1")})
	cl.createSource(t, "repo", repo.URL, nil)
	cl.createSyncApp(t, "web", "apps/web", nil)
	cl.waitApp(t, "web", "Synced at "+rev1, func(a *tendv1.App) bool { return syncedAndHealthy(a) && a.Status.Revision == rev1 })
	if code, out, stderr := cl.tend(t, "status"); code != ExitOK {
		t.Fatalf("status of a synced App: exit %d: %s\n%s", code, stderr, out)
	}

	// The API server rejects the new revision's Deployment.
	rev2 := repo.Commit("bad apply", map[string]string{"apps/web/web.yaml": strings.Replace(webDeploymentYAML, "replicas: 1", "replicas: many", 1)})
	a := cl.waitApp(t, "web", "Failed at "+rev2, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncFailed && a.Status.LastAttemptedRevision == rev2
	})
	if a.Status.Revision != rev1 {
		t.Errorf("revision = %s, want the last good %s", a.Status.Revision, rev1)
	}
	code, out, _ := cl.tend(t, "status")
	if code != ExitDiff || !strings.Contains(out, "Failed") || !strings.Contains(out, shortRev(rev2)+" (applied: "+shortRev(rev1)+")") {
		t.Errorf("status of a failed App: exit %d, want 1 and Failed at %s:\n%s", code, shortRev(rev2), out)
	}
	if _, out, _ := cl.tend(t, "get", "apps"); !strings.Contains(out, "Failed") {
		t.Errorf("tend get apps does not show Failed:\n%s", out)
	}

	// A revision that does not render at all.
	rev3 := repo.Commit("bad render", map[string]string{"apps/web/web.yaml": "kind: [not yaml"})
	a = cl.waitApp(t, "web", "Failed at "+rev3, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncFailed && a.Status.LastAttemptedRevision == rev3
	})
	if a.Status.Revision != rev1 {
		t.Errorf("after a render failure: revision = %s, want the last good %s", a.Status.Revision, rev1)
	}

	// Fixed.
	rev4 := repo.Commit("fixed", map[string]string{"apps/web/web.yaml": webDeploymentYAML})
	cl.waitApp(t, "web", "Synced at "+rev4, func(a *tendv1.App) bool { return syncedAndHealthy(a) && a.Status.Revision == rev4 })
	if code, out, stderr := cl.tend(t, "status"); code != ExitOK {
		t.Fatalf("status after the fix: exit %d: %s\n%s", code, stderr, out)
	}
}
