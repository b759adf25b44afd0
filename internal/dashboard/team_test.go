package dashboard_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/dashboard"
	"github.com/tend-gitops/tend/internal/dashboard/auth"
	"github.com/tend-gitops/tend/internal/testenv"
)

// team is the controller's dashboard over two namespaces of the local
// control plane, its Secret and policy in the first.
type team struct {
	env    *testenv.Env
	other  string // the second namespace
	url    string
	secret string
}

// startTeam serves a Team for the namespaces of env and other, with the
// Secret and ConfigMap name and the issuer (nil: none) given.
func startTeam(t *testing.T, env *testenv.Env, other, name string, is *mockoidc.MockOIDC) *team {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	c, err := cache.New(env.Config, cache.Options{Scheme: controller.Scheme(), DefaultNamespaces: map[string]cache.Config{env.Namespace: {}, other: {}}})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(env.Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	topts := dashboard.TeamOptions{Namespace: env.Namespace, Name: name, URL: base}
	if is != nil {
		topts.Issuer, topts.ClientID = is.Issuer(), is.ClientID
	}
	d, err := dashboard.NewTeam(dashboard.Options{Cache: c, Client: cl, Kube: env.Clientset, Dynamic: dyn}, topts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- c.Start(ctx) }()
	go func() { done <- d.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
		<-done
	})
	return &team{env: env, other: other, url: base, secret: name}
}

// browser is a web client with its own cookies; it follows redirects.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
}

func (tm *team) browser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, base: tm.url, c: &http.Client{Jar: jar}}
}

// do sends a request; body nil for none. It returns the status, the final
// path (after redirects) and the body.
func (b *browser) do(method, path string, header http.Header, body string) (int, string, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Request.URL.Path, string(out)
}

var csrfMeta = regexp.MustCompile(`<meta name="tend-csrf" content="([^"]+)">`)

// signIn opens the dashboard, which sends the browser through the issuer
// (mockoidc signs in the user queued there) and back to the page; it
// keeps the page's CSRF token.
func (b *browser) signIn() {
	b.t.Helper()
	code, path, body := b.do(http.MethodGet, "/", nil, "")
	m := csrfMeta.FindStringSubmatch(body)
	if code != http.StatusOK || path != "/" || m == nil {
		b.t.Fatalf("sign-in ended at %s with %d: %.300s", path, code, body)
	}
	b.csrf = m[1]
}

// api GETs path into out and returns the status.
func (b *browser) api(path string, out any) int {
	b.t.Helper()
	code, _, body := b.do(http.MethodGet, path, nil, "")
	if code == http.StatusOK && out != nil {
		if err := json.Unmarshal([]byte(body), out); err != nil {
			b.t.Fatalf("GET %s: %v in %.300s", path, err, body)
		}
	}
	return code
}

// action POSTs an App action the way the page does (same origin, CSRF
// header); csrf false leaves the token out.
func (b *browser) action(ns, name, action string, csrf bool) (int, string) {
	b.t.Helper()
	h := http.Header{"Origin": {b.base}}
	if csrf {
		h.Set(auth.CSRFHeader, b.csrf)
	}
	code, _, body := b.do(http.MethodPost, "/api/v1/apps/"+ns+"/"+name+"/"+action, h, "")
	return code, body
}

func appNames(l appList) []string {
	var out []string
	for _, i := range l.Items {
		out = append(out, i.Namespace+"/"+i.Name)
	}
	return out
}

// teamEnv is a test namespace with tend's CRDs and a client that knows
// them.
func teamEnv(t *testing.T) *testenv.Env {
	t.Helper()
	env := testenv.New(t)
	testenv.InstallCRDs(t, env.Config)
	cl, err := client.New(env.Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	env.Client = cl
	return env
}

func newApp(t *testing.T, env *testenv.Env, ns, name string) {
	t.Helper()
	create(t, env, &tendv1.App{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: tendv1.AppSpec{
		SourceRef: tendv1.NamespacedObjectReference{Name: "platform"}, Path: "apps/" + name,
	}})
}

func setPolicy(t *testing.T, env *testenv.Env, name, policy string) {
	t.Helper()
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: env.Namespace}, Data: map[string]string{auth.PolicyKey: policy}}
	_, err := env.Clientset.CoreV1().ConfigMaps(env.Namespace).Update(ctx, cm, metav1.UpdateOptions{})
	if err != nil {
		_, err = env.Clientset.CoreV1().ConfigMaps(env.Namespace).Create(ctx, cm, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestTeamDashboardRoles: the controller's dashboard signs users in with
// OIDC (mockoidc on loopback, speaking the real protocol) and gives them
// what the policy ConfigMap grants their groups, namespace by namespace:
// a viewer sees only its namespace and may not act; an operator syncs,
// and the action is recorded with the user's name; a bad policy edit is
// refused with an event and the grants before it stay. The session key is
// written into the Secret next to the OIDC client secret already there.
func TestTeamDashboardRoles(t *testing.T) {
	env := teamEnv(t)
	other := testenv.New(t).Namespace
	ctx := context.Background()
	newApp(t, env, env.Namespace, "web")
	newApp(t, env, env.Namespace, "db")
	newApp(t, env, other, "billing")

	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	const name = dashboard.DefaultTeamName
	create(t, env, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: env.Namespace},
		Data: map[string][]byte{dashboard.SecretOIDCClientSecret: []byte(m.ClientSecret)}})
	setPolicy(t, env, name, "- groups: [dev]\n  role: operator\n  namespaces: ["+env.Namespace+"]\n- groups: [\"*\"]\n  role: viewer\n  namespaces: ["+env.Namespace+"]\n")
	tm := startTeam(t, env, other, name, m)

	testenv.Eventually(t, "a session key in the Secret, next to the client secret", 30*time.Second, func() bool {
		s, err := env.Clientset.CoreV1().Secrets(env.Namespace).Get(ctx, name, metav1.GetOptions{})
		return err == nil && len(s.Data[dashboard.SecretSessionKey]) == 32 && string(s.Data[dashboard.SecretOIDCClientSecret]) == m.ClientSecret
	})
	// Sign-in is ready once /auth/login sends browsers to the issuer.
	probe := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	testenv.Eventually(t, "sign-in through the issuer", 30*time.Second, func() bool {
		resp, err := probe.Get(tm.url + "/auth/login")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusFound && strings.HasPrefix(resp.Header.Get("Location"), m.Issuer())
	})
	viewer := tm.browser(t)
	m.QueueUser(&mockoidc.MockUser{Subject: "u-vera", Email: "vera@example.com", EmailVerified: true, PreferredUsername: "vera", Groups: []string{"qa"}})
	viewer.signIn()

	var me map[string]any
	if code := viewer.api("/api/v1/me", &me); code != http.StatusOK || me["name"] != "vera" || me["local"] != false {
		t.Fatalf("me: %d %v, want vera signed in", code, me)
	}
	var list appList
	testenv.Eventually(t, "the viewer's App list", 30*time.Second, func() bool {
		return viewer.api("/api/v1/apps", &list) == http.StatusOK && list.Total == 2
	})
	if got := strings.Join(appNames(list), ","); strings.Contains(got, other) {
		t.Errorf("the viewer sees %s, with no grant in %s", got, other)
	}
	var detail struct {
		CanAct bool `json:"canAct"`
	}
	if code := viewer.api("/api/v1/apps/"+env.Namespace+"/web", &detail); code != http.StatusOK || detail.CanAct {
		t.Errorf("viewer's App page: %d canAct=%v, want 200 and no actions", code, detail.CanAct)
	}
	if code := viewer.api("/api/v1/apps/"+other+"/billing", nil); code != http.StatusForbidden {
		t.Errorf("viewer reading an App of %s: %d, want 403", other, code)
	}
	if code, body := viewer.action(env.Namespace, "web", "sync", true); code != http.StatusForbidden || !strings.Contains(body, "operator") {
		t.Errorf("viewer's sync: %d %s, want 403 naming the operator role", code, body)
	}

	operator := tm.browser(t)
	m.QueueUser(&mockoidc.MockUser{Subject: "u-otto", Email: "otto@example.com", EmailVerified: true, PreferredUsername: "otto", Groups: []string{"dev"}})
	operator.signIn()
	if code, _ := operator.action(env.Namespace, "web", "sync", false); code != http.StatusForbidden {
		t.Errorf("sync without the CSRF token: %d, want 403", code)
	}
	if code, body := operator.action(other, "billing", "sync", true); code != http.StatusForbidden {
		t.Errorf("operator's sync in %s: %d %s, want 403", other, code, body)
	}
	var a tendv1.App
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: env.Namespace, Name: "web"}, &a); err != nil {
		t.Fatal(err)
	}
	if len(a.Annotations) != 0 {
		t.Fatalf("refused requests changed the App: annotations %v", a.Annotations)
	}
	if code, body := operator.action(env.Namespace, "web", "sync", true); code != http.StatusAccepted {
		t.Fatalf("operator's sync: %d %s, want 202", code, body)
	}
	testenv.Eventually(t, "the sync recorded on the App with the user's name", 30*time.Second, func() bool {
		evs, err := env.Clientset.CoreV1().Events(env.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=web"})
		if err != nil {
			return false
		}
		for _, e := range evs.Items {
			if e.Reason == "DashboardAction" && strings.Contains(e.Message, "sync requested by otto <otto@example.com>") {
				return true
			}
		}
		return false
	})
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: env.Namespace, Name: "web"}, &a); err != nil {
		t.Fatal(err)
	}
	if len(a.Annotations) == 0 {
		t.Error("the operator's sync left no request on the App")
	}

	// Approving freight for a Stage: an operator's action too.
	wh := &tendv1.Warehouse{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: env.Namespace}, Spec: tendv1.WarehouseSpec{
		Subscriptions: []tendv1.Subscription{{Image: &tendv1.ImageSubscription{Repository: "registry.example.com/team/web"}}},
	}}
	create(t, env, wh)
	wh.Status.Freight = []tendv1.Freight{{Name: "bbbbbbbbbbbb", DiscoveredAt: metav1.Now(), Images: []tendv1.FreightImage{{Repository: "registry.example.com/team/web", Tag: "1.1.0", Digest: "sha256:00"}}}}
	if err := env.Client.Status().Update(ctx, wh); err != nil {
		t.Fatal(err)
	}
	create(t, env, &tendv1.Stage{ObjectMeta: metav1.ObjectMeta{Name: "prod", Namespace: env.Namespace}, Spec: tendv1.StageSpec{
		Warehouse: tendv1.LocalObjectReference{Name: "web"}, Approval: true,
		Git:     tendv1.StageGit{SourceRef: tendv1.LocalObjectReference{Name: "platform"}},
		Updates: []tendv1.StageUpdate{{Image: "registry.example.com/team/web", Kustomize: &tendv1.KustomizeImageUpdate{Path: "envs/prod"}}},
	}})
	approve := func(b *browser) (int, string) {
		code, _, body := b.do(http.MethodPost, "/api/v1/stages/"+env.Namespace+"/prod/approve", http.Header{"Origin": {b.base}, auth.CSRFHeader: {b.csrf}}, "")
		return code, body
	}
	if code, body := approve(viewer); code != http.StatusForbidden || !strings.Contains(body, "operator") {
		t.Errorf("viewer's approval: %d %s, want 403 naming the operator role", code, body)
	}
	var stages struct{ Items []struct{ Name string } }
	testenv.Eventually(t, "the Stage in the viewer's Stages page", 30*time.Second, func() bool {
		return viewer.api("/api/v1/stages", &stages) == http.StatusOK && len(stages.Items) == 1
	})
	var code int
	var body string
	testenv.Eventually(t, "the operator's approval", 30*time.Second, func() bool {
		code, body = approve(operator)
		return code != http.StatusNotFound // the dashboard's cache has not seen the Stage yet
	})
	var st tendv1.Stage
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: env.Namespace, Name: "prod"}, &st); err != nil {
		t.Fatal(err)
	}
	if code != http.StatusAccepted || st.Annotations[tendv1.AnnotationApprovedFreight] != "bbbbbbbbbbbb" || st.Annotations[tendv1.AnnotationApprovedBy] != "otto <otto@example.com>" {
		t.Errorf("operator's approval: %d %s; annotations %v", code, body, st.Annotations)
	}

	// A broken policy edit: refused with an event, the grants stay.
	setPolicy(t, env, name, "- groups: [dev]\n  role: operater\n")
	testenv.Eventually(t, "a PolicyRefused event on the ConfigMap", 30*time.Second, func() bool {
		evs, err := env.Clientset.CoreV1().Events(env.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=ConfigMap,involvedObject.name=" + name})
		return err == nil && len(evs.Items) == 1 && evs.Items[0].Reason == "PolicyRefused" && strings.Contains(evs.Items[0].Message, `role "operater"`)
	})
	if code, body := operator.action(env.Namespace, "web", "sync", true); code != http.StatusAccepted {
		t.Errorf("operator's second sync after a refused policy edit: %d %s, want 202 (the grants before it stay)", code, body)
	}
	// A good edit applies to the next request of every session.
	setPolicy(t, env, name, "- groups: [dev]\n  role: viewer\n")
	testenv.Eventually(t, "the operator demoted to viewer", 30*time.Second, func() bool {
		code, _ := operator.action(env.Namespace, "web", "sync", true)
		return code == http.StatusForbidden
	})
	if code := operator.api("/api/v1/apps/"+other+"/billing", nil); code != http.StatusOK {
		t.Errorf("a grant without namespaces covers %s: got %d, want 200", other, code)
	}
}

// TestTeamDashboardAdminToken: with neither an issuer nor a token nobody
// can sign in, and the page says to run `tend dashboard token`; the token
// it makes signs in as admin (all namespaces, all actions) once the
// dashboard has seen the Secret change, and a wrong one is refused. A new
// token replaces the old.
func TestTeamDashboardAdminToken(t *testing.T) {
	env := teamEnv(t)
	other := testenv.New(t).Namespace
	ctx := context.Background()
	newApp(t, env, other, "billing")
	tm := startTeam(t, env, other, "dash", nil)
	b := tm.browser(t)
	testenv.Eventually(t, "the page saying nobody can sign in", 30*time.Second, func() bool {
		code, _, body := b.do(http.MethodGet, "/", nil, "")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "tend dashboard token -n "+env.Namespace)
	})
	if code := b.api("/api/v1/apps", nil); code != http.StatusServiceUnavailable {
		t.Errorf("API before sign-in is possible: %d, want 503", code)
	}

	first, err := dashboard.AdminTokenPatch(ctx, env.Clientset, env.Namespace, "dash")
	if err != nil {
		t.Fatal(err)
	}
	token, err := dashboard.AdminTokenPatch(ctx, env.Clientset, env.Namespace, "dash")
	if err != nil {
		t.Fatal(err)
	}
	s, err := env.Clientset.CoreV1().Secrets(env.Namespace).Get(ctx, "dash", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range s.Data {
		if strings.Contains(string(v), token) {
			t.Errorf("the Secret's %s holds the token itself", k)
		}
	}
	form := func(tok string) (int, string) {
		h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Origin": {tm.url}}
		code, path, _ := b.do(http.MethodPost, "/auth/token", h, url.Values{"token": {tok}, "next": {"/"}}.Encode())
		return code, path
	}
	testenv.Eventually(t, "the admin token form", 30*time.Second, func() bool {
		code, _, body := b.do(http.MethodGet, "/auth/token", nil, "")
		return code == http.StatusOK && strings.Contains(body, "token")
	})
	if code, _ := form(first); code != http.StatusUnauthorized {
		t.Errorf("the replaced token signs in: %d, want 401", code)
	}
	if code, path := form(token); code != http.StatusOK || path != "/" {
		t.Fatalf("sign-in with the admin token: %d at %s, want the page", code, path)
	}
	var me map[string]any
	if code := b.api("/api/v1/me", &me); code != http.StatusOK || me["admin"] != true {
		t.Fatalf("me: %d %v, want the admin", code, me)
	}
	var list appList
	testenv.Eventually(t, "the admin's App list", 30*time.Second, func() bool {
		return b.api("/api/v1/apps", &list) == http.StatusOK && list.Total == 1
	})
	code, _, page := b.do(http.MethodGet, "/", nil, "")
	m := csrfMeta.FindStringSubmatch(page)
	if code != http.StatusOK || m == nil {
		t.Fatalf("page: %d", code)
	}
	b.csrf = m[1]
	if code, body := b.action(other, "billing", "suspend", true); code != http.StatusAccepted {
		t.Fatalf("admin's suspend: %d %s", code, body)
	}
	var a tendv1.App
	testenv.Eventually(t, "App billing suspended", 30*time.Second, func() bool {
		return env.Client.Get(ctx, client.ObjectKey{Namespace: other, Name: "billing"}, &a) == nil && a.Spec.Suspend
	})

	// Taking the token out of the Secret ends what it allowed.
	patch := []byte(`{"data":{"` + dashboard.SecretAdminTokenHash + `":null}}`)
	if _, err := env.Clientset.CoreV1().Secrets(env.Namespace).Patch(ctx, "dash", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the admin session refused once the token is removed", 30*time.Second, func() bool {
		return b.api("/api/v1/apps", nil) == http.StatusServiceUnavailable
	})
}
