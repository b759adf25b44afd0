// Package artifact owns what tend has fetched of each Source that holds
// files (a git repository, or an OCI artifact): the checkout on disk, the revision it holds, and the files each fetch
// changed. It is the one place that says which revision of a Source is
// current. The git fetcher tells the Store about a checkout while the
// checkout is still locked, so a reader that opens an artifact (Open) sees
// exactly the revision whose files are on disk: the Source's status (written
// after the fetch returns) and the watch cache that carries it may lag
// behind, the Store never does.
//
// The Store lives in memory: after a restart every Source fetches once,
// and every App renders once, in full.
package artifact

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/tend-gitops/tend/internal/source/git"
)

// Artifact is a fetched revision of a Source, checked out on disk.
type Artifact struct {
	// Dir is the checkout root.
	Dir string
	// Revision is the commit SHA.
	Revision string
	// Ref is the remote ref the revision was resolved from
	// (refs/heads/main, refs/tags/v1.2.0, or the commit for a pinned one).
	Ref string
	// Subject is the commit subject.
	Subject string
	// FetchedAt is when the revision was checked out.
	FetchedAt time.Time
	// OCI says the files were unpacked from an OCI artifact (Pull), whose
	// digest is Revision.
	OCI bool
	// Selector says which part of the artifact was unpacked (Pull).
	Selector string
	// URL is the repository (git) or OCI repository the files came from:
	// after a Source's URL changes, the files are the old URL's until a
	// fetch from the new one succeeds.
	URL string
}

// step records which files one fetch changed.
type step struct {
	from, to string
	changed  []string // nil: unknown
}

// maxSteps bounds the change history kept per Source.
const maxSteps = 64

// Store holds the current artifact of every Source and the files each fetch
// changed, so Apps know what changed between the revision they last
// rendered and the current one. Sources' checkouts live under Root.
type Store struct {
	root    string
	fetcher *git.Fetcher

	mu    sync.RWMutex
	cur   map[types.NamespacedName]Artifact
	steps map[types.NamespacedName][]step
	byDir map[string]types.NamespacedName
}

// NewStore returns an empty Store keeping checkouts under root and fetching
// with f (nil: a Store that is only told about artifacts with Set, for
// tests). The Store hooks itself into f (git.Fetcher.OnCheckout); one
// Fetcher serves one Store.
func NewStore(root string, f *git.Fetcher) *Store {
	s := &Store{
		root: root, fetcher: f,
		cur:   map[types.NamespacedName]Artifact{},
		steps: map[types.NamespacedName][]step{},
		byDir: map[string]types.NamespacedName{},
	}
	if f != nil {
		f.OnCheckout = s.checkedOut
	}
	return s
}

// Dir is where src's checkout lives.
func (s *Store) Dir(src types.NamespacedName) string {
	return filepath.Join(s.root, src.Namespace, src.Name)
}

// Fetch brings src's checkout to the commit opts selects and returns the
// artifact, recorded before any reader can see the new files. first is
// true when src had no artifact before (the first fetch since the process
// started).
func (s *Store) Fetch(ctx context.Context, src types.NamespacedName, opts git.Options) (art Artifact, res *git.Result, first bool, err error) {
	dir := s.Dir(src)
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = filepath.Clean(dir)
	}
	s.mu.Lock()
	prev, had := s.cur[src]
	s.byDir[abs] = src
	s.mu.Unlock()
	if (had && prev.OCI) || (!had && unpacked(dir)) {
		// The Source held an OCI artifact until its spec changed (before
		// a restart, too: the directory is the Store's alone, so files
		// without a git checkout were unpacked by Pull): git starts from
		// an empty directory.
		s.forget(src, dir)
		had = false
	}
	res, err = s.fetcher.Fetch(ctx, dir, opts)
	if err != nil {
		return Artifact{}, nil, false, err
	}
	art, _ = s.Current(src)
	if art.Revision != res.Revision {
		// Another fetch into the directory has finished since this one.
		// What is on disk is the truth; but a caller reporting this fetch
		// must still name the revision it got.
		art = Artifact{Dir: res.Dir, Revision: res.Revision, Ref: res.Ref, Subject: res.CommitSubject, FetchedAt: art.FetchedAt, URL: res.URL}
	}
	return art, res, !had, nil
}

// PullFunc unpacks an artifact into dir unless its revision is have; it
// returns the artifact it found and whether it unpacked it.
type PullFunc func(ctx context.Context, have, dir string) (art Artifact, pulled bool, err error)

// Pull brings src's files to the artifact pull finds (an OCI artifact: its
// files never change under one revision). pull unpacks into a directory of
// its own; the new files replace the old ones only once they are all
// there, while no reader holds the artifact (Open). A pull that finds the
// current revision changes nothing. first is as for Fetch; changed says
// the revision is new.
//
// selector says which part of the artifact pull unpacks (its layer): the
// same revision under another selector is pulled again.
func (s *Store) Pull(ctx context.Context, src types.NamespacedName, selector string, pull PullFunc) (art Artifact, first, changed bool, err error) {
	dir := s.Dir(src)
	s.mu.RLock()
	cur, had := s.cur[src]
	s.mu.RUnlock()
	have := ""
	if had && cur.OCI && cur.Selector == selector {
		have = cur.Revision
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return Artifact{}, false, false, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+src.Name+".pull-")
	if err != nil {
		return Artifact{}, false, false, err
	}
	defer os.RemoveAll(tmp)
	art, pulled, err := pull(ctx, have, tmp)
	if err != nil {
		return Artifact{}, false, false, err
	}
	if !pulled {
		if had && art.URL != "" && cur.URL != art.URL {
			// The same digest from another repository: the same files,
			// now known to come from there.
			cur.URL = art.URL
			s.Set(src, cur, nil)
		}
		return cur, false, false, nil
	}
	release := s.lock(dir)
	defer release()
	if err := os.RemoveAll(dir); err != nil {
		s.drop(src)
		return Artifact{}, false, false, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		// The old files are gone: the next pull starts over.
		s.drop(src)
		return Artifact{}, false, false, err
	}
	art.Dir, art.OCI, art.Selector = dir, true, selector
	if art.FetchedAt.IsZero() {
		art.FetchedAt = time.Now()
	}
	if had && !cur.OCI {
		// From a git checkout: no file list to compare with.
		s.drop(src)
		had = false
	}
	s.Set(src, art, nil)
	return art, !had, true, nil
}

// unpacked reports whether dir holds files but no git checkout.
func unpacked(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		return false
	}
	_, err = os.Stat(filepath.Join(dir, ".git"))
	return err != nil
}

// lock keeps readers and fetches out of dir until release is called.
func (s *Store) lock(dir string) (release func()) {
	if s.fetcher == nil {
		return func() {}
	}
	return s.fetcher.Lock(dir)
}

// forget drops src's artifact and deletes its files, waiting for readers.
func (s *Store) forget(src types.NamespacedName, dir string) {
	release := s.lock(dir)
	defer release()
	s.drop(src)
	_ = os.RemoveAll(dir)
}

// drop forgets src's artifact.
func (s *Store) drop(src types.NamespacedName) {
	s.mu.Lock()
	delete(s.cur, src)
	delete(s.steps, src)
	s.mu.Unlock()
}

// checkedOut is the Fetcher's hook: a fetch into dir has finished and
// still holds the directory.
func (s *Store) checkedOut(dir string, res *git.Result) {
	s.mu.RLock()
	src, ok := s.byDir[dir]
	s.mu.RUnlock()
	if !ok {
		return // not a Source's checkout (an App's pinned revision)
	}
	s.Set(src, Artifact{Dir: res.Dir, Revision: res.Revision, Ref: res.Ref, Subject: res.CommitSubject, FetchedAt: time.Now(), URL: res.URL}, res.ChangedFiles)
}

// Set records a new artifact for src with the files changed since the
// previous one (nil if unknown). Fetch records what it fetches; Set is for
// artifacts made otherwise.
func (s *Store) Set(src types.NamespacedName, art Artifact, changed []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, had := s.cur[src]
	s.cur[src] = art
	if !had || prev.Revision == art.Revision {
		return
	}
	st := append(s.steps[src], step{from: prev.Revision, to: art.Revision, changed: slices.Clone(changed)})
	if len(st) > maxSteps {
		st = st[len(st)-maxSteps:]
	}
	s.steps[src] = st
}

// Current returns the current artifact of src. Its files may change at
// any time; use Open to read them.
func (s *Store) Current(src types.NamespacedName) (Artifact, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	art, ok := s.cur[src]
	return art, ok
}

// Open returns the current artifact of src and keeps fetches out of its
// checkout until release is called, so that its files stay at the
// artifact's revision while they are read. It waits for a fetch that is
// running.
func (s *Store) Open(src types.NamespacedName) (art Artifact, release func(), ok bool) {
	if s.fetcher == nil {
		art, ok = s.Current(src)
		return art, func() {}, ok
	}
	release = s.fetcher.Hold(s.Dir(src))
	art, ok = s.Current(src)
	if !ok || (!art.OCI && !s.fetcher.Clean(art.Dir)) {
		// A git checkout left half way by a failed fetch is never read.
		release()
		return Artifact{}, func() {}, false
	}
	return art, release, true
}

// ErrNoArtifact says a Source has no current artifact (it has not fetched
// yet, or its fetches failed since the controller started).
var ErrNoArtifact = errors.New("no artifact yet")

// ReadFile returns the file at name (slash-separated, relative to the
// checkout root; it cannot leave the checkout, through .. or a symlink) in
// the current artifact of src, and the artifact's revision.
func (s *Store) ReadFile(src types.NamespacedName, name string) ([]byte, string, error) {
	art, release, ok := s.Open(src)
	if !ok {
		return nil, "", ErrNoArtifact
	}
	defer release()
	data, err := ReadFileIn(art.Dir, name)
	return data, art.Revision, err
}

// ReadFileIn reads the file at name (slash-separated, relative to dir)
// without leaving dir, through .. or a symlink.
func ReadFileIn(dir, name string) ([]byte, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return root.ReadFile(filepath.FromSlash(name))
}

// Remove forgets src and deletes its checkout.
func (s *Store) Remove(src types.NamespacedName) error {
	s.mu.Lock()
	delete(s.cur, src)
	delete(s.steps, src)
	for d, k := range s.byDir {
		if k == src {
			delete(s.byDir, d)
		}
	}
	s.mu.Unlock()
	return os.RemoveAll(s.Dir(src))
}

// ChangedBetween returns the files changed in src between revision from
// and revision to, or nil when unknown (from was never seen, or a step in
// between has no file list).
func (s *Store) ChangedBetween(src types.NamespacedName, from, to string) []string {
	if from == to {
		return []string{}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.steps[src]
	// Walk back from the step that ends at `to` until one starts at `from`.
	out := []string{}
	want := to
	for i := len(st) - 1; i >= 0; i-- {
		if st[i].to != want {
			continue
		}
		if st[i].changed == nil {
			return nil
		}
		out = append(out, st[i].changed...)
		if st[i].from == from {
			slices.Sort(out)
			return slices.Compact(out)
		}
		want = st[i].from
	}
	return nil
}
