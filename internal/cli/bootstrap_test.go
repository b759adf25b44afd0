package cli

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/install"
	"github.com/tend-gitops/tend/internal/testenv"
)

// TestBootstrapTwice installs tend and its self-management, runs again
// without changing anything, and refuses to switch to another repository
// unless forced.
func TestBootstrapTwice(t *testing.T) {
	cl := newCluster(t)
	ctx := context.Background()
	repo := testenv.NewGitRepo(t, map[string]string{"clusters/test/README.md": "platform"})
	ns := cl.Namespace // tend's own namespace for this test
	t.Cleanup(func() {
		_ = cl.Clientset.RbacV1().ClusterRoleBindings().Delete(context.Background(), install.ClusterName(ns), metav1.DeleteOptions{})
		_ = cl.Clientset.RbacV1().ClusterRoles().Delete(context.Background(), install.ClusterName(ns), metav1.DeleteOptions{})
	})
	args := []string{"bootstrap", "--repo", repo.URL, "--path", "clusters/test", "--tend-namespace", ns, "--local-controller", "--kubeconfig", cl.Kubeconfig}

	code, out, stderr := run(t, args...)
	if code != ExitOK {
		t.Fatalf("bootstrap: exit %d\n%s%s", code, out, stderr)
	}
	if !strings.Contains(out, "committed and pushed clusters/test/tend/tend.yaml") || !strings.Contains(out, "local-controller mode") {
		t.Errorf("first bootstrap output:\n%s", out)
	}
	head1 := repo.Git("--git-dir", repo.BareDir, "rev-parse", "main")
	repo.Pull()
	manifest := repo.Git("show", "HEAD:clusters/test/tend/tend.yaml")
	if !strings.Contains(manifest, "kind: CustomResourceDefinition") || strings.Contains(manifest, "kind: Deployment") {
		t.Errorf("manifests written to git: want CRDs and no controller Deployment in local-controller mode")
	}
	var src tendv1.Source
	if err := cl.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "tend"}, &src); err != nil || src.Spec.Git.URL != repo.URL {
		t.Fatalf("Source tend: %v %+v", err, src.Spec.Git)
	}
	var app tendv1.App
	if err := cl.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "tend"}, &app); err != nil || app.Spec.Path != "clusters/test" || !app.Spec.Recursive {
		t.Fatalf("App tend: %v %+v", err, app.Spec)
	}
	if _, err := cl.Clientset.RbacV1().ClusterRoles().Get(ctx, install.ClusterName(ns), metav1.GetOptions{}); err != nil {
		t.Errorf("RBAC not installed: %v", err)
	}

	// Again: nothing to commit, nothing changes.
	appRV := app.ResourceVersion
	code, out, stderr = run(t, args...)
	if code != ExitOK || !strings.Contains(out, "is up to date") {
		t.Fatalf("second bootstrap: exit %d\n%s%s", code, out, stderr)
	}
	if head2 := repo.Git("--git-dir", repo.BareDir, "rev-parse", "main"); head2 != head1 {
		t.Errorf("second bootstrap committed again: %s -> %s", head1, head2)
	}
	if err := cl.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "tend"}, &app); err != nil || app.ResourceVersion != appRV {
		t.Errorf("second bootstrap changed the App: %v (resourceVersion %s -> %s)", err, appRV, app.ResourceVersion)
	}

	// Another repository: refused, unless --force.
	other := testenv.NewGitRepo(t, map[string]string{"clusters/test/README.md": "other"})
	otherArgs := []string{"bootstrap", "--repo", other.URL, "--path", "clusters/test", "--tend-namespace", ns, "--local-controller", "--kubeconfig", cl.Kubeconfig}
	code, _, stderr = run(t, otherArgs...)
	if code != ExitUsage || !strings.Contains(stderr, "already follows "+repo.URL) || !strings.Contains(stderr, "--force") {
		t.Fatalf("bootstrap into a cluster tend manages from another repo: exit %d: %s", code, stderr)
	}
	code, _, stderr = run(t, append(otherArgs, "--force")...)
	if code != ExitOK {
		t.Fatalf("bootstrap --force: exit %d: %s", code, stderr)
	}
	if err := cl.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "tend"}, &src); err != nil || src.Spec.Git.URL != other.URL {
		t.Fatalf("--force did not switch the Source: %v %+v", err, src.Spec.Git)
	}
}
