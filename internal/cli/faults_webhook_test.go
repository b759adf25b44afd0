package cli

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv"
	"github.com/tend-gitops/tend/internal/testenv/platform"
)

// Flood sizes of TestWebhookFloodStaysBounded.
const (
	// floodRequests is how many requests the flood sends at least.
	floodRequests = 50_000
	// floodCap bounds the flood should the push take longer to apply.
	floodCap = 200_000
	// floodWorkers send at once, each on its own kept-alive connection.
	floodWorkers = 16
	// floodHeapGrowth is the heap growth allowed over the flood, after a
	// collection: generous, but far below what keeping anything per
	// request would take.
	floodHeapGrowth = 64 << 20
)

// secretReads counts the requests an apiserver proxy passes on that read
// one Secret: a GET of it, or a list or watch of it alone.
type secretReads struct {
	*testenv.APIProxy
	gets      atomic.Int64
	watchReqs atomic.Int64
}

func newSecretReads(t *testing.T, cfg *rest.Config, ns, name string) *secretReads {
	t.Helper()
	p := &secretReads{}
	p.APIProxy = testenv.NewAPIProxy(t, cfg, testenv.ProxyOptions{Handle: func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if rns, rname, ok := testenv.SecretRead(r); ok && rns == ns && rname == name {
			if strings.HasSuffix(r.URL.Path, "/"+name) {
				p.gets.Add(1)
			} else {
				p.watchReqs.Add(1)
			}
		}
		next.ServeHTTP(w, r)
	}})
	return p
}

// TestWebhookFloodStaysBounded runs `tend controller` in-process with its
// push receiver and floods the receiver on loopback with at least
// floodRequests wrongly signed or unsigned deliveries from floodWorkers
// connections. Meanwhile a legitimate signed push arrives: it is answered
// 202 and its commit is applied while the flood goes on. Over the flood,
// the process's heap grows less than floodHeapGrowth, its goroutines come
// back down, and the webhook Secret is read from its watch, not fetched
// from the apiserver once per request.
func TestWebhookFloodStaysBounded(t *testing.T) {
	cl := newCluster(t)
	ctx := context.Background()
	const token = "s3cret-token"
	if _, err := cl.Clientset.CoreV1().Secrets(cl.Namespace).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "hooks"}, StringData: map[string]string{"generic": token},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	api := newSecretReads(t, cl.Config, cl.Namespace, "hooks")
	repo := testenv.NewGitRepo(t, nil)
	rev1 := repo.Commit("v1", map[string]string{"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hooked\ndata:\n  v: \"1\"\n"})

	// The flood logs a line per request: keep the last 64 KiB.
	logs := &platform.LogBuffer{Keep: 64 << 10}
	ctl := runController(t, api.KubeconfigFile(t), cl.Namespace, logs,
		"--webhook-addr", "127.0.0.1:0", "--webhook-secret", "hooks")
	addr := ctl.addr("webhook receiver")

	src := &tendv1.Source{ObjectMeta: metav1.ObjectMeta{Name: "repo", Namespace: cl.Namespace}, Spec: tendv1.SourceSpec{
		Git: &tendv1.GitSource{URL: repo.URL, Ref: tendv1.GitRef{Branch: "main"}}, Interval: metav1.Duration{Duration: time.Hour}}}
	app := &tendv1.App{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: cl.Namespace}, Spec: tendv1.AppSpec{
		SourceRef: tendv1.NamespacedObjectReference{Name: "repo"}, Path: "app", Destination: tendv1.Destination{Namespace: cl.Namespace}}}
	for _, o := range []client.Object{src, app} {
		if err := cl.c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	appRev := func() string {
		var a tendv1.App
		if err := cl.c.Get(ctx, types.NamespacedName{Namespace: cl.Namespace, Name: "app"}, &a); err != nil {
			return ""
		}
		return a.Status.Revision
	}
	eventually(t, "first revision applied", 60*time.Second, func() bool { return appRev() == rev1 })

	hookURL := "http://" + addr + "/hooks/generic"
	sign := func(body []byte, key string) string {
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write(body)
		return "sha256=" + hex.EncodeToString(mac.Sum(nil))
	}
	pushBody, _ := json.Marshal(map[string]string{"repository": repo.URL, "ref": "refs/heads/main"})
	post := func(c *http.Client, body []byte, sig string) (int, error) {
		req, _ := http.NewRequest(http.MethodPost, hookURL, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if sig != "" {
			req.Header.Set("X-Tend-Signature", sig)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	eventually(t, "webhook receiver up", 20*time.Second, func() bool {
		status, err := post(http.DefaultClient, []byte("{}"), "")
		return err == nil && status == http.StatusUnauthorized
	})
	// The receiver's first read started the Secret's watch.
	getsBefore, watchesBefore := api.gets.Load(), api.watchReqs.Load()

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutinesBefore := runtime.NumGoroutine()

	// The flood: wrong signatures, missing signatures, bodies that are not
	// JSON, from floodWorkers kept-alive connections, until at least
	// floodRequests are sent and the push below is applied.
	var sent, unauthorized, other atomic.Int64
	var applied atomic.Bool
	floodClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: floodWorkers, MaxConnsPerHost: floodWorkers}}
	defer floodClient.CloseIdleConnections()
	junk := []byte("\x00\xff{not json")
	var wg sync.WaitGroup
	for w := range floodWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i += floodWorkers {
				n := sent.Add(1)
				if n > floodCap || (n > floodRequests && applied.Load()) {
					return
				}
				body, sig := pushBody, sign(pushBody, "wrong-token")
				switch i % 3 {
				case 1:
					sig = ""
				case 2:
					body, sig = junk, sign(junk, "wrong-token")
				}
				status, err := post(floodClient, body, sig)
				switch {
				case err != nil:
					other.Add(1)
				case status == http.StatusUnauthorized:
					unauthorized.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}

	// A quarter into the flood, a commit and its signed push.
	eventually(t, "the flood under way", 60*time.Second, func() bool { return sent.Load() > floodRequests/4 })
	rev2 := repo.Commit("v2", map[string]string{"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hooked\ndata:\n  v: \"2\"\n"})
	status, err := post(http.DefaultClient, pushBody, sign(pushBody, token))
	if err != nil || status != http.StatusAccepted {
		t.Fatalf("the signed push during the flood: status %d, %v; want 202", status, err)
	}
	atPush := sent.Load()
	if !testenv.Within(120*time.Second, func() bool { return appRev() == rev2 }) {
		applied.Store(true) // end the flood
		wg.Wait()
		t.Fatalf("the pushed revision was not applied during the flood (App at %s, %d requests sent)", appRev(), sent.Load())
	}
	atApplied := sent.Load()
	applied.Store(true)
	wg.Wait()
	floodClient.CloseIdleConnections()
	total := unauthorized.Load() + other.Load()
	t.Logf("flood: %d requests (%d answered 401, %d otherwise); the push came after %d and was applied by %d",
		total, unauthorized.Load(), other.Load(), atPush, atApplied)

	if atApplied >= floodCap {
		t.Errorf("the push was applied only after the flood ended")
	}
	if got := unauthorized.Load(); got < floodRequests {
		t.Errorf("%d flooded requests answered 401, want at least %d (others: %d)", got, floodRequests, other.Load())
	}
	cm, err := cl.Clientset.CoreV1().ConfigMaps(cl.Namespace).Get(ctx, "hooked", metav1.GetOptions{})
	if err != nil || cm.Data["v"] != "2" {
		t.Fatalf("ConfigMap after the push: %v %v", cm.Data, err)
	}

	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap: %d KiB before, %d KiB after the flood", before.HeapAlloc>>10, after.HeapAlloc>>10)
	if growth > floodHeapGrowth {
		t.Errorf("heap grew by %d MiB over the flood, want under %d MiB", growth>>20, floodHeapGrowth>>20)
	}
	var goroutines int
	if !testenv.Within(30*time.Second, func() bool {
		goroutines = runtime.NumGoroutine()
		return goroutines <= goroutinesBefore+20
	}) {
		t.Errorf("goroutines: %d before the flood, still %d after it", goroutinesBefore, goroutines)
	}
	// The flood cost the apiserver no read of the Secret.
	if gets, watches := api.gets.Load()-getsBefore, api.watchReqs.Load()-watchesBefore; gets+watches > 10 {
		t.Errorf("the webhook Secret was read from the apiserver %d times (%d GETs, %d lists or watches) during %d requests; want it served from its watch",
			gets+watches, gets, watches, total)
	}
	if strings.Contains(logs.String(), token) {
		t.Errorf("the controller log holds the webhook token")
	}
}
