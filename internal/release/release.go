// Package release builds tend's release archives: the static binary for
// each platform, stamped with its version and commit, packed as
// GoReleaser-style tarballs (tend_<version>_<os>_<arch>.tar.gz, the binary
// with README.md and CHANGELOG.md) with a checksums.txt of their SHA-256
// sums, as Go projects publish them. The same inputs give the same bytes:
// -trimpath, no build ID, and archive entries with fixed owners, modes
// and times (the commit's).
package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Platform is a GOOS/GOARCH pair.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// ParsePlatform reads "os/arch".
func ParsePlatform(s string) (Platform, error) {
	os, arch, ok := strings.Cut(s, "/")
	if !ok || os == "" || arch == "" || strings.Contains(arch, "/") {
		return Platform{}, fmt.Errorf("platform %q: want os/arch, e.g. linux/amd64", s)
	}
	return Platform{OS: os, Arch: arch}, nil
}

// ParsePlatforms reads a comma-separated list of os/arch.
func ParsePlatforms(csv string) ([]Platform, error) {
	var out []Platform
	for _, s := range strings.Split(csv, ",") {
		p, err := ParsePlatform(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// CheckStamp checks the version and commit stamped into a binary: both
// set, neither with spaces or quotes (they become linker flags).
func CheckStamp(version, commit string) error {
	if version == "" || commit == "" {
		return fmt.Errorf("version and commit are required")
	}
	if strings.ContainsAny(version+commit, " \t\n'\"") {
		return fmt.Errorf("version %q or commit %q has spaces or quotes", version, commit)
	}
	return nil
}

// CommitTime is the commit's time in the git repository of the working
// directory: release archives and images carry it, so that a rebuild of
// one commit gives the same bytes on any machine.
func CommitTime(commit string) (time.Time, error) {
	b, err := exec.Command("git", "log", "-1", "--format=%ct", "--end-of-options", commit+"^{commit}").Output()
	if err != nil {
		return time.Time{}, fmt.Errorf("time of commit %q: %w (build from a git checkout, or pass the commit)", commit, err)
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("time of commit %q: git printed %q", commit, b)
	}
	return time.Unix(sec, 0), nil
}

// Platforms tend is released for.
var Platforms = []Platform{{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "amd64"}, {"darwin", "arm64"}}

// BuildTags of every tend binary (the Makefile's GO_TAGS).
const BuildTags = "kustomize_disable_go_plugin_support"

// Options say what to build.
type Options struct {
	// Root is the module root (holding go.mod, cmd/tend, README.md).
	Root string
	// Out receives the archives and checksums.txt.
	Out string
	// Version and Commit are stamped into the binary (tend version) and
	// name the archives.
	Version, Commit string
	// Time is the archive entries' modification time (the commit's, for
	// reproducible archives).
	Time time.Time
	// Platforms to build; default Platforms.
	Platforms []Platform
	// Go is the go command; default "go".
	Go string
	// Log, when set, is told about each step.
	Log io.Writer
}

// Artifact is one archive written.
type Artifact struct {
	Platform Platform
	Path     string
	SHA256   string
}

// LDFlags stamp a tend binary with its version and commit.
func LDFlags(version, commit string) string {
	return fmt.Sprintf("-s -w -buildid= -X main.version=%s -X main.commit=%s", version, commit)
}

// ArchiveName is the GoReleaser-style name of a platform's archive: the
// version without its leading v.
func ArchiveName(version string, p Platform) string {
	return fmt.Sprintf("tend_%s_%s_%s.tar.gz", strings.TrimPrefix(version, "v"), p.OS, p.Arch)
}

// Build writes one archive per platform and checksums.txt into o.Out and
// returns the archives in platform order.
func Build(ctx context.Context, o Options) ([]Artifact, error) {
	if err := CheckStamp(o.Version, o.Commit); err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	if o.Go == "" {
		o.Go = "go"
	}
	platforms := o.Platforms
	if len(platforms) == 0 {
		platforms = Platforms
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "tend-release-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	var extra []file
	for _, name := range []string{"README.md", "CHANGELOG.md"} {
		b, err := os.ReadFile(filepath.Join(o.Root, name))
		if err != nil {
			return nil, fmt.Errorf("release: %w", err)
		}
		extra = append(extra, file{name: name, mode: 0o644, data: b})
	}
	var out []Artifact
	for _, p := range platforms {
		bin := filepath.Join(work, p.OS+"_"+p.Arch, "tend")
		if o.Log != nil {
			fmt.Fprintf(o.Log, "building %s\n", p)
		}
		if err := BuildBinary(ctx, o.Go, o.Root, p, o.Version, o.Commit, bin); err != nil {
			return nil, err
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			return nil, err
		}
		archive, err := tarball(append([]file{{name: "tend", mode: 0o755, data: data}}, extra...), o.Time)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(o.Out, ArchiveName(o.Version, p))
		if err := os.WriteFile(path, archive, 0o644); err != nil {
			return nil, err
		}
		sum := sha256.Sum256(archive)
		out = append(out, Artifact{Platform: p, Path: path, SHA256: hex.EncodeToString(sum[:])})
	}
	var sums []string
	for _, a := range out {
		sums = append(sums, a.SHA256+"  "+filepath.Base(a.Path)+"\n")
	}
	sort.Slice(sums, func(i, j int) bool { return sums[i][66:] < sums[j][66:] })
	if err := os.WriteFile(filepath.Join(o.Out, "checksums.txt"), []byte(strings.Join(sums, "")), 0o644); err != nil {
		return nil, err
	}
	return out, nil
}

// BuildBinary builds tend for p into out as releases are built: static,
// -trimpath, no build ID, stamped with version and commit. goCmd is the go
// command ("" for "go"), root the module root.
func BuildBinary(ctx context.Context, goCmd, root string, p Platform, version, commit, out string) error {
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-tags", BuildTags, "-ldflags", LDFlags(version, commit), "-o", out, "./cmd/tend")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch, "GOFLAGS=-mod=readonly")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("release: go build for %s: %w\n%s", p, err, b)
	}
	return nil
}

type file struct {
	name string
	mode int64
	data []byte
}

// tarball is a gzipped tar of files with fixed owners and times.
func tarball(files []file, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	for _, f := range files {
		hdr := &tar.Header{
			Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: mtime.UTC().Truncate(time.Second),
			Typeflag: tar.TypeReg, Uname: "root", Gname: "root", Format: tar.FormatUSTAR,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
