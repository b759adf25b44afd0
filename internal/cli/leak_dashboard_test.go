package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/testenv/platform"
)

// dashboard signs in to the controller's dashboard with the admin token of
// `tend dashboard token` and adds every answer of its API (lists, each
// App with its tree, diff and hooks, events) to places.
func (c *leakController) dashboard(t *testing.T, cl *testCluster, places map[string]string) {
	t.Helper()
	base := "http://" + c.addr("dashboard")
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
