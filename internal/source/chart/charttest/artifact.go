package charttest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"sort"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
)

// Media types `flux push artifact` writes.
const (
	FluxConfigMediaType  = "application/vnd.cncf.flux.config.v1+json"
	FluxContentMediaType = "application/vnd.cncf.flux.content.v1.tar+gzip"
)

// TarGz returns files (slash-separated path -> content) as a gzipped tar,
// in path order.
func TarGz(t testing.TB, files map[string]string) []byte {
	t.Helper()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// PushArtifact pushes files as `flux push artifact` does (one gzipped tar
// layer of media type FluxContentMediaType, the Flux config media type,
// source and revision annotations) to <Host>/<repository>:<tag>, and
// returns the manifest's digest.
func (r *Registry) PushArtifact(t testing.TB, repository, tag string, files map[string]string) string {
	t.Helper()
	return r.PushLayers(t, repository, tag, FluxConfigMediaType, map[string]string{
		ocispec.AnnotationSource:   "https://git.example/platform",
		ocispec.AnnotationRevision: "main@sha1:" + tag,
	}, Layer{MediaType: FluxContentMediaType, Data: TarGz(t, files)})
}

// Layer is one layer of an artifact PushLayers pushes.
type Layer struct {
	MediaType string
	Data      []byte
}

// PushLayers pushes an artifact of the given config media type,
// annotations and layers to <Host>/<repository>:<tag> with oras-go, and
// returns the manifest's digest.
func (r *Registry) PushLayers(t testing.TB, repository, tag, configMediaType string, annotations map[string]string, layers ...Layer) string {
	t.Helper()
	ctx := context.Background()
	repo, err := remote.NewRepository(r.Host + "/" + repository)
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = r.Client == nil
	c := &auth.Client{Cache: auth.NewCache()}
	if r.Client != nil {
		c.Client = r.Client
	}
	if r.username != "" {
		c.Credential = auth.StaticCredential(r.Host, auth.Credential{Username: r.username, Password: r.password})
	}
	repo.Client = c
	push := func(mediaType string, data []byte) ocispec.Descriptor {
		d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
		if err := repo.Push(ctx, d, bytes.NewReader(data)); err != nil {
			t.Fatalf("charttest: push blob to %s: %v", repository, err)
		}
		return d
	}
	m := ocispec.Manifest{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   ocispec.MediaTypeImageManifest,
		Config:      push(configMediaType, []byte("{}")),
		Annotations: annotations,
	}
	for _, l := range layers {
		m.Layers = append(m.Layers, push(l.MediaType, l.Data))
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := repo.PushReference(ctx, md, bytes.NewReader(b), tag); err != nil {
		t.Fatalf("charttest: push manifest %s:%s: %v", repository, tag, err)
	}
	return md.Digest.String()
}
