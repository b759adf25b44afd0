package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
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
	logs := &platform.LogBuffer{}
	ctl := runController(t, cl.Kubeconfig, cl.Namespace, logs, "--dashboard-addr", "127.0.0.1:0")
	base := "http://" + ctl.addr("dashboard")
	repo := testenv.NewGitRepo(t, map[string]string{
		"web/cm.yaml":    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  v: \"1\"\n",
		"tenant/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tenant\ndata:\n  v: \"1\"\n",
		// A chart that reads the cluster with Helm's lookup.
		"lookup/Chart.yaml": "apiVersion: v2\nname: lookup\nversion: 1.0.0\n",
		"lookup/templates/cm.yaml": "{{- $cm := lookup \"v1\" \"ConfigMap\" .Release.Namespace \"web\" -}}\n" +
			"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: looked-up\ndata:\n  v: {{ dig \"data\" \"v\" \"none\" $cm | quote }}\n",
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

	dash := newDashboardClient(t, base)
	get := dash.get
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
	dash.signIn(token)
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
	// Its render acts as the account too: Helm's lookup reads what the
	// account may read (here nothing), not what tend may.
	lookup := tenant.DeepCopy()
	lookup.ObjectMeta = metav1.ObjectMeta{Name: "tenant-lookup", Namespace: cl.Namespace}
	lookup.Spec.Path = "lookup"
	if err := cl.c.Create(ctx, lookup); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the dashboard listing App tenant-lookup", 30*time.Second, func() bool {
		code, _ := get("/api/v1/apps/" + cl.Namespace + "/tenant-lookup")
		return code == http.StatusOK
	})
	code, body = get("/api/v1/apps/" + cl.Namespace + "/tenant-lookup/diff")
	if !strings.Contains(body, "lookup") || !strings.Contains(body, "cannot get resource") || !strings.Contains(body, "system:serviceaccount:"+cl.Namespace+":nobody") {
		t.Errorf("diff of a chart App whose lookup its ServiceAccount may not make: %d %s; want the render refused, naming the account", code, body)
	}
	ctl.stop() // logs is the controller's until it has stopped
	if strings.Contains(logs.String(), token) {
		t.Error("the controller logged the admin token")
	}
}
