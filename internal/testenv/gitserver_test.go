package testenv_test

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tend-gitops/tend/internal/testenv"
)

// TestGitRepo clones the served repository the way a fetcher would, over
// HTTP, and sees each commit: files written, changed and deleted. It needs
// no cluster.
func TestGitRepo(t *testing.T) {
	repo := testenv.NewGitRepo(t, map[string]string{
		"apps/a/cm.yaml": "kind: ConfigMap\n",
		"README.md":      "# platform\n",
	})
	if !strings.HasPrefix(repo.URL, "http://127.0.0.1:") {
		t.Fatalf("URL = %s, want a loopback HTTP URL", repo.URL)
	}
	first := repo.Head()
	if got := lsRemote(t, repo.URL); got != first {
		t.Fatalf("server's main = %q, want the initial commit %s", got, first)
	}
	clone := cloneRepo(t, repo.URL)
	if got, want := readFile(t, clone, "apps/a/cm.yaml"), "kind: ConfigMap\n"; got != want {
		t.Errorf("apps/a/cm.yaml = %q, want %q", got, want)
	}

	second := repo.Commit("change a, drop the README", map[string]string{
		"apps/a/cm.yaml": "kind: ConfigMap\nmetadata: {name: a}\n",
		"README.md":      "",
	})
	if second == first || len(second) != 40 {
		t.Fatalf("Commit returned %q after %q, want a new 40-digit SHA", second, first)
	}
	if got := lsRemote(t, repo.URL); got != second {
		t.Fatalf("server's main = %q after Commit, want %s", got, second)
	}
	clone = cloneRepo(t, repo.URL)
	if got, want := readFile(t, clone, "apps/a/cm.yaml"), "kind: ConfigMap\nmetadata: {name: a}\n"; got != want {
		t.Errorf("apps/a/cm.yaml = %q after the change, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(clone, "README.md")); !os.IsNotExist(err) {
		t.Errorf("README.md still in the clone after Commit deleted it (stat: %v)", err)
	}

	// Code under test may push; Pull brings its commit into the working
	// tree, and the next Commit builds on it.
	gitIn(t, clone, "-c", "user.name=x", "-c", "user.email=x@tend.dev", "commit", "-q", "--allow-empty", "-m", "pushed by the code under test")
	gitIn(t, clone, "push", "-q", "origin", "main")
	pushed := gitIn(t, clone, "rev-parse", "HEAD")
	repo.Pull()
	third := repo.Commit("after the push", map[string]string{"apps/b/cm.yaml": "kind: ConfigMap\n"})
	if got := gitIn(t, repo.Dir, "rev-parse", third+"^"); got != pushed {
		t.Errorf("parent of the commit after Pull = %s, want the pushed commit %s", got, pushed)
	}
}

// TestGitRepoRewritesHistory: Commit pushes the branch Dir is on, and
// history rewritten in Dir replaces the served one.
func TestGitRepoRewritesHistory(t *testing.T) {
	repo := testenv.NewGitRepo(t, map[string]string{"a.yaml": "1\n"})
	first := repo.Head()
	repo.Commit("to be rewritten", map[string]string{"a.yaml": "2\n"})
	repo.Git("reset", "-q", "--hard", first)
	rewritten := repo.Commit("rewritten", map[string]string{"b.yaml": "1\n"})
	if got := lsRemote(t, repo.URL); got != rewritten {
		t.Errorf("server's main = %q after rewriting history, want %s", got, rewritten)
	}
	repo.Git("checkout", "-q", "-b", "other", first)
	other := repo.Commit("on other", map[string]string{"c.yaml": "1\n"})
	if got, _, _ := strings.Cut(gitIn(t, "", "ls-remote", repo.URL, "refs/heads/other"), "\t"); got != other {
		t.Errorf("server's other = %q, want %s", got, other)
	}
}

// TestGitRepoOptions: the server asks for the credentials GitBasicAuth
// names, calls the request hook and counts requests.
func TestGitRepoOptions(t *testing.T) {
	var hooked atomic.Int64
	repo := testenv.NewGitRepo(t, map[string]string{"a.yaml": "1\n"},
		testenv.GitBasicAuth("deploy", "s3cret"),
		testenv.GitRequestHook(func(*http.Request) { hooked.Add(1) }))
	if got := repo.Requests(); got != 0 {
		t.Fatalf("Requests = %d before anyone fetched, want 0", got)
	}
	cmd := exec.Command("git", "ls-remote", repo.URL)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("ls-remote without credentials succeeded:\n%s", out)
	}
	if got, want := lsRemote(t, strings.Replace(repo.URL, "://", "://deploy:s3cret@", 1)), repo.Head(); got != want {
		t.Errorf("ls-remote with credentials = %q, want %s", got, want)
	}
	if got := repo.Requests(); got < 2 || hooked.Load() != got {
		t.Errorf("Requests = %d, hook calls = %d; want the same count, at least 2", got, hooked.Load())
	}
}

// TestDirFiles serves a copy of a directory.
func TestDirFiles(t *testing.T) {
	src := t.TempDir()
	for p, c := range map[string]string{"charts/web/Chart.yaml": "name: web\n", "values.yaml": "replicas: 2\n"} {
		full := filepath.Join(src, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files := testenv.DirFiles(t, src)
	if got, want := len(files), 2; got != want {
		t.Fatalf("DirFiles read %d files (%v), want %d", got, files, want)
	}
	if got, want := files["charts/web/Chart.yaml"], "name: web\n"; got != want {
		t.Fatalf("charts/web/Chart.yaml = %q, want %q", got, want)
	}
	files["values.yaml"] = strings.ReplaceAll(files["values.yaml"], "2", "3")
	clone := cloneRepo(t, testenv.NewGitRepo(t, files).URL)
	if got, want := readFile(t, clone, "values.yaml"), "replicas: 3\n"; got != want {
		t.Errorf("served values.yaml = %q, want %q", got, want)
	}
}

func cloneRepo(t *testing.T, url string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "clone")
	gitIn(t, "", "clone", "-q", url, dir)
	return dir
}

func lsRemote(t *testing.T, url string) string {
	t.Helper()
	sha, _, _ := strings.Cut(gitIn(t, "", "ls-remote", url, "refs/heads/main"), "\t")
	return sha
}

func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
