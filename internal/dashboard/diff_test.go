package dashboard_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/appdiff"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/appspec"
	"github.com/tend-gitops/tend/internal/cluster"
	"github.com/tend-gitops/tend/internal/health"
	"github.com/tend-gitops/tend/internal/testenv"
)

const (
	// shopSecret is the Secret value git declares, shopDrift the one
	// someone wrote into the cluster: neither may reach a browser.
	shopSecret = "shop-git-pw-5521"
	shopDrift  = "shop-live-pw-8093"
)

var shopFiles = map[string]string{
	"apps/shop/web.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec: {containers: [{name: shop, image: "nginx:1.27"}]}
`,
	"apps/shop/secret.yaml": `apiVersion: v1
kind: Secret
metadata: {name: shop-db}
stringData: {password: ` + shopSecret + `}
`,
	"apps/shop/hooks.yaml": `apiVersion: batch/v1
kind: Job
metadata: {name: migrate, annotations: {tend.dev/hook: pre-sync}}
spec:
  template:
    spec: {restartPolicy: Never, containers: [{name: m, image: "migrate:1"}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: smoke, annotations: {argocd.argoproj.io/hook: PostSync}}
spec:
  template:
    spec: {restartPolicy: Never, containers: [{name: s, image: "smoke:1"}]}
`,
}

// newShop adds to f's namespace an App "shop" whose Source is a git
// repository on loopback, synced by the engine as the controller syncs it
// (its pre-sync and post-sync hook Jobs run), then drifted by a person:
// the Deployment's image and the Secret's value edited with kubectl's
// field manager. Before the drift it checks that the diff finds nothing.
// It returns the revision synced.
func newShop(t *testing.T, f *fixture) string {
	t.Helper()
	ctx := context.Background()
	ns := f.env.Namespace
	repo := testenv.NewGitRepo(t, shopFiles)
	src := &tendv1.Source{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns}, Spec: tendv1.SourceSpec{
		Git: &tendv1.GitSource{URL: repo.URL, Ref: tendv1.GitRef{Branch: "main"}},
	}}
	create(t, f.env, src)
	src.Status.Artifact = &tendv1.Artifact{Revision: repo.Head(), Subject: "initial commit", FetchedAt: metav1.Now()}
	if err := f.env.Client.Status().Update(ctx, src); err != nil {
		t.Fatal(err)
	}
	app := &tendv1.App{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns}, Spec: tendv1.AppSpec{
		SourceRef: tendv1.NamespacedObjectReference{Name: "shop"}, Path: "apps/shop",
	}}
	create(t, f.env, app)

	checker, err := health.NewChecker(nil)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := cluster.NewConn("", f.env.Config, cluster.ConnOptions{Inventory: &apply.SecretStore{Client: f.env.Clientset}, Health: checker})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	d := &appdiff.Differ{Config: f.env.Config, Client: f.env.Client, Engine: conn.Engine}
	r, err := d.Render(ctx, app, src, "", appdiff.Known{})
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	rules, err := appspec.Compile(app)
	if err != nil {
		t.Fatal(err)
	}
	req := appspec.Request(app, rules)
	req.Objects, req.Revision = r.Objects, r.Revision
	if _, err := conn.Engine.Sync(ctx, req); err != nil {
		t.Fatalf("sync: %v", err)
	}

	v := f.diff(t, "shop", "")
	if v.Changed != 0 || v.Summary != "2 unchanged" || v.Revision != repo.Head() || v.Hooks != 2 {
		t.Fatalf("diff of the App just synced: %+v, want 2 unchanged objects and 2 hooks at %s", v, repo.Head())
	}

	edit := metav1.PatchOptions{FieldManager: "kubectl-edit"}
	if _, err := f.env.Clientset.AppsV1().Deployments(ns).Patch(ctx, "shop", types.StrategicMergePatchType,
		[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"shop","image":"nginx:drifted"}]}}}}`), edit); err != nil {
		t.Fatal(err)
	}
	if _, err := f.env.Clientset.CoreV1().Secrets(ns).Patch(ctx, "shop-db", types.MergePatchType,
		[]byte(`{"stringData":{"password":"`+shopDrift+`"}}`), edit); err != nil {
		t.Fatal(err)
	}
	return r.Revision
}

type diffView struct {
	Revision, Summary string
	Changed, Hooks    int
	Objects           []struct{ Key, Kind, Name, Action, Unified string }
	Notes, Errors     []string
}

// diff GETs the diff of App name (query: "?object=..."), waiting for the
// dashboard's cache to know the App.
func (f *fixture) diff(t *testing.T, name, query string) diffView {
	t.Helper()
	var v diffView
	path := "/api/v1/apps/" + f.env.Namespace + "/" + name + "/diff" + query
	code := 0
	testenv.Eventually(t, "the dashboard knowing App "+name, 30*time.Second, func() bool {
		code = f.get(t, path, &v)
		return code != http.StatusNotFound
	})
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d", path, code)
	}
	return v
}

// body GETs path and returns the status and the raw body.
func (f *fixture) body(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := f.web.Get(f.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestDashboardDiff: an App just synced has no changes; after a person
// edited its Deployment and its Secret, the diff shows the Deployment's
// changed field and the Secret's change as a mask, and neither the value in
// git nor the one in the cluster appears anywhere in the response; one
// object's diff is asked for by its key; an App of another Cluster gets a
// clear answer instead of a diff.
func TestDashboardDiff(t *testing.T) {
	f := newFixture(t)
	ns := f.env.Namespace
	newShop(t, f)

	v := f.diff(t, "shop", "")
	if v.Changed != 2 || v.Summary != "2 to update" || len(v.Objects) != 2 {
		t.Fatalf("diff after the drift: %+v, want the Deployment and the Secret to update", v)
	}
	byKind := map[string]string{}
	for _, o := range v.Objects {
		if o.Action != "update" {
			t.Errorf("%s: action %s, want update", o.Key, o.Action)
		}
		byKind[o.Kind] = o.Unified
	}
	for _, want := range []string{"-      - image: nginx:drifted", "+      - image: nginx:1.27"} {
		if !strings.Contains(byKind["Deployment"], want) {
			t.Errorf("the Deployment's diff lacks %q:\n%s", want, byKind["Deployment"])
		}
	}
	if !strings.Contains(byKind["Secret"], "(changed secret value)") {
		t.Errorf("the Secret's diff does not show its value changed, masked:\n%s", byKind["Secret"])
	}
	code, body := f.body(t, "/api/v1/apps/"+ns+"/shop/diff")
	if code != http.StatusOK {
		t.Fatalf("diff: %d %s", code, body)
	}
	for _, value := range []string{shopSecret, shopDrift} {
		for _, form := range []string{value, base64.StdEncoding.EncodeToString([]byte(value)), base64.StdEncoding.EncodeToString([]byte(value))[:12]} {
			if strings.Contains(body, form) {
				t.Fatalf("the diff carries a Secret value (%q):\n%s", form, body)
			}
		}
	}

	one := f.diff(t, "shop", "?object=apps/Deployment/"+ns+"/shop")
	if len(one.Objects) != 1 || one.Objects[0].Kind != "Deployment" || one.Changed != 2 {
		t.Errorf("the Deployment's diff alone: %+v", one)
	}
	for query, want := range map[string]int{
		"?object=apps/Deployment/" + ns + "/nope": http.StatusNotFound,
		"?object=Deployment/shop":                 http.StatusBadRequest,
	} {
		if code, body := f.body(t, "/api/v1/apps/"+ns+"/shop/diff"+query); code != want {
			t.Errorf("diff%s: %d %s, want %d", query, code, body, want)
		}
	}

	create(t, f.env, &tendv1.App{ObjectMeta: metav1.ObjectMeta{Name: "edge-web", Namespace: ns}, Spec: tendv1.AppSpec{
		SourceRef: tendv1.NamespacedObjectReference{Name: "shop"}, Path: "apps/shop",
		Destination: tendv1.Destination{ClusterRef: &tendv1.LocalObjectReference{Name: "edge"}},
	}})
	testenv.Eventually(t, "the diff of an App of another Cluster refused, saying why", 30*time.Second, func() bool {
		code, body = f.body(t, "/api/v1/apps/"+ns+"/edge-web/diff")
		return code == http.StatusUnprocessableEntity
	})
	if !strings.Contains(body, "deploys to Cluster edge") || !strings.Contains(body, "OtherCluster") {
		t.Errorf("diff of an App of another Cluster: %s", body)
	}
}

// TestDashboardHookRuns: the hook Jobs of the App's last sync, by phase,
// each with its state and times; and a tree node the App's status lists
// as out of sync is marked so the page links it to its diff.
func TestDashboardHookRuns(t *testing.T) {
	f := newFixture(t)
	ns := f.env.Namespace
	newShop(t, f)

	var hooks struct {
		Phases []struct {
			Phase string
			Hooks []struct {
				Name, State        string
				Succeeded, Active  int32
				Started, Completed *time.Time
			}
		}
	}
	if code := f.get(t, "/api/v1/apps/"+ns+"/shop/hooks", &hooks); code != http.StatusOK {
		t.Fatalf("hooks: %d", code)
	}
	var got []string
	for _, p := range hooks.Phases {
		for _, h := range p.Hooks {
			got = append(got, p.Phase+" "+h.Name+" "+h.State)
			if h.Succeeded != 1 || h.Active != 0 || h.Started == nil || h.Completed == nil {
				t.Errorf("%s hook %s: %+v, want one pod succeeded with start and completion times", p.Phase, h.Name, h)
			}
		}
	}
	if g, w := strings.Join(got, ", "), "pre-sync migrate Succeeded, post-sync smoke Succeeded"; g != w {
		t.Errorf("hook runs: %s, want %s", g, w)
	}
	// App web of the fixture has no hooks.
	if code, body := f.body(t, "/api/v1/apps/"+ns+"/web/hooks"); code != http.StatusOK || !strings.Contains(body, `"phases":[]`) {
		t.Errorf("hooks of an App without any: %d %s", code, body)
	}

	// The controller lists drifted objects in the App's status.
	var a tendv1.App
	if err := f.env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "shop"}, &a); err != nil {
		t.Fatal(err)
	}
	a.Status.OutOfSync = []tendv1.ObjectReference{{Group: "apps", Kind: "Deployment", Namespace: ns, Name: "shop"}}
	if err := f.env.Client.Status().Update(context.Background(), &a); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the drifted Deployment marked in the tree, and only it", 30*time.Second, func() bool {
		var tree struct {
			Nodes []struct {
				Kind      string
				OutOfSync bool
			}
		}
		if f.get(t, "/api/v1/apps/"+ns+"/shop/tree", &tree) != http.StatusOK {
			return false
		}
		marked := ""
		for _, n := range tree.Nodes {
			if n.OutOfSync {
				marked += n.Kind
			}
		}
		return marked == "Deployment"
	})
}
