// Package gitserver serves git repositories over git's smart HTTP protocol
// the way a forge does: every request runs `git http-backend` through
// net/http/cgi. Tests (through testenv.NewGitRepo) and `tend demo` serve
// their repositories with it on loopback ports, so tend fetches from them
// exactly as it fetches from GitHub or Gitea. It needs the git CLI and does
// not import "testing", so non-test code (the demo, the benchmark) can use
// it.
package gitserver

import (
	"crypto/subtle"
	"fmt"
	"io"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
)

// Options configure a Handler. The zero Options serve every repository
// under the root to anyone, read-only.
type Options struct {
	// Username and Password, when either is set, are the HTTP basic-auth
	// credentials every request must carry; a request without them gets
	// 401 Unauthorized with a Basic challenge, as from a private forge
	// repository.
	Username, Password string
	// Push lets clients push (git receive-pack) to every repository, as if
	// each had http.receivepack set.
	Push bool
	// Stderr receives git http-backend's error messages (a missing
	// repository, a refused push). Nil discards them.
	Stderr io.Writer
}

// Handler serves the git repositories under a root directory: a request
// for /PATH/info/refs (and the rest of the protocol) is served from the
// repository root/PATH, a bare one (repo.git) or a working tree's .git
// (repo/.git).
type Handler struct {
	opts    Options
	backend *cgi.Handler
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns a Handler for the repositories under root. It fails
// when git is not installed.
func NewHandler(root string, opts Options) (*Handler, error) {
	git, err := exec.LookPath("git")
	if err != nil {
		return nil, fmt.Errorf("serving git repositories needs the git CLI: %w", err)
	}
	// git http-backend runs in the directory of git itself, so the root
	// must not be relative.
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("git server root %q: %w", root, err)
	}
	env := []string{
		"GIT_PROJECT_ROOT=" + abs,
		"GIT_HTTP_EXPORT_ALL=1",
		// The served repositories' own config counts, the user's and the
		// system's do not.
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=" + os.DevNull,
	}
	if opts.Push {
		env = append(env, "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.receivepack", "GIT_CONFIG_VALUE_0=true")
	}
	stderr := opts.Stderr
	if stderr == nil {
		stderr = io.Discard
	}
	return &Handler{opts: opts, backend: &cgi.Handler{
		Path:   git,
		Args:   []string{"http-backend"},
		Env:    env,
		Stderr: stderr,
	}}, nil
}

// ServeHTTP checks the credentials, if Options ask for them, and runs git
// http-backend for the request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.opts.Username != "" || h.opts.Password != "" {
		user, password, ok := r.BasicAuth()
		if !ok || !same(user, h.opts.Username) || !same(password, h.opts.Password) {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
	}
	h.backend.ServeHTTP(w, r)
}

// same compares credentials in constant time.
func same(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
