package cli

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/testenv"
	"github.com/tend-gitops/tend/internal/testenv/platform"
)

// TestControllerRidesOutControlPlaneOutages runs the controller against a
// control plane of the test's own, restarts its kube-apiserver and pauses
// its etcd (SIGSTOP) while commits arrive: the controller goes on without
// a restart of its own, and after each outage the App converges on the
// commit made during it.
func TestControllerRidesOutControlPlaneOutages(t *testing.T) {
	pc := testenv.NewPrivateCluster(t)
	testenv.InstallCRDs(t, pc.Config)
	// A fresh apiserver serves the CRDs' group a moment after they are
	// established.
	testenv.Eventually(t, "the apiserver serving tend.dev/v1alpha1", time.Minute, func() bool {
		_, err := pc.Clientset.Discovery().ServerResourcesForGroupVersion(tendv1.GroupVersion.String())
		return err == nil
	})
	ctx := context.Background()
	const ns = "outage"
	if _, err := pc.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(pc.Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	cm := func(v string) map[string]string {
		return map[string]string{"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  v: \"" + v + "\"\n"}
	}
	repo := testenv.NewGitRepo(t, cm("1"))
	src := &tendv1.Source{ObjectMeta: metav1.ObjectMeta{Name: "repo", Namespace: ns}, Spec: tendv1.SourceSpec{
		Git: &tendv1.GitSource{URL: repo.URL, Ref: tendv1.GitRef{Branch: "main"}}, Interval: metav1.Duration{Duration: 2 * time.Second}}}
	app := &tendv1.App{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: tendv1.AppSpec{
		SourceRef: tendv1.NamespacedObjectReference{Name: "repo"}, Path: "app", Destination: tendv1.Destination{Namespace: ns}}}
	for _, obj := range []client.Object{src, app} {
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}

	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan int, 1)
	logs := &platform.LogBuffer{}
	go func() {
		m := &Main{Stdout: logs, Stderr: logs}
		done <- m.Run(runCtx, []string{"controller", "--kubeconfig", pc.Kubeconfig, "--watch-namespace", ns,
			"--leader-election-namespace", ns, "--metrics-addr", "0", "--probe-addr", "0", "--webhook-addr", "0", "--data-dir", t.TempDir()})
	}()
	var once sync.Once
	halt := func() { once.Do(func() { stop(); <-done }) }
	t.Cleanup(halt)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the controller's log:\n%s", logs.Tail(60))
		}
	})
	running := func() {
		t.Helper()
		select {
		case code := <-done:
			done <- code
			t.Fatalf("the controller exited (%d) during the outage", code)
		default:
		}
	}
	converged := func(what, v string) {
		t.Helper()
		rev := repo.Head()
		testenv.Eventually(t, what, 3*time.Minute, func() bool {
			running()
			var a tendv1.App
			if c.Get(ctx, client.ObjectKeyFromObject(app), &a) != nil || a.Status.Revision != rev {
				return false
			}
			live, err := pc.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "web", metav1.GetOptions{})
			return err == nil && live.Data["v"] == v
		})
	}
	// fetchedDuring waits until the controller asked the git server for
	// the commit made during an outage: it was working through it.
	fetchedDuring := func(what string) {
		t.Helper()
		before := repo.Requests()
		testenv.Eventually(t, "a fetch "+what, time.Minute, func() bool { running(); return repo.Requests() > before })
	}
	converged("the first commit applied", "1")

	// The apiserver restarted: down while a commit arrives, then up.
	argv := pc.Stop("kube-apiserver")
	repo.Commit("during the apiserver restart", cm("2"))
	fetchedDuring("while the apiserver is down")
	pc.Start("kube-apiserver", argv)
	converged("the commit made while the apiserver was down applied", "2")

	// etcd paused: the apiserver answers but cannot store anything.
	pc.Pause("etcd")
	resumed := false
	defer func() {
		if !resumed {
			pc.Resume("etcd")
		}
	}()
	testenv.Eventually(t, "the apiserver reporting etcd unavailable", time.Minute, func() bool {
		return !etcdReady(pc)
	})
	repo.Commit("while etcd is paused", cm("3"))
	fetchedDuring("while etcd is paused")
	pc.Resume("etcd")
	resumed = true
	converged("the commit made while etcd was paused applied", "3")
	halt()
	if strings.Contains(logs.String(), "panic") {
		t.Errorf("the controller's log has a panic:\n%s", logs.Tail(40))
	}
}

// etcdReady asks the apiserver's /readyz whether its etcd check passes.
func etcdReady(pc *testenv.PrivateCluster) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rc := pc.Clientset.Discovery().RESTClient()
	var code int
	rc.Get().AbsPath("/readyz/etcd").Do(ctx).StatusCode(&code)
	return code == http.StatusOK
}
