package testenv

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tend-gitops/tend/internal/gitserver"
)

// GitRepo is a git repository served over git's smart HTTP protocol on a
// loopback port, the way tend fetches from a forge: a gitserver.Handler
// (`git http-backend`) on an httptest server. Tests write and commit in a
// working tree (Dir); every commit is pushed to the bare repository the
// server serves. It needs the git CLI but no cluster.
type GitRepo struct {
	// URL is the clone URL, http://127.0.0.1:PORT/repo.git (or the path
	// GitPath gives).
	URL string
	// Dir is the working tree Commit writes to.
	Dir string
	// BareDir is the served bare repository. It accepts pushes, so code
	// under test may push to URL; see Pull.
	BareDir string
	// Server serves BareDir; close it to make the repository unreachable.
	// It is closed when the test ends.
	Server *httptest.Server

	t        testing.TB
	requests atomic.Int64
}

// A GitOption changes how NewGitRepo serves the repository.
type GitOption func(*gitOptions)

type gitOptions struct {
	server gitserver.Options
	hook   func(*http.Request)
	path   string
}

// GitPath serves the repository at path ("team/config.git") rather than
// repo.git, as a forge serves owner/name.
func GitPath(path string) GitOption {
	return func(o *gitOptions) { o.path = path }
}

// GitBasicAuth makes the server demand HTTP basic auth with user and
// password on every request, as a private forge repository does.
func GitBasicAuth(user, password string) GitOption {
	return func(o *gitOptions) { o.server.Username, o.server.Password = user, password }
}

// GitRequestHook calls hook with every request the server receives, before
// anything else (credentials included) is looked at. hook may block, e.g.
// to keep a fetch in flight until the test lets it go.
func GitRequestHook(hook func(*http.Request)) GitOption {
	return func(o *gitOptions) { o.hook = hook }
}

// NewGitRepo makes a repository whose branch main holds files (slash-
// separated path -> content) in one commit, "initial commit", and serves it
// until the test ends. With no files, main has no commit yet. DirFiles
// reads a directory into such a map, to serve a copy of it.
func NewGitRepo(t testing.TB, files map[string]string, opts ...GitOption) *GitRepo {
	t.Helper()
	var o gitOptions
	for _, opt := range opts {
		opt(&o)
	}
	o.server.Push = true
	dir := t.TempDir()
	if o.path == "" {
		o.path = "repo.git"
	}
	r := &GitRepo{t: t, Dir: filepath.Join(dir, "work"), BareDir: filepath.Join(dir, "srv", filepath.FromSlash(o.path))}
	r.run("", "init", "-q", "-b", "main", r.Dir)
	r.run("", "init", "-q", "--bare", "-b", "main", r.BareDir)
	r.Git("remote", "add", "origin", r.BareDir)
	h, err := gitserver.NewHandler(filepath.Join(dir, "srv"), o.server)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.requests.Add(1)
		if o.hook != nil {
			o.hook(req)
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(r.Server.Close)
	r.URL = r.Server.URL + "/" + o.path
	if len(files) > 0 {
		r.Commit("initial commit", files)
	}
	return r
}

// Requests returns how many HTTP requests the server has received so far,
// e.g. to see that an unchanged remote costs a fetcher one ls-remote.
// Commit and Pull do not count: they reach BareDir through the file system.
func (r *GitRepo) Requests() int64 { return r.requests.Load() }

// Commit writes files (slash-separated path -> content; an empty content
// deletes the file) into Dir, commits everything in Dir with message msg,
// pushes the branch Dir is on (main unless the test checked out another)
// and returns the commit's SHA. A commit may be empty. History rewritten
// in Dir (r.Git("reset", "--hard", "HEAD~1") before Commit) is force-pushed,
// but never over a commit the code under test pushed since: Pull first.
func (r *GitRepo) Commit(msg string, files map[string]string) string {
	r.t.Helper()
	for p, content := range files {
		full := filepath.Join(r.Dir, filepath.FromSlash(p))
		if content == "" {
			if err := os.Remove(full); err != nil && !os.IsNotExist(err) {
				r.t.Fatalf("testenv: remove %s: %v", p, err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	r.Git("add", "-A")
	r.Git("commit", "-q", "--allow-empty", "-m", msg)
	r.Git("push", "-q", "--force-with-lease", "origin", "HEAD")
	return r.Head()
}

// Head returns the SHA of the working tree's HEAD.
func (r *GitRepo) Head() string {
	r.t.Helper()
	return r.Git("rev-parse", "HEAD")
}

// Pull fast-forwards Dir to what others (the code under test) pushed to
// main, so that the next Commit builds on it.
func (r *GitRepo) Pull() {
	r.t.Helper()
	r.Git("pull", "-q", "--ff-only", "origin", "main")
}

// Git runs git with args in Dir and returns its trimmed output; a failure
// fails the test. Tags and branches made with it reach the server with a
// push: r.Git("tag", "v1.0.0") then r.Git("push", "-q", "origin", "--tags").
func (r *GitRepo) Git(args ...string) string {
	r.t.Helper()
	return r.run(r.Dir, args...)
}

func (r *GitRepo) run(dir string, args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), gitEnv(filepath.Dir(r.Dir))...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("testenv: git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// gitEnv isolates git from the user's and the system's configuration and
// gives commits a fixed identity.
func gitEnv(home string) []string {
	return []string{
		"HOME=" + home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=tend test", "GIT_AUTHOR_EMAIL=test@tend.dev",
		"GIT_COMMITTER_NAME=tend test", "GIT_COMMITTER_EMAIL=test@tend.dev",
	}
}

// DirFiles reads every regular file under dir into a map from its slash-
// separated path relative to dir to its content, for NewGitRepo and
// GitRepo.Commit. Edit the map to rewrite files before serving them.
func DirFiles(t testing.TB, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatalf("testenv: read %s: %v", dir, err)
	}
	return files
}
