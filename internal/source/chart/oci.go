package chart

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// Media types of a Helm chart stored in an OCI registry.
const (
	ConfigMediaType       = "application/vnd.cncf.helm.config.v1+json"
	ChartLayerMediaType   = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
	legacyChartLayerMedia = "application/tar+gzip"
	maxManifestBytes      = 4 << 20
)

// schemeOCIPlainHTTP is the scheme of an OCI repository prefix reached over
// plain HTTP.
const schemeOCIPlainHTTP = "oci+http"

// OCIURL returns the repository URL that FetchChart and CheckOCI take for
// an OCI Source: its spec.oci.url as it is (HTTPS), or, with insecure (its
// spec.oci.insecure), the same URL with the scheme oci+http (plain HTTP).
func OCIURL(ociURL string, insecure bool) string {
	if rest, ok := strings.CutPrefix(ociURL, "oci://"); ok && insecure {
		return schemeOCIPlainHTTP + "://" + rest
	}
	return ociURL
}

// OCIHost is the host[:port] of an oci:// URL.
func OCIHost(ociURL string) string {
	host, _, _ := strings.Cut(strings.TrimPrefix(ociURL, "oci://"), "/")
	return host
}

// tagList is an OCI repository's semver tags, kept for the TTL.
type tagList struct {
	mu      sync.Mutex
	fetched time.Time
	tags    []string // with "_" turned back into "+", as Helm pushes them
}

// tagRef is a tag resolved to its chart layer, kept for the TTL.
type tagRef struct {
	mu      sync.Mutex
	fetched time.Time
	layer   ocispec.Descriptor
}

func (f *Fetcher) fetchOCI(ctx context.Context, u *url.URL, name, version string, cred *url.Userinfo) ([]byte, string, error) {
	if u.Host == "" {
		return nil, "", fmt.Errorf("OCI repository URL %q has no host; want oci://host/path", redact(u))
	}
	ref := u.Host + "/" + strings.TrimPrefix(path.Join(strings.Trim(u.Path, "/"), name), "/")
	// The scheme is part of display, and so of every cache key: what was
	// fetched over plain HTTP is never served to a caller that asked for
	// HTTPS.
	display := u.Scheme + "://" + ref
	repo, err := remote.NewRepository(ref)
	if err != nil {
		return nil, "", fmt.Errorf("OCI reference %s: %w; check the repository URL and chart name", display, err)
	}
	plain := f.plainHTTP || u.Scheme == schemeOCIPlainHTTP
	repo.PlainHTTP = plain
	repo.Client = f.authClient(u.Host, cred)
	user := cacheUser(cred)

	picked := strings.TrimPrefix(strings.TrimSpace(version), "=")
	if _, exact := exactVersion(version); !exact {
		tags, err := f.ociTags(ctx, repo, display, user, cred, plain)
		if err != nil {
			return nil, "", err
		}
		var ok bool
		picked, ok, err = pickVersion(tags, version)
		if err != nil {
			return nil, "", fmt.Errorf("chart %s: %w", display, err)
		}
		if !ok {
			return nil, "", notFoundVersion(display, name, version, tags)
		}
	}
	tag := strings.ReplaceAll(picked, "+", "_")
	layer, err := f.ociLayer(ctx, repo, display, tag, user, cred, plain)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			// Name what is there, when the listing works.
			if tags, terr := f.ociTags(ctx, repo, display, user, cred, plain); terr == nil {
				return nil, "", notFoundVersion(display, name, version, tags)
			}
		}
		return nil, "", err
	}
	key := cacheKey(display, name, picked, layer.Digest.String())
	data, err := f.archive(ctx, key, func() ([]byte, error) {
		if layer.Size > f.maxChartBytes {
			return nil, fmt.Errorf("chart %s:%s is %d bytes, larger than the limit of %d", display, tag, layer.Size, f.maxChartBytes)
		}
		rc, err := repo.Fetch(ctx, layer)
		if err != nil {
			return nil, ociError(fmt.Sprintf("download chart %s:%s", display, tag), err, cred, plain)
		}
		defer rc.Close()
		data, err := content.ReadAll(rc, layer)
		if err != nil {
			return nil, fmt.Errorf("download chart %s:%s: %w", display, tag, err)
		}
		return data, nil
	})
	if err != nil {
		return nil, "", err
	}
	return data, picked, nil
}

// authClient returns an HTTP client that authenticates to host with cred.
func (f *Fetcher) authClient(host string, cred *url.Userinfo) *auth.Client {
	c := &auth.Client{
		Client: f.client,
		Header: http.Header{"User-Agent": {"tend"}},
		Cache:  auth.NewCache(),
	}
	if cred != nil {
		user, pass := credentials(cred)
		c.Credential = auth.StaticCredential(host, auth.Credential{Username: user, Password: pass})
	}
	return c
}

// ociTags lists the semver tags of repo, reusing a listing younger than the
// TTL.
func (f *Fetcher) ociTags(ctx context.Context, repo *remote.Repository, display, user string, cred *url.Userinfo, plain bool) ([]string, error) {
	key := display + "\x00" + user
	f.mu.Lock()
	tl := f.tags[key]
	if tl == nil {
		tl = &tagList{}
		f.tags[key] = tl
	}
	f.mu.Unlock()

	tl.mu.Lock()
	defer tl.mu.Unlock()
	if f.fresh(tl.fetched) {
		return tl.tags, nil
	}
	var tags []string
	err := repo.Tags(ctx, "", func(page []string) error {
		for _, t := range page {
			tags = append(tags, strings.ReplaceAll(t, "_", "+"))
		}
		return nil
	})
	if err != nil {
		err = ociError("list tags of "+display, err, cred, plain)
		if errors.Is(err, ErrNotFound) {
			err = mark(fmt.Errorf("chart not found: %v; check the chart name (case-sensitive) and the repository URL", err), ErrNotFound)
		}
		return nil, err
	}
	sort.Strings(tags)
	tl.tags, tl.fetched = tags, f.now()
	return tags, nil
}

// ociLayer resolves tag to the chart layer of its manifest, reusing a
// resolution younger than the TTL.
func (f *Fetcher) ociLayer(ctx context.Context, repo *remote.Repository, display, tag, user string, cred *url.Userinfo, plain bool) (ocispec.Descriptor, error) {
	key := display + ":" + tag + "\x00" + user
	f.mu.Lock()
	tr := f.tagRefs[key]
	if tr == nil {
		tr = &tagRef{}
		f.tagRefs[key] = tr
	}
	f.mu.Unlock()

	tr.mu.Lock()
	defer tr.mu.Unlock()
	if f.fresh(tr.fetched) {
		return tr.layer, nil
	}
	desc, rc, err := repo.FetchReference(ctx, tag)
	if err != nil {
		return ocispec.Descriptor{}, ociError(fmt.Sprintf("chart %s:%s", display, tag), err, cred, plain)
	}
	defer rc.Close()
	if desc.Size > maxManifestBytes {
		return ocispec.Descriptor{}, fmt.Errorf("chart %s:%s: manifest of %d bytes is too large", display, tag, desc.Size)
	}
	b, err := content.ReadAll(rc, desc)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("chart %s:%s: read manifest: %w", display, tag, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("chart %s:%s: manifest is not valid JSON: %w", display, tag, err)
	}
	if m.Config.MediaType != ConfigMediaType {
		return ocispec.Descriptor{}, fmt.Errorf("%s:%s is not a Helm chart (its config media type is %q, want %q); check the repository URL and chart name", display, tag, m.Config.MediaType, ConfigMediaType)
	}
	for _, l := range m.Layers {
		if l.MediaType == ChartLayerMediaType || l.MediaType == legacyChartLayerMedia {
			tr.layer, tr.fetched = l, f.now()
			return l, nil
		}
	}
	return ocispec.Descriptor{}, fmt.Errorf("%s:%s has no chart layer (media type %s); it was not pushed by helm push", display, tag, ChartLayerMediaType)
}

// CheckOCI checks that the OCI registry of repoURL (oci:// or oci+http://,
// see OCIURL) speaks the protocol the URL names, without credentials: any
// HTTP answer to a request for its API root (/v2/) below 500 passes, 401
// included; a 5xx is an error saying the registry is failing.
// A registry that answers HTTPS with plain HTTP, or plain HTTP with an
// error asking for HTTPS, gives an ErrScheme error; one that cannot be
// reached gives an error saying so.
func (f *Fetcher) CheckOCI(ctx context.Context, repoURL string) error {
	u, err := url.Parse(repoURL)
	if err != nil {
		return fmt.Errorf("OCI repository URL: %w", err)
	}
	u.User = nil
	if u.Scheme != "oci" && u.Scheme != schemeOCIPlainHTTP {
		return fmt.Errorf("OCI repository URL %q: want an oci:// URL", redact(u))
	}
	if u.Host == "" {
		return fmt.Errorf("OCI repository URL %q has no host; want oci://host/path", redact(u))
	}
	plain := f.plainHTTP || u.Scheme == schemeOCIPlainHTTP
	endpoint := "https://" + u.Host + "/v2/"
	if plain {
		endpoint = "http://" + u.Host + "/v2/"
	}
	what := "registry of " + redact(u)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	req.Header.Set("User-Agent", "tend")
	resp, err := f.client.Do(req)
	if err != nil {
		return ociError(what, err, nil, plain)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	// A registry's API root answers 200 or 401. A 400 that talks of
	// HTTPS is a TLS server answering a plain HTTP request, as Go's and
	// nginx's do.
	if plain && resp.StatusCode == http.StatusBadRequest && strings.Contains(string(body), "HTTPS") {
		return mark(fmt.Errorf("%s: GET %s answered %s %q: the registry speaks HTTPS, not plain HTTP; remove spec.oci.insecure from the Source", what, endpoint, resp.Status, strings.TrimSpace(string(body))), ErrScheme)
	}
	// A server error says the registry is failing, whatever protocol it
	// speaks: not Ready, and worth trying again.
	if resp.StatusCode >= http.StatusInternalServerError {
		return fmt.Errorf("%s: GET %s answered %s: the registry is failing; check that it is healthy (tend tries again)", what, endpoint, resp.Status)
	}
	return nil
}

// ociError describes a registry error, marking authentication, not-found
// and protocol (HTTPS or plain HTTP) failures. plain says the request was
// made over plain HTTP.
func ociError(what string, err error, cred *url.Userinfo, plain bool) error {
	var resp *errcode.ErrorResponse
	status := 0
	if errors.As(err, &resp) {
		status = resp.StatusCode
	}
	var rec tls.RecordHeaderError
	if errors.Is(err, http.ErrSchemeMismatch) || (errors.As(err, &rec) && string(rec.RecordHeader[:]) == "HTTP/") {
		return mark(fmt.Errorf("%s: %v: the registry speaks plain HTTP, not HTTPS, and tend uses HTTPS (on loopback too) unless the Source sets spec.oci.insecure: true; set it to reach this registry over plain HTTP (unencrypted), or serve the registry over HTTPS", what, err), ErrScheme)
	}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden ||
		errors.Is(err, auth.ErrBasicCredentialNotFound):
		hint := "the registry rejected the username and password; check the credentials in the secretRef"
		if cred == nil {
			hint = "the registry requires credentials; set a secretRef with a username and password"
		}
		return mark(fmt.Errorf("%s: %v: %s", what, err, hint), ErrUnauthorized)
	case status == http.StatusNotFound || errors.Is(err, errdef.ErrNotFound):
		return mark(fmt.Errorf("%s: %v", what, err), ErrNotFound)
	case status == http.StatusBadRequest && plain:
		return fmt.Errorf("%s: %w; if the registry speaks only HTTPS, remove spec.oci.insecure from the Source", what, err)
	}
	return fmt.Errorf("%s: %w; check that the registry is reachable", what, err)
}
