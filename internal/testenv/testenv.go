// Package testenv gives integration tests a real Kubernetes control plane:
// the local one from tools/cluster (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok nodes), never a fake
// clientset.
//
// A package's TestMain calls Main. The first test that calls New then either
// uses the cluster named by $TEND_TEST_KUBECONFIG (how `make test` shares one
// cluster between all packages) or starts one for this test process and stops
// it when the process's tests are done. Each test gets a fresh namespace that
// is deleted when the test ends. With -short, tests that call New are skipped.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// EnvKubeconfig names the environment variable holding the kubeconfig of a
// running cluster that tests should use instead of starting their own.
const EnvKubeconfig = "TEND_TEST_KUBECONFIG"

// TestLabel marks namespaces created by New.
const TestLabel = "tend.dev/test"

// Env is one test's view of the cluster.
type Env struct {
	// Config is the admin REST config for the cluster.
	Config *rest.Config
	// Client is a controller-runtime client using Config.
	Client client.Client
	// Clientset is a typed client-go clientset using Config.
	Clientset kubernetes.Interface
	// Namespace is created for this test and deleted after it.
	Namespace string
	// Kubeconfig is the path of the admin kubeconfig file.
	Kubeconfig string
}

var (
	mainCalled bool
	once       sync.Once
	shared     struct {
		kubeconfig string
		config     *rest.Config
		dir        string // set when this process started the cluster
		err        error
	}
)

// Main runs the package's tests and stops the cluster this process started,
// if any. Call it from TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	flag.Parse()
	mainCalled = true
	code := m.Run()
	if shared.dir != "" {
		if err := clusterCmd(context.Background(), "down", "--dir", shared.dir); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: stopping the test cluster: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
		_ = os.RemoveAll(filepath.Dir(shared.dir))
	}
	os.Exit(code)
}

// New returns an Env with a fresh namespace, skipping the test under -short.
func New(t testing.TB) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs the local control plane (run without -short)")
	}
	once.Do(setup)
	if shared.err != nil {
		t.Fatalf("testenv: %v", shared.err)
	}
	cfg := rest.CopyConfig(shared.config)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   namespaceName(t.Name()),
		Labels: map[string]string{TestLabel: "true"},
	}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("testenv: create namespace %s: %v", ns.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cs.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("testenv: delete namespace %s: %v", ns.Name, err)
		}
	})
	return &Env{Config: cfg, Client: cl, Clientset: cs, Namespace: ns.Name, Kubeconfig: shared.kubeconfig}
}

var nonDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// namespaceName derives a valid, unique namespace name from a test name.
func namespaceName(testName string) string {
	base := strings.Trim(nonDNS.ReplaceAllString(strings.ToLower(testName), "-"), "-")
	if len(base) > 50 {
		base = strings.TrimRight(base[:50], "-")
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return base + "-" + hex.EncodeToString(b[:])
}

func setup() {
	kc := os.Getenv(EnvKubeconfig)
	if kc == "" {
		if !mainCalled {
			shared.err = fmt.Errorf("no cluster: set $%s or call testenv.Main from the package's TestMain", EnvKubeconfig)
			return
		}
		tmp, err := os.MkdirTemp("", "tend-testenv-")
		if err != nil {
			shared.err = err
			return
		}
		shared.dir = filepath.Join(tmp, "cluster")
		fmt.Fprintf(os.Stderr, "testenv: starting a local control plane in %s (set $%s to reuse one)\n", shared.dir, EnvKubeconfig)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		if err := clusterCmd(ctx, "up", "--dir", shared.dir); err != nil {
			shared.err = err
			return
		}
		kc = filepath.Join(shared.dir, "kubeconfig")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		shared.err = fmt.Errorf("load kubeconfig %s: %w", kc, err)
		return
	}
	cfg.QPS, cfg.Burst = 200, 400
	shared.kubeconfig, shared.config = kc, cfg
}

// clusterCmd runs the tools/cluster command of the checkout this package
// lives in.
func clusterCmd(ctx context.Context, args ...string) error {
	src, err := clusterSource()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", append([]string{"run", "."}, args...)...)
	cmd.Dir = src
	var stderr bytes.Buffer
	cmd.Stdout = &bytes.Buffer{}
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cluster %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return nil
}

func clusterSource() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "tools", "cluster", "go.mod")); err == nil {
			return filepath.Join(d, "tools", "cluster"), nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("cannot find tools/cluster above %s", wd)
		}
	}
}
