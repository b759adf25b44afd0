package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/testenv"
)

func TestMain(m *testing.M) {
	if args := os.Getenv(childArgsEnv); args != "" {
		os.Exit(runChild(args))
	}
	quietClientGo() // before any test starts informers
	testenv.Main(m)
}

// testCluster is a test's namespace on the local control plane, with tend's
// CRDs installed.
type testCluster struct {
	*testenv.Env
	c client.Client // knows tend's types
}

func newCluster(t *testing.T) *testCluster {
	t.Helper()
	env := testenv.New(t)
	testenv.InstallCRDs(t, env.Config)
	c, err := client.New(env.Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return &testCluster{Env: env, c: c}
}

// tend runs the CLI against the test cluster, in its namespace unless
// args name one.
func (cl *testCluster) tend(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	full := append([]string{}, args...)
	full = append(full, "--kubeconfig", cl.Kubeconfig)
	hasNS := false
	for _, a := range args {
		if a == "-n" || a == "--namespace" || a == "-A" || strings.HasPrefix(a, "--namespace=") {
			hasNS = true
		}
	}
	if !hasNS {
		full = append(full, "-n", cl.Namespace)
	}
	return run(t, full...)
}

// runIn runs the CLI with a context that ends after timeout.
func runIn(t *testing.T, timeout time.Duration, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb, Build: BuildInfo{Version: "v1.2.3", Commit: "abc1234"}}
	code = m.Run(ctx, args)
	return code, out.String(), errb.String()
}

func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, what, timeout, cond)
}

// writeFiles writes files (slash-separated path -> content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
