package main

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/tend-gitops/tend/internal/gitserver"
)

// gitRepo is a working repository plus a bare copy served over smart HTTP
// on loopback by internal/gitserver (git http-backend), the way tend
// fetches from a forge and the way tests serve their repositories.
type gitRepo struct {
	Work   string // working tree where the benchmark writes and commits
	URL    string // http://127.0.0.1:PORT/repo.git
	server *httptest.Server
}

func newGitRepo(dir string) (*gitRepo, error) {
	return newGitRepoWith(dir, gitserver.Options{})
}

// newGitRepoWith is newGitRepo with the server's options (Push: tend may
// push to it, as a Stage does).
func newGitRepoWith(dir string, opts gitserver.Options) (*gitRepo, error) {
	work := filepath.Join(dir, "work")
	bare := filepath.Join(dir, "srv", "repo.git")
	h, err := gitserver.NewHandler(filepath.Dir(bare), opts)
	if err != nil {
		return nil, fmt.Errorf("the benchmark needs git: %w", err)
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "main", work},
		{"init", "-q", "--bare", "-b", "main", bare},
		{"-C", work, "remote", "add", "origin", bare},
	} {
		if err := runGit(args...); err != nil {
			return nil, err
		}
	}
	srv := httptest.NewServer(h)
	return &gitRepo{Work: work, URL: srv.URL + "/repo.git", server: srv}, nil
}

func (r *gitRepo) Close() { r.server.Close() }

// commit commits everything in the work tree and pushes it.
func (r *gitRepo) commit(msg string) error {
	if err := runGit("-C", r.Work, "add", "-A"); err != nil {
		return err
	}
	if err := runGit("-C", r.Work, "-c", "user.name=bench", "-c", "user.email=bench@tend.dev", "commit", "-q", "-m", msg); err != nil {
		return err
	}
	return runGit("-C", r.Work, "push", "-q", "origin", "main")
}

func runGit(args ...string) error {
	cmd := exec.Command("git", args...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %v: %w\n%s", args, err, out)
	}
	return nil
}

// head returns the commit the work tree is at.
func (r *gitRepo) head() (string, error) {
	cmd := exec.Command("git", "-C", r.Work, "rev-parse", "HEAD")
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git rev-parse HEAD: %w", err)
	}
	return string(bytes.TrimSpace(out)), nil
}
