package apply_test

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/testenv"
)

// postDeleteJob is a post-delete hook Job; podAnnotations select how its
// pod ends on kwok ("" completes it).
func postDeleteJob(name, policy, podAnnotations string) string {
	return `
apiVersion: batch/v1
kind: Job
metadata: {name: ` + name + `, namespace: NS, annotations: {argocd.argoproj.io/hook: PostDelete, argocd.argoproj.io/hook-delete-policy: "` + policy + `"}}
spec:
  backoffLimit: 0
  template:
    metadata: {annotations: {` + podAnnotations + `}}
    spec: {restartPolicy: Never, containers: [{name: c, image: cleanup:1}]}
`
}

const postDeleteAccount = `
apiVersion: v1
kind: ServiceAccount
metadata: {name: cleanup, namespace: NS, annotations: {helm.sh/hook: post-delete, helm.sh/hook-weight: "-1"}}
`

// postDeleteUntil calls PostDelete until cond holds for its result, and
// returns every hook the calls created.
func postDeleteUntil(t *testing.T, f *fixture, run string, docs []string, retry bool, what string, cond func(*apply.PostDeleteResult) bool) (*apply.PostDeleteResult, []string) {
	t.Helper()
	var (
		last    *apply.PostDeleteResult
		created []string
	)
	testenv.Eventually(t, what, 60*time.Second, func() bool {
		hooks, err := apply.PostDeleteHooks(f.objs(t, docs...))
		if err != nil {
			t.Fatal(err)
		}
		res, err := f.engine.PostDelete(context.Background(), apply.PostDeleteRequest{App: f.app, Run: run, Hooks: hooks, Retry: retry, HealthTimeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		retry = false // asked once, as the controller does
		for _, c := range res.Created {
			created = append(created, c.String())
		}
		last = res
		return cond(res)
	})
	return last, created
}

func (f *fixture) jobUID(t *testing.T, name string) types.UID {
	t.Helper()
	j, err := f.env.Clientset.BatchV1().Jobs(f.env.Namespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Job %s: %v", name, err)
	}
	return j.UID
}

// TestPostDeleteRunsOnceAcrossARestart: the hooks run in weight order (the
// ServiceAccount before the Job); an engine with a fresh watch cache (a
// restarted controller) finds the running Job by its run annotation and
// waits for it instead of creating it again; once it completed, the
// on-success policy deletes it.
func TestPostDeleteRunsOnceAcrossARestart(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	docs := []string{postDeleteJob("cleanup", "HookSucceeded", "tend.dev/kwok-pod: not-ready"), postDeleteAccount}
	run := "uid-1@rev1"
	res, created := postDeleteUntil(t, f, run, docs, false, "the Job running", func(r *apply.PostDeleteResult) bool {
		return r.State == apply.PostDeleteRunning && r.Hook.Name == "cleanup" && r.Hook.Kind == "Job"
	})
	if got, want := strings.Join(created, ", "), "ServiceAccount "+f.env.Namespace+"/cleanup, batch/Job "+f.env.Namespace+"/cleanup"; got != want {
		t.Fatalf("created %s, want %s (weight order)", got, want)
	}
	uid := f.jobUID(t, "cleanup")
	if got := res.Message; !strings.Contains(got, "cleanup") {
		t.Errorf("running message %q does not name the Job", got)
	}

	restarted := newEngineFixture(t, f.env, &apply.SecretStore{Client: f.env.Clientset})
	_, created = postDeleteUntil(t, restarted, run, docs, false, "the restarted engine waiting for the Job", func(r *apply.PostDeleteResult) bool {
		return r.State == apply.PostDeleteRunning && r.Hook.Name == "cleanup"
	})
	if len(created) > 0 {
		t.Fatalf("the restarted engine created %v again", created)
	}
	// Let the Job's pod complete (kwok completes Job pods without the
	// annotation).
	pods, err := f.env.Clientset.CoreV1().Pods(f.env.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "job-name=cleanup"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods of Job cleanup: %v, %v", pods, err)
	}
	// A merge patch without a resourceVersion: kwok writes the pod's
	// status meanwhile, and an Update would conflict with it.
	unblock := []byte(`{"metadata":{"annotations":{"tend.dev/kwok-pod":null}}}`)
	if _, err := f.env.Clientset.CoreV1().Pods(f.env.Namespace).Patch(ctx, pods.Items[0].Name, types.MergePatchType, unblock, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	res, created = postDeleteUntil(t, restarted, run, docs, false, "the hooks done", func(r *apply.PostDeleteResult) bool {
		return r.State == apply.PostDeleteDone
	})
	if len(created) > 0 {
		t.Fatalf("created %v again while the Job ran", created)
	}
	if got := f.jobUID(t, "cleanup"); got != uid {
		t.Fatalf("Job cleanup was created again: uid %s, first %s", got, uid)
	}
	if w := restarted.engine.PostDeleteCleanUp(ctx, res); len(w) > 0 {
		t.Fatalf("clean-up: %v", w)
	}
	testenv.Eventually(t, "Job cleanup deleted (HookSucceeded)", 30*time.Second, func() bool {
		_, err := f.env.Clientset.BatchV1().Jobs(f.env.Namespace).Get(ctx, "cleanup", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if _, err := f.env.Clientset.CoreV1().ServiceAccounts(f.env.Namespace).Get(ctx, "cleanup", metav1.GetOptions{}); err != nil {
		t.Errorf("ServiceAccount without a delete policy after the hooks: %v, want it kept", err)
	}
}

// TestPostDeleteFailureAndRetry: a failing hook is reported by name and
// kept (no HookFailed policy); a retry deletes it and creates it anew.
// A hook left by an earlier run with before-create is replaced.
func TestPostDeleteFailureAndRetry(t *testing.T) {
	f := newFixture(t)
	docs := []string{postDeleteJob("cleanup", "BeforeHookCreation", "tend.dev/kwok-pod: fail")}
	res, _ := postDeleteUntil(t, f, "uid-1@rev1", docs, false, "the hook failed", func(r *apply.PostDeleteResult) bool {
		return r.State != apply.PostDeleteRunning
	})
	if res.State != apply.PostDeleteFailed || !strings.Contains(res.Message, "Job "+f.env.Namespace+"/cleanup") {
		t.Fatalf("result %s %q, want Failed naming the Job", res.State, res.Message)
	}
	first := f.jobUID(t, "cleanup")
	if res, created := postDeleteUntil(t, f, "uid-1@rev1", docs, false, "still failed", func(r *apply.PostDeleteResult) bool { return true }); res.State != apply.PostDeleteFailed || len(created) > 0 {
		t.Fatalf("called again without a retry: %s, created %v; want Failed and nothing created", res.State, created)
	}
	_, created := postDeleteUntil(t, f, "uid-1@rev1", docs, true, "the retried hook failed again", func(r *apply.PostDeleteResult) bool {
		return r.State == apply.PostDeleteFailed
	})
	if len(created) != 1 || f.jobUID(t, "cleanup") == first {
		t.Fatalf("retry created %v, want the Job created once anew", created)
	}
	second := f.jobUID(t, "cleanup")
	_, created = postDeleteUntil(t, f, "uid-2@rev2", docs, false, "a new run's hook failed", func(r *apply.PostDeleteResult) bool {
		return r.State == apply.PostDeleteFailed
	})
	if len(created) != 1 || f.jobUID(t, "cleanup") == second {
		t.Fatalf("a new run created %v, want the earlier Job replaced (BeforeHookCreation)", created)
	}
}
