package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestBuildStampsAndPacksReproducibly builds the release of this machine's
// platform twice: the archive is named as GoReleaser names it, holds the
// binary (mode 0755), README.md and CHANGELOG.md, checksums.txt has its
// SHA-256, the two builds are byte for byte the same, and the binary
// unpacked from it reports the version and commit it was stamped with.
func TestBuildStampsAndPacksReproducibly(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tend twice")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	p := Platform{OS: runtime.GOOS, Arch: runtime.GOARCH}
	build := func() (Artifact, string) {
		out := t.TempDir()
		arts, err := Build(context.Background(), Options{
			Root: root, Out: out, Version: "v1.2.3-test", Commit: "0123456789abcdef", Time: time.Unix(1700000000, 0),
			Platforms: []Platform{p},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(arts) != 1 {
			t.Fatalf("artifacts %v, want one", arts)
		}
		return arts[0], out
	}
	a, out := build()
	if want := filepath.Join(out, "tend_1.2.3-test_"+p.OS+"_"+p.Arch+".tar.gz"); a.Path != want {
		t.Errorf("archive %s, want %s", a.Path, want)
	}
	data, err := os.ReadFile(a.Path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	sums, err := os.ReadFile(filepath.Join(out, "checksums.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if want := hex.EncodeToString(sum[:]) + "  " + filepath.Base(a.Path) + "\n"; string(sums) != want || a.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("checksums.txt %q, artifact sum %s; want %q", sums, a.SHA256, want)
	}

	files := untar(t, data)
	for _, name := range []string{"tend", "README.md", "CHANGELOG.md"} {
		if _, ok := files[name]; !ok {
			t.Errorf("archive lacks %s (has %v)", name, keys(files))
		}
	}
	if len(files) != 3 {
		t.Errorf("archive holds %v, want tend, README.md and CHANGELOG.md", keys(files))
	}
	bin := filepath.Join(t.TempDir(), "tend")
	if err := os.WriteFile(bin, files["tend"].data, 0o755); err != nil {
		t.Fatal(err)
	}
	if files["tend"].mode != 0o755 {
		t.Errorf("tend has mode %o in the archive, want 755", files["tend"].mode)
	}
	outb, err := exec.Command(bin, "version", "-o", "json").Output()
	if err != nil {
		t.Fatalf("tend version: %v", err)
	}
	var v struct{ Version, Commit string }
	if err := json.Unmarshal(outb, &v); err != nil || v.Version != "v1.2.3-test" || v.Commit != "0123456789abcdef" {
		t.Errorf("tend version -o json = %s (%v); want version v1.2.3-test, commit 0123456789abcdef", outb, err)
	}

	again, _ := build()
	if again.SHA256 != a.SHA256 {
		t.Errorf("a second build of the same inputs has SHA-256 %s, the first %s: not reproducible", again.SHA256, a.SHA256)
	}
}

func TestOptionsChecked(t *testing.T) {
	for _, o := range []Options{
		{Version: "", Commit: "abc"},
		{Version: "v1", Commit: ""},
		{Version: "v1 -X main.x=y", Commit: "abc"},
	} {
		if _, err := Build(context.Background(), o); err == nil {
			t.Errorf("Build(%+v) succeeded; want an error", o)
		}
	}
	for _, s := range []string{"linux", "linux/", "/amd64", "linux/amd64/v2"} {
		if _, err := ParsePlatform(s); err == nil {
			t.Errorf("ParsePlatform(%q) succeeded", s)
		}
	}
	if p, err := ParsePlatform("darwin/arm64"); err != nil || p != (Platform{"darwin", "arm64"}) {
		t.Errorf("ParsePlatform(darwin/arm64) = %v, %v", p, err)
	}
}

type entry struct {
	mode int64
	data []byte
}

func untar(t *testing.T, data []byte) map[string]entry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string]entry{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[hdr.Name] = entry{mode: hdr.Mode, data: b}
	}
}

func keys(m map[string]entry) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return strings.Join(out, ", ")
}

// `go install github.com/tend-gitops/tend/cmd/tend@<tag>` works only for a
// main module without replace directives, under the path users install.
func TestModuleInstallableWithGoInstall(t *testing.T) {
	b, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	if lines[0] != "module github.com/tend-gitops/tend" {
		t.Errorf("go.mod starts %q, want module github.com/tend-gitops/tend", lines[0])
	}
	for i, l := range lines {
		if f := strings.Fields(l); len(f) > 0 && (f[0] == "replace" || f[0] == "exclude") {
			t.Errorf("go.mod:%d: %q: go install ...@version refuses a main module with replace or exclude directives", i+1, l)
		}
	}
}
