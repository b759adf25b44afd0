package chart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	chartloader "helm.sh/helm/v4/pkg/chart/v2/loader"

	"github.com/tend-gitops/tend/internal/source/chart/charttest"
)

// testChart returns the files of a minimal chart.
func testChart(name, version string) map[string]string {
	return map[string]string{
		"Chart.yaml":             fmt.Sprintf("apiVersion: v2\nname: %s\nversion: %s\n", name, version),
		"values.yaml":            "greeting: hello\n",
		"templates/cm.yaml":      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  greeting: {{ .Values.greeting }}\n",
		"templates/_helpers.tpl": "{{- define \"x\" -}}x{{- end -}}\n",
	}
}

// archiveVersion loads an archive and returns its chart's version.
func archiveVersion(t *testing.T, archive []byte) string {
	t.Helper()
	c, err := chartloader.LoadArchive(bytes.NewReader(archive))
	if err != nil {
		t.Fatalf("load fetched archive: %v", err)
	}
	return c.Metadata.Version
}

func newHTTPRepo(t *testing.T, versions ...string) *charttest.Repo {
	t.Helper()
	repo := charttest.NewRepo(t, "alice", "s3cret")
	for _, v := range versions {
		repo.Add(t, charttest.Package(t, testChart("app", v)))
	}
	return repo
}

func TestFetchHTTPPicksVersions(t *testing.T) {
	repo := newHTTPRepo(t, "1.0.0", "1.1.0", "1.2.0-rc.1", "2.0.0")
	f := New(Options{})
	auth := url.UserPassword("alice", "s3cret")
	for _, tc := range []struct{ want, picked string }{
		{"", "2.0.0"},
		{"^1.0", "1.1.0"},
		{">=1.2.0-0 <2.0.0", "1.2.0-rc.1"},
		{"1.0.0", "1.0.0"},
		{"=1.1.0", "1.1.0"},
		{"~1.0.0", "1.0.0"},
	} {
		archive, picked, err := f.FetchChart(context.Background(), repo.URL, "app", tc.want, auth)
		if err != nil {
			t.Fatalf("FetchChart(%q): %v", tc.want, err)
		}
		if got, want := picked, tc.picked; got != want {
			t.Errorf("FetchChart(%q) picked %s, want %s", tc.want, got, want)
		}
		if got, want := archiveVersion(t, archive), tc.picked; got != want {
			t.Errorf("FetchChart(%q) archive holds version %s, want %s", tc.want, got, want)
		}
	}
}

func TestFetchHTTPCachesIndexAndArchives(t *testing.T) {
	repo := newHTTPRepo(t, "1.0.0")
	repo.Add(t, charttest.Package(t, testChart("other", "0.1.0")))
	f := New(Options{IndexTTL: time.Hour})
	auth := url.UserPassword("alice", "s3cret")
	ctx := context.Background()
	for range 3 {
		if _, _, err := f.FetchChart(ctx, repo.URL, "app", "^1", auth); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := repo.Hits("/index.yaml"), 1; got != want {
		t.Errorf("index.yaml fetched %d times for 3 fetches within the TTL, want %d", got, want)
	}
	if got, want := repo.Hits("/charts/app-1.0.0.tgz"), 1; got != want {
		t.Errorf("archive downloaded %d times, want %d (cached)", got, want)
	}
	// A chart not asked for before needs the index again (only asked-for
	// entries are kept).
	if _, _, err := f.FetchChart(ctx, repo.URL, "other", "", auth); err != nil {
		t.Fatal(err)
	}
	if got, want := repo.Hits("/index.yaml"), 2; got != want {
		t.Errorf("index.yaml fetched %d times after asking for a new chart, want %d", got, want)
	}

	// Past the TTL the index is read again.
	now := time.Now()
	f.now = func() time.Time { return now.Add(2 * time.Hour) }
	if _, _, err := f.FetchChart(ctx, repo.URL, "app", "^1", auth); err != nil {
		t.Fatal(err)
	}
	if got, want := repo.Hits("/index.yaml"), 3; got != want {
		t.Errorf("index.yaml fetched %d times after the TTL, want %d", got, want)
	}
}

func TestFetchHTTPConcurrentCallersShareOneDownload(t *testing.T) {
	repo := newHTTPRepo(t, "1.0.0")
	f := New(Options{})
	auth := url.UserPassword("alice", "s3cret")
	errs := make(chan error, 20)
	for range cap(errs) {
		go func() {
			_, _, err := f.FetchChart(context.Background(), repo.URL, "app", "", auth)
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got, want := repo.Hits("/index.yaml"), 1; got != want {
		t.Errorf("index.yaml fetched %d times by %d concurrent callers, want %d", got, cap(errs), want)
	}
	if got, want := repo.Hits("/charts/app-1.0.0.tgz"), 1; got != want {
		t.Errorf("archive downloaded %d times by %d concurrent callers, want %d", got, cap(errs), want)
	}
}

func TestFetchHTTPErrors(t *testing.T) {
	repo := newHTTPRepo(t, "1.0.0", "1.1.0")
	f := New(Options{})
	ctx := context.Background()
	auth := url.UserPassword("alice", "s3cret")

	_, _, err := f.FetchChart(ctx, repo.URL, "app", "", url.UserPassword("alice", "wrong"))
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("wrong password: got %v, want ErrUnauthorized", err)
	}
	for _, s := range []string{repo.URL + "/index.yaml", "401", "rejected the username and password"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("wrong password error %q does not mention %q", err, s)
		}
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("error %q leaks the password", err)
	}

	_, _, err = f.FetchChart(ctx, repo.URL, "app", "", nil)
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "requires credentials") {
		t.Errorf("no credentials: got %v, want an ErrUnauthorized asking for credentials", err)
	}

	_, _, err = f.FetchChart(ctx, repo.URL, "nope", "", auth)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown chart: got %v, want ErrNotFound", err)
	}
	if got, want := err.Error(), `chart "nope" not found in `+repo.URL; !strings.Contains(got, want) {
		t.Errorf("unknown chart error %q does not contain %q", got, want)
	}

	_, _, err = f.FetchChart(ctx, repo.URL, "app", "^3.0.0", auth)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown version: got %v, want ErrNotFound", err)
	}
	for _, s := range []string{`"app"`, `"^3.0.0"`, repo.URL, "available: 1.1.0, 1.0.0"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("unknown version error %q does not mention %q", err, s)
		}
	}

	_, _, err = f.FetchChart(ctx, repo.URL, "app", "not a range!", auth)
	if err == nil || !strings.Contains(err.Error(), "neither a version nor a semver range") {
		t.Errorf("bad range: got %v", err)
	}

	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	_, _, err = f.FetchChart(ctx, dead, "app", "", nil)
	if err == nil || !strings.Contains(err.Error(), dead+"/index.yaml") {
		t.Errorf("unreachable repository: got %v, want an error naming %s/index.yaml", err, dead)
	}

	_, _, err = f.FetchChart(ctx, "ftp://example.com/charts", "app", "", nil)
	if err == nil || !strings.Contains(err.Error(), "want an https://, http:// or oci:// URL") {
		t.Errorf("bad scheme: got %v", err)
	}
}

func TestFetchOCI(t *testing.T) {
	reg := charttest.NewRegistry(t, "bob", "pw")
	for _, v := range []string{"1.0.0", "1.1.0", "2.0.0-beta.1", "1.1.1+build.7"} {
		reg.Push(t, charttest.Package(t, testChart("app", v)))
	}
	f := New(Options{})
	ctx := context.Background()
	auth := url.UserPassword("bob", "pw")
	regURL := OCIURL(reg.URL, true) // the registry speaks plain HTTP
	for _, tc := range []struct{ want, picked string }{
		{"", "1.1.1+build.7"},
		{"~1.0", "1.0.0"},
		{"1.0.0", "1.0.0"},
		{">=2.0.0-0", "2.0.0-beta.1"},
		{"1.1.1+build.7", "1.1.1+build.7"},
	} {
		archive, picked, err := f.FetchChart(ctx, regURL, "app", tc.want, auth)
		if err != nil {
			t.Fatalf("FetchChart(%q): %v", tc.want, err)
		}
		if got, want := picked, tc.picked; got != want {
			t.Errorf("FetchChart(%q) picked %s, want %s", tc.want, got, want)
		}
		if got, want := archiveVersion(t, archive), tc.picked; got != want {
			t.Errorf("FetchChart(%q) archive holds version %s, want %s", tc.want, got, want)
		}
	}

	_, _, err := f.FetchChart(ctx, regURL, "app", "^3", auth)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "available: 2.0.0-beta.1, 1.1.1+build.7, 1.1.0, 1.0.0") {
		t.Errorf("unknown range: got %v, want ErrNotFound listing the versions", err)
	}
	_, _, err = f.FetchChart(ctx, regURL, "app", "9.9.9", auth)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "available:") {
		t.Errorf("unknown exact version: got %v, want ErrNotFound listing the versions", err)
	}
	_, _, err = f.FetchChart(ctx, regURL, "app", "1.0.0", url.UserPassword("bob", "nope"))
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), reg.Host) {
		t.Errorf("wrong password: got %v, want ErrUnauthorized naming %s", err, reg.Host)
	}
}

// TestFetchOCIPlainHTTPNeedsInsecure: a registry that speaks only plain
// HTTP, on loopback too, is refused unless the URL asks for plain HTTP (a
// Source with spec.oci.insecure), with an error naming that field; what
// was fetched over plain HTTP is not served to a caller asking for HTTPS.
func TestFetchOCIPlainHTTPNeedsInsecure(t *testing.T) {
	reg := charttest.NewRegistry(t, "", "")
	reg.Push(t, charttest.Package(t, testChart("app", "1.0.0")))
	f := New(Options{})
	ctx := context.Background()

	refused := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrScheme) {
			t.Fatalf("%s: got %v, want ErrScheme", what, err)
		}
		for _, s := range []string{reg.Host, "speaks plain HTTP", "spec.oci.insecure: true"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %q does not mention %q", what, err, s)
			}
		}
	}
	_, _, err := f.FetchChart(ctx, reg.URL, "app", "1.0.0", nil)
	refused("exact version over HTTPS", err)
	_, _, err = f.FetchChart(ctx, reg.URL, "app", "^1", nil)
	refused("version range over HTTPS", err)
	refused("CheckOCI over HTTPS", f.CheckOCI(ctx, reg.URL))

	insecure := OCIURL(reg.URL, true)
	if err := f.CheckOCI(ctx, insecure); err != nil {
		t.Fatalf("CheckOCI over plain HTTP: %v", err)
	}
	for _, version := range []string{"1.0.0", "^1"} {
		archive, picked, err := f.FetchChart(ctx, insecure, "app", version, nil)
		if err != nil {
			t.Fatalf("FetchChart(%q) over plain HTTP: %v", version, err)
		}
		if picked != "1.0.0" || archiveVersion(t, archive) != "1.0.0" {
			t.Errorf("FetchChart(%q) over plain HTTP picked %s", version, picked)
		}
	}

	// The tag list, the tag's manifest and the archive are now cached for
	// the plain HTTP URL; asking over HTTPS still fails.
	_, _, err = f.FetchChart(ctx, reg.URL, "app", "^1", nil)
	refused("version range over HTTPS after a plain HTTP fetch", err)
	_, _, err = f.FetchChart(ctx, reg.URL, "app", "1.0.0", nil)
	refused("exact version over HTTPS after a plain HTTP fetch", err)
}

// TestFetchOCIOverHTTPS: a registry on loopback that speaks HTTPS is
// reached over HTTPS, with its certificate verified; asking it for plain
// HTTP is refused with an error saying to remove spec.oci.insecure.
func TestFetchOCIOverHTTPS(t *testing.T) {
	reg := charttest.NewTLSRegistry(t, "bob", "pw")
	reg.Push(t, charttest.Package(t, testChart("app", "1.0.0")))
	ctx := context.Background()
	auth := url.UserPassword("bob", "pw")

	f := New(Options{HTTPClient: reg.Client})
	if err := f.CheckOCI(ctx, reg.URL); err != nil {
		t.Fatalf("CheckOCI over HTTPS: %v", err)
	}
	_, picked, err := f.FetchChart(ctx, reg.URL, "app", "^1", auth)
	if err != nil || picked != "1.0.0" {
		t.Fatalf("FetchChart over HTTPS: %s, %v", picked, err)
	}

	insecure := OCIURL(reg.URL, true)
	err = f.CheckOCI(ctx, insecure)
	if !errors.Is(err, ErrScheme) || !strings.Contains(err.Error(), "remove spec.oci.insecure") {
		t.Errorf("CheckOCI over plain HTTP to an HTTPS registry: got %v, want ErrScheme saying to remove spec.oci.insecure", err)
	}
	_, _, err = f.FetchChart(ctx, insecure, "app", "1.0.0", auth)
	if err == nil || !strings.Contains(err.Error(), "remove spec.oci.insecure") {
		t.Errorf("FetchChart over plain HTTP to an HTTPS registry: got %v, want an error saying to remove spec.oci.insecure", err)
	}

	// A client that does not trust the certificate is refused: HTTPS is
	// verified.
	_, _, err = New(Options{}).FetchChart(ctx, reg.URL, "app", "1.0.0", auth)
	if err == nil || errors.Is(err, ErrScheme) || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("FetchChart with an untrusted certificate: got %v, want a certificate error", err)
	}
}

func TestCheckOCIUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "oci://" + l.Addr().String() + "/charts"
	l.Close()
	err = New(Options{}).CheckOCI(context.Background(), OCIURL(dead, true))
	if err == nil || errors.Is(err, ErrScheme) || !strings.Contains(err.Error(), "check that the registry is reachable") {
		t.Errorf("unreachable registry: got %v, want an error saying to check that it is reachable", err)
	}
}

func TestOCIURL(t *testing.T) {
	for _, tc := range []struct {
		url      string
		insecure bool
		want     string
	}{
		{"oci://ghcr.io/acme/charts", false, "oci://ghcr.io/acme/charts"},
		{"oci://registry:5000/charts", true, "oci+http://registry:5000/charts"},
		{"https://charts.example.com", true, "https://charts.example.com"},
	} {
		if got := OCIURL(tc.url, tc.insecure); got != tc.want {
			t.Errorf("OCIURL(%q, %v) = %q, want %q", tc.url, tc.insecure, got, tc.want)
		}
	}
}

func TestPickVersion(t *testing.T) {
	versions := []string{"0.9.0", "1.0.0", "1.4.2", "1.5.0-rc.1", "2.0.0", "latest"}
	for _, tc := range []struct {
		want, picked string
		ok           bool
	}{
		{"", "2.0.0", true},
		{"^1", "1.4.2", true},
		{"1.x", "1.4.2", true},
		{">=1.5.0-0 <2", "1.5.0-rc.1", true},
		{"v1.0.0", "1.0.0", true},
		{"latest", "latest", true},
		{"<0.1", "", false},
	} {
		picked, ok, err := pickVersion(versions, tc.want)
		if err != nil {
			t.Fatalf("pickVersion(%q): %v", tc.want, err)
		}
		if picked != tc.picked || ok != tc.ok {
			t.Errorf("pickVersion(%q) = %q, %v; want %q, %v", tc.want, picked, ok, tc.picked, tc.ok)
		}
	}
}

func TestArchiveCacheEvicts(t *testing.T) {
	c := newArchiveCache(10)
	c.add("a", make([]byte, 4))
	c.add("b", make([]byte, 4))
	c.get("a") // a is now the most recent
	c.add("c", make([]byte, 4))
	if _, ok := c.get("b"); ok {
		t.Errorf("b is still cached; the least recently used entry should go first")
	}
	for _, k := range []string{"a", "c"} {
		if _, ok := c.get(k); !ok {
			t.Errorf("%s was evicted", k)
		}
	}
	c.add("huge", make([]byte, 11))
	if _, ok := c.get("huge"); ok {
		t.Errorf("an entry larger than the cache was kept")
	}
}
