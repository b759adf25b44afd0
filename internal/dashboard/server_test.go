package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/apply"
	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/dashboard"
	"github.com/tend-gitops/tend/internal/testenv"
)

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	testenv.Main(m)
}

const (
	secretValue = "dashboard-s3cr3t-value-91731"
	olderRev    = "fedcba9876543210fedcba9876543210fedcba98"
)

// fixture is a local dashboard over a test namespace holding a Source,
// Apps in several states and one App's applied objects.
type fixture struct {
	env  *testenv.Env
	base string
	web  *http.Client
	csrf string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := testenv.New(t)
	testenv.InstallCRDs(t, env.Config)
	cl, err := client.New(env.Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	env.Client = cl
	ctx := context.Background()
	ns := env.Namespace
	rev := "0123456789abcdef0123456789abcdef01234567"

	src := &tendv1.Source{ObjectMeta: metav1.ObjectMeta{Name: "platform", Namespace: ns}, Spec: tendv1.SourceSpec{
		Git: &tendv1.GitSource{URL: "https://deploy:hunter2@git.example.com/platform.git", Ref: tendv1.GitRef{Branch: "main"}},
	}}
	create(t, env, src)
	src.Status.Artifact = &tendv1.Artifact{Revision: rev, Subject: "web: two replicas", FetchedAt: metav1.Now()}
	meta := func(typ, status, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: metav1.ConditionStatus(status), Reason: reason, Message: msg, LastTransitionTime: metav1.Now()}
	}
	src.Status.Conditions = []metav1.Condition{meta(tendv1.ConditionReady, "True", "Fetched", "fetched")}
	if err := env.Client.Status().Update(ctx, src); err != nil {
		t.Fatal(err)
	}
	for i, spec := range []struct {
		name, sync, health string
		labels             map[string]string
		ready              metav1.Condition
	}{
		{"web", "Synced", "Healthy", map[string]string{"team": "web"}, meta(tendv1.ConditionReady, "True", "Synced", "synced")},
		{"db", "Synced", "Degraded", map[string]string{"team": "data"}, meta(tendv1.ConditionReady, "False", "Degraded", "StatefulSet db: 0 of 1 replicas ready")},
		{"cache", "Failed", "Unknown", map[string]string{"team": "web"}, meta(tendv1.ConditionReady, "False", "RenderFailed", "kustomization.yaml: unknown field")},
		{"api", "OutOfSync", "Healthy", map[string]string{"team": "web"}, meta(tendv1.ConditionReady, "False", "OutOfSync", "1 object differs")},
	} {
		a := &tendv1.App{ObjectMeta: metav1.ObjectMeta{Name: spec.name, Namespace: ns, Labels: spec.labels}, Spec: tendv1.AppSpec{
			SourceRef: tendv1.NamespacedObjectReference{Name: "platform"}, Path: "apps/" + spec.name,
		}}
		if spec.name == "api" {
			a.Spec.DependsOn = []tendv1.NamespacedObjectReference{{Name: "db"}}
		}
		create(t, env, a)
		a.Status.Sync, a.Status.Health, a.Status.Revision = spec.sync, spec.health, rev
		a.Status.Conditions = []metav1.Condition{spec.ready}
		a.Status.History = []tendv1.SyncRecord{
			{ID: 2, Revision: rev, StartedAt: metav1.NewTime(time.Now().Add(-time.Duration(i) * time.Minute)), Duration: metav1.Duration{Duration: time.Second}, Result: "Succeeded", Changed: 2, Healthy: true},
			{ID: 1, Revision: olderRev, StartedAt: metav1.NewTime(time.Now().Add(-time.Hour)), Duration: metav1.Duration{Duration: time.Second}, Result: "Succeeded", Changed: 5, Healthy: true},
		}
		if err := env.Client.Status().Update(ctx, a); err != nil {
			t.Fatal(err)
		}
	}

	// What App web applied: a Deployment (whose ReplicaSet and Pods the
	// controller-manager makes) and a Secret.
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To(int32(1)),
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
		},
	}}
	create(t, env, dep)
	create(t, env, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "web-db", Namespace: ns}, StringData: map[string]string{"password": secretValue}})
	inv := apply.NewInventory()
	inv.Revision = rev
	inv.Entries[apply.ObjectRef{Group: "apps", Kind: "Deployment", Namespace: ns, Name: "web"}] = apply.Entry{Version: "apps/v1", Desired: "d1"}
	inv.Entries[apply.ObjectRef{Kind: "Secret", Namespace: ns, Name: "web-db"}] = apply.Entry{Version: "v1", Desired: "d2"}
	inv.Entries[apply.ObjectRef{Kind: "ConfigMap", Namespace: ns, Name: "gone"}] = apply.Entry{Version: "v1", Desired: "d3"}
	if err := (&apply.SecretStore{Client: env.Clientset}).Save(ctx, apply.AppRef{Namespace: ns, Name: "web"}, inv); err != nil {
		t.Fatal(err)
	}

	l, err := dashboard.ListenLocal(context.Background(), env.Config, controller.Scheme(), dashboard.LocalOptions{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	ready := make(chan error, 1)
	done := make(chan error, 1)
	go func() { done <- l.Serve(sctx, func(err error) { ready <- err }) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	f := &fixture{env: env, base: "http://" + l.Listener.Addr().String(), web: &http.Client{Jar: jar}}
	// The printed URL trades its token for the session cookie.
	resp, err := f.web.Get(l.URL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="tend-csrf" content="([^"]+)"`).FindSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("opening %s: %s, page without a CSRF token:\n%s", l.URL, resp.Status, page)
	}
	f.csrf = string(m[1])
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	return f
}

func create(t *testing.T, env *testenv.Env, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) get(t *testing.T, path string, out any) int {
	t.Helper()
	resp, err := f.web.Get(f.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	return resp.StatusCode
}

func (f *fixture) post(t *testing.T, path string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := f.web.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type appList struct {
	Items []struct {
		Namespace, Name, Sync, Health, Revision, Subject, Source, Origin, Message string
		DependsOn                                                                 []string
	}
	Total, Page, PageSize int
	Counts                map[string]map[string]int
}

func names(l appList) string {
	var out []string
	for _, a := range l.Items {
		out = append(out, a.Name)
	}
	return strings.Join(out, ",")
}

// TestDashboardAPI: the App list filters, searches, sorts and pages on the
// server with summary counts; an App's page has its conditions with advice,
// history and events; its tree is the inventory's live objects with what
// they own and their health, and no Secret data.
func TestDashboardAPI(t *testing.T) {
	f := newFixture(t)
	ns := f.env.Namespace
	var l appList
	if code := f.get(t, "/api/v1/apps?namespace="+ns, &l); code != http.StatusOK {
		t.Fatalf("list: %d", code)
	}
	if names(l) != "api,cache,db,web" || l.Total != 4 {
		t.Errorf("list by name: %s (total %d)", names(l), l.Total)
	}
	if l.Counts["health"]["Healthy"] != 2 || l.Counts["health"]["Degraded"] != 1 || l.Counts["sync"]["Failed"] != 1 {
		t.Errorf("counts %v", l.Counts)
	}
	web := l.Items[3]
	if web.Subject != "web: two replicas" || web.Source != ns+"/platform" || web.Origin != "tend" {
		t.Errorf("web row: %+v", web)
	}
	if api := l.Items[0]; len(api.DependsOn) != 1 || api.DependsOn[0] != ns+"/db" {
		t.Errorf("api depends on %v", api.DependsOn)
	}
	for query, want := range map[string]string{
		"&health=Degraded":               "db",
		"&label=team%3Dweb":              "api,cache,web",
		"&label=team%3Dweb&sync=Synced":  "web",
		"&q=CAC":                         "cache",
		"&sort=lastSync":                 "web,db,cache,api",
		"&sort=health&pageSize=2&page=2": "web,cache",
		"&pageSize=3&page=2":             "web",
		"&source=platform":               "api,cache,db,web",
		"&source=other":                  "",
	} {
		var got appList
		if code := f.get(t, "/api/v1/apps?namespace="+ns+query, &got); code != http.StatusOK {
			t.Errorf("%s: %d", query, code)
			continue
		}
		if names(got) != want {
			t.Errorf("%s: %s, want %s", query, names(got), want)
		}
	}
	var far appList
	if code := f.get(t, "/api/v1/apps?namespace="+ns+"&page=36028797018963969", &far); code != http.StatusOK || len(far.Items) != 0 || far.Total != 4 {
		t.Errorf("a page far past the end: %d, %d items of %d", code, len(far.Items), far.Total)
	}
	for _, bad := range []string{"&label=%3D%3D", "&pageSize=100000", "&sort=color", "&page=0"} {
		if code := f.get(t, "/api/v1/apps?namespace="+ns+bad, nil); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", bad, code)
		}
	}

	var d struct {
		Name       string
		Conditions []struct{ Type, Reason, Message, Advice string }
		History    []struct{ ID int64 }
	}
	if code := f.get(t, "/api/v1/apps/"+ns+"/cache", &d); code != http.StatusOK {
		t.Fatalf("detail: %d", code)
	}
	if len(d.Conditions) != 1 || d.Conditions[0].Reason != "RenderFailed" || !strings.Contains(d.Conditions[0].Advice, "Fix the files") || len(d.History) != 2 {
		t.Errorf("detail of cache: %+v", d)
	}
	if code := f.get(t, "/api/v1/apps/"+ns+"/nope", nil); code != http.StatusNotFound {
		t.Errorf("missing App: %d, want 404", code)
	}

	type node struct {
		Kind, Name, Health string
		Children           []*node
	}
	var tree struct{ Nodes []*node }
	testenv.Eventually(t, "the Deployment's ReplicaSet and Pod in the tree", time.Minute, func() bool {
		tree.Nodes = nil
		if f.get(t, "/api/v1/apps/"+ns+"/web/tree", &tree) != http.StatusOK {
			return false
		}
		for _, n := range tree.Nodes {
			if n.Kind == "Deployment" && len(n.Children) == 1 && n.Children[0].Kind == "ReplicaSet" && len(n.Children[0].Children) == 1 && n.Children[0].Children[0].Kind == "Pod" {
				return true
			}
		}
		return false
	})
	health := map[string]string{}
	for _, n := range tree.Nodes {
		health[n.Kind+"/"+n.Name] = n.Health
	}
	if health["ConfigMap/gone"] != "Missing" || health["Secret/web-db"] != "Healthy" || len(tree.Nodes) != 3 {
		t.Errorf("tree health %v", health)
	}
	for _, path := range []string{"/tree", ""} {
		resp, err := f.web.Get(f.base + "/api/v1/apps/" + ns + "/web" + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), secretValue) {
			t.Errorf("%s carries the Secret's value", path)
		}
	}
	var sources struct {
		Items []struct{ URL, Revision string }
	}
	f.get(t, "/api/v1/sources", &sources)
	for _, s := range sources.Items {
		if strings.Contains(s.URL, "hunter2") {
			t.Errorf("source URL with its password: %s", s.URL)
		}
	}
}

// TestDashboardActions: sync, refresh, suspend and resume patch the App
// or its Source as the CLI does and are recorded as events naming the
// user; a suspended App's sync is refused; a change reaches an open
// event stream.
func TestDashboardActions(t *testing.T) {
	f := newFixture(t)
	ns := f.env.Namespace
	ctx := context.Background()
	stream, err := f.web.Get(f.base + "/api/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	lines := bufio.NewScanner(stream.Body)
	lines.Scan() // ": connected"

	csrf := map[string]string{"X-Tend-CSRF": f.csrf}
	if code, body := f.post(t, "/api/v1/apps/"+ns+"/web/sync", csrf); code != http.StatusAccepted {
		t.Fatalf("sync: %d %s", code, body)
	}
	var a tendv1.App
	if err := f.env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web"}, &a); err != nil {
		t.Fatal(err)
	}
	if a.Annotations[tendv1.AnnotationRequestedAt] == "" {
		t.Error("sync did not request a sync of the App")
	}
	// The stream tells about the App's change.
	found := make(chan string, 1)
	go func() {
		for lines.Scan() {
			if l := lines.Text(); strings.HasPrefix(l, "data: ") && strings.Contains(l, `"name":"web"`) && strings.Contains(l, `"kind":"App"`) {
				found <- l
				return
			}
		}
		close(found)
	}()
	select {
	case _, ok := <-found:
		if !ok {
			t.Fatal("the event stream ended without a change of App web")
		}
	case <-time.After(time.Minute):
		t.Fatal("no change of App web on the event stream within a minute")
	}

	if code, body := f.post(t, "/api/v1/apps/"+ns+"/web/refresh", csrf); code != http.StatusAccepted {
		t.Fatalf("refresh: %d %s", code, body)
	}
	var src tendv1.Source
	if err := f.env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "platform"}, &src); err != nil {
		t.Fatal(err)
	}
	if src.Annotations[tendv1.AnnotationRequestedAt] == "" {
		t.Error("refresh did not ask the Source for a fetch")
	}
	if code, body := f.post(t, "/api/v1/apps/"+ns+"/web/suspend", csrf); code != http.StatusAccepted {
		t.Fatalf("suspend: %d %s", code, body)
	}
	testenv.Eventually(t, "the cache seeing the suspended App", 30*time.Second, func() bool {
		code, body := f.post(t, "/api/v1/apps/"+ns+"/web/sync", csrf)
		return code == http.StatusConflict && strings.Contains(body, "suspended")
	})
	if code, _ := f.post(t, "/api/v1/apps/"+ns+"/web/resume", csrf); code != http.StatusAccepted {
		t.Fatalf("resume: %d", code)
	}
	if err := f.env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web"}, &a); err != nil || a.Spec.Suspend {
		t.Errorf("after resume: suspend %v (%v)", a.Spec.Suspend, err)
	}
	// Roll back to the older sync, then unpin.
	if code, body := f.post(t, "/api/v1/apps/"+ns+"/web/rollback?id=1", csrf); code != http.StatusAccepted || !strings.Contains(body, olderRev) {
		t.Fatalf("rollback: %d %s", code, body)
	}
	if err := f.env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web"}, &a); err != nil || a.Spec.TargetRevision != olderRev {
		t.Errorf("after rollback: targetRevision %q (%v), want %s", a.Spec.TargetRevision, err, olderRev)
	}
	for query, want := range map[string]string{"?id=99": "has no sync 99 in its history (IDs: 2, 1)", "?id=x": "rollback needs id"} {
		code, body := f.post(t, "/api/v1/apps/"+ns+"/web/rollback"+query, csrf)
		if (code != http.StatusConflict && code != http.StatusBadRequest) || !strings.Contains(body, want) {
			t.Errorf("rollback%s: %d %s, want a refusal saying %q", query, code, body, want)
		}
	}
	if code, body := f.post(t, "/api/v1/apps/"+ns+"/web/unpin", csrf); code != http.StatusAccepted {
		t.Fatalf("unpin: %d %s", code, body)
	}
	if err := f.env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web"}, &a); err != nil || a.Spec.TargetRevision != "" {
		t.Errorf("after unpin: targetRevision %q (%v)", a.Spec.TargetRevision, err)
	}

	evs, err := f.env.Clientset.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=DashboardAction"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs.Items {
		got = append(got, e.Message)
	}
	for _, want := range []string{"sync requested by local user", "refresh requested by local user", "suspend requested by local user", "resume requested by local user",
		"rollback to sync 1 (" + olderRev + ") requested by local user", "unpin requested by local user"} {
		if !strings.Contains(strings.Join(got, "\n"), want) {
			t.Errorf("no audit event %q among %q", want, got)
		}
	}
}

// TestDashboardRefusesForeignRequests: no session, another Host (DNS
// rebinding), a missing CSRF token or another Origin are refused, and
// nothing changes.
func TestDashboardRefusesForeignRequests(t *testing.T) {
	f := newFixture(t)
	ns := f.env.Namespace
	resp, err := http.Get(f.base + "/api/v1/apps")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without a session: %d, want 401", resp.StatusCode)
	}
	resp, err = http.Get(f.base + "/?token=wrong")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong token: %d, want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, f.base+"/api/v1/apps", nil)
	req.Host = "evil.example.com"
	resp, err = f.web.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("Host evil.example.com: %d, want 403", resp.StatusCode)
	}
	for what, h := range map[string]map[string]string{
		"no CSRF token":    {},
		"wrong CSRF token": {"X-Tend-CSRF": "nope"},
		"another origin":   {"X-Tend-CSRF": f.csrf, "Origin": "http://evil.example.com"},
	} {
		if code, body := f.post(t, "/api/v1/apps/"+ns+"/web/suspend", h); code != http.StatusForbidden {
			t.Errorf("%s: %d %s, want 403", what, code, body)
		}
	}
	var a tendv1.App
	if err := f.env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "web"}, &a); err != nil {
		t.Fatal(err)
	}
	if a.Spec.Suspend {
		t.Error("a refused request suspended the App")
	}
	if _, err := dashboard.ListenLocal(context.Background(), f.env.Config, controller.Scheme(), dashboard.LocalOptions{Addr: "0.0.0.0:0"}); err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Errorf("listening on 0.0.0.0: %v", err)
	}
}

// TestDashboardNamespaceLimitedCredentials: credentials that may read
// tend's objects in one namespace only are told which permissions they
// lack and to pass --namespace; with it, the dashboard shows that
// namespace.
func TestDashboardNamespaceLimitedCredentials(t *testing.T) {
	f := newFixture(t)
	ns := f.env.Namespace
	ctx := context.Background()
	rbac := f.env.Clientset.RbacV1()
	if _, err := f.env.Clientset.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "viewer"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "dashboard-viewer"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"tend.dev"}, Resources: []string{"apps", "sources", "appsets", "notifiers", "clusters"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"list"}},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "dashboard-viewer"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "dashboard-viewer"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "viewer", Namespace: ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(f.env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":viewer"}

	_, err := dashboard.ListenLocal(ctx, cfg, controller.Scheme(), dashboard.LocalOptions{Addr: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), "may not list apps.tend.dev in all namespaces") || !strings.Contains(err.Error(), "--namespace") {
		t.Fatalf("namespace-limited credentials for all namespaces: %v, want the missing permission and --namespace", err)
	}
	var l *dashboard.Local
	testenv.Eventually(t, "the viewer's Role in effect", 30*time.Second, func() bool {
		l, err = dashboard.ListenLocal(ctx, cfg, controller.Scheme(), dashboard.LocalOptions{Addr: "127.0.0.1:0", Namespaces: []string{ns}})
		return err == nil
	})
	sctx, cancel := context.WithCancel(ctx)
	ready, done := make(chan error, 1), make(chan error, 1)
	go func() { done <- l.Serve(sctx, func(err error) { ready <- err }) }()
	defer func() { cancel(); <-done }()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	web := &http.Client{Jar: jar}
	resp, err := web.Get(l.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = web.Get("http://" + l.Listener.Addr().String() + "/api/v1/apps")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Total      int
		Namespaces []string
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("list: %s %v", resp.Status, err)
	}
	if list.Total != 4 || len(list.Namespaces) != 1 || list.Namespaces[0] != ns {
		t.Errorf("the viewer's dashboard lists %d Apps in %v, want the 4 of %s", list.Total, list.Namespaces, ns)
	}
	// A Role written before Stages existed: the rest opens, the Stages
	// page says what the credentials lack.
	resp, err = web.Get("http://" + l.Listener.Addr().String() + "/api/v1/stages")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "may not list stages.tend.dev in namespace "+ns) {
		t.Errorf("Stages without the right to read them: %s %s", resp.Status, body)
	}
}
