package main

import (
	"context"
	"fmt"
	"runtime"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
)

// memStats is the part of runtime.MemStats the measurement reports.
type memStats struct {
	heapInuse  uint64
	totalAlloc uint64
}

func (r *memStats) read() {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	r.heapInuse = m.HeapInuse
	r.totalAlloc = m.TotalAlloc
}

const targetRef = "refs/tend/target"

// goGitClone does what the CLI sequence does: a depth-1 fetch of main into
// a new repository, then a checkout of the fetched commit.
func goGitClone(ctx context.Context, dir, url string) error {
	repo, err := gogit.PlainInit(dir, false)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	return goGitFetchCheckout(ctx, repo, url)
}

// goGitFetch fetches main again into an existing checkout and checks it out.
func goGitFetch(ctx context.Context, dir, url string) error {
	repo, err := gogit.PlainOpen(dir)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	return goGitFetchCheckout(ctx, repo, url)
}

func goGitFetchCheckout(ctx context.Context, repo *gogit.Repository, url string) error {
	remote := gogit.NewRemote(repo.Storer, &config.RemoteConfig{Name: "origin", URLs: []string{url}})
	err := remote.FetchContext(ctx, &gogit.FetchOptions{
		RefSpecs: []config.RefSpec{"+refs/heads/main:" + targetRef},
		Depth:    1,
		Tags:     gogit.NoTags,
		Force:    true,
	})
	if err != nil && err != gogit.NoErrAlreadyUpToDate {
		return fmt.Errorf("fetch: %w", err)
	}
	ref, err := repo.Reference(plumbing.ReferenceName(targetRef), true)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", targetRef, err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return fmt.Errorf("worktree: %w", err)
	}
	if err := wt.Checkout(&gogit.CheckoutOptions{Hash: ref.Hash(), Force: true}); err != nil {
		return fmt.Errorf("checkout %s: %w", ref.Hash(), err)
	}
	return nil
}
