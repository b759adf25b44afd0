package apply_test

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tend-gitops/tend/internal/apply"
)

// A sync attempt cut off after its pre-sync hook ran (a controller killed
// before it recorded the sync) is started again with the same HookRun: the
// hook Job it finds is its own and is not run a second time, although its
// policy deletes hooks before creating them. The next attempt runs it anew.
func TestHookOfAnAttemptCutOffRunsOnce(t *testing.T) {
	f := newFixture(t)
	migrate := `
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: NS, annotations: {argocd.argoproj.io/hook: PreSync, argocd.argoproj.io/hook-delete-policy: BeforeHookCreation}}
spec:
  template:
    spec: {restartPolicy: Never, containers: [{name: m, image: migrate:1}]}
`
	jobUID := func(run string) string {
		t.Helper()
		j, err := f.env.Clientset.BatchV1().Jobs(f.env.Namespace).Get(context.Background(), "migrate", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("hook Job: %v", err)
		}
		if got, want := j.Annotations[apply.AnnotationHookRun], run+"/pre-sync"; got != want {
			t.Errorf("hook Job's %s = %q, want the attempt and phase", apply.AnnotationHookRun, got)
		}
		return string(j.UID)
	}
	hookRan := func(res *apply.Result) bool {
		for _, o := range res.Objects {
			if o.Ref.Name == "migrate" && o.Action == apply.HookRun {
				return true
			}
		}
		return false
	}
	attempt := func(run, data string) *apply.Result {
		t.Helper()
		res, err := f.sync(t, apply.Request{HookRun: run, Objects: f.objs(t, configMap("settings", data, ""), migrate)})
		if err != nil {
			t.Fatalf("sync %s: %v", run, err)
		}
		if !hookRan(res) {
			t.Fatalf("sync %s: the pre-sync hook is not reported as succeeded: %+v", run, res.Objects)
		}
		return res
	}

	attempt("uid@rev#7", "1")
	first := jobUID("uid@rev#7")
	// The same attempt again: the ConfigMap it had not applied yet is, the
	// hook is waited for and found done.
	attempt("uid@rev#7", "2")
	if again := jobUID("uid@rev#7"); again != first {
		t.Errorf("the hook Job was created again (uid %s, first %s) for the attempt that had run it", again, first)
	}
	// The next attempt (its own history entry) runs the hook anew.
	attempt("uid@rev#8", "3")
	if next := jobUID("uid@rev#8"); next == first {
		t.Errorf("the next sync attempt did not run the hook again (Job uid %s unchanged)", next)
	}
}
