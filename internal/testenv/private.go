package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tend-gitops/tend/config"
)

// PrivateCluster is a local control plane of one test's own, for faults
// that would disturb every other test on the shared one: its apiserver
// restarted, its etcd paused.
type PrivateCluster struct {
	Dir, Kubeconfig string
	Config          *rest.Config
	Clientset       *kubernetes.Clientset
	t               testing.TB
}

// NewPrivateCluster starts a control plane for t alone (seconds when the
// binaries are cached, as `make test` leaves them), installs tend's CRDs
// and stops it when t ends. It skips under -short.
func NewPrivateCluster(t testing.TB) *PrivateCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: starts a local control plane (run without -short)")
	}
	dir := filepath.Join(t.TempDir(), "cluster")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	t.Cleanup(func() {
		if err := clusterCmd(context.Background(), "down", "--dir", dir); err != nil {
			t.Errorf("stopping the private cluster: %v", err)
		}
	})
	if err := clusterCmd(ctx, "up", "--dir", dir, "--nodes", "1"); err != nil {
		t.Fatalf("private cluster: %v", err)
	}
	kc := filepath.Join(dir, "kubeconfig")
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pc := &PrivateCluster{Dir: dir, Kubeconfig: kc, Config: cfg, Clientset: cs, t: t}
	pc.installCRDs()
	return pc
}

// tendGroupVersion is the API tend's CRDs serve (spelled out: api/v1alpha1's
// own tests use this package).
const tendGroupVersion = "tend.dev/v1alpha1"

// installCRDs applies tend's CRDs to this control plane (InstallCRDs does
// so once per process, for the shared one) and waits until its apiserver
// serves them: discovery lags the CRDs' Established condition.
func (c *PrivateCluster) installCRDs() {
	c.t.Helper()
	if err := applyCRDs(c.Config, config.CRDs, "crd/*.yaml"); err != nil {
		c.t.Fatalf("private cluster: install tend's CRDs: %v", err)
	}
	Eventually(c.t, "the private apiserver serving "+tendGroupVersion, time.Minute, func() bool {
		_, err := c.Clientset.Discovery().ServerResourcesForGroupVersion(tendGroupVersion)
		return err == nil
	})
}

// pid reads the pid of a component ("etcd", "kube-apiserver") from its
// pid file.
func (c *PrivateCluster) pid(component string) int {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.Dir, component+".pid"))
	if err != nil {
		c.t.Fatalf("%s: %v", component, err)
	}
	pid, err := strconv.Atoi(strings.Fields(string(b))[0])
	if err != nil {
		c.t.Fatalf("%s.pid: %v", component, err)
	}
	return pid
}

// Pause stops a component with SIGSTOP; Resume continues it.
func (c *PrivateCluster) Pause(component string) {
	c.t.Helper()
	if err := syscall.Kill(c.pid(component), syscall.SIGSTOP); err != nil {
		c.t.Fatalf("pausing %s: %v", component, err)
	}
}

// Resume continues a paused component.
func (c *PrivateCluster) Resume(component string) {
	c.t.Helper()
	if err := syscall.Kill(c.pid(component), syscall.SIGCONT); err != nil {
		c.t.Fatalf("resuming %s: %v", component, err)
	}
}

// Stop ends a component with SIGTERM (SIGKILL after 15 s) and waits until
// it is gone; it
// returns what Start needs to run it again.
func (c *PrivateCluster) Stop(component string) (argv []string) {
	c.t.Helper()
	pid := c.pid(component)
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		c.t.Fatalf("%s's command line: %v", component, err)
	}
	argv = strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		c.t.Fatalf("stopping %s: %v", component, err)
	}
	// As a kubelet restarting a static pod would: SIGKILL after a grace
	// period (an apiserver with open watches takes minutes to drain).
	if !Within(15*time.Second, func() bool { return gone(pid) }) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		if !Within(time.Minute, func() bool { return gone(pid) }) {
			c.t.Fatalf("%s (pid %d) still runs a minute after SIGKILL", component, pid)
		}
	}
	return argv
}

// Start runs a component Stop stopped, with the same command line (so
// the same ports and data), recording its new pid where `cluster down`
// finds it.
func (c *PrivateCluster) Start(component string, argv []string) {
	c.t.Helper()
	logf, err := os.OpenFile(filepath.Join(c.Dir, component+".log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("starting %s again: %v", component, err)
	}
	go func() {
		_ = cmd.Wait()
		logf.Close()
	}()
	rec := fmt.Sprintf("%d %s\n", cmd.Process.Pid, argv[0])
	if err := os.WriteFile(filepath.Join(c.Dir, component+".pid"), []byte(rec), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// gone reports whether pid has exited: no such process, or a zombie
// nobody reaped (in a container whose init does not).
func gone(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}
