package example_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/install"
	"github.com/tend-gitops/tend/internal/testenv/platform"
	"github.com/tend-gitops/tend/internal/webhook"
)

var httpRoutes = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}

// env is the platform test's environment (the cluster, the controller in
// this process, clients) with the controller's push receiver and this
// example's checks.
type env struct {
	*platform.Env
	c   client.Client
	dyn dynamic.Interface
	// hooks serves the push receiver the way `tend controller` serves it
	// on --webhook-addr.
	hooks *httptest.Server
}

func setup(t *testing.T) *env {
	t.Helper()
	// tend never prunes its own install (apps/tend/base), so its one
	// cluster-scoped object is left when the Apps are gone: delete it
	// then, as you would by hand. (Registered first, so it runs after the
	// harness deleted the Apps: App tend would re-create it before.)
	var e *env
	t.Cleanup(func() {
		if e == nil {
			return
		}
		crb := install.ClusterName(e.Namespace) + "-cluster-admin"
		if err := e.Clientset.RbacV1().ClusterRoleBindings().Delete(context.Background(), crb, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete ClusterRoleBinding %s: %v", crb, err)
		}
	})
	// The receiver as internal/cli/controller.go wires it: the manager's
	// client, its API reader for the token Secret (tend-webhook in tend's
	// namespace, here the test's), mounted at /hooks/.
	mux := http.NewServeMux()
	pe := platform.Start(t, platform.Options{
		// The root App only: deleting it prunes the AppSet (and with it
		// the Apps it generated) and the App gateway-api.
		Apps: []string{"platform"},
		CRDs: exampleCRDs,
		Controller: func(o *controller.Options) {
			o.Extra = func(_ context.Context, mgr manager.Manager, _ *controller.Controller) error {
				mux.Handle("/hooks/", &webhook.Receiver{
					Client: mgr.GetClient(), SecretReader: mgr.GetAPIReader(),
					SecretNamespace: o.Namespaces[0], SecretName: "tend-webhook",
					Log: o.Log.With("component", "webhook"),
				})
				return nil
			}
		},
	})
	e = &env{Env: pe, c: pe.Client, dyn: pe.Dynamic, hooks: httptest.NewServer(mux)}
	t.Cleanup(e.hooks.Close)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, name := range apps[1:] {
			var a tendv1.App
			if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: e.Namespace, Name: name}, &a); err == nil {
				b, _ := yaml.Marshal(a.Status)
				t.Logf("App %s status:\n%s", name, b)
			}
		}
	})
	return e
}

// applyRoot applies root.yaml as the README says, as field manager tend.
func (e *env) applyRoot(t *testing.T, root string) {
	t.Helper()
	for _, doc := range strings.Split(root, "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("root.yaml: %v", err)
		}
		gvr := tendv1.GroupVersion.WithResource(strings.ToLower(u.GetKind()) + "s")
		if _, err := e.dyn.Resource(gvr).Namespace(u.GetNamespace()).Apply(context.Background(), u.GetName(), u, metav1.ApplyOptions{FieldManager: "tend", Force: true}); err != nil {
			t.Fatalf("apply %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
}

// testInstall is tend's install for the test's namespace, as apps/tend/base
// holds it for tend-system, without the Namespace and the CRDs: the
// namespace is the test's, and tend's CRDs are shared by every test on the
// cluster (testenv.InstallCRDs). An App applying them would adopt them
// (tend.dev/owner), and the next test's App would be refused them.
func testInstall(t *testing.T, namespace string) string {
	t.Helper()
	objs, err := install.Manifests(install.Options{Namespace: namespace, ClusterAdmin: true})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, o := range objs {
		if k := o.GetKind(); k == "Namespace" || k == "CustomResourceDefinition" {
			continue
		}
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.String()
}

func (e *env) create(t *testing.T, o client.Object) {
	t.Helper()
	o.SetNamespace(e.Namespace)
	e.Create(t, o)
}

func (e *env) get(t *testing.T, o client.Object, name string) {
	t.Helper()
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: e.Namespace, Name: name}, o); err != nil {
		t.Fatalf("get %T %s: %v", o, name, err)
	}
}

// waitAppsAt waits until every App has synced rev and is Healthy.
func (e *env) waitAppsAt(t *testing.T, rev string) {
	t.Helper()
	for _, name := range apps {
		e.WaitApp(t, name, "Synced and Healthy at "+rev[:8], func(a *tendv1.App) bool {
			return a.Status.Revision == rev && platform.Healthy(a)
		})
	}
}

func (e *env) source(t *testing.T) *tendv1.Source {
	t.Helper()
	var s tendv1.Source
	e.get(t, &s, "platform")
	return &s
}

// pushGitLab posts what GitLab posts after a push of after (on top of
// before) to main, with token as the webhook's secret token.
func (e *env) pushGitLab(t *testing.T, repoURL, before, after, subject, token string) (int, webhook.Response) {
	t.Helper()
	web := strings.TrimSuffix(repoURL, ".git")
	ssh := "git@gitlab.k8s-235.example.org:ops/k8s-235.git"
	body, err := json.Marshal(map[string]any{
		"object_kind": "push", "event_name": "push",
		"before": before, "after": after, "ref": "refs/heads/main", "ref_protected": true,
		"checkout_sha": after, "user_id": 7, "user_name": "Tristan", "user_username": "tristan",
		"project_id": 42,
		"project": map[string]any{
			"id": 42, "name": "k8s-235", "namespace": "ops", "path_with_namespace": "ops/k8s-235",
			"web_url": web, "git_http_url": repoURL, "git_ssh_url": ssh, "default_branch": "main", "visibility_level": 0,
		},
		"commits": []map[string]any{{
			"id": after, "message": subject + "\n", "title": subject,
			"timestamp": time.Now().UTC().Format(time.RFC3339), "url": web + "/-/commit/" + after,
			"author": map[string]any{"name": "Tristan", "email": "tristan@k8s-235.example.org"},
			"added":  []string{}, "modified": []string{"apps/miniflux/overlays/prod/kustomization.yaml"}, "removed": []string{},
		}},
		"total_commits_count": 1,
		"repository": map[string]any{
			"name": "k8s-235", "url": ssh, "homepage": web, "git_http_url": repoURL, "git_ssh_url": ssh, "visibility_level": 0,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, e.hooks.URL+"/hooks/gitlab", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitLab/17.11.0")
	req.Header.Set("X-Gitlab-Event", "Push Hook")
	req.Header.Set("X-Gitlab-Event-UUID", "8d0b5a3e-5a7c-4b5e-9c1e-"+after[:12])
	req.Header.Set("X-Gitlab-Instance", "https://gitlab.k8s-235.example.org")
	req.Header.Set("X-Gitlab-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post push event: %v", err)
	}
	defer resp.Body.Close()
	var r webhook.Response
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("webhook answer (HTTP %d): %v", resp.StatusCode, err)
	}
	return resp.StatusCode, r
}

// gateway plays Traefik's Gateway API controller: it accepts every
// HTTPRoute in the namespace for each of its parents, for the route's
// current generation, or refuses the routes in refused.
type gateway struct {
	e       *env
	mu      sync.Mutex
	refused map[string]string // route name -> the gateway's message
}

func (e *env) playGateway(t *testing.T) *gateway {
	g := &gateway{e: e, refused: map[string]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			g.reconcile(ctx)
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return g
}

// refuse makes the gateway refuse the route with msg, or accept it again
// when msg is "".
func (g *gateway) refuse(name, msg string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if msg == "" {
		delete(g.refused, name)
	} else {
		g.refused[name] = msg
	}
}

func (g *gateway) reconcile(ctx context.Context) {
	routes := g.e.dyn.Resource(httpRoutes).Namespace(g.e.Namespace)
	list, err := routes.List(ctx, metav1.ListOptions{})
	if err != nil {
		return // the CRD is not there (yet, or any more)
	}
	for i := range list.Items {
		r := &list.Items[i]
		g.mu.Lock()
		msg, refused := g.refused[r.GetName()]
		g.mu.Unlock()
		condition := func(typ, status, reason, msg string) map[string]any {
			return map[string]any{"type": typ, "status": status, "reason": reason, "message": msg,
				"observedGeneration": r.GetGeneration(), "lastTransitionTime": "2026-01-01T00:00:00Z"}
		}
		accepted := condition("Accepted", "True", "Accepted", "")
		if refused {
			accepted = condition("Accepted", "False", "NotAllowedByListeners", msg)
		}
		parentRefs, _, _ := unstructured.NestedSlice(r.Object, "spec", "parentRefs")
		var parents []any
		for _, p := range parentRefs {
			parents = append(parents, map[string]any{
				"parentRef": p, "controllerName": "traefik.io/gateway-controller",
				"conditions": []any{accepted, condition("ResolvedRefs", "True", "ResolvedRefs", "")},
			})
		}
		want := map[string]any{"parents": parents}
		if have, _, _ := unstructured.NestedMap(r.Object, "status"); equalJSON(have, want) {
			continue
		}
		r.Object["status"] = want
		_, _ = routes.UpdateStatus(ctx, r, metav1.UpdateOptions{FieldManager: "traefik"})
	}
}

func equalJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
