package controller

import (
	"sort"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Artifact is a fetched revision of a Source, checked out on disk.
type Artifact struct {
	// Dir is the checkout root (git) or empty for chart sources.
	Dir string
	// Revision is the commit SHA (git).
	Revision string
	// Subject is the commit subject.
	Subject string
	// FetchedAt is when the revision was fetched.
	FetchedAt time.Time
}

// artifactStep records which files one fetch changed.
type artifactStep struct {
	from, to string
	changed  []string // nil: unknown
}

// Artifacts holds the current artifact of every Source and the files each
// fetch changed, so Apps know what changed between the revision they last
// rendered and the current one. It is shared by the Source and App
// reconcilers; it lives in memory (after a restart every App renders once).
type Artifacts struct {
	mu    sync.RWMutex
	cur   map[types.NamespacedName]Artifact
	steps map[types.NamespacedName][]artifactStep
	// Hold, when set, keeps fetches out of a checkout while an App renders
	// from it; it returns the release function.
	Hold func(dir string) func()
}

// maxSteps bounds the change history kept per Source.
const maxSteps = 64

// NewArtifacts returns an empty registry.
func NewArtifacts() *Artifacts {
	return &Artifacts{cur: map[types.NamespacedName]Artifact{}, steps: map[types.NamespacedName][]artifactStep{}}
}

// Set records a new artifact for src with the files changed since the
// previous one (nil if unknown).
func (a *Artifacts) Set(src types.NamespacedName, art Artifact, changed []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	prev, had := a.cur[src]
	a.cur[src] = art
	if !had || prev.Revision == art.Revision {
		return
	}
	st := append(a.steps[src], artifactStep{from: prev.Revision, to: art.Revision, changed: changed})
	if len(st) > maxSteps {
		st = st[len(st)-maxSteps:]
	}
	a.steps[src] = st
}

// Get returns the current artifact of src.
func (a *Artifacts) Get(src types.NamespacedName) (Artifact, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	art, ok := a.cur[src]
	return art, ok
}

// Delete forgets src.
func (a *Artifacts) Delete(src types.NamespacedName) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.cur, src)
	delete(a.steps, src)
}

// ChangedBetween returns the files changed in src between revision from
// and revision to, or nil when unknown (from was never seen, or a step in
// between has no file list).
func (a *Artifacts) ChangedBetween(src types.NamespacedName, from, to string) []string {
	if from == to {
		return []string{}
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	st := a.steps[src]
	// Walk back from the step that ends at `to` until one starts at `from`.
	set := map[string]struct{}{}
	want := to
	for i := len(st) - 1; i >= 0; i-- {
		if st[i].to != want {
			continue
		}
		if st[i].changed == nil {
			return nil
		}
		for _, f := range st[i].changed {
			set[f] = struct{}{}
		}
		if st[i].from == from {
			out := make([]string, 0, len(set))
			for f := range set {
				out = append(out, f)
			}
			sort.Strings(out)
			return out
		}
		want = st[i].from
	}
	return nil
}
