package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv/platform"
)

// dashboardFront is the dashboard's public address: a proxy started before
// the controller, so that --dashboard-url (the OIDC redirect's base) can
// name it while the dashboard itself binds port 0.
type dashboardFront struct {
	*httptest.Server
	target atomic.Pointer[url.URL]
}

func newDashboardFront(t *testing.T) *dashboardFront {
	f := &dashboardFront{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := f.target.Load()
		if target == nil {
			http.Error(w, "the dashboard is not listening yet", http.StatusBadGateway)
			return
		}
		// The Host stays the front's, as behind any ingress.
		httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

// forward sends requests to the dashboard at addr.
func (f *dashboardFront) forward(addr string) { f.target.Store(&url.URL{Scheme: "http", Host: addr}) }

// dashboard signs in to the controller's dashboard with the admin token of
// `tend dashboard token`, and through the OIDC issuer, and adds every
// answer of its API (lists, each App with its tree, diff and hooks,
// events) to places. It returns the admin token.
func (c *leakController) dashboard(t *testing.T, cl *testCluster, places map[string]string) string {
	t.Helper()
	base := c.front.URL
	sso := newDashboardClient(t, base)
	eventually(t, "sign-in through the OIDC issuer, then the App list", 30*time.Second, func() bool {
		code, page := sso.get("/auth/login?next=/")
		places["dashboard single sign-on"] = page
		if code != http.StatusOK {
			return false
		}
		code, apps := sso.get("/api/v1/apps")
		places["dashboard GET /api/v1/apps after single sign-on"] = apps
		return code == http.StatusOK && json.Valid([]byte(apps))
	})
	dash := newDashboardClient(t, base)
	get := dash.get
	var out, errb bytes.Buffer
	eventually(t, "`tend dashboard token` printing a token", time.Minute, func() bool {
		out.Reset()
		errb.Reset()
		m := &Main{Stdout: &out, Stderr: &errb}
		return m.Run(context.Background(), []string{"dashboard", "token", "--kubeconfig", cl.Kubeconfig, "-n", cl.Namespace}) == 0
	})
	token := strings.TrimSpace(out.String())
	dash.signIn(token)
	places["dashboard GET /api/v1/events"] = c.dashboardStream(t, cl, dash.web, base)
	paths := []string{"/api/v1/apps", "/api/v1/sources", "/api/v1/notifiers", "/api/v1/clusters", "/api/v1/appsets"}
	for _, app := range []string{"plain", "sops", "chart", "extra"} {
		for _, sub := range []string{"", "/tree", "/diff", "/hooks"} {
			paths = append(paths, "/api/v1/apps/"+cl.Namespace+"/"+app+sub)
		}
	}
	for _, p := range paths {
		code, body := get(p)
		if code != http.StatusOK || !json.Valid([]byte(body)) {
			t.Fatalf("dashboard GET %s: %d %s", p, code, body)
		}
		places["dashboard GET "+p] = body
	}
	places["dashboard diff of plain"] = places["dashboard GET /api/v1/apps/"+cl.Namespace+"/plain/diff"]
	return token
}

// dashboardStream reads the dashboard's live updates until a change of
// the App plain (a label added) comes through.
func (c *leakController) dashboardStream(t *testing.T, cl *testCluster, web *http.Client, base string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/events", nil)
	resp, err := (&http.Client{Jar: web.Jar}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	stream := &platform.LogBuffer{}
	go func() { _, _ = io.Copy(stream, resp.Body) }()
	eventually(t, "the dashboard's stream connected", 30*time.Second, func() bool { return strings.Contains(stream.String(), "connected") })
	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"leak-test":"touched"}}}`))
	if err := cl.c.Patch(ctx, &tendv1.App{ObjectMeta: metav1.ObjectMeta{Namespace: cl.Namespace, Name: "plain"}}, patch); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the dashboard's stream telling of the change", 30*time.Second, func() bool { return strings.Contains(stream.String(), "event: change") })
	return stream.String()
}

func gunzip(t *testing.T, b []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("inventory: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("inventory: %v", err)
	}
	return string(out)
}
