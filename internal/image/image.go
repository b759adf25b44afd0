// Package image builds tend's container image without a container engine:
// for each platform, tend's static binary (built as releases are, see
// internal/release) on a root filesystem unpacked from Debian packages —
// git, openssh-client, ca-certificates and exactly what they depend on —
// without running their maintainer scripts, as a non-root user (65532)
// with no shell needed. The platforms' images form one OCI index, written
// as an OCI layout and pushable to any registry, with an SPDX SBOM of the
// Go modules and Debian packages inside each image.
//
// The same inputs give the same digest: the packages are fixed by their
// SHA-256 in the signed archive index, every file time is Options.Time,
// owners are numeric, entries keep the packages' order, and the binary is
// reproducible (-trimpath, no build ID).
package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/tend-gitops/tend/internal/release"
)

// User and group the image runs as (distroless's "nonroot").
const (
	UID  = 65532
	Home = "/home/nonroot"
	// Binary is where tend is in the image; the entrypoint.
	Binary = "/usr/local/bin/tend"
	// CABundle is the certificate bundle update-ca-certificates would
	// write; the image's is built from ca-certificates' Mozilla set.
	CABundle = "/etc/ssl/certs/ca-certificates.crt"
)

// DefaultPlatforms of the image.
var DefaultPlatforms = []release.Platform{{OS: "linux", Arch: "amd64"}, {OS: "linux", Arch: "arm64"}}

// DefaultSource is the org.opencontainers.image.source label.
const DefaultSource = "https://github.com/tend-gitops/tend"

// Options say what to build.
type Options struct {
	// Root is the module root.
	Root string
	// Version and Commit are stamped into tend and the image's labels.
	Version, Commit string
	// Time is every file's modification time and the image's creation
	// time (the commit's, for reproducible images).
	Time time.Time
	// Platforms to build (linux only); default DefaultPlatforms.
	Platforms []release.Platform
	// Packages are the Debian packages installed with their dependencies;
	// default DefaultPackages.
	Packages []string
	// Archives the packages come from; default DefaultArchives.
	Archives []Archive
	// Keyring verifies the archives' InRelease; default DefaultKeyring.
	Keyring string
	// Cache keeps downloaded .deb files by SHA-256; default
	// $XDG_CACHE_HOME/tend/debs.
	Cache string
	// Source is the org.opencontainers.image.source label; default
	// DefaultSource.
	Source string
	// Go is the go command; default "go".
	Go string
	// HTTP fetches the archives; default http.DefaultClient.
	HTTP *http.Client
	// Log, when set, is told about each step.
	Log io.Writer
}

// Result is a built image index and what it is made of.
type Result struct {
	Index v1.ImageIndex
	// Images are the platforms' images, in Options.Platforms order.
	Images []Platform
}

// Platform is one platform's image and its SBOM.
type Platform struct {
	Platform release.Platform
	Image    v1.Image
	// Packages are the Debian packages in the image.
	Packages []*Package
	// SBOM is an SPDX 2.3 JSON document of the image's contents.
	SBOM []byte
}

// Build builds the image index.
func Build(ctx context.Context, o Options) (*Result, error) {
	if err := release.CheckStamp(o.Version, o.Commit); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if len(o.Platforms) == 0 {
		o.Platforms = DefaultPlatforms
	}
	seen := map[release.Platform]bool{}
	for _, p := range o.Platforms {
		if seen[p] {
			return nil, fmt.Errorf("image: platform %s given twice", p)
		}
		seen[p] = true
		if p.OS != "linux" || (p.Arch != "amd64" && p.Arch != "arm64") {
			return nil, fmt.Errorf("image: platform %s: images are built for linux/amd64 and linux/arm64", p)
		}
	}
	if len(o.Packages) == 0 {
		o.Packages = DefaultPackages
	}
	if len(o.Archives) == 0 {
		o.Archives = DefaultArchives
	}
	if o.Keyring == "" {
		o.Keyring = DefaultKeyring
	}
	if o.Source == "" {
		o.Source = DefaultSource
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 10 * time.Minute}
	}
	if o.Cache == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("image: no cache directory: %w", err)
		}
		o.Cache = filepath.Join(dir, "tend", "debs")
	}
	kf, err := os.Open(o.Keyring)
	if err != nil {
		return nil, fmt.Errorf("image: Debian archive keyring: %w (install debian-archive-keyring)", err)
	}
	keyring, err := openpgp.ReadKeyRing(kf)
	kf.Close()
	if err != nil {
		return nil, fmt.Errorf("image: keyring %s: %w", o.Keyring, err)
	}
	d := &debian{client: o.HTTP, keyring: keyring, cache: o.Cache, log: o.Log}

	work, err := os.MkdirTemp("", "tend-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	res := &Result{}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range o.Platforms {
		pi, err := buildPlatform(ctx, o, d, work, p)
		if err != nil {
			return nil, err
		}
		res.Images = append(res.Images, *pi)
		plat := &v1.Platform{OS: p.OS, Architecture: p.Arch}
		if p.Arch == "arm64" {
			plat.Variant = "v8"
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        pi.Image,
			Descriptor: v1.Descriptor{Platform: plat},
		})
	}
	res.Index = mutate.Annotations(idx, labels(o)).(v1.ImageIndex)
	return res, nil
}

// labels are the image's OCI labels (and the index's annotations).
func labels(o Options) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "tend",
		"org.opencontainers.image.description": "GitOps control plane for small Kubernetes clusters",
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.revision":    o.Commit,
		"org.opencontainers.image.source":      o.Source,
		"org.opencontainers.image.created":     o.Time.UTC().Format(time.RFC3339),
		"org.opencontainers.image.licenses":    "Apache-2.0",
	}
}

func buildPlatform(ctx context.Context, o Options, d *debian, work string, p release.Platform) (*Platform, error) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, "image %s: resolving %s\n", p, strings.Join(o.Packages, ", "))
	}
	idx, err := d.index(ctx, o.Archives, p.Arch)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", p, err)
	}
	pkgs, err := resolve(idx, o.Packages)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", p, err)
	}
	debs := make([][]byte, len(pkgs))
	for i, pkg := range pkgs {
		if debs[i], err = d.fetch(ctx, pkg); err != nil {
			return nil, fmt.Errorf("image %s: %w", p, err)
		}
	}
	base, err := rootfs(pkgs, debs, o.Time)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", p, err)
	}

	if o.Log != nil {
		fmt.Fprintf(o.Log, "image %s: building tend\n", p)
	}
	bin := filepath.Join(work, p.OS+"_"+p.Arch, "tend")
	if err := release.BuildBinary(ctx, o.Go, o.Root, p, o.Version, o.Commit, bin); err != nil {
		return nil, fmt.Errorf("image %s: %w", p, err)
	}
	binData, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	binLayer, err := binaryLayer(binData, o.Time)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", p, err)
	}

	// Each layer is compressed once (the digest, the layout and a push all
	// read the same bytes); the default level, as docker and ko use: the
	// best one took three times the CPU for 5% less.
	var layers []v1.Layer
	for _, b := range [][]byte{base, binLayer} {
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(b)), nil
		}, tarball.WithCompressionLevel(gzip.DefaultCompression), tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	created := v1.Time{Time: o.Time.UTC()}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: layers[0], History: v1.History{Created: created, CreatedBy: "Debian packages: " + strings.Join(names(pkgs), " "), Comment: "unpacked without maintainer scripts"}},
		mutate.Addendum{Layer: layers[1], History: v1.History{Created: created, CreatedBy: "tend " + o.Version + " (" + o.Commit + ")"}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = p.OS, p.Arch
	if p.Arch == "arm64" {
		cf.Variant = "v8"
	}
	cf.Created = created
	cf.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", UID, UID),
		Entrypoint: []string{Binary},
		Env: []string{
			"PATH=/usr/local/bin:/usr/bin:/bin",
			"HOME=" + Home,
			"SSL_CERT_FILE=" + CABundle,
		},
		WorkingDir: Home,
		Labels:     labels(o),
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	sbom, err := spdx(o, p, img, pkgs, binData)
	if err != nil {
		return nil, fmt.Errorf("image %s: SBOM: %w", p, err)
	}
	return &Platform{Platform: p, Image: img, Packages: pkgs, SBOM: sbom}, nil
}

func names(pkgs []*Package) []string {
	out := make([]string, len(pkgs))
	for i, p := range pkgs {
		out[i] = p.Name + "=" + p.Version
	}
	return out
}

// dropped says whether a package's file stays out of the image:
// documentation but the copyright files (the licenses), manuals,
// translations.
func dropped(name string) bool {
	for _, dir := range []string{"usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian", "usr/share/bug"} {
		if name == dir || strings.HasPrefix(name, dir+"/") {
			return true
		}
	}
	if rest, ok := strings.CutPrefix(name, "usr/share/doc/"); ok {
		_, file, nested := strings.Cut(rest, "/")
		return nested && file != "copyright" && file != ""
	}
	return false
}

// tw writes a layer: every entry with fixed times and numeric owners,
// each path once.
type tw struct {
	w     *tar.Writer
	mtime time.Time
	seen  map[string]bool
}

func (t *tw) header(h *tar.Header) error {
	h.ModTime = t.mtime
	h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
	h.Uname, h.Gname = "", ""
	h.PAXRecords = nil
	h.Format = tar.FormatPAX
	t.seen[strings.TrimSuffix(h.Name, "/")] = true
	return t.w.WriteHeader(h)
}

func (t *tw) dir(name string, mode int64, uid int) error {
	return t.header(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid})
}

func (t *tw) file(name string, mode int64, data []byte) error {
	if err := t.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}); err != nil {
		return err
	}
	_, err := t.w.Write(data)
	return err
}

// rootfs is the base layer: the packages' files in their order, then the
// files their scripts or a base system would have made.
func rootfs(pkgs []*Package, debs [][]byte, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	t := &tw{w: tar.NewWriter(&buf), mtime: mtime.UTC().Truncate(time.Second), seen: map[string]bool{}}
	generated := map[string]bool{"etc/passwd": true, "etc/group": true, "etc/nsswitch.conf": true, strings.TrimPrefix(CABundle, "/"): true}
	var certs []string
	certData := map[string][]byte{}
	for i, p := range pkgs {
		data, err := debData(debs[i])
		if err != nil {
			return nil, fmt.Errorf("package %s: %w", p.Name, err)
		}
		tr := tar.NewReader(data)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("package %s: %w", p.Name, err)
			}
			name := strings.TrimSuffix(path.Clean(strings.TrimPrefix(h.Name, "./")), "/")
			if name == "." || name == "" || generated[name] || dropped(name) {
				continue
			}
			if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
				return nil, fmt.Errorf("package %s: entry %q leaves the root filesystem", p.Name, h.Name)
			}
			// No set-user-ID or set-group-ID programs (passwd, chsh,
			// ssh-keysign): tend runs as 65532 and needs none.
			h.Mode &^= 0o6000
			if t.seen[name] {
				if h.Typeflag == tar.TypeDir {
					continue
				}
				return nil, fmt.Errorf("package %s: %s is in an earlier package too", p.Name, name)
			}
			var body []byte
			if h.Typeflag == tar.TypeReg {
				if body, err = io.ReadAll(tr); err != nil {
					return nil, fmt.Errorf("package %s: %s: %w", p.Name, name, err)
				}
				if strings.HasPrefix(name, "usr/share/ca-certificates/mozilla/") && strings.HasSuffix(name, ".crt") {
					certs = append(certs, name)
					certData[name] = body
				}
			}
			if h.Typeflag == tar.TypeLink {
				target := path.Clean(strings.TrimPrefix(h.Linkname, "./"))
				target = strings.TrimPrefix(target, "/")
				if !t.seen[target] {
					return nil, fmt.Errorf("package %s: hard link %s to %s, which is not in the image", p.Name, name, target)
				}
				h.Linkname = target
			}
			h.Name = name
			if h.Typeflag == tar.TypeDir {
				h.Name += "/"
			}
			if err := t.header(h); err != nil {
				return nil, err
			}
			if body != nil {
				if _, err := t.w.Write(body); err != nil {
					return nil, err
				}
			}
		}
		// What dpkg would record: scanners read the installed packages
		// from /var/lib/dpkg/status.d, as in distroless images.
		if err := t.ensureDirs("var/lib/dpkg/status.d"); err != nil {
			return nil, err
		}
		if err := t.file("var/lib/dpkg/status.d/"+p.Name, 0o644, []byte(strings.Replace(p.Stanza, "\n", "\nStatus: install ok installed\n", 1))); err != nil {
			return nil, err
		}
	}
	if len(certs) == 0 {
		return nil, errors.New("no CA certificates in usr/share/ca-certificates/mozilla: is ca-certificates among the packages?")
	}
	// update-ca-certificates' bundle: every Mozilla certificate, in name
	// order.
	sort.Strings(certs)
	var bundle bytes.Buffer
	for _, c := range certs {
		bundle.Write(certData[c])
		if !bytes.HasSuffix(certData[c], []byte("\n")) {
			bundle.WriteByte('\n')
		}
	}
	if err := t.ensureDirs("etc/ssl/certs"); err != nil {
		return nil, err
	}
	files := []struct {
		name string
		data string
	}{
		{"etc/passwd", fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:%s:/sbin/nologin\n", UID, UID, Home)},
		{"etc/group", fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", UID)},
		{"etc/nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"},
		{strings.TrimPrefix(CABundle, "/"), bundle.String()},
	}
	for _, f := range files {
		if err := t.file(f.name, 0o644, []byte(f.data)); err != nil {
			return nil, err
		}
	}
	for _, d := range []struct {
		name string
		mode int64
		uid  int
	}{
		{"home", 0o755, 0}, {strings.TrimPrefix(Home, "/"), 0o700, UID},
		{"root", 0o700, 0}, {"tmp", 0o1777, 0},
		{"var/lib/tend", 0o755, UID},
	} {
		if t.seen[d.name] {
			continue
		}
		if err := t.ensureDirs(path.Dir(d.name)); err != nil {
			return nil, err
		}
		if err := t.dir(d.name, d.mode, d.uid); err != nil {
			return nil, err
		}
	}
	if err := t.w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ensureDirs writes the directories of name that are not there yet.
func (t *tw) ensureDirs(name string) error {
	if name == "." || name == "" || t.seen[name] {
		return nil
	}
	if err := t.ensureDirs(path.Dir(name)); err != nil {
		return err
	}
	return t.dir(name, 0o755, 0)
}

// binaryLayer holds tend at Binary.
func binaryLayer(bin []byte, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	t := &tw{w: tar.NewWriter(&buf), mtime: mtime.UTC().Truncate(time.Second), seen: map[string]bool{}}
	if err := t.ensureDirs(path.Dir(strings.TrimPrefix(Binary, "/"))); err != nil {
		return nil, err
	}
	if err := t.file(strings.TrimPrefix(Binary, "/"), 0o755, bin); err != nil {
		return nil, err
	}
	if err := t.w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// debData returns the uncompressed data.tar of a .deb (an ar archive).
func debData(deb []byte) (io.Reader, error) {
	const magic = "!<arch>\n"
	if !bytes.HasPrefix(deb, []byte(magic)) {
		return nil, errors.New("not a .deb (no ar header)")
	}
	rest := deb[len(magic):]
	for len(rest) >= 60 {
		hdr := rest[:60]
		name := strings.TrimSuffix(strings.TrimSpace(string(hdr[:16])), "/")
		var size int
		if _, err := fmt.Sscan(strings.TrimSpace(string(hdr[48:58])), &size); err != nil || size < 0 || size > len(rest)-60 {
			return nil, fmt.Errorf("ar member %q: bad size", name)
		}
		body := rest[60 : 60+size]
		rest = rest[60+size:]
		if size%2 == 1 && len(rest) > 0 {
			rest = rest[1:]
		}
		switch name {
		case "data.tar":
			return bytes.NewReader(body), nil
		case "data.tar.xz":
			return xz.NewReader(bytes.NewReader(body))
		case "data.tar.gz":
			return gzip.NewReader(bytes.NewReader(body))
		case "data.tar.zst":
			// One goroutine-free decoder per package, dropped when read.
			zr, err := zstd.NewReader(bytes.NewReader(body), zstd.WithDecoderConcurrency(1))
			if err != nil {
				return nil, err
			}
			return zr.IOReadCloser(), nil
		}
	}
	return nil, errors.New("no data.tar member")
}

// goModules lists the modules built into a binary.
func goModules(bin []byte) (*buildinfo.BuildInfo, error) {
	return buildinfo.Read(bytes.NewReader(bin))
}

// WriteLayout writes the index as an OCI image layout in dir (replacing
// what was there), its reference name the version, and each platform's
// SBOM beside it as sbomDir/tend_<version>_linux_<arch>.spdx.json.
func (r *Result) WriteLayout(dir, sbomDir, version string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("image: layout %s: %w", dir, err)
	}
	if err := p.AppendIndex(r.Index, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": version})); err != nil {
		return fmt.Errorf("image: layout %s: %w", dir, err)
	}
	if err := os.MkdirAll(sbomDir, 0o755); err != nil {
		return err
	}
	for _, pi := range r.Images {
		if err := os.WriteFile(filepath.Join(sbomDir, SBOMName(version, pi.Platform)), pi.SBOM, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// SBOMName is the file name of a platform's SBOM.
func SBOMName(version string, p release.Platform) string {
	return fmt.Sprintf("tend_%s_%s_%s.spdx.json", strings.TrimPrefix(version, "v"), p.OS, p.Arch)
}

// Push uploads the index to ref (registry/repository:tag) with the
// credentials of the Docker config (~/.docker/config.json) and returns
// its digest.
func (r *Result) Push(ctx context.Context, ref string, opts ...remote.Option) (v1.Hash, error) {
	tag, err := name.ParseReference(ref)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("image: push to %q: %w", ref, err)
	}
	opts = append([]remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}, opts...)
	if err := remote.WriteIndex(tag, r.Index, opts...); err != nil {
		return v1.Hash{}, fmt.Errorf("image: push to %s: %w", ref, err)
	}
	return r.Index.Digest()
}
