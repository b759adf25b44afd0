package dashboard_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/dashboard"
	"github.com/tend-gitops/tend/internal/testenv"
)

// browserTools finds Debian's chromium and node, installs Playwright from
// the committed lockfile when needed, and returns them with the e2e
// directory and docs/images, where screenshots go.
func browserTools(t *testing.T) (chromium, node, e2e, shots string) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a browser against the local control plane")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("the browser test needs Debian's chromium: apt-get install chromium (.ci/run installs it)")
	}
	if node, err = exec.LookPath("node"); err != nil {
		t.Fatal("the browser test needs Node.js (node) for Playwright")
	}
	if e2e, err = filepath.Abs("e2e"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e2e, "node_modules", "playwright-core")); err != nil {
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = e2e
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", e2e, err, out)
		}
	}
	if shots, err = filepath.Abs("../../docs/images"); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	return chromium, node, e2e, shots
}

// TestTeamDashboardInBrowser signs in to the controller's dashboard in
// headless Chromium through an OIDC provider on loopback: an operator
// syncs an App (recorded with its name) and signs out; a viewer sees the
// App without action buttons, and a sync it forges from the page, with
// its session's CSRF token, is refused and changes nothing; a wrong admin
// token is refused with a page saying what to do.
func TestTeamDashboardInBrowser(t *testing.T) {
	chromium, node, e2e, shots := browserTools(t)
	env := teamEnv(t)
	other := testenv.New(t).Namespace
	ctx := context.Background()
	newApp(t, env, env.Namespace, "web")
	for i := range 5 {
		newApp(t, env, env.Namespace, fmt.Sprintf("svc-%d", i))
	}

	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	name := dashboard.DefaultTeamName
	create(t, env, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: env.Namespace},
		Data: map[string][]byte{dashboard.SecretOIDCClientSecret: []byte(m.ClientSecret)}})
	if _, err := dashboard.AdminTokenPatch(ctx, env.Clientset, env.Namespace, name); err != nil {
		t.Fatal(err)
	}
	setPolicy(t, env, name, "- groups: [dev]\n  role: operator\n- groups: [\"*\"]\n  role: viewer\n")
	tm := startTeam(t, env, other, name, m)
	m.QueueUser(&mockoidc.MockUser{Subject: "u-otto", Email: "otto@example.com", EmailVerified: true, PreferredUsername: "otto", Groups: []string{"dev"}})

	cfg, _ := json.Marshal(map[string]any{
		"url": tm.url, "chromium": chromium, "namespace": env.Namespace, "app": "web",
		"operator": "otto", "viewer": "vera", "screenshots": shots,
	})
	runCtx, stop := context.WithTimeout(ctx, 5*time.Minute)
	defer stop()
	cmd := exec.CommandContext(runCtx, node, "team.mjs")
	cmd.Dir = e2e
	cmd.Env = append(os.Environ(), "TEND_E2E="+string(cfg))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	requested := func() string {
		var a tendv1.App
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: env.Namespace, Name: "web"}, &a); err != nil {
			t.Fatal(err)
		}
		return a.Annotations[tendv1.AnnotationRequestedAt]
	}
	var synced string
	finished := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		switch line := sc.Text(); line {
		case "STEP synced":
			if synced = requested(); synced == "" {
				t.Error("the operator's Sync did not request a sync of the App")
			}
			evs, err := env.Clientset.CoreV1().Events(env.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=web,reason=DashboardAction"})
			if err != nil || len(evs.Items) != 1 || !strings.Contains(evs.Items[0].Message, "sync requested by otto") {
				t.Errorf("audit events of App web: %v %v, want one naming otto", evs, err)
			}
		case "STEP viewer":
			m.QueueUser(&mockoidc.MockUser{Subject: "u-vera", Email: "vera@example.com", EmailVerified: true, PreferredUsername: "vera", Groups: []string{"qa"}})
		case "STEP forged":
			if got := requested(); got != synced {
				t.Errorf("the viewer's forged sync changed the App's request from %q to %q", synced, got)
			}
		case "DONE":
			finished = true
			continue
		default:
			t.Logf("browser: %s", line)
			continue
		}
		if _, err := fmt.Fprintln(stdin, "GO"); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Wait(); err != nil || !finished {
		t.Fatalf("browser test: %v\n%s", err, strings.TrimSpace(stderr.String()))
	}
}
