package cli

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tend-gitops/tend/internal/testenv"
)

// TestDemo brings up examples/homelab exactly as `make demo` does, on the
// test cluster, and checks every App is Healthy and the platform is there.
func TestDemo(t *testing.T) {
	env := testenv.New(t)
	root, err := findRoot()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metrics := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err = runDemo(ctx, demoOptions{Root: root, StateDir: t.TempDir(), Kubeconfig: env.Kubeconfig, MetricsAddr: metrics, DashboardAddr: "127.0.0.1:0", UntilHealthy: true, Timeout: 4 * time.Minute}, &out)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{"tend-system/web", "tend-system/whoami", "tend-system/tend", "Healthy", "git commit -am", "dashboard:   http://127.0.0.1:", "/?token="} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	// The platform is in the cluster: the web app with its decrypted secret,
	// its migration hook ran, and its autoscaler resource exists.
	sec, err := env.Clientset.CoreV1().Secrets("web").Get(ctx, "web-database", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("SOPS secret not applied: %v", err)
	}
	if !strings.HasPrefix(string(sec.Data["DATABASE_URL"]), "postgres://") {
		t.Errorf("secret not decrypted")
	}
	if _, err := env.Clientset.BatchV1().Jobs("web").Get(ctx, "web-migrate", metav1.GetOptions{}); err != nil {
		t.Errorf("pre-sync migration hook did not run: %v", err)
	}
	if _, err := env.Clientset.AppsV1().Deployments("ingress").Get(ctx, "ingress-controller", metav1.GetOptions{}); err != nil {
		t.Errorf("ingress controller missing: %v", err)
	}
}
