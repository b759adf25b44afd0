package cli

import (
	"context"
	"net/http"
	"strings"
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
// its etcd (SIGSTOP, 30 s) while commits arrive: the controller goes on
// without a restart of its own, after each outage the App converges on
// the commit made during it, and no commit is synced twice.
func TestControllerRidesOutControlPlaneOutages(t *testing.T) {
	pc := testenv.NewPrivateCluster(t)
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

	logs := &platform.LogBuffer{}
	ctl := runController(t, pc.Kubeconfig, ns, logs)
	converged := func(what, v string) {
		t.Helper()
		rev := repo.Head()
		testenv.Eventually(t, what, 3*time.Minute, func() bool {
			ctl.running()
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
		testenv.Eventually(t, "a fetch "+what, time.Minute, func() bool { ctl.running(); return repo.Requests() > before })
	}
	converged("the first commit applied", "1")

	// The apiserver restarted: down while a commit arrives, then up.
	argv := pc.Stop("kube-apiserver")
	repo.Commit("during the apiserver restart", cm("2"))
	fetchedDuring("while the apiserver is down")
	pc.Start("kube-apiserver", argv)
	converged("the commit made while the apiserver was down applied", "2")

	// etcd paused for 30 s: the apiserver answers but cannot store
	// anything, and requests made meanwhile hit its timeouts.
	pc.Pause("etcd")
	hold := time.NewTimer(30 * time.Second)
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
	<-hold.C
	pc.Resume("etcd")
	resumed = true
	converged("the commit made while etcd was paused applied", "3")
	ctl.stop()

	// Each commit was synced once: retries after an outage do not record
	// a second successful sync of a revision already applied.
	var a tendv1.App
	if err := c.Get(ctx, client.ObjectKeyFromObject(app), &a); err != nil {
		t.Fatal(err)
	}
	synced := map[string]int{}
	for _, h := range a.Status.History {
		if h.Result == "Succeeded" {
			synced[h.Revision]++
		}
	}
	if len(synced) != 3 {
		t.Errorf("history has successful syncs of %d revisions, want the 3 commits: %+v", len(synced), a.Status.History)
	}
	for rev, n := range synced {
		if n != 1 {
			t.Errorf("revision %s was synced successfully %d times, want once: %+v", rev, n, a.Status.History)
		}
	}
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
