package gitserver_test

import (
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tend-gitops/tend/internal/gitserver"
)

// TestHandler serves a bare repository and a working tree's .git, asks
// for credentials when Options name them, and takes pushes only when
// Options.Push is set.
func TestHandler(t *testing.T) {
	root := t.TempDir()
	work := filepath.Join(root, "work")
	git(t, "", "init", "-q", "-b", "main", work)
	git(t, work, "commit", "-q", "--allow-empty", "-m", "first")
	git(t, "", "clone", "-q", "--bare", work, filepath.Join(root, "repo.git"))
	head := git(t, work, "rev-parse", "HEAD")

	for _, path := range []string{"/repo.git", "/work/.git"} {
		t.Run(path, func(t *testing.T) {
			url := serve(t, root, gitserver.Options{}) + path
			if got := lsRemote(t, url); got != head {
				t.Errorf("ls-remote %s = %q, want %s", url, got, head)
			}
		})
	}

	t.Run("basic auth", func(t *testing.T) {
		url := serve(t, root, gitserver.Options{Username: "deploy", Password: "s3cret"})
		if out, err := gitErr("", "ls-remote", url+"/repo.git"); err == nil || !strings.Contains(out, "could not read Username") {
			t.Errorf("ls-remote without credentials: %v\n%s\nwant a request for credentials", err, out)
		}
		if out, err := gitErr("", "ls-remote", strings.Replace(url, "://", "://deploy:wrong@", 1)+"/repo.git"); err == nil {
			t.Errorf("ls-remote with a wrong password succeeded:\n%s", out)
		}
		if got := lsRemote(t, strings.Replace(url, "://", "://deploy:s3cret@", 1)+"/repo.git"); got != head {
			t.Errorf("ls-remote with credentials = %q, want %s", got, head)
		}
	})

	t.Run("push", func(t *testing.T) {
		clone := filepath.Join(t.TempDir(), "clone")
		readOnly := serve(t, root, gitserver.Options{}) + "/repo.git"
		git(t, "", "clone", "-q", readOnly, clone)
		git(t, clone, "commit", "-q", "--allow-empty", "-m", "second")
		if out, err := gitErr(clone, "push", "-q", readOnly, "main"); err == nil {
			t.Fatalf("push to a handler without Push succeeded:\n%s", out)
		}
		url := serve(t, root, gitserver.Options{Push: true}) + "/repo.git"
		git(t, clone, "push", "-q", url, "main")
		if got, want := lsRemote(t, url), git(t, clone, "rev-parse", "HEAD"); got != want {
			t.Errorf("main after the push = %q, want %s", got, want)
		}
	})
}

func serve(t *testing.T, root string, opts gitserver.Options) string {
	t.Helper()
	h, err := gitserver.NewHandler(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func lsRemote(t *testing.T, url string) string {
	t.Helper()
	sha, _, _ := strings.Cut(git(t, "", "ls-remote", url, "refs/heads/main"), "\t")
	return sha
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := gitErr(dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func gitErr(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull, "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@tend.dev", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@tend.dev")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
