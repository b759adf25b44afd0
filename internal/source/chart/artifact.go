package chart

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"
)

// Limits of an OCI artifact pulled by PullArtifact.
const (
	// MaxArtifactBytes bounds the selected layer as stored (compressed).
	MaxArtifactBytes = 100 << 20
	// MaxUnpackedBytes bounds the files the layer unpacks to.
	MaxUnpackedBytes = 500 << 20
	// MaxEntries bounds the files and directories the layer holds.
	MaxEntries = 100_000
)

// ArtifactRef selects an artifact of one OCI repository and a layer of it.
// Digest wins over SemVer, SemVer over Tag; all empty means the tag
// "latest".
type ArtifactRef struct {
	Tag          string
	SemVer       string
	SemverFilter string // a regular expression tags must match before SemVer
	Digest       string
	// LayerMediaType selects the first layer of that media type; empty
	// means the first layer.
	LayerMediaType string
}

// Artifact describes a pulled artifact.
type Artifact struct {
	// Digest is the manifest's digest, sha256:<hex>.
	Digest string
	// Tag is the tag the artifact was resolved from ("" when pinned by
	// digest).
	Tag string
	// Source and Revision are the manifest's
	// org.opencontainers.image.source and .revision annotations, which
	// `flux push artifact` sets to the git repository and commit the
	// files came from.
	Source, Revision string
	// Chart says the layer was a Helm chart, unpacked with the chart at the
	// root of the directory.
	Chart bool
}

// PullArtifact resolves ref in the repository repoURL (oci://host/path over
// HTTPS, oci+http://host/path over plain HTTP, see OCIURL). When the
// resolved manifest's digest is have, it returns the artifact with pulled
// false and touches nothing. Otherwise it downloads the selected layer (a
// gzipped tar), checks it against its digest, and unpacks it into dir,
// which must not exist or be empty; a Helm chart's layer is unpacked
// without its top directory, so the chart is the root of dir. The layer may
// hold only directories and regular files, with paths that stay inside
// dir.
//
// Errors are marked as FetchChart's are (ErrNotFound, ErrUnauthorized,
// ErrScheme); a bad ref or artifact is ErrNotFound, which only a change of
// the Source or of the repository fixes.
func (f *Fetcher) PullArtifact(ctx context.Context, repoURL string, ref ArtifactRef, auth *url.Userinfo, have, dir string) (art Artifact, pulled bool, err error) {
	u, err := url.Parse(repoURL)
	if err != nil {
		return Artifact{}, false, fmt.Errorf("OCI repository URL: %w", err)
	}
	u.User = nil
	if u.Scheme != "oci" && u.Scheme != schemeOCIPlainHTTP {
		return Artifact{}, false, mark(fmt.Errorf("OCI repository URL %q: want an oci:// URL", redact(u)), ErrNotFound)
	}
	name := u.Host + "/" + strings.Trim(u.Path, "/")
	display := "oci://" + name
	repo, err := remote.NewRepository(name)
	if err != nil || strings.Trim(u.Path, "/") == "" {
		return Artifact{}, false, mark(fmt.Errorf("OCI repository %s: want oci://host/repository: %v", display, err), ErrNotFound)
	}
	plain := f.plainHTTP || u.Scheme == schemeOCIPlainHTTP
	repo.PlainHTTP = plain
	repo.Client = f.authClient(u.Host, auth)

	reference, tag, err := f.resolveArtifactRef(ctx, repo, display, ref, auth, plain)
	if err != nil {
		return Artifact{}, false, err
	}
	desc, err := repo.Resolve(ctx, reference)
	if err != nil {
		return Artifact{}, false, ociError(fmt.Sprintf("artifact %s:%s", display, reference), err, auth, plain)
	}
	art = Artifact{Digest: desc.Digest.String(), Tag: tag}
	if art.Digest == have {
		return art, false, nil
	}
	what := fmt.Sprintf("artifact %s@%s", display, art.Digest)
	if desc.MediaType == ocispec.MediaTypeImageIndex || desc.MediaType == "application/vnd.docker.distribution.manifest.list.v2+json" {
		return Artifact{}, false, mark(fmt.Errorf("%s is an image index (%s); tend pulls artifacts of one manifest, as `flux push artifact` and `helm push` write", what, desc.MediaType), ErrNotFound)
	}
	if desc.Size > maxManifestBytes {
		return Artifact{}, false, fmt.Errorf("%s: manifest of %d bytes is too large", what, desc.Size)
	}
	rc, err := repo.Fetch(ctx, desc)
	if err != nil {
		return Artifact{}, false, ociError(what, err, auth, plain)
	}
	b, err := content.ReadAll(rc, desc)
	rc.Close()
	if err != nil {
		return Artifact{}, false, fmt.Errorf("%s: read manifest: %w", what, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Artifact{}, false, mark(fmt.Errorf("%s: manifest is not valid JSON: %v", what, err), ErrNotFound)
	}
	art.Source, art.Revision = m.Annotations[ocispec.AnnotationSource], m.Annotations[ocispec.AnnotationRevision]
	layer, err := selectLayer(what, m, ref.LayerMediaType)
	if err != nil {
		return Artifact{}, false, err
	}
	art.Chart = layer.MediaType == ChartLayerMediaType || (layer.MediaType == legacyChartLayerMedia && m.Config.MediaType == ConfigMediaType)
	if layer.Size > MaxArtifactBytes {
		return Artifact{}, false, mark(fmt.Errorf("%s: its layer is %d bytes, larger than the limit of %d", what, layer.Size, MaxArtifactBytes), ErrNotFound)
	}
	lrc, err := repo.Fetch(ctx, layer)
	if err != nil {
		return Artifact{}, false, ociError(what+": download layer", err, auth, plain)
	}
	defer lrc.Close()
	vr := content.NewVerifyReader(lrc, layer)
	if err := unpack(vr, dir, art.Chart); err != nil {
		return Artifact{}, false, fmt.Errorf("%s: unpack layer %s: %w", what, layer.Digest, err)
	}
	// Read what gzip left (its trailer may end before the blob does) and
	// check the whole blob against its digest and size.
	if _, err := io.Copy(io.Discard, vr); err != nil {
		return Artifact{}, false, fmt.Errorf("%s: download layer %s: %w", what, layer.Digest, err)
	}
	if err := vr.Verify(); err != nil {
		return Artifact{}, false, mark(fmt.Errorf("%s: layer %s does not match its digest: %v", what, layer.Digest, err), ErrNotFound)
	}
	return art, true, nil
}

// resolveArtifactRef returns the reference (digest or tag) to pull and the
// tag it names.
func (f *Fetcher) resolveArtifactRef(ctx context.Context, repo *remote.Repository, display string, ref ArtifactRef, auth *url.Userinfo, plain bool) (reference, tag string, err error) {
	switch {
	case ref.Digest != "":
		return ref.Digest, "", nil
	case ref.SemVer != "":
		var filter *regexp.Regexp
		if ref.SemverFilter != "" {
			if filter, err = regexp.Compile(ref.SemverFilter); err != nil {
				return "", "", mark(fmt.Errorf("semverFilter %q is not a regular expression: %v", ref.SemverFilter, err), ErrNotFound)
			}
		}
		// Listed afresh on every pull: a new tag must be seen at the
		// Source's next interval, not after a cache expires.
		var tags []string
		err := repo.Tags(ctx, "", func(page []string) error {
			for _, t := range page {
				if filter == nil || filter.MatchString(t) {
					tags = append(tags, t)
				}
			}
			return nil
		})
		if err != nil {
			return "", "", ociError("list tags of "+display, err, auth, plain)
		}
		picked, ok, err := pickVersion(tags, ref.SemVer)
		if err != nil {
			return "", "", mark(fmt.Errorf("%s: %w", display, err), ErrNotFound)
		}
		if !ok {
			return "", "", mark(fmt.Errorf("%s has no tag matching semver %q (%s)", display, ref.SemVer, describeVersions(tags)), ErrNotFound)
		}
		return picked, picked, nil
	case ref.Tag != "":
		return ref.Tag, ref.Tag, nil
	}
	return "latest", "latest", nil
}

// selectLayer picks the layer of media type want, or the first layer.
func selectLayer(what string, m ocispec.Manifest, want string) (ocispec.Descriptor, error) {
	if len(m.Layers) == 0 {
		return ocispec.Descriptor{}, mark(fmt.Errorf("%s has no layers", what), ErrNotFound)
	}
	if want == "" {
		return m.Layers[0], nil
	}
	var types []string
	for _, l := range m.Layers {
		if l.MediaType == want {
			return l, nil
		}
		types = append(types, l.MediaType)
	}
	return ocispec.Descriptor{}, mark(fmt.Errorf("%s has no layer of media type %q (spec.oci.layerSelector.mediaType); its layers are %s", what, want, strings.Join(types, ", ")), ErrNotFound)
}

// unpack unpacks the gzipped tar r into dir. With stripTop, every entry's
// first path element (a chart's directory) is dropped.
func unpack(r io.Reader, dir string, stripTop bool) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("the layer is not gzip-compressed: %w", err)
	}
	defer zr.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(zr)
	var total int64
	entries := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("the layer is not a valid tar archive: %w", err)
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if entries++; entries > MaxEntries {
			return fmt.Errorf("it has more than %d entries", MaxEntries)
		}
		if slices.Contains(strings.Split(h.Name, "/"), "..") {
			return fmt.Errorf("entry %q leaves the artifact's directory", h.Name)
		}
		if stripTop {
			_, name, _ = strings.Cut(name, "/")
		}
		if name == "" || name == "." {
			continue
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(filepath.FromSlash(name), 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			total += h.Size
			if total > MaxUnpackedBytes {
				return fmt.Errorf("its files are larger than the limit of %d bytes", MaxUnpackedBytes)
			}
			if d := path.Dir(name); d != "." {
				if err := root.MkdirAll(filepath.FromSlash(d), 0o755); err != nil {
					return err
				}
			}
			mode := fs.FileMode(0o644)
			if h.FileInfo().Mode()&0o111 != 0 {
				mode = 0o755
			}
			w, err := root.OpenFile(filepath.FromSlash(name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
			if err != nil {
				return err
			}
			_, err = io.Copy(w, io.LimitReader(tr, h.Size))
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
		case tar.TypeXGlobalHeader:
		default:
			return fmt.Errorf("entry %q is a %s; tend unpacks only directories and regular files (links are refused)", h.Name, tarType(h.Typeflag))
		}
	}
}

func tarType(t byte) string {
	switch t {
	case tar.TypeSymlink:
		return "symbolic link"
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar, tar.TypeBlock:
		return "device"
	case tar.TypeFifo:
		return "named pipe"
	}
	return fmt.Sprintf("tar entry of type %q", t)
}
