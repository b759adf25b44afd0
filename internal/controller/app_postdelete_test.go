package controller

import (
	"context"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
)

// postDeleteJobYAML is an Argo CD PostDelete hook Job; podAnnotations
// select how its pod ends on kwok ("" completes it).
func postDeleteJobYAML(name, policy, podAnnotations string) string {
	return `apiVersion: batch/v1
kind: Job
metadata:
  name: ` + name + `
  annotations: {argocd.argoproj.io/hook: PostDelete, argocd.argoproj.io/hook-delete-policy: "` + policy + `"}
spec:
  backoffLimit: 0
  template:
    metadata: {annotations: {` + podAnnotations + `}}
    spec: {restartPolicy: Never, containers: [{name: c, image: cleanup:1}]}
`
}

// jobAdds watches the namespace's Jobs named name and sends the UID of
// each one created.
func jobAdds(t *testing.T, env *testenv.Env, name string) <-chan types.UID {
	t.Helper()
	w, err := env.Clientset.BatchV1().Jobs(env.Namespace).Watch(context.Background(), metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	out := make(chan types.UID, 16)
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type == watch.Added {
				if m, ok := ev.Object.(metav1.Object); ok {
					out <- m.GetUID()
				}
			}
		}
	}()
	return out
}

func (e *ctlEnv) gone(t *testing.T, name string) {
	t.Helper()
	eventually(t, "App "+name+" gone", 60*time.Second, func() bool {
		return apierrors.IsNotFound(e.c.Get(context.Background(), client.ObjectKey{Namespace: e.Namespace, Name: name}, &tendv1.App{}))
	})
}

// TestPostDeleteHookRunsAfterObjectsAreGone: a PostDelete hook is not
// applied by a sync; deleting the App prunes its objects, then creates the
// hook, and the App goes once the hook completed; HookSucceeded deletes it.
func TestPostDeleteHookRunsAfterObjectsAreGone(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	repo := newCtlRepo(t)
	repo.commit("app with a post-delete hook", map[string]string{
		"app/cm.yaml":  configMapYAML("main", "v1"),
		"app/job.yaml": postDeleteJobYAML("cleanup", "HookSucceeded", ""),
	})
	e.create(t, gitSource("repo", repo.URL), newApp("app", "repo", "app", e.Namespace))
	e.waitApp(t, "app", "Synced with both finalizers", 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncSynced && slices.Contains(a.Finalizers, Finalizer) && slices.Contains(a.Finalizers, FinalizerPostDelete)
	})
	if _, err := e.Clientset.BatchV1().Jobs(e.Namespace).Get(ctx, "cleanup", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("post-delete hook Job after a sync: err %v, want NotFound", err)
	}
	adds := jobAdds(t, e.Env, "cleanup")
	if err := e.c.Delete(ctx, e.app(t, "app")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-adds:
		if _, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "main", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("ConfigMap main when the post-delete hook was created: err %v, want it pruned before", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("no post-delete hook Job created; App status: %+v", e.app(t, "app").Status.Conditions)
	}
	e.gone(t, "app")
	eventually(t, "hook Job deleted (HookSucceeded)", 30*time.Second, func() bool {
		_, err := e.Clientset.BatchV1().Jobs(e.Namespace).Get(ctx, "cleanup", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if n := len(adds); n > 0 {
		t.Errorf("the hook Job was created %d more times", n)
	}
}

// TestPostDeleteHookFailureKeepsApp: an App without prune carries the
// post-delete finalizer alone; a failing hook keeps the deleted App, its
// objects untouched, with a condition and an event naming the Job and
// what to do; removing the finalizer by hand lets it go.
func TestPostDeleteHookFailureKeepsApp(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	repo := newCtlRepo(t)
	repo.commit("app with a failing post-delete hook", map[string]string{
		"app/cm.yaml":  configMapYAML("kept", "v1"),
		"app/job.yaml": postDeleteJobYAML("cleanup", "BeforeHookCreation", "tend.dev/kwok-pod: fail"),
	})
	e.create(t, gitSource("repo", repo.URL), newApp("app", "repo", "app", e.Namespace, func(a *tendv1.App) {
		a.Spec.Sync.Prune = false
	}))
	a := e.waitApp(t, "app", "Synced with the post-delete finalizer", 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncSynced && slices.Contains(a.Finalizers, FinalizerPostDelete)
	})
	if slices.Contains(a.Finalizers, Finalizer) {
		t.Fatalf("finalizers %v: an App without prune carries %s", a.Finalizers, Finalizer)
	}
	if err := e.c.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	a = e.waitApp(t, "app", "Stalled by the failed post-delete hook", 60*time.Second, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionStalled)
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == ReasonPostDeleteFailed
	})
	msg := condition(a, tendv1.ConditionStalled).Message
	for _, want := range []string{"Job " + e.Namespace + "/cleanup", "finalizer", tendv1.AnnotationRequestedAt} {
		if !strings.Contains(msg, want) {
			t.Errorf("condition message %q does not mention %q", msg, want)
		}
	}
	eventually(t, "a Warning event about the failed hook", 30*time.Second, func() bool {
		return slices.ContainsFunc(warnings(t, e, "App", "app"), func(s string) bool {
			return strings.HasPrefix(s, ReasonPostDeleteFailed+": ") && strings.Contains(s, "cleanup")
		})
	})
	if _, err := e.Clientset.CoreV1().ConfigMaps(e.Namespace).Get(ctx, "kept", metav1.GetOptions{}); err != nil {
		t.Errorf("ConfigMap of an App without prune: %v, want it kept", err)
	}
	if _, err := e.Clientset.BatchV1().Jobs(e.Namespace).Get(ctx, "cleanup", metav1.GetOptions{}); err != nil {
		t.Errorf("failed hook Job without HookFailed: %v, want it kept to read its logs", err)
	}

	// Giving up, as the message says.
	a = e.app(t, "app")
	orig := a.DeepCopy()
	a.Finalizers = nil
	if err := e.c.Patch(ctx, a, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
	e.gone(t, "app")
}

// TestPostDeleteHookSurvivesRestart kills the controller process while a
// post-delete hook runs. The hook Job carries its run (App UID and
// revision), so the next process, with an empty data directory, renders
// the App's revision again, finds the Job and waits for it instead of
// replacing it (its policy has BeforeHookCreation).
func TestPostDeleteHookSurvivesRestart(t *testing.T) {
	env := testenv.New(t)
	testenv.InstallCRDs(t, env.Config)
	bin := buildTend(t)
	c, err := client.New(env.Config, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	e := &ctlEnv{Env: env, c: c}
	ctx := context.Background()
	repo := newCtlRepo(t)
	repo.commit("app with a slow post-delete hook", map[string]string{
		"app/cm.yaml":  configMapYAML("main", "v1"),
		"app/job.yaml": postDeleteJobYAML("cleanup", "BeforeHookCreation,HookSucceeded", "tend.dev/kwok-pod: not-ready"),
	})
	first := startTend(t, env, bin, "first")
	cleanupApps(t, c, env.Namespace)
	e.create(t, gitSource("repo", repo.URL), newApp("app", "repo", "app", env.Namespace))
	e.waitApp(t, "app", "Synced with the post-delete finalizer", 90*time.Second, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncSynced && slices.Contains(a.Finalizers, FinalizerPostDelete)
	})
	adds := jobAdds(t, env, "cleanup")
	if err := c.Delete(ctx, e.app(t, "app")); err != nil {
		t.Fatal(err)
	}
	var uid types.UID
	select {
	case uid = <-adds:
	case <-time.After(60 * time.Second):
		t.Fatalf("no post-delete hook Job created; App status: %+v", e.app(t, "app").Status.Conditions)
	}
	e.waitApp(t, "app", "waiting for the hook", 30*time.Second, func(a *tendv1.App) bool {
		c := condition(a, tendv1.ConditionReconciling)
		return c != nil && c.Reason == ReasonPostDeleteHooks
	})

	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.cmd.Wait()
	second := startTend(t, env, bin, "second")
	eventually(t, "the second process waiting for the hook", 90*time.Second, func() bool {
		return strings.Contains(second.stderr.String(), "waiting for a post-delete hook")
	})
	// Let the Job's pod complete (kwok completes Job pods without the
	// annotation).
	pods, err := env.Clientset.CoreV1().Pods(env.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "job-name=cleanup"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods of Job cleanup: %d, %v; want 1", len(pods.Items), err)
	}
	// A merge patch without a resourceVersion: kwok writes the pod's
	// status meanwhile, and an Update would conflict with it.
	unblock := []byte(`{"metadata":{"annotations":{"tend.dev/kwok-pod":null}}}`)
	if _, err := env.Clientset.CoreV1().Pods(env.Namespace).Patch(ctx, pods.Items[0].Name, types.MergePatchType, unblock, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	e.gone(t, "app")
	for len(adds) > 0 {
		if again := <-adds; again != uid {
			t.Errorf("the hook Job was created again (uid %s, first %s) after the restart", again, uid)
		}
	}
}
