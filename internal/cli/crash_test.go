package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/testenv"
	"github.com/tend-gitops/tend/internal/testenv/platform"
)

// childArgsEnv, set to a JSON list of arguments, makes the test binary
// run the tend CLI with them instead of the tests: a controller process
// a test can SIGKILL.
const childArgsEnv = "TEND_TEST_CHILD_ARGS"

// runChild runs the CLI with the arguments in childArgsEnv; it is called
// from TestMain.
func runChild(encoded string) int {
	var args []string
	if err := json.Unmarshal([]byte(encoded), &args); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", childArgsEnv, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return (&Main{Stdout: os.Stdout, Stderr: os.Stderr}).Run(ctx, args)
}

// childController is `tend controller` in a process of its own.
type childController struct {
	cmd  *exec.Cmd
	log  *platform.LogBuffer
	done chan struct{}
}

func startChildController(t *testing.T, args ...string) *childController {
	t.Helper()
	encoded, _ := json.Marshal(append([]string{"controller"}, args...))
	c := &childController{log: &platform.LogBuffer{}, done: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(), childArgsEnv+"="+string(encoded))
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(c.kill)
	return c
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *childController) kill() {
	_ = c.cmd.Process.Kill()
	<-c.done
}

// crashRevision is the App's repository at round r: a ConfigMap in wave
// 0, a Deployment in wave 1 and a ConfigMap named after the round in wave
// 2 (the previous round's is pruned), between a pre-sync and a post-sync
// hook Job that Argo CD's default policy deletes before creating again.
func crashRevision(r int) map[string]string {
	hook := func(name, phase string) string {
		return fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata:
  name: %s
  annotations:
    argocd.argoproj.io/hook: %s
    argocd.argoproj.io/hook-delete-policy: BeforeHookCreation
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: "%s:%d"}]
`, name, phase, name, r)
	}
	return map[string]string{
		"app/hooks.yaml": hook("migrate", "PreSync") + "---\n" + hook("smoke", "PostSync"),
		"app/config.yaml": fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata: {name: config, annotations: {argocd.argoproj.io/sync-wave: "0"}}
data: {round: "%d"}
`, r),
		"app/web.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web, annotations: {argocd.argoproj.io/sync-wave: "1"}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}, annotations: {round: "%d"}}
    spec: {containers: [{name: web, image: "web:%d"}]}
`, r, r),
		"app/extra.yaml": fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata: {name: extra-%d, annotations: {argocd.argoproj.io/sync-wave: "2"}}
data: {round: "%d"}
`, r, r),
	}
}

// TestControllerSurvivesSIGKILL kills the controller process (SIGKILL) at
// a random point of a sync with waves and hooks, round after round, each
// round at a point its seed picks among the writes the sync makes, and
// starts a new one: every time the App converges on the round's commit, the
// previous round's object is pruned and nothing else of the App is left,
// the inventory lists exactly what is applied, and neither hook Job was
// created twice for one revision.
func TestControllerSurvivesSIGKILL(t *testing.T) {
	cl := newCluster(t)
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TEND_TEST_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Logf("seed %d (TEND_TEST_SEED=%d repeats the kill points)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	// Every write in the namespace, as a counter the kill points count,
	// and the hook Jobs created, by name and revision.
	var (
		mu      sync.Mutex
		writes  int
		created = map[string]int{}
	)
	wctx, stopWatches := context.WithCancel(ctx)
	defer stopWatches()
	watchers := []func(context.Context, metav1.ListOptions) (watch.Interface, error){
		cl.Clientset.BatchV1().Jobs(cl.Namespace).Watch,
		cl.Clientset.CoreV1().ConfigMaps(cl.Namespace).Watch,
		cl.Clientset.CoreV1().Secrets(cl.Namespace).Watch,
		cl.Clientset.AppsV1().Deployments(cl.Namespace).Watch,
	}
	for _, w := range watchers {
		wi, err := w(wctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer wi.Stop()
		go func() {
			for ev := range wi.ResultChan() {
				obj, ok := ev.Object.(metav1.Object)
				if !ok {
					continue
				}
				mu.Lock()
				writes++
				if run := obj.GetAnnotations()[apply.AnnotationHookRun]; ev.Type == watch.Added && run != "" {
					rev := strings.SplitN(strings.SplitN(run, "@", 2)[1], "#", 2)[0]
					created[obj.GetName()+" at "+rev]++
				}
				mu.Unlock()
			}
		}()
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return writes
	}

	repo := testenv.NewGitRepo(t, crashRevision(0))
	src := &tendv1.Source{ObjectMeta: metav1.ObjectMeta{Name: "repo", Namespace: cl.Namespace}, Spec: tendv1.SourceSpec{
		Git: &tendv1.GitSource{URL: repo.URL, Ref: tendv1.GitRef{Branch: "main"}}}}
	app := &tendv1.App{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: cl.Namespace}, Spec: tendv1.AppSpec{
		SourceRef: tendv1.NamespacedObjectReference{Name: "repo"}, Path: "app", Destination: tendv1.Destination{Namespace: cl.Namespace},
		Sync: tendv1.SyncPolicy{Prune: true}}}
	for _, obj := range []client.Object{src, app} {
		if err := cl.c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"--kubeconfig", cl.Kubeconfig, "--watch-namespace", cl.Namespace,
		"--leader-election-namespace", cl.Namespace, "--metrics-addr", "0", "--probe-addr", "0", "--webhook-addr", "0"}
	dataDir := t.TempDir()
	converged := func(rev string) bool {
		var a tendv1.App
		return cl.c.Get(ctx, client.ObjectKeyFromObject(app), &a) == nil && a.Status.Revision == rev &&
			a.Status.Sync == tendv1.SyncSynced && a.Status.Health == "Healthy"
	}

	const rounds = 6
	for r := 0; r < rounds; r++ {
		rev := repo.Head()
		if r > 0 {
			rev = repo.Commit(fmt.Sprintf("round %d", r), crashRevision(r))
		}
		// A sync of this App makes some 20 writes in the namespace:
		// the kill lands anywhere from its first write to after its end.
		killAt := count() + 1 + rng.IntN(18)
		victim := startChildController(t, append(args, "--data-dir", dataDir)...)
		testenv.Within(3*time.Minute, func() bool { return count() >= killAt || converged(rev) })
		victim.kill()
		t.Logf("round %d: killed at write %d of the namespace (aimed at %d; the sync had converged: %v)", r, count(), killAt, converged(rev))

		next := startChildController(t, append(args, "--data-dir", dataDir)...)
		if !testenv.Within(3*time.Minute, func() bool { return converged(rev) }) {
			var a tendv1.App
			_ = cl.c.Get(ctx, client.ObjectKeyFromObject(app), &a)
			t.Fatalf("round %d: the App did not converge on %s after the kill; status %+v\nthe killed controller's log:\n%s\nthe next one's:\n%s",
				r, rev[:12], a.Status, victim.log.Tail(30), next.log.Tail(40))
		}
		checkCrashRound(t, cl, r, rev)
		next.kill()
	}
	mu.Lock()
	defer mu.Unlock()
	var twice []string
	for k, n := range created {
		if n > 1 {
			twice = append(twice, fmt.Sprintf("%s: %d times", k, n))
		}
	}
	sort.Strings(twice)
	if len(twice) > 0 {
		t.Errorf("hook Jobs created more than once for one revision: %s", strings.Join(twice, "; "))
	}
	if len(created) != 2*rounds {
		t.Errorf("hook Jobs created: %v; want migrate and smoke once at each of %d revisions", created, rounds)
	}
}

// checkCrashRound checks what round r left: the objects of its commit, no
// other object of the App, and an inventory of exactly those.
func checkCrashRound(t *testing.T, cl *testCluster, r int, rev string) {
	t.Helper()
	ctx := context.Background()
	cms, err := cl.Clientset.CoreV1().ConfigMaps(cl.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ours []string
	for _, cm := range cms.Items {
		if cm.Annotations[apply.AnnotationOwner] != "" {
			ours = append(ours, cm.Name+"="+cm.Data["round"])
		}
	}
	sort.Strings(ours)
	if got, want := strings.Join(ours, " "), fmt.Sprintf("config=%d extra-%d=%d", r, r, r); got != want {
		t.Errorf("round %d: the App's ConfigMaps are %q, want %q (an orphan or a missing object)", r, got, want)
	}
	d, err := cl.Clientset.AppsV1().Deployments(cl.Namespace).Get(ctx, "web", metav1.GetOptions{})
	if err != nil || d.Spec.Template.Annotations["round"] != fmt.Sprint(r) {
		t.Errorf("round %d: Deployment web: %v (err %v)", r, d.Spec.Template.Annotations, err)
	}
	inv, err := (&apply.SecretStore{Client: cl.Clientset}).Load(ctx, apply.AppRef{Namespace: cl.Namespace, Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	var entries []string
	for ref := range inv.Entries {
		entries = append(entries, ref.Kind+"/"+ref.Name)
	}
	sort.Strings(entries)
	if got, want := strings.Join(entries, " "), fmt.Sprintf("ConfigMap/config ConfigMap/extra-%d Deployment/web", r); got != want {
		t.Errorf("round %d: the inventory lists %q, want %q", r, got, want)
	}
	if inv.Revision != rev {
		t.Errorf("round %d: the inventory's revision is %s, want %s", r, inv.Revision, rev)
	}
}
