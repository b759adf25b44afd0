package testenv

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
)

// APIProxy is a reverse proxy in front of a test cluster's apiserver. It
// holds the cluster's credentials, so a client of the proxy with none (its
// Config, its kubeconfig) acts as the test's own identity, and a test sees
// or changes every request on the way: counts reads, answers some itself
// as a failing apiserver would.
type APIProxy struct {
	srv *httptest.Server
}

// ProxyOptions choose what an APIProxy does besides passing requests on.
type ProxyOptions struct {
	// Handle, when set, sees each request first: it answers it itself or
	// passes it on with next.ServeHTTP.
	Handle func(w http.ResponseWriter, r *http.Request, next http.Handler)
	// Response, when set, sees each answer of the apiserver.
	Response func(*http.Response) error
}

// NewAPIProxy starts a proxy in front of cfg's apiserver, stopped when t
// ends. Watches stream through it.
func NewAPIProxy(t testing.TB, cfg *rest.Config, opts ProxyOptions) *APIProxy {
	t.Helper()
	target, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite:        func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport:      transport,
		FlushInterval:  -1, // watches stream
		ModifyResponse: opts.Response,
	}
	var h http.Handler = rp
	if opts.Handle != nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { opts.Handle(w, r, rp) })
	}
	p := &APIProxy{srv: httptest.NewServer(h)}
	t.Cleanup(p.srv.Close)
	return p
}

// URL is the proxy's address.
func (p *APIProxy) URL() string { return p.srv.URL }

// Config reaches the apiserver through the proxy.
func (p *APIProxy) Config() *rest.Config { return &rest.Config{Host: p.srv.URL} }

// Kubeconfig is a kubeconfig reaching the apiserver through the proxy.
func (p *APIProxy) Kubeconfig() string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: proxy
  cluster: {server: %q}
users:
- name: proxy
  user: {}
contexts:
- name: proxy
  context: {cluster: proxy, user: proxy}
current-context: proxy
`, p.srv.URL)
}

// KubeconfigFile writes Kubeconfig to a file of t's and returns its path.
func (p *APIProxy) KubeconfigFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(p.Kubeconfig()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// SecretRead returns the Secret a GET reads alone: a GET of it, or a list
// or watch of its namespace's Secrets selecting it by name (how tend reads
// the Secrets it references, one watch each).
func SecretRead(r *http.Request) (namespace, name string, ok bool) {
	if r.Method != http.MethodGet {
		return "", "", false
	}
	// /api/v1/namespaces/NS/secrets/NAME, or
	// /api/v1/namespaces/NS/secrets?fieldSelector=metadata.name%3DNAME
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 5 || len(parts) > 6 || parts[0] != "api" || parts[2] != "namespaces" || parts[4] != "secrets" {
		return "", "", false
	}
	if len(parts) == 6 {
		return parts[3], parts[5], true
	}
	name, ok = strings.CutPrefix(r.URL.Query().Get("fieldSelector"), "metadata.name=")
	return parts[3], name, ok
}
