package cli

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/refwatch"
	"github.com/tend-gitops/tend/internal/testenv"
	"github.com/tend-gitops/tend/internal/webhook"
)

// A Flux Receiver keeps working once tend has taken over: GitHub's push,
// sent to the path Flux gave the Receiver (/hook/<sha256 of token, name
// and namespace>) and signed with its token, makes tend fetch the
// GitRepository at once (its interval is an hour) and apply the commit; a
// wrong signature is refused, a ping answered, an unknown path is 404.
func TestCompatFluxReceiver(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	dyn := installCompat(t, cl)
	receivers := schema.GroupVersionResource{Group: "notification.toolkit.fluxcd.io", Version: "v1", Resource: "receivers"}
	repo := testenv.NewGitRepo(t, nil)
	repo.Commit("v1", map[string]string{"apps/cm.yaml": configMapYAML("shop", "1")})
	const token = "s3cret-receiver-token"
	if _, err := cl.Clientset.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "webhook-token"}, StringData: map[string]string{"token": token},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createYAML(t, dyn, fluxGitRepos, fmt.Sprintf(`apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: fleet, namespace: %s}
spec: {interval: 1h, url: %s, ref: {branch: main}}
`, ns, repo.URL))
	createYAML(t, dyn, fluxKustomization, fmt.Sprintf(`apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: apps, namespace: %s}
spec: {interval: 1h, path: ./apps, prune: true, sourceRef: {kind: GitRepository, name: fleet}}
`, ns))
	createYAML(t, dyn, receivers, fmt.Sprintf(`apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {name: github, namespace: %s}
spec:
  type: github
  events: [push]
  secretRef: {name: webhook-token}
  resources: [{kind: GitRepository, name: fleet}]
`, ns))
	// A generic Receiver whose Secret has no token has no path: anyone
	// could compute sha256 of its name and namespace alone.
	if _, err := cl.Clientset.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "no-token"}, StringData: map[string]string{"other": "x"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createYAML(t, dyn, receivers, fmt.Sprintf(`apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {name: open, namespace: %s}
spec:
  type: generic
  secretRef: {name: no-token}
  resources: [{kind: GitRepository, name: fleet}]
`, ns))
	cl.startControllerWith(t, func(o *controller.Options) { o.Compat = []string{"flux"} })
	eventually(t, "the first commit applied", 2*time.Minute, func() bool { return configMapData(cl, ns, "shop", "value") == "1" })

	secrets := newRefWatcher(t, cl)
	srv := httptest.NewServer(&webhook.FluxReceivers{Client: cl.c, Secrets: secrets, Namespaces: []string{ns}})
	defer srv.Close()
	sum := sha256.Sum256([]byte(token + "github" + ns))
	path := "/hook/" + hex.EncodeToString(sum[:])
	post := func(path, event, signWith string) (int, webhook.FluxResponse) {
		t.Helper()
		body := []byte(`{"ref":"refs/heads/main"}`)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", event)
		m := hmac.New(sha256.New, []byte(signWith))
		m.Write(body)
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out webhook.FluxResponse
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}

	if code, out := post(path, "push", "wrong-token"); code != http.StatusUnauthorized || !strings.Contains(out.Message, "X-Hub-Signature-256") {
		t.Errorf("wrong signature: %d %+v, want 401 naming the header", code, out)
	}
	if code, _ := post("/hook/"+strings.Repeat("0", 64), "push", token); code != http.StatusNotFound {
		t.Errorf("unknown path: %d, want 404", code)
	}
	open := sha256.Sum256([]byte("open" + ns))
	if code, _ := post("/hook/"+hex.EncodeToString(open[:]), "push", ""); code != http.StatusNotFound {
		t.Errorf("the path of a Receiver without a token: %d, want 404", code)
	}
	if code, out := post(path, "ping", token); code != http.StatusOK || !strings.Contains(out.Message, "pong") {
		t.Errorf("ping: %d %+v, want 200 pong", code, out)
	}
	if got := annotation(t, dyn, fluxGitRepos, ns, "fleet", webhook.FluxRequestedAt); got != "" {
		t.Errorf("the GitRepository was asked to reconcile (%q) by a refused or ping delivery", got)
	}

	repo.Commit("v2", map[string]string{"apps/cm.yaml": configMapYAML("shop", "2")})
	code, out := post(path, "push", token)
	if code != http.StatusOK || len(out.Resources) != 1 || out.Resources[0] != "GitRepository/"+ns+"/fleet" {
		t.Fatalf("push: %d %+v, want 200 naming GitRepository %s/fleet", code, out, ns)
	}
	eventually(t, "the pushed commit applied at once (the interval is an hour)", time.Minute, func() bool {
		return configMapData(cl, ns, "shop", "value") == "2"
	})

	// The token Secrets were read from one watch each, started at the
	// first delivery: more deliveries read them from memory.
	before := secrets.Stats()
	for range 20 {
		post("/hook/"+strings.Repeat("1", 64), "push", token)
	}
	after := secrets.Stats()
	if before.Watches != 2 || after.Started != before.Started || after.Reads < before.Reads+20 {
		t.Errorf("token Secret watches before and after 20 deliveries: %+v, %+v; want the 2 Secrets watched, no watch started, every read from memory", before, after)
	}

	// A rotated token applies as soon as its Secret's watch sees it: the
	// new path is served and the old one is gone.
	sec, err := cl.Clientset.CoreV1().Secrets(ns).Get(ctx, "webhook-token", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const rotated = "rotated-token"
	sec.Data["token"] = []byte(rotated)
	if _, err := cl.Clientset.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	newSum := sha256.Sum256([]byte(rotated + "github" + ns))
	newPath := "/hook/" + hex.EncodeToString(newSum[:])
	eventually(t, "the rotated token's path served", time.Minute, func() bool {
		code, _ := post(newPath, "ping", rotated)
		return code == http.StatusOK
	})
	if code, _ := post(path, "ping", token); code != http.StatusNotFound {
		t.Errorf("the old token's path after the rotation: %d, want 404", code)
	}
}

func annotation(t *testing.T, dyn dynamic.Interface, gvr schema.GroupVersionResource, ns, name, key string) string {
	t.Helper()
	u, err := dyn.Resource(gvr).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return u.GetAnnotations()[key]
}

// A Flux Receiver gets the status notification-controller gave it, so
// that `flux get receivers` works: Ready with the path it is served at
// (status.webhookPath, the sha256 of token, name and namespace), False
// with TokenNotFound until its Secret exists, ValidationFailed for a CEL
// filter that does not compile, Unsupported naming a type tend does not
// serve. Its CEL filters choose what a delivery annotates: resourceFilter
// over the resource (res), a resource's filter over the body (req).
func TestCompatFluxReceiverStatusAndFilters(t *testing.T) {
	cl := newCluster(t)
	ns := cl.Namespace
	ctx := context.Background()
	dyn := installCompat(t, cl)
	receivers := schema.GroupVersionResource{Group: "notification.toolkit.fluxcd.io", Version: "v1", Resource: "receivers"}
	repo := testenv.NewGitRepo(t, nil)
	repo.Commit("v1", map[string]string{"apps/cm.yaml": configMapYAML("shop", "1")})
	const token = "receiver-token"
	secret := func(name string) {
		t.Helper()
		if _, err := cl.Clientset.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name}, StringData: map[string]string{"token": token},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	secret("webhook-token")
	for _, name := range []string{"fleet", "staging"} {
		createYAML(t, dyn, fluxGitRepos, fmt.Sprintf(`apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: %s, namespace: %s, labels: {app: shop}}
spec: {interval: 1h, url: %s, ref: {branch: main}}
`, name, ns, repo.URL))
	}
	createYAML(t, dyn, receivers, fmt.Sprintf(`apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {name: push, namespace: %s}
spec:
  type: generic
  secretRef: {name: webhook-token}
  resources: [{kind: GitRepository, name: "*", matchLabels: {app: shop}, filter: "req.ref == 'refs/heads/main'"}]
  resourceFilter: "res.metadata.name != 'staging'"
`, ns))
	createYAML(t, dyn, receivers, fmt.Sprintf(`apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {name: later, namespace: %s}
spec:
  type: github
  secretRef: {name: later-token}
  resources: [{kind: GitRepository, name: fleet}]
`, ns))
	createYAML(t, dyn, receivers, fmt.Sprintf(`apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {name: bad-filter, namespace: %s}
spec:
  type: generic
  secretRef: {name: webhook-token}
  resources: [{kind: GitRepository, name: fleet}]
  resourceFilter: "res.metadata.name +"
`, ns))
	createYAML(t, dyn, receivers, fmt.Sprintf(`apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {name: registry, namespace: %s}
spec:
  type: harbor
  secretRef: {name: webhook-token}
  resources: [{kind: GitRepository, name: fleet}]
`, ns))
	cl.startControllerWith(t, func(o *controller.Options) {
		o.Compat = []string{"flux"}
		o.Extra = func(_ context.Context, mgr manager.Manager, _ *controller.Controller) error {
			return setupFluxReceiverStatus(mgr, *o)
		}
	})
	ready := func(name string) (status, reason, message string) {
		u, err := dyn.Resource(receivers).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return "", "", ""
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Ready" {
				status, _ = m["status"].(string)
				reason, _ = m["reason"].(string)
				message, _ = m["message"].(string)
			}
		}
		return status, reason, message
	}
	path := func(name string) string {
		sum := sha256.Sum256([]byte(token + name + ns))
		return "/hook/" + hex.EncodeToString(sum[:])
	}
	eventually(t, "Receiver push Ready with its path", time.Minute, func() bool {
		s, r, m := ready("push")
		return s == "True" && r == "Succeeded" && m == "Receiver initialized for path: "+path("push") &&
			getStatus(dyn, receivers, ns, "push", "webhookPath") == path("push") &&
			observedGeneration(dyn, receivers, ns, "push") == 1
	})
	for _, tc := range []struct{ name, reason, message string }{
		{"later", "TokenNotFound", "Secret " + ns + "/later-token (spec.secretRef) not found"},
		{"bad-filter", "ValidationFailed", "spec.resourceFilter"},
		{"registry", "Unsupported", "spec.type harbor is not supported"},
	} {
		eventually(t, "Receiver "+tc.name+" not Ready: "+tc.reason, time.Minute, func() bool {
			s, r, m := ready(tc.name)
			return s == "False" && r == tc.reason && strings.Contains(m, tc.message)
		})
	}
	if p := getStatus(dyn, receivers, ns, "later", "webhookPath"); p != "" {
		t.Errorf("Receiver later has path %q without its token", p)
	}

	// The Secret created, `flux reconcile receiver` finds it at once.
	secret("later-token")
	if _, err := dyn.Resource(receivers).Namespace(ns).Patch(ctx, "later", types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"reconcile.fluxcd.io/requestedAt":"now"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Receiver later Ready once its Secret exists", time.Minute, func() bool {
		s, _, _ := ready("later")
		return s == "True" && getStatus(dyn, receivers, ns, "later", "webhookPath") == path("later") &&
			getStatus(dyn, receivers, ns, "later", "lastHandledReconcileAt") == "now"
	})

	srv := httptest.NewServer(&webhook.FluxReceivers{Client: cl.c, Secrets: newRefWatcher(t, cl), Namespaces: []string{ns}})
	defer srv.Close()
	post := func(path, body string) (int, webhook.FluxResponse) {
		t.Helper()
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out webhook.FluxResponse
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	// A push to another branch: the resource's filter is false for both.
	if code, out := post(path("push"), `{"ref":"refs/heads/dev"}`); code != http.StatusOK || len(out.Resources) != 0 {
		t.Errorf("push to dev: %d %+v, want 200 annotating nothing", code, out)
	}
	// To main: staging, which resourceFilter leaves out, is not annotated.
	code, out := post(path("push"), `{"ref":"refs/heads/main"}`)
	if code != http.StatusOK || strings.Join(out.Resources, ",") != "GitRepository/"+ns+"/fleet" || !strings.Contains(out.Message, "1 left out by the CEL filters") {
		t.Errorf("push to main: %d %+v, want 200 annotating only GitRepository %s/fleet", code, out, ns)
	}
	if got := annotation(t, dyn, fluxGitRepos, ns, "staging", webhook.FluxRequestedAt); got != "" {
		t.Errorf("GitRepository staging was annotated (%q); resourceFilter leaves it out", got)
	}
	if got := annotation(t, dyn, fluxGitRepos, ns, "fleet", webhook.FluxRequestedAt); got == "" {
		t.Errorf("GitRepository fleet was not annotated")
	}
	if code, out := post(path("bad-filter"), `{}`); code != http.StatusBadRequest || !strings.Contains(out.Message, "spec.resourceFilter") {
		t.Errorf("a Receiver whose filter does not compile: %d %+v, want 400 naming spec.resourceFilter", code, out)
	}
}

// observedGeneration is status.observedGeneration of an object, -1 when
// unset.
func observedGeneration(dyn dynamic.Interface, gvr schema.GroupVersionResource, ns, name string) int64 {
	u, err := dyn.Resource(gvr).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return -1
	}
	g, ok, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	if !ok {
		return -1
	}
	return g
}

// newRefWatcher returns a refwatch.Watcher on cl, stopped when t ends.
func newRefWatcher(t *testing.T, cl *testCluster) *refwatch.Watcher {
	t.Helper()
	w, err := refwatch.New(refwatch.Options{Config: cl.Env.Config})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w
}
