package image

import (
	"archive/tar"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"golang.org/x/sys/unix"

	"github.com/tend-gitops/tend/internal/gitserver"
)

const (
	testVersion = "v0.0.0-imagetest"
	testCommit  = "0123456789abcdef0123456789abcdef01234567"
)

// TestImage builds the image index from the real Debian archive twice
// (same digest), pushes it to a registry on loopback, pulls it back by
// digest and checks each platform's config; then unpacks the amd64 root
// filesystem and runs tend and git in it with chroot as user 65532, as a
// pod would: `tend version`, and a clone from a git server on loopback
// over smart HTTP.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tend for two platforms and fetches Debian packages")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	opts := Options{Root: root, Version: testVersion, Commit: testCommit, Time: time.Unix(1700000000, 0)}
	res, err := Build(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	digest, err := res.Index.Digest()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Build(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := again.Index.Digest(); err != nil || d != digest {
		t.Fatalf("second build of the same inputs: digest %s (%v), first %s", d, err, digest)
	}

	// Written as an OCI layout, with the SBOMs beside it.
	out := t.TempDir()
	if err := res.WriteLayout(filepath.Join(out, "image"), filepath.Join(out, "sbom"), testVersion); err != nil {
		t.Fatal(err)
	}
	indexJSON, err := os.ReadFile(filepath.Join(out, "image", "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(indexJSON), digest.String()) || !strings.Contains(string(indexJSON), testVersion) {
		t.Errorf("layout index.json does not name the index %s as %s:\n%s", digest, testVersion, indexJSON)
	}

	// Pushed to a registry and pulled back by digest.
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	if _, err := res.Push(ctx, host+"/tend-gitops/tend:"+testVersion); err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host + "/tend-gitops/tend@" + digest.String())
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Index(ref, remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	im, err := pulled.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 {
		t.Fatalf("index has %d manifests, want linux/amd64 and linux/arm64", len(im.Manifests))
	}
	var amd64 v1.Image
	for i, want := range []string{"linux/amd64", "linux/arm64/v8"} {
		desc := im.Manifests[i]
		if desc.Platform == nil || desc.Platform.String() != want {
			t.Errorf("manifest %d platform %v, want %s", i, desc.Platform, want)
			continue
		}
		img, err := pulled.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Config.User != "65532:65532" {
			t.Errorf("%s: user %q, want 65532:65532", want, cf.Config.User)
		}
		if strings.Join(cf.Config.Entrypoint, " ") != Binary {
			t.Errorf("%s: entrypoint %q, want %s", want, cf.Config.Entrypoint, Binary)
		}
		for k, v := range map[string]string{
			"org.opencontainers.image.version":  testVersion,
			"org.opencontainers.image.revision": testCommit,
			"org.opencontainers.image.source":   DefaultSource,
		} {
			if cf.Config.Labels[k] != v {
				t.Errorf("%s: label %s = %q, want %q", want, k, cf.Config.Labels[k], v)
			}
		}
		if cf.Architecture != strings.Split(want, "/")[1] {
			t.Errorf("%s: config architecture %q", want, cf.Architecture)
		}
		if i == 0 {
			amd64 = img
		}
		checkSBOM(t, res.Images[i], desc.Digest, filepath.Join(out, "sbom", SBOMName(testVersion, res.Images[i].Platform)))
	}
	if amd64 == nil {
		t.FailNow()
	}

	rootfs := t.TempDir()
	unpack(t, amd64, rootfs)
	for _, gone := range []string{"bin/sh", "bin/bash", "usr/share/man"} {
		if _, err := os.Lstat(filepath.Join(rootfs, gone)); err == nil {
			t.Errorf("/%s is in the image", gone)
		}
	}
	if _, err := os.Stat(filepath.Join(rootfs, "usr/share/doc/git/copyright")); err != nil {
		t.Errorf("git's copyright file (its license) is not in the image: %v", err)
	}
	bundle, err := os.ReadFile(filepath.Join(rootfs, CABundle))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) || strings.Count(string(bundle), "BEGIN CERTIFICATE") < 100 {
		t.Errorf("%s holds %d certificates, want Mozilla's set", CABundle, strings.Count(string(bundle), "BEGIN CERTIFICATE"))
	}

	if os.Geteuid() != 0 {
		t.Skip("running tend and git inside the image needs chroot, which needs root: run as root (CI does) to check them")
	}
	cf, err := amd64.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	// The devices every OCI runtime creates in a container's /dev.
	if err := os.MkdirAll(filepath.Join(rootfs, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}} {
		p := filepath.Join(rootfs, "dev", d.name)
		if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(d.major, d.minor))); err != nil {
			t.Fatalf("mknod %s: %v", p, err)
		}
		if err := os.Chmod(p, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = cf.Config.Env
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: rootfs, Credential: &syscall.Credential{Uid: UID, Gid: UID}}
		b, err := cmd.CombinedOutput()
		var perm *os.PathError
		if errors.As(err, &perm) && errors.Is(err, syscall.EPERM) {
			t.Skipf("chroot is not permitted here (%v): tend and git inside the image are not checked", err)
		}
		if err != nil {
			t.Fatalf("in the image: %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return string(b)
	}
	if got := run(Binary, "version"); !strings.Contains(got, testVersion) || !strings.Contains(got, testCommit[:7]) {
		t.Errorf("tend version in the image: %q, want %s and %s", got, testVersion, testCommit[:7])
	}
	if got := run("/usr/bin/ssh", "-V"); !strings.Contains(got, "OpenSSH") {
		t.Errorf("ssh -V in the image: %q", got)
	}

	repos := t.TempDir()
	head := makeRepo(t, filepath.Join(repos, "platform.git"))
	h, err := gitserver.NewHandler(repos, gitserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	gs := httptest.NewServer(h)
	defer gs.Close()
	if got := run("/usr/bin/git", "ls-remote", gs.URL+"/platform.git", "HEAD"); !strings.HasPrefix(got, head) {
		t.Errorf("git ls-remote in the image: %q, want HEAD %s", got, head)
	}
	run("/usr/bin/git", "clone", "--quiet", "--depth=1", gs.URL+"/platform.git", "/tmp/platform")
	if got := strings.TrimSpace(run("/usr/bin/git", "-C", "/tmp/platform", "rev-parse", "HEAD")); got != head {
		t.Errorf("clone in the image is at %q, want %s", got, head)
	}
}

// checkSBOM reads the SPDX document written beside the layout: it names
// the image by digest, tend, the Go modules built into it and the Debian
// packages with their package URLs.
func checkSBOM(t *testing.T, pi Platform, digest v1.Hash, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc spdxDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || !strings.Contains(doc.DocumentNamespace, digest.String()) {
		t.Errorf("%s: version %q namespace %q, want SPDX-2.3 naming %s", path, doc.SPDXVersion, doc.DocumentNamespace, digest)
	}
	purls := map[string]bool{}
	for _, p := range doc.Packages {
		for _, r := range p.ExternalRefs {
			purls[strings.SplitN(r.Locator, "@", 2)[0]] = true
		}
	}
	for _, want := range []string{
		"pkg:golang/github.com/tend-gitops/tend", "pkg:golang/sigs.k8s.io/controller-runtime", "pkg:golang/helm.sh/helm/v4",
		"pkg:deb/debian/git", "pkg:deb/debian/openssh-client", "pkg:deb/debian/ca-certificates", "pkg:deb/debian/libc6",
	} {
		if !purls[want] {
			t.Errorf("%s: no package %s", path, want)
		}
	}
	if n := len(pi.Packages); n < 10 || !purls["pkg:deb/debian/"+pi.Packages[n-1].Name] {
		t.Errorf("%s: %d Debian packages resolved, the last not in the SBOM", path, n)
	}
}

// unpack writes the image's root filesystem to dir, owners included.
func unpack(t *testing.T, img v1.Image, dir string) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, os.FileMode(h.Mode).Perm())
		case tar.TypeReg:
			var f *os.File
			if f, err = os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode).Perm()); err == nil {
				_, err = io.Copy(f, tr)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, p)
		case tar.TypeLink:
			err = os.Link(filepath.Join(dir, filepath.Clean("/"+h.Linkname)), p)
		default:
			t.Fatalf("%s: unexpected entry type %c", h.Name, h.Typeflag)
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeLink {
			if os.Geteuid() == 0 {
				if err := os.Lchown(p, h.Uid, h.Gid); err != nil {
					t.Fatal(err)
				}
			}
			if h.Typeflag != tar.TypeSymlink {
				// After chown, which clears set-id bits; and past the umask.
				if err := os.Chmod(p, os.FileMode(h.Mode).Perm()|modeBits(h.Mode)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

func modeBits(m int64) os.FileMode {
	var out os.FileMode
	if m&0o4000 != 0 {
		out |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= os.ModeSticky
	}
	return out
}

// makeRepo creates a bare repository at dir with one commit and returns
// the commit's hash.
func makeRepo(t *testing.T, dir string) string {
	t.Helper()
	work := t.TempDir()
	git := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return strings.TrimSpace(string(b))
	}
	git(work, "init", "--quiet", "--initial-branch=main")
	if err := os.WriteFile(filepath.Join(work, "app.yaml"), []byte("kind: ConfigMap\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(work, "add", ".")
	git(work, "commit", "--quiet", "-m", "one")
	git(work, "clone", "--quiet", "--bare", work, dir)
	return git(work, "rev-parse", "HEAD")
}
