package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func run(t *testing.T, ctx context.Context, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := Run(ctx, args, &out, &errb)
	return out.String(), errb.String(), err
}

// TestLifecycle brings a control plane up, runs real workloads on it, reuses
// it, recovers it after a crash, and takes it down without leaving processes.
func TestLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	ctx := testContext(t, 15*time.Minute)
	dir := filepath.Join(t.TempDir(), "cluster")
	if _, errOut, err := run(t, ctx, "build"); err != nil {
		t.Fatalf("build: %v\n%s", err, errOut)
	}

	start := time.Now()
	out, errOut, err := run(t, ctx, "up", "--dir", dir)
	if err != nil {
		t.Fatalf("up: %v\n%s", err, errOut)
	}
	t.Cleanup(func() { _, _, _ = run(t, context.Background(), "down", "--dir", dir) })
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if got, want := strings.TrimSpace(out), "export KUBECONFIG="+kubeconfig; got != want {
		t.Fatalf("up printed %q, want %q", got, want)
	}
	cs, dyn, ext := clients(t, kubeconfig)

	// A 3-replica Deployment becomes Available on the fake nodes.
	ns := "lifecycle"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "Deployment web Available with 3 ready replicas", func() bool {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil || d.Status.ReadyReplicas != 3 {
			return false
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	})
	t.Logf("up to Deployment Available: %s", time.Since(start).Round(100*time.Millisecond))

	// A CRD is established and a custom resource of it can be created.
	crd := &apiextv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets.example.tend.dev"},
		Spec: apiextv1.CustomResourceDefinitionSpec{
			Group: "example.tend.dev",
			Names: apiextv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList"},
			Scope: apiextv1.NamespaceScoped,
			Versions: []apiextv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextv1.CustomResourceValidation{OpenAPIV3Schema: &apiextv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextv1.JSONSchemaProps{
						"spec": {Type: "object", Properties: map[string]apiextv1.JSONSchemaProps{"size": {Type: "integer"}}},
					},
				}},
			}},
		},
	}
	if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "CRD Established", func() bool {
		c, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, cond := range c.Status.Conditions {
			if cond.Type == apiextv1.Established && cond.Status == apiextv1.ConditionTrue {
				return true
			}
		}
		return false
	})
	gvr := schema.GroupVersionResource{Group: "example.tend.dev", Version: "v1", Resource: "widgets"}
	cr := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.tend.dev/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "w1"},
		"spec":     map[string]any{"size": int64(3)},
	}}
	waitFor(t, ctx, "custom resource created", func() bool {
		_, err := dyn.Resource(gvr).Namespace(ns).Create(ctx, cr, metav1.CreateOptions{})
		return err == nil
	})
	got, err := dyn.Resource(gvr).Namespace(ns).Get(ctx, "w1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if size, _, _ := unstructured.NestedInt64(got.Object, "spec", "size"); size != 3 {
		t.Fatalf("widget size = %d, want 3", size)
	}

	// A Job completes.
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "migrate", Namespace: ns},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "migrate", Image: "busybox:1.36"}},
		}}},
	}
	if _, err := cs.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "Job complete", func() bool {
		j, err := cs.BatchV1().Jobs(ns).Get(ctx, "migrate", metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range j.Status.Conditions {
			if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	})

	// Pods annotated for kwok stay not ready, or fail: how tests get a
	// Deployment that never becomes Available and a hook Job that fails.
	notReady := dep.DeepCopy()
	notReady.Name = "stuck"
	notReady.Spec.Replicas = ptr.To[int32](1)
	notReady.Spec.Selector.MatchLabels = map[string]string{"app": "stuck"}
	notReady.Spec.Template.Labels = map[string]string{"app": "stuck"}
	notReady.Spec.Template.Annotations = map[string]string{"tend.dev/kwok-pod": "not-ready"}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, notReady, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	failing := job.DeepCopy()
	failing.Name = "broken"
	failing.Spec.BackoffLimit = ptr.To[int32](0)
	failing.Spec.Template.Annotations = map[string]string{"tend.dev/kwok-pod": "fail"}
	if _, err := cs.BatchV1().Jobs(ns).Create(ctx, failing, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "Job broken failed", func() bool {
		j, err := cs.BatchV1().Jobs(ns).Get(ctx, "broken", metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range j.Status.Conditions {
			if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	})
	waitFor(t, ctx, "stuck pod running", func() bool {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=stuck"})
		return err == nil && len(pods.Items) == 1 && pods.Items[0].Status.Phase == corev1.PodRunning
	})
	time.Sleep(2 * time.Second) // the normal pods became Ready well within this
	if d, err := cs.AppsV1().Deployments(ns).Get(ctx, "stuck", metav1.GetOptions{}); err != nil || d.Status.ReadyReplicas != 0 {
		t.Fatalf("stuck Deployment has ready replicas: %+v %v", d.Status, err)
	}

	// status reports a healthy cluster; a second up reuses it.
	if out, errOut, err := run(t, ctx, "status", "--dir", dir); err != nil || !strings.Contains(out, "3/3 nodes Ready") {
		t.Fatalf("status: %v\n%s%s", err, out, errOut)
	}
	pidsBefore := pids(t, dir)
	if _, errOut, err := run(t, ctx, "up", "--dir", dir); err != nil || !strings.Contains(errOut, "reusing the healthy cluster") {
		t.Fatalf("second up: %v\n%s", err, errOut)
	}
	if got := pids(t, dir); !equalInts(got, pidsBefore) {
		t.Fatalf("second up changed pids from %v to %v", pidsBefore, got)
	}

	// A crash (apiserver killed) leaves stale pid files; up notices and
	// starts a fresh cluster, stopping the leftovers.
	rec, _ := readPid(dir, "kube-apiserver")
	if err := killAndWait(rec); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := run(t, ctx, "status", "--dir", dir); err == nil {
		t.Fatalf("status succeeded with the apiserver killed\n%s", errOut)
	}
	if _, errOut, err := run(t, ctx, "up", "--dir", dir); err != nil || !strings.Contains(errOut, "stale cluster") {
		t.Fatalf("up after crash: %v\n%s", err, errOut)
	}
	for _, p := range pidsBefore {
		if alive(procRecord{Pid: p}) && contains(pids(t, dir), p) {
			t.Fatalf("pid %d from before the crash still recorded", p)
		}
	}
	cs, _, _ = clients(t, kubeconfig)
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("fresh cluster not answering: %v", err)
	}

	// down stops exactly the recorded processes and removes the dir.
	final := readRecords(t, dir)
	if _, errOut, err := run(t, ctx, "down", "--dir", dir); err != nil {
		t.Fatalf("down: %v\n%s", err, errOut)
	}
	for _, r := range final {
		if alive(r) {
			t.Errorf("%s (pid %d) still running after down", r.Name, r.Pid)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("data dir still exists after down: %v", err)
	}
}

func TestUpPortInUse(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the cached binaries")
	}
	ctx := testContext(t, 10*time.Minute)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	dir := filepath.Join(t.TempDir(), "cluster")
	_, _, err = run(t, ctx, "up", "--dir", dir, "--apiserver-port", strconv.Itoa(port))
	if err == nil {
		_, _, _ = run(t, ctx, "down", "--dir", dir)
		t.Fatal("up succeeded on a port in use")
	}
	if !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Fatalf("error does not name the port in use: %v", err)
	}
	for _, name := range componentOrder {
		if rec, ok := readPid(dir, name); ok && alive(rec) {
			t.Errorf("%s left running after a failed up", name)
		}
	}
}

func TestUpRefusesForeignDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Dir: dir, Log: &bytes.Buffer{}, Nodes: 1}
	err := c.Up(testContext(t, time.Minute))
	if err == nil || !strings.Contains(err.Error(), "holds no cluster") {
		t.Fatalf("Up on a foreign dir: %v", err)
	}
	if err := c.Down(); err == nil {
		t.Fatal("Down removed a dir that holds no cluster")
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Fatalf("foreign file gone: %v", err)
	}
}

func TestCorruptBinaryIsRebuilt(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build")
	}
	ctx := testContext(t, 10*time.Minute)
	var log bytes.Buffer
	b, err := newBuilder("", &log)
	if err != nil {
		t.Fatal(err)
	}
	b.binDir = t.TempDir()
	etcd := b.components()[0]
	path := filepath.Join(b.binDir, etcd.name)
	if err := os.WriteFile(path, []byte("\x7fELF truncated"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkBinary(ctx, path, etcd); err == nil {
		t.Fatal("checkBinary accepted a corrupt binary")
	}
	if err := b.ensureComponents(ctx, []component{etcd}); err != nil {
		t.Fatalf("ensure: %v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "unusable") {
		t.Errorf("no message about the unusable binary:\n%s", log.String())
	}
	if err := checkBinary(ctx, path, etcd); err != nil {
		t.Fatalf("rebuilt binary does not run: %v", err)
	}
}

func clients(t *testing.T, kubeconfig string) (*kubernetes.Clientset, dynamic.Interface, *apiextclient.Clientset) {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(rc), dynamic.NewForConfigOrDie(rc), apiextclient.NewForConfigOrDie(rc)
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func readRecords(t *testing.T, dir string) []procRecord {
	t.Helper()
	var recs []procRecord
	for _, name := range componentOrder {
		rec, ok := readPid(dir, name)
		if !ok {
			t.Fatalf("no pid file for %s", name)
		}
		recs = append(recs, rec)
	}
	return recs
}

func pids(t *testing.T, dir string) []int {
	var out []int
	for _, r := range readRecords(t, dir) {
		out = append(out, r.Pid)
	}
	return out
}

func killAndWait(rec procRecord) error {
	p, err := os.FindProcess(rec.Pid)
	if err != nil {
		return err
	}
	if err := p.Kill(); err != nil {
		return err
	}
	waitGone(rec, 10*time.Second)
	return nil
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
