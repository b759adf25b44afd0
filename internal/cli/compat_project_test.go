package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/testenv"
)

var argoAppProjects = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "appprojects"}

// An AppProject under --compat argo becomes a Project that holds its
// Applications. When it changes into something tend cannot enforce (sync
// windows), the Project goes rather than keep its older, looser rules: the
// Application waits for it, and nothing more is applied.
func TestCompatArgoCDAppProjectFailsClosed(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	dyn := installCompat(t, cl)
	repo := testenv.NewGitRepo(t, map[string]string{"apps/web/cm.yaml": configMapYAML("settings", "web")})
	project := "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: team, namespace: " + ns + "}\n" +
		"spec:\n  sourceRepos: ['*']\n  destinations: [{server: 'https://kubernetes.default.svc', namespace: " + ns + "}]\n"
	createYAML(t, dyn, argoAppProjects, project)
	app := inProject(argoApplication("web", repo.URL, "apps/web", ns), "team")
	createYAML(t, dyn, argoApplications, strings.Replace(app, "namespace: argocd", "namespace: "+ns, 1))
	logIfFailed(t, dyn, argoApplications, ns, "web")

	cl.startControllerWith(t, func(o *controller.Options) { o.Compat = []string{"argo"} })
	eventually(t, "the Application Synced under its Project", 2*time.Minute, func() bool {
		return getStatus(dyn, argoApplications, ns, "web", "sync", "status") == "Synced"
	})
	var p tendv1.Project
	if err := cl.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "team"}, &p); err != nil {
		t.Fatalf("Project team from the AppProject: %v", err)
	}
	if len(p.Spec.Destinations) != 1 || p.Spec.Destinations[0] != (tendv1.ProjectDestination{Cluster: "in-cluster", Namespace: ns}) {
		t.Errorf("Project destinations %+v, want in-cluster/%s", p.Spec.Destinations, ns)
	}

	u, err := dyn.Resource(argoAppProjects).Namespace(ns).Get(ctx, "team", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u.Object["spec"].(map[string]any)["syncWindows"] = []any{map[string]any{"kind": "deny", "schedule": "* * * * *", "duration": "1h"}}
	if _, err := dyn.Resource(argoAppProjects).Namespace(ns).Update(ctx, u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Project gone with the AppProject tend cannot enforce", time.Minute, func() bool {
		err := cl.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "team"}, &tendv1.Project{})
		return apierrors.IsNotFound(err)
	})
	eventually(t, "the Application waiting for its Project", time.Minute, func() bool {
		return strings.Contains(condition(dyn, argoApplications, ns, "web", "InvalidSpecError"), "the Project "+ns+"/team (spec.project) does not exist")
	})
}
