package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/testenv"
)

// An Argo CD Application with a PostDelete hook, deleted under Argo CD's
// resources and post-delete finalizers: its objects go first, then the
// hook Job runs, and the Application goes once the hook completed (tend
// removes both of Argo CD's finalizers); HookSucceeded deletes the Job.
func TestCompatArgoCDPostDeleteHook(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	dyn := installCompat(t, cl)
	repo := testenv.NewGitRepo(t, nil)
	repo.Commit("app with a post-delete hook", map[string]string{
		"apps/web/cm.yaml": configMapYAML("settings", "web-1"),
		"apps/web/job.yaml": `apiVersion: batch/v1
kind: Job
metadata:
  name: cleanup
  annotations: {argocd.argoproj.io/hook: PostDelete, argocd.argoproj.io/hook-delete-policy: HookSucceeded}
spec:
  backoffLimit: 0
  template:
    spec: {restartPolicy: Never, containers: [{name: c, image: cleanup:1}]}
`,
		"apps/web/kustomization.yaml": "resources: [cm.yaml, job.yaml]\n",
	})
	app := strings.Replace(argoApplication("web", repo.URL, "apps/web", ns), "namespace: argocd", "namespace: "+ns, 1)
	app = strings.Replace(app, "finalizers: [resources-finalizer.argocd.argoproj.io]", "finalizers: [resources-finalizer.argocd.argoproj.io, post-delete-finalizer.argoproj.io]", 1)
	createYAML(t, dyn, argoApplications, app)
	logIfFailed(t, dyn, argoApplications, ns, "web")
	cl.startControllerWith(t, func(o *controller.Options) { o.Compat = []string{"argo"} })

	eventually(t, "Application web Synced", 2*time.Minute, func() bool {
		return getStatus(dyn, argoApplications, ns, "web", "sync", "status") == "Synced"
	})
	if _, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "web-settings", metav1.GetOptions{}); err != nil {
		t.Fatalf("ConfigMap of Application web: %v", err)
	}
	if _, err := cl.Clientset.BatchV1().Jobs(ns).Get(ctx, "web-cleanup", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("PostDelete hook Job after the sync: err %v, want NotFound", err)
	}
	w, err := cl.Clientset.BatchV1().Jobs(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=web-cleanup"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := dyn.Resource(argoApplications).Namespace(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(2 * time.Minute)
	for created := false; !created; {
		select {
		case ev := <-w.ResultChan():
			if ev.Type != watch.Added {
				continue
			}
			created = true
			if _, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "web-settings", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("ConfigMap web-settings when the PostDelete hook was created: err %v, want it deleted before", err)
			}
		case <-deadline:
			t.Fatal("no PostDelete hook Job created after the Application was deleted")
		}
	}
	waitGone(t, dyn, argoApplications, ns, "web")
	eventually(t, "hook Job deleted (HookSucceeded)", time.Minute, func() bool {
		_, err := cl.Clientset.BatchV1().Jobs(ns).Get(ctx, "web-cleanup", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
}
