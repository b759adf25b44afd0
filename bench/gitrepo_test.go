package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGitRepoServesItsCommits: what the benchmark commits is what a client
// fetching its URL sees.
func TestGitRepoServesItsCommits(t *testing.T) {
	r, err := newGitRepo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := os.WriteFile(filepath.Join(r.Work, "a.yaml"), []byte("a: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.commit("first"); err != nil {
		t.Fatal(err)
	}
	head, err := r.head()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("git", "ls-remote", r.URL, "refs/heads/main")
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-remote %s: %v", r.URL, err)
	}
	if got := strings.Fields(string(out)); len(got) == 0 || got[0] != head {
		t.Errorf("ls-remote = %q, want %s", out, head)
	}
}
