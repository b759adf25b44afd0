package controller

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
)

// TestLeaderFailover runs two `tend controller` processes with leader
// election, SIGKILLs the leader and checks that the other takes over and
// applies new revisions, without applying any object twice for one
// revision. Each process talks to the apiserver through its own recording
// proxy, so the test knows exactly which process wrote what. How long the
// takeover takes (the lease's duration, 15 s) is not the test's to claim:
// it waits as long as it must.
func TestLeaderFailover(t *testing.T) {
	env := testenv.New(t)
	testenv.InstallCRDs(t, env.Config)
	bin := buildTend(t)
	ctx := context.Background()
	c, err := client.New(env.Config, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ns := env.Namespace

	repo := newCtlRepo(t)
	rev1 := repo.commit("web v1", map[string]string{
		"app/deploy.yaml": deploymentYAML("web", "nginx:1.27", ""),
		"app/config.yaml": configMapYAML("web-config", "v1"),
	})

	procs := []*tendProcess{startTend(t, env, bin, "a"), startTend(t, env, bin, "b")}
	cleanupApps(t, c, ns)

	for _, o := range []client.Object{gitSource("repo", repo.URL), newApp("web", "repo", "app", ns)} {
		o.SetNamespace(ns)
		if err := c.Create(ctx, o); err != nil {
			t.Fatalf("create %T: %v", o, err)
		}
	}
	e := &ctlEnv{Env: env, c: c}
	e.waitApp(t, "web", "Synced and Healthy at "+rev1, 90*time.Second, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncSynced && a.Status.Health == "Healthy" && a.Status.Revision == rev1
	})

	var leader, follower *tendProcess
	eventually(t, "one process holding the lease", 10*time.Second, func() bool {
		switch a, b := procs[0].leads(), procs[1].leads(); {
		case a && !b:
			leader, follower = procs[0], procs[1]
		case b && !a:
			leader, follower = procs[1], procs[0]
		}
		return leader != nil
	})
	holder := leaseHolder(t, c, ns)
	t.Logf("leader: process %s (pid %d), lease holder %s", leader.name, leader.cmd.Process.Pid, holder)
	if w := follower.proxy.writes(); len(w) > 0 {
		t.Errorf("the standby (process %s) wrote while not leading:\n%s", follower.name, w)
	}
	deployPath := "/apis/apps/v1/namespaces/" + ns + "/deployments/web"
	configPath := "/api/v1/namespaces/" + ns + "/configmaps/web-config"
	if got := leader.proxy.writes().to(deployPath).applied(); got != 1 {
		t.Errorf("process %s applied the Deployment %d times for %s, want once:\n%s", leader.name, got, rev1, leader.proxy.writes())
	}
	genBefore, applyTimeBefore := deploymentApplyState(t, c, ns)

	// Kill the leader; it cannot release the lease.
	if err := leader.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var newHolder string
	eventually(t, "the lease to move to the standby after the leader was killed", 2*time.Minute, func() bool {
		newHolder = leaseHolder(t, c, ns)
		return newHolder != "" && newHolder != holder
	})
	t.Logf("failover: lease moved from %s to %s", holder, newHolder)
	eventually(t, "process "+follower.name+" to log that it leads", time.Minute, follower.leads)

	// The new leader reconciles the App from scratch (its own checkout, an
	// empty render cache) and must find nothing to apply at rev1. Its first
	// reconcile renders rev1 and then reads the inventory; only after that
	// does rev2 exist.
	inventoryPath := "/api/v1/namespaces/" + ns + "/secrets/tend-inventory-web"
	eventually(t, "the new leader to read the App's inventory", time.Minute, func() bool {
		return follower.proxy.saw(http.MethodGet, inventoryPath)
	})

	// A new commit changes the ConfigMap only. An App's syncs run one after
	// another, so once rev2 is synced, whatever the new leader did at rev1
	// is in its proxy's record: the checks below see a re-apply of rev1
	// (the Deployment written, the ConfigMap applied twice).
	rev2 := repo.commit("web v2", map[string]string{"app/config.yaml": configMapYAML("web-config", "v2")})
	e.waitApp(t, "web", "Synced at "+rev2+" by the new leader", 60*time.Second, func(a *tendv1.App) bool {
		return a.Status.Sync == tendv1.SyncSynced && a.Status.Revision == rev2
	})
	cm, err := env.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "web-config", metav1.GetOptions{})
	if err != nil || cm.Data["value"] != "v2" {
		t.Fatalf("web-config = %v (%v), want v2", cm.Data, err)
	}
	if got := follower.proxy.writes().to(configPath).applied(); got != 1 {
		t.Errorf("the new leader applied the ConfigMap %d times, want once (for %s; not again for %s, in place when it took over):\n%s", got, rev2, rev1, follower.proxy.writes())
	}
	if w := follower.proxy.writes().to(deployPath); len(w) > 0 {
		t.Errorf("the new leader wrote the Deployment, in place since %s and unchanged in git:\n%s", rev1, w)
	}
	// The same seen from the object (kube-controller-manager writes its
	// status, so resourceVersion moves; generation and tend's apply entry
	// must not).
	genAfter, applyTimeAfter := deploymentApplyState(t, c, ns)
	if genAfter != genBefore || !applyTimeAfter.Equal(applyTimeBefore) {
		t.Errorf("Deployment generation %d -> %d, tend's apply time %s -> %s: re-applied", genBefore, genAfter, applyTimeBefore, applyTimeAfter)
	}
}

// tendProcess is a `tend controller` child process and its proxy.
type tendProcess struct {
	name   string
	cmd    *exec.Cmd
	stderr *processLog
	proxy  *apiProxy
}

// leads reports whether the process has logged that it acquired the lease.
func (p *tendProcess) leads() bool {
	// controller-runtime logs "Successfully acquired lease"; client-go's
	// klog, "successfully acquired lease".
	return strings.Contains(strings.ToLower(p.stderr.String()), "successfully acquired lease")
}

func startTend(t *testing.T, env *testenv.Env, bin, name string) *tendProcess {
	t.Helper()
	proxy := newAPIProxy(t, env.Config)
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(proxy.Kubeconfig()), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &tendProcess{name: name, stderr: &processLog{}, proxy: proxy}
	p.cmd = exec.Command(bin, "controller",
		"--kubeconfig", kubeconfig,
		"--leader-elect", "--leader-election-namespace", env.Namespace,
		"--watch-namespace", env.Namespace,
		"--metrics-addr=0", "--probe-addr=0", "--webhook-addr=0",
		"--data-dir", filepath.Join(dir, "data"))
	p.cmd.Stdout = p.stderr
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		if t.Failed() {
			t.Logf("process %s stderr:\n%s", p.name, p.stderr.String())
		}
	})
	return p
}

// cleanupApps deletes the namespace's Apps while a controller still runs
// (they carry finalizers); registered after startTend, it runs before the
// processes are killed. It strips the finalizers when no controller is left
// to remove them, so that the namespace can go.
func cleanupApps(t *testing.T, c client.Client, ns string) {
	t.Cleanup(func() {
		ctx := context.Background()
		var apps tendv1.AppList
		_ = c.List(ctx, &apps, client.InNamespace(ns))
		for i := range apps.Items {
			_ = c.Delete(ctx, &apps.Items[i])
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if err := c.List(ctx, &apps, client.InNamespace(ns)); err == nil && len(apps.Items) == 0 {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		for i := range apps.Items {
			a := &apps.Items[i]
			a.Finalizers = nil
			_ = c.Update(ctx, a)
		}
	})
}

func leaseHolder(t *testing.T, c client.Client, ns string) string {
	t.Helper()
	var lease coordinationv1.Lease
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "tend-controller"}, &lease); err != nil {
		return ""
	}
	if lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

// deploymentApplyState returns the Deployment's generation and the time of
// tend's server-side apply entry in its managedFields.
func deploymentApplyState(t *testing.T, c client.Client, ns string) (int64, time.Time) {
	t.Helper()
	var d appsv1.Deployment
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "web"}, &d); err != nil {
		t.Fatal(err)
	}
	for _, mf := range d.ManagedFields {
		if mf.Manager == "tend" && mf.Operation == metav1.ManagedFieldsOperationApply && mf.Time != nil {
			return d.Generation, mf.Time.Time
		}
	}
	t.Fatalf("Deployment web has no apply entry of manager tend: %+v", d.ManagedFields)
	return 0, time.Time{}
}

var (
	buildOnce sync.Once
	builtTend string
	buildErr  error
)

// buildTend builds cmd/tend once per test process.
func buildTend(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "tend-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtTend = filepath.Join(dir, "tend")
		cmd := exec.Command("go", "build", "-tags", "kustomize_disable_go_plugin_support", "-o", builtTend, "./cmd/tend")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/tend: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtTend
}

func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s", wd)
		}
	}
}

// apiProxy forwards plain HTTP on loopback to the apiserver with the admin
// credentials and records every request.
type apiProxy struct {
	*testenv.APIProxy
	mu   sync.Mutex
	reqs []apiRequest
}

// apiRequest is one request that reached the apiserver, with its answer.
type apiRequest struct {
	at          time.Time
	method      string
	path        string
	contentType string
	dryRun      bool
	watch       bool // a watch (?watch=true), which lasts
	status      int
}

func (r apiRequest) String() string {
	s := fmt.Sprintf("%s %s %s -> %d", r.at.Format("15:04:05.000"), r.method, r.path, r.status)
	if r.dryRun {
		s += " (dry run)"
	}
	if r.apply() {
		s += " (apply)"
	}
	if r.watch {
		s += " (watch)"
	}
	return s
}

func (r apiRequest) apply() bool {
	return r.method == http.MethodPatch && strings.HasPrefix(r.contentType, "application/apply-patch")
}

func newAPIProxy(t *testing.T, cfg *rest.Config) *apiProxy {
	t.Helper()
	p := &apiProxy{}
	p.APIProxy = testenv.NewAPIProxy(t, cfg, testenv.ProxyOptions{Response: func(resp *http.Response) error {
		req := resp.Request
		p.mu.Lock()
		p.reqs = append(p.reqs, apiRequest{
			at: time.Now(), method: req.Method, path: req.URL.Path,
			contentType: req.Header.Get("Content-Type"),
			dryRun:      req.URL.Query().Has("dryRun"),
			watch:       req.URL.Query().Get("watch") == "true" || req.URL.Query().Get("watch") == "1",
			status:      resp.StatusCode,
		})
		p.mu.Unlock()
		return nil
	}})
	return p
}

func (p *apiProxy) saw(method, path string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.reqs {
		if r.method == method && r.path == path {
			return true
		}
	}
	return false
}

// writes returns the successful writes other than events and the leader
// election Lease.
func (p *apiProxy) writes() apiRequests {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out apiRequests
	for _, r := range p.reqs {
		switch r.method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			continue
		}
		if r.status >= 300 || strings.Contains(r.path, "/events") || strings.Contains(r.path, "/leases") {
			continue
		}
		// Reviews are questions, not writes.
		if strings.HasPrefix(r.path, "/apis/authorization.k8s.io/") || strings.HasPrefix(r.path, "/apis/authentication.k8s.io/") {
			continue
		}
		out = append(out, r)
	}
	return out
}

type apiRequests []apiRequest

func (rs apiRequests) String() string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString("  " + r.String() + "\n")
	}
	return b.String()
}

// to keeps the requests to the given object paths (and their
// subresources).
func (rs apiRequests) to(paths ...string) apiRequests {
	var out apiRequests
	for _, r := range rs {
		for _, p := range paths {
			if r.path == p || strings.HasPrefix(r.path, p+"/") {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// applied counts the server-side applies that were not dry runs.
func (rs apiRequests) applied() int {
	n := 0
	for _, r := range rs {
		if r.apply() && !r.dryRun {
			n++
		}
	}
	return n
}

// processLog is a bytes.Buffer safe for a process writing while the test
// reads.
type processLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *processLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *processLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
