package chart

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/tend-gitops/tend/internal/source/chart/charttest"
)

func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPullArtifact: an artifact pushed as `flux push artifact` does is
// pulled by tag, by semver range (with a filter) and by digest, unpacked
// with its files as they were pushed; a digest the caller already has is
// not downloaded; a Helm chart pushed by Helm's client is unpacked with
// the chart at the root; a layer is selected by media type.
func TestPullArtifact(t *testing.T) {
	ctx := context.Background()
	reg := charttest.NewRegistry(t, "alice", "s3cret")
	cred := url.UserPassword("alice", "s3cret")
	base := "oci+http://" + reg.Host + "/manifests"
	d1 := reg.PushArtifact(t, "manifests", "1.0.0", map[string]string{"deploy/cm.yaml": "v: 1\n"})
	d2 := reg.PushArtifact(t, "manifests", "1.1.0", map[string]string{"deploy/cm.yaml": "v: 2\n", "README.md": "x"})
	reg.PushArtifact(t, "manifests", "2.0.0-rc.1", map[string]string{"deploy/cm.yaml": "v: 3\n"})
	reg.PushArtifact(t, "manifests", "latest", map[string]string{"deploy/cm.yaml": "latest\n"})
	f := New(Options{})

	for _, tc := range []struct {
		name   string
		ref    ArtifactRef
		digest string
		tag    string
		files  map[string]string
	}{
		{"tag", ArtifactRef{Tag: "1.0.0"}, d1, "1.0.0", map[string]string{"deploy/cm.yaml": "v: 1\n"}},
		{"semver", ArtifactRef{SemVer: ">=1.0.0 <2"}, d2, "1.1.0", map[string]string{"deploy/cm.yaml": "v: 2\n", "README.md": "x"}},
		{"semver with filter", ArtifactRef{SemVer: ">=1.0.0-0", SemverFilter: `.*-rc\..*`}, "", "2.0.0-rc.1", map[string]string{"deploy/cm.yaml": "v: 3\n"}},
		{"digest wins", ArtifactRef{Tag: "latest", Digest: d1}, d1, "", map[string]string{"deploy/cm.yaml": "v: 1\n"}},
		{"default latest", ArtifactRef{}, "", "latest", map[string]string{"deploy/cm.yaml": "latest\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a")
			art, pulled, err := f.PullArtifact(ctx, base, tc.ref, cred, "", dir)
			if err != nil {
				t.Fatal(err)
			}
			if !pulled || art.Tag != tc.tag || (tc.digest != "" && art.Digest != tc.digest) || art.Chart {
				t.Fatalf("pulled %v, artifact %+v; want tag %q digest %q", pulled, art, tc.tag, tc.digest)
			}
			if art.Source != "https://git.example/platform" || art.Revision != "main@sha1:"+tc.tag && tc.tag != "" {
				t.Errorf("source/revision annotations = %q %q", art.Source, art.Revision)
			}
			if got := readTree(t, dir); !equalMaps(got, tc.files) {
				t.Errorf("files = %v, want %v", got, tc.files)
			}
			// The same digest again: nothing is downloaded or written.
			again := filepath.Join(t.TempDir(), "b")
			art2, pulled, err := f.PullArtifact(ctx, base, tc.ref, cred, art.Digest, again)
			if err != nil || pulled || art2.Digest != art.Digest {
				t.Fatalf("pull of the digest the caller has: pulled %v, %+v, %v", pulled, art2, err)
			}
			if _, err := os.Stat(again); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("an unchanged pull wrote %s (%v)", again, err)
			}
		})
	}

	t.Run("helm chart", func(t *testing.T) {
		reg.Push(t, charttest.Package(t, testChart("web", "0.3.0")))
		dir := t.TempDir()
		art, _, err := f.PullArtifact(ctx, "oci+http://"+reg.Host+"/charts/web", ArtifactRef{SemVer: "0.x", LayerMediaType: ChartLayerMediaType}, cred, "", dir)
		if err != nil {
			t.Fatal(err)
		}
		if !art.Chart || art.Tag != "0.3.0" {
			t.Fatalf("artifact %+v, want a chart at tag 0.3.0", art)
		}
		files := readTree(t, dir)
		if !strings.Contains(files["Chart.yaml"], "name: web") || files["templates/cm.yaml"] == "" {
			t.Errorf("the chart is not at the root: %v", files)
		}
	})

	t.Run("layer selector", func(t *testing.T) {
		reg.PushLayers(t, "multi", "v1", charttest.FluxConfigMediaType, nil,
			charttest.Layer{MediaType: "application/vnd.example.docs.v1.tar+gzip", Data: charttest.TarGz(t, map[string]string{"docs.md": "d"})},
			charttest.Layer{MediaType: charttest.FluxContentMediaType, Data: charttest.TarGz(t, map[string]string{"app.yaml": "a"})})
		dir := t.TempDir()
		if _, _, err := f.PullArtifact(ctx, "oci+http://"+reg.Host+"/multi", ArtifactRef{Tag: "v1", LayerMediaType: charttest.FluxContentMediaType}, cred, "", dir); err != nil {
			t.Fatal(err)
		}
		if got := readTree(t, dir); !equalMaps(got, map[string]string{"app.yaml": "a"}) {
			t.Errorf("files = %v, want the selected layer's", got)
		}
		_, _, err := f.PullArtifact(ctx, "oci+http://"+reg.Host+"/multi", ArtifactRef{Tag: "v1", LayerMediaType: "application/x-none"}, cred, "", t.TempDir())
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "spec.oci.layerSelector.mediaType") || !strings.Contains(err.Error(), charttest.FluxContentMediaType) {
			t.Errorf("missing layer: %v; want ErrNotFound naming the field and the layers there are", err)
		}
	})
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestPullArtifactRefusesBadInput: a missing tag, no semver match, wrong
// credentials, a link or a path leaving the directory in the layer, and a
// layer whose bytes do not match its digest are refused with an error
// that says what is wrong.
func TestPullArtifactRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	reg := charttest.NewRegistry(t, "alice", "s3cret")
	cred := url.UserPassword("alice", "s3cret")
	reg.PushArtifact(t, "app", "1.0.0", map[string]string{"a.yaml": "a"})
	f := New(Options{})
	pull := func(repo string, ref ArtifactRef, cred *url.Userinfo) error {
		_, _, err := f.PullArtifact(ctx, "oci+http://"+reg.Host+"/"+repo, ref, cred, "", filepath.Join(t.TempDir(), "x"))
		return err
	}
	if err := pull("app", ArtifactRef{Tag: "9.9.9"}, cred); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing tag: %v, want ErrNotFound", err)
	}
	if err := pull("app", ArtifactRef{SemVer: ">=2"}, cred); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "1.0.0") {
		t.Errorf("no semver match: %v, want ErrNotFound listing the tags", err)
	}
	if err := pull("app", ArtifactRef{Tag: "1.0.0"}, url.UserPassword("alice", "wrong")); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("wrong password: %v, want ErrUnauthorized", err)
	}
	if err := pull("app", ArtifactRef{SemVer: ">=1", SemverFilter: "("}, cred); err == nil || !strings.Contains(err.Error(), "semverFilter") {
		t.Errorf("bad filter: %v, want an error naming semverFilter", err)
	}

	entry := func(h tar.Header, body string) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		h.Size = int64(len(body))
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
		tw.Close()
		zw.Close()
		return buf.Bytes()
	}
	for name, layer := range map[string][]byte{
		"link":   entry(tar.Header{Name: "l", Linkname: "/etc/passwd", Typeflag: tar.TypeSymlink}, ""),
		"escape": entry(tar.Header{Name: "../../escape.yaml", Mode: 0o644, Typeflag: tar.TypeReg}, "x"),
		"notgz":  []byte("plain text, not gzip"),
	} {
		reg.PushLayers(t, "bad-"+name, "v1", charttest.FluxConfigMediaType, nil, charttest.Layer{MediaType: charttest.FluxContentMediaType, Data: layer})
		err := pull("bad-"+name, ArtifactRef{Tag: "v1"}, cred)
		want := map[string]string{"link": "symbolic link", "escape": "leaves the artifact's directory", "notgz": "not gzip-compressed"}[name]
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(os.TempDir(), "escape.yaml")); err == nil {
		t.Error("a ../ entry was written outside the directory")
	}

	// A registry that serves a blob with a byte changed.
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet || !strings.Contains(req.URL.Path, "/blobs/") {
			inner.ServeHTTP(w, req)
			return
		}
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, req)
		body := rec.Body.Bytes()
		if len(body) > 20 {
			body[len(body)-10] ^= 0xff
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(body)
	}))
	defer srv.Close()
	corrupt := &charttest.Registry{Host: strings.TrimPrefix(srv.URL, "http://")}
	corrupt.PushArtifact(t, "app", "v1", map[string]string{"a.yaml": strings.Repeat("a", 4096)})
	_, _, err := f.PullArtifact(ctx, "oci+http://"+corrupt.Host+"/app", ArtifactRef{Tag: "v1"}, nil, "", filepath.Join(t.TempDir(), "x"))
	t.Logf("corrupted layer: %v", err)
	if err == nil || !strings.Contains(err.Error(), "sha256:") {
		t.Errorf("corrupted layer: %v, want an error naming the layer", err)
	}
}
