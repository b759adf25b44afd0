package git

import (
	"crypto/subtle"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testEnv is the environment of the git commands tests use to build
// repositories: no user config, a fixed identity.
func testEnv(home string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"LC_ALL=C",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
	}
}

func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = testEnv(t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// testRepo is a repository served to the code under test. Tests commit to
// it directly (it is not bare), which is also how they rewrite history.
type testRepo struct {
	root string // served root: the repository is root/repo.git
	dir  string
}

// newTestRepo makes a repository on branch main with one commit holding
// apps/a/cm.yaml, apps/b/cm.yaml and README.md.
func newTestRepo(t *testing.T) *testRepo {
	t.Helper()
	root := t.TempDir()
	r := &testRepo{root: root, dir: filepath.Join(root, "repo.git")}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	runGit(t, r.dir, "-c", "init.defaultBranch=main", "init", "-q")
	r.commit(t, "initial", map[string]string{
		"apps/a/cm.yaml": "kind: ConfigMap\nmetadata:\n  name: a\n",
		"apps/b/cm.yaml": "kind: ConfigMap\nmetadata:\n  name: b\n",
		"README.md":      "# platform\n",
	})
	return r
}

// commit writes files (an empty content deletes the file), commits them and
// returns the new commit's SHA.
func (r *testRepo) commit(t *testing.T, msg string, files map[string]string) string {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(r.dir, filepath.FromSlash(name))
		if content == "" {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runGit(t, r.dir, "add", "-A")
	runGit(t, r.dir, "commit", "-q", "-m", msg)
	return r.head(t)
}

func (r *testRepo) head(t *testing.T) string {
	t.Helper()
	return runGit(t, r.dir, "rev-parse", "HEAD")
}

// gitServer serves testRepo roots over smart HTTP with git http-backend.
type gitServer struct {
	*httptest.Server
	requests atomic.Int64
	// delay, if set, is waited before each request is served.
	delay atomic.Int64 // time.Duration
}

// newGitServer serves root; with user set, every request needs basic auth
// with user and password.
func newGitServer(t *testing.T, root, user, password string) *gitServer {
	t.Helper()
	execPath := runGit(t, "", "--exec-path")
	backend := &cgi.Handler{
		Path:   filepath.Join(execPath, "git-http-backend"),
		Stderr: io.Discard,
		Env: []string{
			"GIT_PROJECT_ROOT=" + root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=/dev/null",
			"HOME=" + t.TempDir(),
		},
	}
	s := &gitServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.requests.Add(1)
		time.Sleep(time.Duration(s.delay.Load()))
		if user != "" {
			u, p, ok := req.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(u+":"+p), []byte(user+":"+password)) != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		backend.ServeHTTP(w, req)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *gitServer) repoURL() string { return s.URL + "/repo.git" }

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
