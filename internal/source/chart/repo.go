package chart

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// repoIndex is what the Fetcher keeps of one HTTP repository's index.yaml:
// the entries of the charts asked for so far, not the whole file.
type repoIndex struct {
	mu      sync.Mutex // held while fetching, so concurrent callers wait for one fetch
	fetched time.Time
	etag    string
	wanted  map[string]struct{}
	charts  map[string][]indexEntry // by chart name; only wanted names that exist
}

// indexEntry is one chart version in index.yaml, reduced to what a fetch
// needs.
type indexEntry struct {
	Version string   `yaml:"version"`
	URLs    []string `yaml:"urls"`
	Digest  string   `yaml:"digest"`
	Removed bool     `yaml:"removed"`
}

// indexFile is the part of index.yaml that is decoded.
type indexFile struct {
	APIVersion string                  `yaml:"apiVersion"`
	Entries    map[string][]indexEntry `yaml:"entries"`
}

func (f *Fetcher) fetchHTTP(ctx context.Context, u *url.URL, name, version string, auth *url.Userinfo) ([]byte, string, error) {
	repo := *u
	repo.User = nil
	repo.Path = strings.TrimSuffix(repo.Path, "/")
	repo.RawPath = ""
	repoStr := repo.String()

	entries, err := f.indexEntries(ctx, &repo, name, auth)
	if err != nil {
		return nil, "", err
	}
	versions := make([]string, 0, len(entries))
	for _, e := range entries {
		versions = append(versions, e.Version)
	}
	picked, ok, err := pickVersion(versions, version)
	if err != nil {
		return nil, "", fmt.Errorf("chart %q from %s: %w", name, repoStr, err)
	}
	if !ok {
		return nil, "", notFoundVersion(repoStr, name, version, versions)
	}
	var entry indexEntry
	for _, e := range entries {
		if e.Version == picked {
			entry = e
			break
		}
	}
	if len(entry.URLs) == 0 {
		return nil, "", fmt.Errorf("chart %q version %s in %s has no download URL in index.yaml; the repository index is broken", name, picked, repoStr)
	}
	dl, err := resolveChartURL(&repo, entry.URLs[0])
	if err != nil {
		return nil, "", fmt.Errorf("chart %q version %s in %s: download URL %q: %w", name, picked, repoStr, entry.URLs[0], err)
	}
	digest := strings.TrimPrefix(entry.Digest, "sha256:")
	key := cacheKey(repoStr, name, picked, digest+"\x00"+dl.String())
	// Like Helm, send the repository's credentials only to the repository's
	// own host, not to wherever its index points.
	dlAuth := auth
	if dl.Scheme != repo.Scheme || dl.Host != repo.Host {
		dlAuth = nil
	}
	data, err := f.archive(ctx, key, func() ([]byte, error) {
		data, _, _, err := f.get(ctx, dl, dlAuth, "", f.maxChartBytes)
		if err != nil {
			return nil, fmt.Errorf("download chart %q version %s: %w", name, picked, err)
		}
		if digest != "" {
			sum := sha256.Sum256(data)
			if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, digest) {
				return nil, fmt.Errorf("download chart %q version %s from %s: digest sha256:%s does not match sha256:%s in index.yaml; the archive or the index is corrupt", name, picked, redact(dl), got, digest)
			}
		}
		return data, nil
	})
	if err != nil {
		return nil, "", err
	}
	return data, picked, nil
}

// indexEntries returns the index entries of chart name in the repository,
// fetching index.yaml when it is older than the TTL or name was not asked
// for before.
func (f *Fetcher) indexEntries(ctx context.Context, repo *url.URL, name string, auth *url.Userinfo) ([]indexEntry, error) {
	key := repo.String() + "\x00" + cacheUser(auth)
	f.mu.Lock()
	idx := f.indexes[key]
	if idx == nil {
		idx = &repoIndex{wanted: map[string]struct{}{}, charts: map[string][]indexEntry{}}
		f.indexes[key] = idx
	}
	f.mu.Unlock()

	idx.mu.Lock()
	defer idx.mu.Unlock()
	_, known := idx.wanted[name]
	if !known || !f.fresh(idx.fetched) {
		idx.wanted[name] = struct{}{}
		if err := f.loadIndex(ctx, repo, idx, auth, known); err != nil {
			if !known {
				delete(idx.wanted, name)
			}
			return nil, err
		}
	}
	entries, ok := idx.charts[name]
	if !ok {
		err := fmt.Errorf("chart %q not found in %s; check the chart name (names are case-sensitive)", name, repo)
		return nil, mark(err, ErrNotFound)
	}
	return entries, nil
}

// loadIndex (re)reads index.yaml into idx. With conditional, an unchanged
// index (HTTP 304 to If-None-Match) only refreshes the fetch time.
func (f *Fetcher) loadIndex(ctx context.Context, repo *url.URL, idx *repoIndex, auth *url.Userinfo, conditional bool) error {
	indexURL := repo.JoinPath("index.yaml")
	etag := ""
	if conditional {
		etag = idx.etag
	}
	body, newETag, notModified, err := f.get(ctx, indexURL, auth, etag, defaultMaxIndexBytes)
	if err != nil {
		return fmt.Errorf("chart repository %s: %w", repo, err)
	}
	if notModified {
		idx.fetched = f.now()
		return nil
	}
	var file indexFile
	if err := yaml.Unmarshal(body, &file); err != nil {
		return fmt.Errorf("chart repository %s: index.yaml is not valid YAML (%v); check the repository URL", repo, err)
	}
	if file.APIVersion == "" && file.Entries == nil {
		return fmt.Errorf("chart repository %s: index.yaml has no apiVersion and no entries; is this a Helm chart repository?", repo)
	}
	charts := make(map[string][]indexEntry, len(idx.wanted))
	for name := range idx.wanted {
		all, ok := file.Entries[name]
		if !ok {
			continue
		}
		kept := make([]indexEntry, 0, len(all))
		for _, e := range all {
			if !e.Removed && e.Version != "" {
				kept = append(kept, e)
			}
		}
		charts[name] = kept
	}
	idx.charts = charts
	idx.etag = newETag
	idx.fetched = f.now()
	return nil
}

// resolveChartURL resolves a chart URL from index.yaml, which may be
// relative to the repository URL.
func resolveChartURL(repo *url.URL, ref string) (*url.URL, error) {
	r, err := url.Parse(ref)
	if err != nil {
		return nil, err
	}
	if r.IsAbs() {
		return r, nil
	}
	base := *repo
	base.Path = strings.TrimSuffix(base.Path, "/") + "/"
	return base.ResolveReference(r), nil
}

// get fetches target. With etag set it sends If-None-Match and reports an
// unchanged resource as notModified. Bodies over limit bytes are an error.
func (f *Fetcher) get(ctx context.Context, target *url.URL, auth *url.Userinfo, etag string, limit int64) (body []byte, newETag string, notModified bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return nil, "", false, err
	}
	if auth != nil {
		user, pass := credentials(auth)
		req.SetBasicAuth(user, pass)
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	req.Header.Set("User-Agent", "tend")
	resp, err := f.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, "", false, fmt.Errorf("GET %s: %w; check that the URL is right and the server is reachable", redact(target), err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && etag != "":
		return nil, etag, true, nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		hint := "the server rejected the username and password; check the credentials in the secretRef"
		if auth == nil {
			hint = "the server requires credentials; set a secretRef with a username and password"
		}
		return nil, "", false, mark(fmt.Errorf("GET %s: HTTP %s: %s", redact(target), resp.Status, hint), ErrUnauthorized)
	case resp.StatusCode == http.StatusNotFound:
		return nil, "", false, mark(fmt.Errorf("GET %s: HTTP %s; check the repository URL", redact(target), resp.Status), ErrNotFound)
	case resp.StatusCode != http.StatusOK:
		return nil, "", false, fmt.Errorf("GET %s: HTTP %s", redact(target), resp.Status)
	}
	var buf bytes.Buffer
	if resp.ContentLength > 0 {
		if resp.ContentLength > limit {
			return nil, "", false, fmt.Errorf("GET %s: %d bytes is larger than the limit of %d", redact(target), resp.ContentLength, limit)
		}
		buf.Grow(int(resp.ContentLength))
	}
	n, err := io.Copy(&buf, io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, "", false, fmt.Errorf("GET %s: reading the response: %w", redact(target), err)
	}
	if n > limit {
		return nil, "", false, fmt.Errorf("GET %s: response is larger than the limit of %d bytes", redact(target), limit)
	}
	return buf.Bytes(), resp.Header.Get("ETag"), false, nil
}
