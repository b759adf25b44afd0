package cli

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
)

// TestControllerWebhookTriggersSync runs `tend controller` in-process with
// its push receiver: a commit plus a signed push event is applied at once,
// although the Source polls only hourly.
func TestControllerWebhookTriggersSync(t *testing.T) {
	cl := newCluster(t)
	ctx := context.Background()
	repo := testenv.NewGitRepo(t, nil)
	repo.Commit("v1", map[string]string{"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hooked\ndata:\n  v: \"1\"\n"})
	const token = "s3cret-token"
	if _, err := cl.Clientset.CoreV1().Secrets(cl.Namespace).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "hooks"}, StringData: map[string]string{"generic": token},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		var out, errb bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &errb}
		done <- m.Run(runCtx, []string{"controller", "--kubeconfig", cl.Kubeconfig, "--watch-namespace", cl.Namespace,
			"--leader-election-namespace", cl.Namespace, "--metrics-addr", "0", "--probe-addr", "0",
			"--webhook-addr", addr, "--webhook-secret", "hooks", "--data-dir", t.TempDir()})
	}()
	t.Cleanup(func() { stop(); <-done })

	src := &tendv1.Source{ObjectMeta: metav1.ObjectMeta{Name: "repo", Namespace: cl.Namespace}, Spec: tendv1.SourceSpec{
		Git: &tendv1.GitSource{URL: repo.URL, Ref: tendv1.GitRef{Branch: "main"}}, Interval: metav1.Duration{Duration: time.Hour}}}
	app := &tendv1.App{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: cl.Namespace}, Spec: tendv1.AppSpec{
		SourceRef: tendv1.NamespacedObjectReference{Name: "repo"}, Path: "app", Destination: tendv1.Destination{Namespace: cl.Namespace}}}
	if err := cl.c.Create(ctx, src); err != nil {
		t.Fatal(err)
	}
	if err := cl.c.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	appRev := func() string {
		var a tendv1.App
		if err := cl.c.Get(ctx, types.NamespacedName{Namespace: cl.Namespace, Name: "app"}, &a); err != nil {
			return ""
		}
		return a.Status.Revision
	}
	first := repo.Head()
	eventually(t, "first revision applied", 60*time.Second, func() bool { return appRev() == first })

	second := repo.Commit("v2", map[string]string{"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hooked\ndata:\n  v: \"2\"\n"})
	body, _ := json.Marshal(map[string]string{"repository": repo.URL, "ref": "refs/heads/main"})
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write(body)
	start := time.Now()
	var resp *http.Response
	eventually(t, "webhook receiver up", 20*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/hooks/generic", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Tend-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp = r
		return true
	})
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook answered %d: %s", resp.StatusCode, b)
	}
	eventually(t, "pushed revision applied", 20*time.Second, func() bool { return appRev() == second })
	cm, err := cl.Clientset.CoreV1().ConfigMaps(cl.Namespace).Get(ctx, "hooked", metav1.GetOptions{})
	if err != nil || cm.Data["v"] != "2" {
		t.Fatalf("ConfigMap after the push: %v %v", cm, err)
	}
	t.Logf("push to applied: %s", time.Since(start).Round(time.Millisecond))
}
