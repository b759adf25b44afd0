package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/dashboard"
	"github.com/tend-gitops/tend/internal/testenv"
	"github.com/tend-gitops/tend/internal/testenv/platform"
)

// TestControllerServesDashboard runs `tend controller --dashboard-addr`
// in-process: nobody can sign in until `tend dashboard token` has run; the
// token it prints once signs in as admin, and the dashboard lists the
// controller's Apps.
func TestControllerServesDashboard(t *testing.T) {
	cl := newCluster(t)
	ctx := context.Background()
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan int, 1)
	logs := &platform.LogBuffer{}
	go func() {
		// Port 0: the controller picks its own and logs it, so that no
		// other process can take it in between.
		m := &Main{Stdout: io.Discard, Stderr: logs}
		done <- m.Run(runCtx, []string{"controller", "--kubeconfig", cl.Kubeconfig, "--watch-namespace", cl.Namespace,
			"--leader-election-namespace", cl.Namespace, "--metrics-addr", "0", "--probe-addr", "0", "--webhook-addr", "0",
			"--dashboard-addr", "127.0.0.1:0", "--data-dir", t.TempDir()})
	}()
	var once sync.Once
	halt := func() { once.Do(func() { stop(); <-done }) }
	t.Cleanup(halt)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the controller's log:\n%s", logs.Tail(60))
		}
	})
	listening := regexp.MustCompile(`msg="dashboard listening".* addr=(\S+)`)
	var base string
	eventually(t, "the controller's dashboard listening", 2*time.Minute, func() bool {
		select {
		case code := <-done:
			done <- code
			t.Fatalf("the controller exited with %d before its dashboard listened", code)
		default:
		}
		m := listening.FindStringSubmatch(logs.String())
		if m == nil {
			return false
		}
		base = "http://" + m[1]
		return true
	})
	repo := testenv.NewGitRepo(t, map[string]string{
		"web/cm.yaml":    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  v: \"1\"\n",
		"tenant/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tenant\ndata:\n  v: \"1\"\n",
	})
	src := &tendv1.Source{ObjectMeta: metav1.ObjectMeta{Name: "repo", Namespace: cl.Namespace}, Spec: tendv1.SourceSpec{
		Git: &tendv1.GitSource{URL: repo.URL, Ref: tendv1.GitRef{Branch: "main"}}}}
	app := &tendv1.App{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: cl.Namespace}, Spec: tendv1.AppSpec{
		SourceRef: tendv1.NamespacedObjectReference{Name: "repo"}, Path: "web", Destination: tendv1.Destination{Namespace: cl.Namespace}}}
	for _, obj := range []client.Object{src, app} {
		if err := cl.c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}

	jar, _ := cookiejar.New(nil)
	web := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	get := func(path string) (int, string) {
		resp, err := web.Get(base + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	eventually(t, "the dashboard asking for `tend dashboard token`", 60*time.Second, func() bool {
		code, body := get("/")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "tend dashboard token")
	})
	eventually(t, "a session key in the Secret", 30*time.Second, func() bool {
		s, err := cl.Clientset.CoreV1().Secrets(cl.Namespace).Get(ctx, dashboard.DefaultTeamName, metav1.GetOptions{})
		return err == nil && len(s.Data[dashboard.SecretSessionKey]) == 32
	})

	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb}
	if code := m.Run(ctx, []string{"dashboard", "token", "--kubeconfig", cl.Kubeconfig, "-n", cl.Namespace}); code != 0 {
		t.Fatalf("tend dashboard token: exit %d: %s", code, errb.String())
	}
	token := strings.TrimSpace(out.String())
	if !strings.HasPrefix(token, "tend_admin_") || strings.Contains(errb.String(), token) {
		t.Fatalf("tend dashboard token printed %q (stderr %q): want the token alone on stdout", token, errb.String())
	}
	eventually(t, "sign-in with the printed token", 30*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodPost, base+"/auth/token", strings.NewReader(url.Values{"token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", base)
		resp, err := web.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK && resp.Request.URL.Path == "/"
	})
	code, body := get("/api/v1/apps")
	var list struct {
		Items []struct{ Namespace, Name string } `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &list); code != http.StatusOK || err != nil || len(list.Items) != 1 || list.Items[0].Name != "web" {
		t.Fatalf("App list: %d %s", code, body)
	}
	// The diff runs on the controller's own engine: after the sync,
	// nothing to change.
	eventually(t, "App web synced", 60*time.Second, func() bool {
		var a tendv1.App
		return cl.c.Get(ctx, client.ObjectKeyFromObject(app), &a) == nil && a.Status.Revision == repo.Head()
	})
	code, body = get("/api/v1/apps/" + cl.Namespace + "/web/diff")
	var d struct {
		Summary  string `json:"summary"`
		Revision string `json:"revision"`
	}
	if err := json.Unmarshal([]byte(body), &d); code != http.StatusOK || err != nil || d.Summary != "1 unchanged" || d.Revision != repo.Head() {
		t.Errorf("diff through the controller's dashboard: %d %s", code, body)
	}
	// An App acting as a ServiceAccount is diffed as that account: one
	// without rights to ConfigMaps gets the refusal its sync would get,
	// not what tend itself could do.
	if _, err := cl.Clientset.CoreV1().ServiceAccounts(cl.Namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "nobody"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tenant := app.DeepCopy()
	tenant.ObjectMeta = metav1.ObjectMeta{Name: "tenant", Namespace: cl.Namespace}
	tenant.Spec.ServiceAccountName, tenant.Spec.Path = "nobody", "tenant"
	if err := cl.c.Create(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the dashboard listing App tenant", 30*time.Second, func() bool {
		code, body := get("/api/v1/apps/" + cl.Namespace + "/tenant")
		return code == http.StatusOK && strings.Contains(body, `"tenant"`)
	})
	code, body = get("/api/v1/apps/" + cl.Namespace + "/tenant/diff")
	var td struct {
		Changed int      `json:"changed"`
		Errors  []string `json:"errors"`
	}
	if err := json.Unmarshal([]byte(body), &td); code != http.StatusOK || err != nil || td.Changed != 0 || len(td.Errors) != 1 ||
		!strings.Contains(td.Errors[0], "forbidden") || !strings.Contains(td.Errors[0], "system:serviceaccount:"+cl.Namespace+":nobody") {
		t.Errorf("diff of an App acting as a ServiceAccount without rights: %d %s; want the account's refusal for its ConfigMap", code, body)
	}
	halt() // logs is the controller's until it has stopped
	if strings.Contains(logs.String(), token) {
		t.Error("the controller logged the admin token")
	}
}
