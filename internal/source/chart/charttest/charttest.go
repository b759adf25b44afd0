// Package charttest serves Helm charts to tests: it packages chart
// directories with Helm's own loader and packaging code, and serves the
// archives from a real HTTP chart repository (index.yaml generated with
// Helm's repo index code) and a real OCI registry
// (go-containerregistry's, over plain HTTP or over HTTPS), both on
// loopback, pushing with Helm's registry client. Nothing here is a mock:
// clients talk HTTP to real servers.
package charttest

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	chartloader "helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	helmregistry "helm.sh/helm/v4/pkg/registry"
	repo "helm.sh/helm/v4/pkg/repo/v1"
	"sigs.k8s.io/yaml"
)

// WriteFiles writes files (slash-separated path relative to dir -> content)
// under dir, creating directories as needed.
func WriteFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Package writes a chart directory from files (which must include
// Chart.yaml), loads it with Helm's directory loader and packages it with
// Helm's chartutil.Save, as `helm package` does. It returns the archive's
// path, <name>-<version>.tgz in a temporary directory.
func Package(t testing.TB, files map[string]string) string {
	t.Helper()
	src := t.TempDir()
	WriteFiles(t, src, files)
	c, err := chartloader.Load(src)
	if err != nil {
		t.Fatalf("charttest: load chart: %v", err)
	}
	out, err := chartutil.Save(c, t.TempDir())
	if err != nil {
		t.Fatalf("charttest: package chart: %v", err)
	}
	return out
}

// Repo is an HTTP chart repository on loopback.
type Repo struct {
	// URL is the repository URL (http://127.0.0.1:PORT).
	URL string

	username, password string

	mu       sync.Mutex
	index    *repo.IndexFile
	archives map[string][]byte // by URL path
	hits     map[string]int    // requests by URL path
}

// NewRepo starts an empty chart repository, stopped when the test ends.
// With a username, every request needs basic authentication with username
// and password.
func NewRepo(t testing.TB, username, password string) *Repo {
	t.Helper()
	r := &Repo{
		username: username,
		password: password,
		index:    repo.NewIndexFile(),
		archives: map[string][]byte{},
		hits:     map[string]int{},
	}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// Add publishes the chart archive at archivePath (from Package) under
// charts/, listing it in index.yaml with a relative URL and its digest.
func (r *Repo) Add(t testing.TB, archivePath string) {
	t.Helper()
	data, err := os.ReadFile(archivePath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := chartloader.Load(archivePath)
	if err != nil {
		t.Fatalf("charttest: load %s: %v", archivePath, err)
	}
	sum := sha256.Sum256(data)
	name := "charts/" + filepath.Base(archivePath)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.index.MustAdd(c.Metadata, name, "", hex.EncodeToString(sum[:])); err != nil {
		t.Fatalf("charttest: index %s: %v", archivePath, err)
	}
	r.index.SortEntries()
	r.archives["/"+name] = data
}

// Hits returns how many requests asked for path (e.g. "/index.yaml").
func (r *Repo) Hits(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits[path]
}

func (r *Repo) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.hits[req.URL.Path]++
	r.mu.Unlock()
	if r.username != "" {
		u, p, ok := req.BasicAuth()
		if !ok || u != r.username || p != r.password {
			w.Header().Set("WWW-Authenticate", `Basic realm="charts"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case req.URL.Path == "/index.yaml":
		b, err := yaml.Marshal(r.index)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/x-yaml")
		_, _ = w.Write(b)
	case r.archives[req.URL.Path] != nil:
		w.Header().Set("Content-Type", "application/gzip")
		_, _ = w.Write(r.archives[req.URL.Path])
	default:
		http.NotFound(w, req)
	}
}

// Registry is an OCI registry on loopback.
type Registry struct {
	// Host is 127.0.0.1:PORT.
	Host string
	// URL is the repository prefix charts are pushed under:
	// oci://127.0.0.1:PORT/charts. A Registry from NewRegistry speaks
	// only plain HTTP: a Source for it sets spec.oci.insecure.
	URL string
	// Client is an HTTP client that trusts the registry's certificate
	// (NewTLSRegistry); nil for a plain HTTP registry.
	Client *http.Client

	username, password string
}

// NewRegistry starts an empty OCI registry that speaks plain HTTP, stopped
// when the test ends. With a username, every request needs basic
// authentication.
func NewRegistry(t testing.TB, username, password string) *Registry {
	t.Helper()
	srv := httptest.NewServer(registryHandler(username, password))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	return &Registry{Host: host, URL: "oci://" + host + "/charts", username: username, password: password}
}

// NewTLSRegistry is NewRegistry over HTTPS, with a certificate only
// Registry.Client trusts.
func NewTLSRegistry(t testing.TB, username, password string) *Registry {
	t.Helper()
	srv := httptest.NewUnstartedServer(registryHandler(username, password))
	// Plain HTTP requests the tests send on purpose are handshake errors.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "https://")
	return &Registry{Host: host, URL: "oci://" + host + "/charts", Client: srv.Client(), username: username, password: password}
}

// registryHandler is go-containerregistry's registry, behind basic
// authentication when username is set.
func registryHandler(username, password string) http.Handler {
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if username != "" {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			u, p, ok := req.BasicAuth()
			if !ok || u != username || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
			inner.ServeHTTP(w, req)
		})
	}
	return h
}

// Push pushes the chart archive at archivePath to
// <Host>/charts/<name>:<version> with Helm's registry client, as
// `helm push` does.
func (r *Registry) Push(t testing.TB, archivePath string) {
	t.Helper()
	data, err := os.ReadFile(archivePath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := chartloader.Load(archivePath)
	if err != nil {
		t.Fatalf("charttest: load %s: %v", archivePath, err)
	}
	opts := []helmregistry.ClientOption{
		helmregistry.ClientOptWriter(io.Discard),
		helmregistry.ClientOptCredentialsFile(filepath.Join(t.TempDir(), "config.json")),
	}
	if r.Client != nil {
		opts = append(opts, helmregistry.ClientOptHTTPClient(r.Client))
	} else {
		opts = append(opts, helmregistry.ClientOptPlainHTTP())
	}
	if r.username != "" {
		opts = append(opts, helmregistry.ClientOptBasicAuth(r.username, r.password))
	}
	client, err := helmregistry.NewClient(opts...)
	if err != nil {
		t.Fatalf("charttest: registry client: %v", err)
	}
	// Helm turns "+" into "_" in the tag itself.
	ref := r.Host + "/charts/" + c.Name() + ":" + c.Metadata.Version
	if _, err := client.Push(data, ref); err != nil {
		t.Fatalf("charttest: push %s: %v", ref, err)
	}
}
