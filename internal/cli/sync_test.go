package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/testenv"
)

func configMapYAML(name, value string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + "}\ndata: {value: \"" + value + "\"}\n"
}

const webDeploymentYAML = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web:1}]}
`

const migrateHookYAML = `apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations: {tend.dev/hook: pre-sync, tend.dev/hook-delete-policy: before-create}
spec:
  template:
    spec: {restartPolicy: Never, containers: [{name: m, image: migrate:1}]}
`

func TestSyncPathWithPruneAndPreSyncHook(t *testing.T) {
	cl := newCluster(t)
	ctx := context.Background()
	ns := cl.Namespace
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"a.yaml":       configMapYAML("a", "1"),
		"b.yaml":       configMapYAML("b", "1"),
		"web.yaml":     webDeploymentYAML,
		"migrate.yaml": migrateHookYAML,
	})

	code, _, stderr := cl.tend(t, "sync", dir)
	if code != ExitUsage || !strings.Contains(stderr, "--app NAME is required") {
		t.Fatalf("without --app: exit %d: %s", code, stderr)
	}

	code, out, stderr := cl.tend(t, "sync", dir, "--app", "site", "--prune", "--timeout", "2m")
	if code != ExitOK {
		t.Fatalf("sync: exit %d: %s\n%s", code, stderr, out)
	}
	// Progress: the hook ran first, then each object as it was applied.
	hook := strings.Index(out, "► pre-sync hooks\n"+progressLine("hook-succeeded", "batch/Job "+ns+"/migrate"))
	created := strings.Index(out, progressLine("created", "ConfigMap "+ns+"/a"))
	if hook < 0 || created < 0 || hook > created {
		t.Errorf("progress does not show the hook, then the objects:\n%s", out)
	}
	for _, want := range []string{progressLine("created", "apps/Deployment "+ns+"/web"), "synced: 3 created, 1 hook-succeeded", "App " + ns + "/site is Healthy"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, name := range []string{"a", "b"} {
		cm, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("ConfigMap %s not applied: %v", name, err)
		}
		if got := cm.Annotations["tend.dev/owner"]; got != ns+"/site" {
			t.Errorf("ConfigMap %s owner %q", name, got)
		}
	}
	if _, err := cl.Clientset.BatchV1().Jobs(ns).Get(ctx, "migrate", metav1.GetOptions{}); err != nil {
		t.Errorf("hook Job: %v", err)
	}
	if _, err := cl.Clientset.CoreV1().Secrets(ns).Get(ctx, "tend-inventory-site", metav1.GetOptions{}); err != nil {
		t.Errorf("no inventory: %v", err)
	}

	// b leaves the directory, a changes: a dry run shows it and changes nothing.
	if err := os.Remove(filepath.Join(dir, "b.yaml")); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"a.yaml": configMapYAML("a", "2")})
	code, out, stderr = cl.tend(t, "sync", dir, "--app", "site", "--prune", "--dry-run")
	if code != ExitOK {
		t.Fatalf("dry run: exit %d: %s\n%s", code, stderr, out)
	}
	for _, want := range []string{"(dry run: nothing changes)", progressLine("configured", "ConfigMap "+ns+"/a"), progressLine("pruned", "ConfigMap "+ns+"/b: dry run")} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hook-succeeded") {
		t.Errorf("a dry run ran hooks:\n%s", out)
	}
	cm, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "a", metav1.GetOptions{})
	if err != nil || cm.Data["value"] != "1" {
		t.Fatalf("dry run changed ConfigMap a: %v %v", cm.Data, err)
	}

	code, out, stderr = cl.tend(t, "sync", dir, "--app", "site", "--prune")
	if code != ExitOK {
		t.Fatalf("second sync: exit %d: %s\n%s", code, stderr, out)
	}
	for _, want := range []string{progressLine("configured", "ConfigMap "+ns+"/a"), progressLine("pruned", "ConfigMap "+ns+"/b"), progressLine("unchanged", "apps/Deployment "+ns+"/web")} {
		if !strings.Contains(out, want) {
			t.Errorf("second sync output lacks %q:\n%s", want, out)
		}
	}
	if _, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "b", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("b not pruned: %v", err)
	}
	cm, _ = cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "a", metav1.GetOptions{})
	if cm.Data["value"] != "2" {
		t.Errorf("a not updated: %v", cm.Data)
	}

	// Nothing changed since: nothing to do, still healthy.
	code, out, _ = cl.tend(t, "sync", dir, "--app", "site", "--prune")
	if code != ExitOK || !strings.Contains(out, "nothing to do") {
		t.Errorf("steady state: exit %d\n%s", code, out)
	}
}

// A sync whose objects do not become healthy in time fails with exit 1.
func TestSyncPathUnhealthyExits1(t *testing.T) {
	cl := newCluster(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"web.yaml": strings.Replace(webDeploymentYAML, "metadata: {labels: {app: web}}", "metadata: {labels: {app: web}, annotations: {tend.dev/kwok-pod: fail}}", 1) + "  progressDeadlineSeconds: 1\n"})
	code, out, stderr := runIn(t, time.Minute, "sync", dir, "--app", "site", "--timeout", "20s", "--kubeconfig", cl.Kubeconfig, "-n", cl.Namespace)
	if code != ExitDiff {
		t.Fatalf("exit %d, want %d: %s\n%s", code, ExitDiff, stderr, out)
	}
	if !strings.Contains(stderr, "sync of App "+cl.Namespace+"/site failed") {
		t.Errorf("stderr: %s", stderr)
	}
}

// progressLine is how `tend sync` prints an object's action.
func progressLine(action, object string) string {
	return fmt.Sprintf("  %-14s %s", action, object)
}

// startController runs a tend controller for the test's namespace until
// the test ends; Apps are deleted first, while it runs (finalizers).
func (cl *testCluster) startController(t *testing.T) {
	cl.startControllerWith(t, nil)
}

// startControllerWith is startController with options changed by mutate.
func (cl *testCluster) startControllerWith(t *testing.T, mutate func(*controller.Options)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	opts := controller.Options{
		Config: cl.Config, DataDir: t.TempDir(), MetricsAddr: "0", ProbeAddr: "0",
		Namespaces: []string{cl.Namespace}, Log: slog.New(slog.DiscardHandler),
	}
	if mutate != nil {
		mutate(&opts)
	}
	ctl, err := controller.New(ctx, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ctl.Start(ctx) }()
	t.Cleanup(func() {
		var apps tendv1.AppList
		_ = cl.c.List(context.Background(), &apps, client.InNamespace(cl.Namespace))
		for i := range apps.Items {
			_ = cl.c.Delete(context.Background(), &apps.Items[i])
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			_ = cl.c.List(context.Background(), &apps, client.InNamespace(cl.Namespace))
			if len(apps.Items) == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		cancel()
		<-done
	})
}

func (cl *testCluster) waitSource(t *testing.T, name, rev string) {
	t.Helper()
	eventually(t, "Source "+name+" at "+rev, time.Minute, func() bool {
		var s tendv1.Source
		err := cl.c.Get(context.Background(), types.NamespacedName{Namespace: cl.Namespace, Name: name}, &s)
		return err == nil && s.Status.Artifact != nil && s.Status.Artifact.Revision == rev
	})
}

// TestAppThroughController renders, diffs and syncs an App of a running
// controller: render and diff read its Source, sync asks the controller.
func TestAppThroughController(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	cl.startController(t)
	repo := testenv.NewGitRepo(t, nil)
	rev1 := repo.Commit("one", map[string]string{
		"apps/web/a.yaml":      configMapYAML("a", "1"),
		"apps/web/secret.yaml": dbSecretYAML,
		"apps/bad/web.yaml":    strings.Replace(webDeploymentYAML, "replicas: 1", "replicas: many", 1),
	})
	cl.createSource(t, "repo", repo.URL, nil)
	for _, name := range []string{"web", "bad"} {
		app := &tendv1.App{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: tendv1.AppSpec{
				SourceRef: tendv1.NamespacedObjectReference{Name: "repo"}, Path: "apps/" + name,
				Destination: tendv1.Destination{Namespace: ns},
				Sync:        tendv1.SyncPolicy{Manual: true, Prune: true},
			},
		}
		if err := cl.c.Create(ctx, app); err != nil {
			t.Fatal(err)
		}
	}
	cl.waitSource(t, "repo", rev1)

	code, out, stderr := cl.tend(t, "render", "web")
	if code != ExitOK {
		t.Fatalf("render web: exit %d: %s", code, stderr)
	}
	objs := objectsOf(t, out)
	if len(objs) != 2 || !strings.Contains(out, "value: \"1\"") || !strings.Contains(out, MaskedValue) || strings.Contains(out, "hunter2") {
		t.Fatalf("render web:\n%s", out)
	}
	code, out, _ = cl.tend(t, "diff", "web")
	if code != ExitDiff || !strings.Contains(out, "2 to create") {
		t.Fatalf("diff before the sync: exit %d\n%s", code, out)
	}

	code, out, stderr = cl.tend(t, "sync", "web", "--timeout", "2m")
	if code != ExitOK {
		t.Fatalf("sync web: exit %d: %s\n%s", code, stderr, out)
	}
	for _, want := range []string{"asked the controller to sync App " + ns + "/web", "sync 1 of revision " + shortRev(rev1) + ": Succeeded", "2 objects changed", "is Synced and Healthy at " + shortRev(rev1)} {
		if !strings.Contains(out, want) {
			t.Errorf("sync output lacks %q:\n%s", want, out)
		}
	}
	if _, err := cl.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "a", metav1.GetOptions{}); err != nil {
		t.Fatalf("ConfigMap a not applied: %v", err)
	}
	code, out, _ = cl.tend(t, "diff", "web")
	if code != ExitOK || strings.TrimSpace(out) != "2 unchanged" {
		t.Fatalf("diff after the sync: exit %d\n%s", code, out)
	}

	// A new commit: the App is manual, so it is not applied; diff shows it,
	// and --revision diffs other refs.
	rev2 := repo.Commit("two", map[string]string{"apps/web/a.yaml": configMapYAML("a", "2"), "apps/web/secret.yaml": ""})
	cl.waitSource(t, "repo", rev2)
	code, out, _ = cl.tend(t, "diff", "web")
	if code != ExitDiff || !strings.Contains(out, "+  value: \"2\"") || !strings.Contains(out, "1 to update, 1 to delete") {
		t.Fatalf("diff of the new commit: exit %d\n%s", code, out)
	}
	// --local runs the engine here; with --dry-run it changes nothing.
	code, out, stderr = cl.tend(t, "sync", "web", "--local", "--dry-run")
	if code != ExitOK || !strings.Contains(out, progressLine("configured", "ConfigMap "+ns+"/a")) || !strings.Contains(out, "at "+shortRev(rev2)+" (dry run") {
		t.Fatalf("sync --local --dry-run: exit %d: %s\n%s", code, stderr, out)
	}
	if code, _, stderr := cl.tend(t, "sync", "web", "--dry-run"); code != ExitUsage || !strings.Contains(stderr, "--local") {
		t.Errorf("sync APP --dry-run: exit %d: %s", code, stderr)
	}
	code, out, stderr = cl.tend(t, "diff", "web", "--revision", rev1)
	if code != ExitOK {
		t.Fatalf("diff --revision %s: exit %d: %s\n%s", rev1, code, stderr, out)
	}
	code, out, stderr = cl.tend(t, "render", "web", "--revision", "main")
	if code != ExitOK || !strings.Contains(out, "value: \"2\"") {
		t.Fatalf("render --revision main: exit %d: %s\n%s", code, stderr, out)
	}
	code, _, stderr = cl.tend(t, "diff", "web", "--revision", "no-such-branch")
	if code != ExitUsage || !strings.Contains(stderr, "no-such-branch") {
		t.Errorf("unknown ref: exit %d: %s", code, stderr)
	}

	code, out, stderr = cl.tend(t, "sync", "web", "--timeout", "2m")
	if code != ExitOK || !strings.Contains(out, "sync 2 of revision "+shortRev(rev2)) {
		t.Fatalf("second sync: exit %d: %s\n%s", code, stderr, out)
	}
	var app tendv1.App
	if err := cl.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web"}, &app); err != nil {
		t.Fatal(err)
	}
	if got := app.Annotations[controller.AnnotationSyncOptions]; got != "" {
		t.Errorf("sync-options %q without --prune or --force", got)
	}
	if _, err := cl.Clientset.CoreV1().Secrets(ns).Get(ctx, "db", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Secret db not pruned (the App prunes): %v", err)
	}

	// A sync the API server rejects fails with exit 1 and says why.
	code, out, stderr = cl.tend(t, "sync", "bad", "--prune", "--force", "--timeout", "2m")
	if code != ExitDiff {
		t.Fatalf("sync bad: exit %d, want %d: %s\n%s", code, ExitDiff, stderr, out)
	}
	if !strings.Contains(out, "Failed") || !strings.Contains(stderr, "sync of App "+ns+"/bad failed") {
		t.Errorf("sync bad:\n%s\n%s", out, stderr)
	}
	if err := cl.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "bad"}, &app); err != nil {
		t.Fatal(err)
	}
	if got := app.Annotations[controller.AnnotationSyncOptions]; got != "prune,force" {
		t.Errorf("sync-options %q, want prune,force", got)
	}
}
