package git

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tend-gitops/tend/internal/testenv"
)

func fetch(t *testing.T, f *Fetcher, dir string, opts Options) *Result {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	res, err := f.Fetch(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("Fetch(%s): %v", opts.Ref, err)
	}
	return res
}

func fetchErr(t *testing.T, f *Fetcher, dir string, opts Options) error {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	res, err := f.Fetch(context.Background(), dir, opts)
	if err == nil {
		t.Fatalf("Fetch(%s) = revision %s, want an error", opts.Ref, res.Revision)
	}
	t.Logf("Fetch(%s): %v", opts.Ref, err)
	return err
}

func TestFetchBranchUpdatesInPlace(t *testing.T) {
	repo := newTestRepo(t)
	dir := filepath.Join(t.TempDir(), "ns", "source")
	f := &Fetcher{}
	opts := Options{URL: repo.URL, Ref: Ref{Branch: "main"}}

	first := fetch(t, f, dir, opts)
	if got, want := first.Revision, repo.Head(); got != want {
		t.Fatalf("Revision = %s, want %s", got, want)
	}
	if got, want := first.Ref, "refs/heads/main"; got != want {
		t.Errorf("Ref = %q, want %q", got, want)
	}
	if first.ChangedFiles != nil {
		t.Errorf("ChangedFiles on first fetch = %q, want nil (unknown)", first.ChangedFiles)
	}
	if got, want := first.CommitSubject, "initial commit"; got != want {
		t.Errorf("CommitSubject = %q, want %q", got, want)
	}
	if got, want := readFile(t, first.Dir, "apps/a/cm.yaml"), "kind: ConfigMap\nmetadata:\n  name: a\n"; got != want {
		t.Errorf("apps/a/cm.yaml = %q, want %q", got, want)
	}
	if got, want := runGit(t, dir, "rev-parse", "--is-shallow-repository"), "true"; got != want {
		t.Errorf("shallow = %s, want %s", got, want)
	}

	// The next fetch reuses the same repository: a marker in .git survives.
	marker := filepath.Join(dir, ".git", "tend-test-marker")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	second := repo.Commit("change a", map[string]string{"apps/a/cm.yaml": "kind: ConfigMap\nmetadata:\n  name: a2\n"})
	res := fetch(t, f, dir, opts)
	if got, want := res.Revision, second; got != want {
		t.Fatalf("Revision = %s, want %s", got, want)
	}
	if got, want := res.ChangedFiles, []string{"apps/a/cm.yaml"}; !slices.Equal(got, want) {
		t.Errorf("ChangedFiles = %q, want %q", got, want)
	}
	if got, want := res.CommitSubject, "change a"; got != want {
		t.Errorf("CommitSubject = %q, want %q", got, want)
	}
	if got, want := readFile(t, dir, "apps/a/cm.yaml"), "kind: ConfigMap\nmetadata:\n  name: a2\n"; got != want {
		t.Errorf("apps/a/cm.yaml = %q, want %q", got, want)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the checkout was recreated instead of updated: %v", err)
	}

	// A deleted and an added file are both changes; the deleted one is gone.
	third := repo.Commit("move b to c", map[string]string{"apps/b/cm.yaml": "", "apps/c/cm.yaml": "kind: ConfigMap\n"})
	res = fetch(t, f, dir, opts)
	if got, want := res.Revision, third; got != want {
		t.Fatalf("Revision = %s, want %s", got, want)
	}
	if got, want := res.ChangedFiles, []string{"apps/b/cm.yaml", "apps/c/cm.yaml"}; !slices.Equal(got, want) {
		t.Errorf("ChangedFiles = %q, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "apps", "b", "cm.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("apps/b/cm.yaml still in the checkout (stat: %v)", err)
	}

	// Nothing new: same revision, and no file changed.
	before := repo.Requests()
	res = fetch(t, f, dir, opts)
	if got, want := res.Revision, third; got != want {
		t.Fatalf("Revision = %s, want %s", got, want)
	}
	if res.ChangedFiles == nil || len(res.ChangedFiles) != 0 {
		t.Errorf("ChangedFiles without a new commit = %#v, want empty", res.ChangedFiles)
	}
	// An unchanged remote costs one ls-remote (protocol v2: GET info/refs
	// and POST ls-refs), no fetch.
	if got, want := repo.Requests()-before, int64(2); got != want {
		t.Errorf("requests for an unchanged remote = %d, want %d", got, want)
	}
}

func TestFetchDefaultBranch(t *testing.T) {
	repo := newTestRepo(t)
	res := fetch(t, &Fetcher{}, t.TempDir(), Options{URL: repo.URL})
	if got, want := res.Revision, repo.Head(); got != want {
		t.Errorf("Revision = %s, want %s", got, want)
	}
	if got, want := res.Ref, "refs/heads/main"; got != want {
		t.Errorf("Ref = %q, want %q", got, want)
	}
}

func TestFetchTag(t *testing.T) {
	repo := newTestRepo(t)
	first := repo.Head()
	repo.Git("tag", "-a", "v1.0.0", "-m", "release 1.0.0")
	repo.Git("tag", "light")
	repo.Commit("after the tags", map[string]string{"README.md": "# later\n"})
	repo.Git("push", "-q", "origin", "--tags")
	f := &Fetcher{}

	for _, tag := range []string{"v1.0.0", "light"} {
		t.Run(tag, func(t *testing.T) {
			res := fetch(t, f, t.TempDir(), Options{URL: repo.URL, Ref: Ref{Tag: tag}})
			if got, want := res.Revision, first; got != want {
				t.Errorf("Revision = %s, want the tagged commit %s", got, want)
			}
			if got, want := res.Ref, "refs/tags/"+tag; got != want {
				t.Errorf("Ref = %q, want %q", got, want)
			}
			if got, want := readFile(t, res.Dir, "README.md"), "# platform\n"; got != want {
				t.Errorf("README.md = %q, want %q", got, want)
			}
		})
	}
}

func TestFetchSemVer(t *testing.T) {
	repo := newTestRepo(t)
	repo.Git("tag", "v1.0.0")
	want := repo.Commit("1.2", map[string]string{"README.md": "1.2\n"})
	repo.Git("tag", "-a", "1.2.0", "-m", "no v prefix")
	repo.Commit("rc", map[string]string{"README.md": "1.3-rc\n"})
	repo.Git("tag", "v1.3.0-rc.1")
	repo.Commit("2.0", map[string]string{"README.md": "2.0\n"})
	repo.Git("tag", "v2.0.0")
	repo.Git("tag", "latest")
	repo.Git("push", "-q", "origin", "--tags")
	f := &Fetcher{}

	res := fetch(t, f, t.TempDir(), Options{URL: repo.URL, Ref: Ref{SemVer: ">=1.0.0 <2.0.0"}})
	if got := res.Revision; got != want {
		t.Errorf("Revision = %s, want %s (tag 1.2.0)", got, want)
	}
	if got, want := res.Ref, "refs/tags/1.2.0"; got != want {
		t.Errorf("Ref = %q, want %q", got, want)
	}

	err := fetchErr(t, f, t.TempDir(), Options{URL: repo.URL, Ref: Ref{SemVer: "^3.0"}})
	if !errors.Is(err, ErrRefNotFound) {
		t.Errorf("error %q does not match ErrRefNotFound", err)
	}
	for _, s := range []string{"no tag in " + repo.URL + ` matches semver range "^3.0"`, "highest v2.0.0"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}

	err = fetchErr(t, f, t.TempDir(), Options{URL: repo.URL, Ref: Ref{SemVer: "not a range"}})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error %q for a bad range does not match ErrInvalid", err)
	}

	tags, err := f.ListRemoteTags(context.Background(), Options{URL: repo.URL})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tags, []string{"1.2.0", "latest", "v1.0.0", "v1.3.0-rc.1", "v2.0.0"}; !slices.Equal(got, want) {
		t.Errorf("ListRemoteTags = %q, want %q", got, want)
	}
}

func TestFetchCommit(t *testing.T) {
	repo := newTestRepo(t)
	first := repo.Head()
	second := repo.Commit("second", map[string]string{"apps/a/cm.yaml": "v2\n"})
	for range 80 { // deeper than the first deepening step
		repo.Git("commit", "-q", "--allow-empty", "-m", "filler")
	}
	repo.Git("push", "-q", "origin", "main")
	tip := repo.Head()
	repo.Git("checkout", "-q", "-b", "other", first)
	elsewhere := repo.Commit("only on other", map[string]string{"README.md": "other\n"})
	repo.Git("checkout", "-q", "main")
	f := &Fetcher{}

	t.Run("alone", func(t *testing.T) {
		dir := t.TempDir()
		res := fetch(t, f, dir, Options{URL: repo.URL, Ref: Ref{Commit: second}})
		if got, want := res.Revision, second; got != want {
			t.Fatalf("Revision = %s, want %s", got, want)
		}
		if got, want := res.Ref, second; got != want {
			t.Errorf("Ref = %q, want %q", got, want)
		}
		if got, want := readFile(t, dir, "apps/a/cm.yaml"), "v2\n"; got != want {
			t.Errorf("apps/a/cm.yaml = %q, want %q", got, want)
		}
		// Moving to another commit in the same dir diffs the two.
		res = fetch(t, f, dir, Options{URL: repo.URL, Ref: Ref{Commit: first}})
		if got, want := res.ChangedFiles, []string{"apps/a/cm.yaml"}; !slices.Equal(got, want) {
			t.Errorf("ChangedFiles = %q, want %q", got, want)
		}
	})

	t.Run("on branch", func(t *testing.T) {
		dir := t.TempDir()
		res := fetch(t, f, dir, Options{URL: repo.URL, Ref: Ref{Branch: "main", Commit: second}})
		if got, want := res.Revision, second; got != want {
			t.Fatalf("Revision = %s, want %s (branch tip is %s)", got, want, tip)
		}
		if got, want := res.Ref, "refs/heads/main"; got != want {
			t.Errorf("Ref = %q, want %q", got, want)
		}
		if got, want := res.CommitSubject, "second"; got != want {
			t.Errorf("CommitSubject = %q, want %q", got, want)
		}
		// Fetching the same again finds it without walking history.
		before := repo.Requests()
		res = fetch(t, f, dir, Options{URL: repo.URL, Ref: Ref{Branch: "main", Commit: second}})
		if got, want := res.Revision, second; got != want {
			t.Fatalf("Revision = %s, want %s", got, want)
		}
		if got, want := repo.Requests()-before, int64(2); got != want {
			t.Errorf("requests for an unchanged pin = %d, want %d (one ls-remote)", got, want)
		}
	})

	t.Run("not on branch", func(t *testing.T) {
		err := fetchErr(t, f, t.TempDir(), Options{URL: repo.URL, Ref: Ref{Branch: "main", Commit: elsewhere}})
		if !errors.Is(err, ErrRefNotFound) {
			t.Errorf("error %q does not match ErrRefNotFound", err)
		}
		if want := "commit " + elsewhere + ` is not in the history of branch "main"`; !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	})

	t.Run("missing", func(t *testing.T) {
		missing := strings.Repeat("ab", 20)
		err := fetchErr(t, f, t.TempDir(), Options{URL: repo.URL, Ref: Ref{Commit: missing}})
		if !errors.Is(err, ErrRefNotFound) {
			t.Errorf("error %q does not match ErrRefNotFound", err)
		}
		if want := "commit " + missing + " not found in " + repo.URL; !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	})
}

func TestFetchForcePushedBranch(t *testing.T) {
	repo := newTestRepo(t)
	repo.Commit("to be rewritten", map[string]string{"apps/a/cm.yaml": "old\n"})
	dir := t.TempDir()
	f := &Fetcher{}
	opts := Options{URL: repo.URL, Ref: Ref{Branch: "main"}}
	fetch(t, f, dir, opts)

	repo.Git("reset", "-q", "--hard", "HEAD~1")
	rewritten := repo.Commit("rewritten", map[string]string{"apps/b/cm.yaml": "new\n"})

	res := fetch(t, f, dir, opts)
	if got, want := res.Revision, rewritten; got != want {
		t.Fatalf("Revision = %s, want %s", got, want)
	}
	if got, want := res.ChangedFiles, []string{"apps/a/cm.yaml", "apps/b/cm.yaml"}; !slices.Equal(got, want) {
		t.Errorf("ChangedFiles = %q, want %q", got, want)
	}
	if got, want := readFile(t, dir, "apps/a/cm.yaml"), "kind: ConfigMap\nmetadata:\n  name: a\n"; got != want {
		t.Errorf("apps/a/cm.yaml = %q, want %q", got, want)
	}
	if got, want := readFile(t, dir, "apps/b/cm.yaml"), "new\n"; got != want {
		t.Errorf("apps/b/cm.yaml = %q, want %q", got, want)
	}
}

func TestFetchBasicAuth(t *testing.T) {
	const user, password = "deploy", "s3cret-Pa55word"
	repo := newTestRepo(t, testenv.GitBasicAuth(user, password))
	f := &Fetcher{}

	dir := t.TempDir()
	res := fetch(t, f, dir, Options{URL: repo.URL, Auth: &Auth{Username: user, Password: password}})
	if got, want := res.Revision, repo.Head(); got != want {
		t.Errorf("Revision = %s, want %s", got, want)
	}
	config, err := os.ReadFile(filepath.Join(dir, ".git", "config"))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{password, base64.StdEncoding.EncodeToString([]byte(user + ":" + password))} {
		if strings.Contains(string(config), secret) {
			t.Errorf(".git/config holds a credential:\n%s", config)
		}
	}

	for _, tc := range []struct {
		name string
		auth *Auth
	}{
		{"wrong password", &Auth{Username: user, Password: "wrong-" + password}},
		{"no credentials", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := fetchErr(t, f, t.TempDir(), Options{URL: repo.URL, Auth: tc.auth})
			if !errors.Is(err, ErrAuth) {
				t.Errorf("error %q does not match ErrAuth", err)
			}
			for _, s := range []string{"authentication failed for " + repo.URL, "Secret"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error %q contains the password", err)
			}
		})
	}
}

func TestFetchToken(t *testing.T) {
	const token = "ghp_0123456789abcdefTOKEN"
	repo := newTestRepo(t, testenv.GitBasicAuth("git", token))
	res := fetch(t, &Fetcher{}, t.TempDir(), Options{URL: repo.URL, Auth: &Auth{Password: token}})
	if got, want := res.Revision, repo.Head(); got != want {
		t.Errorf("Revision = %s, want %s", got, want)
	}
}

func TestFetchMissingRef(t *testing.T) {
	repo := newTestRepo(t)
	f := &Fetcher{}
	for _, tc := range []struct {
		ref  Ref
		want string
	}{
		{Ref{Branch: "nope"}, `branch "nope" not found in ` + repo.URL},
		{Ref{Tag: "v9.9.9"}, `tag "v9.9.9" not found in ` + repo.URL},
	} {
		err := fetchErr(t, f, t.TempDir(), Options{URL: repo.URL, Ref: tc.ref})
		if !errors.Is(err, ErrRefNotFound) {
			t.Errorf("%s: error %q does not match ErrRefNotFound", tc.ref, err)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %q does not say %q", err, tc.want)
		}
	}
}

func TestFetchRepositoryNotFound(t *testing.T) {
	repo := newTestRepo(t)
	err := fetchErr(t, &Fetcher{}, t.TempDir(), Options{URL: repo.Server.URL + "/missing.git"})
	if !errors.Is(err, ErrRepoNotFound) {
		t.Errorf("error %q does not match ErrRepoNotFound", err)
	}
	if want := "repository not found at " + repo.Server.URL + "/missing.git"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

func TestFetchUnreachableHost(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens here now
	err = fetchErr(t, &Fetcher{}, t.TempDir(), Options{URL: "http://" + addr + "/repo.git"})
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("error %q does not match ErrUnreachable", err)
	}
	if want := "cannot reach " + addr; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

func TestFetchTimeout(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hang.Close()
	defer close(release)

	_, err := (&Fetcher{}).Fetch(context.Background(), t.TempDir(), Options{URL: hang.URL + "/repo.git", Timeout: time.Second})
	if err == nil {
		t.Fatal("Fetch from a hanging server succeeded")
	}
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("error %q does not match ErrTimeout", err)
	}
	if want := "timed out after 1s"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

// TestFetchConcurrentSharesOneFetch: callers asking for the same checkout
// while a fetch of it runs get that fetch's result; the server sees one
// fetch.
func TestFetchConcurrentSharesOneFetch(t *testing.T) {
	// While gate is closed the server holds every request, so the first
	// fetch stays in flight until every caller has asked.
	var gate sync.RWMutex
	repo := newTestRepo(t, testenv.GitRequestHook(func(*http.Request) {
		gate.RLock()
		defer gate.RUnlock()
	}))
	f := &Fetcher{}
	opts := Options{URL: repo.URL, Ref: Ref{Branch: "main"}, Timeout: 30 * time.Second}

	before := repo.Requests()
	fetch(t, f, t.TempDir(), opts)
	oneFetch := repo.Requests() - before

	gate.Lock()
	open := sync.OnceFunc(gate.Unlock)
	defer open()
	before = repo.Requests()
	dir := t.TempDir()
	const callers = 10
	var (
		wg      sync.WaitGroup
		results = make([]*Result, callers)
		errs    = make([]error, callers)
	)
	for i := range callers {
		wg.Go(func() { results[i], errs[i] = f.Fetch(context.Background(), dir, opts) })
	}
	waitFor(t, fmt.Sprintf("%d callers waiting in Fetch", callers), func() bool {
		return goroutinesIn("select", "git.(*Fetcher).Fetch(") >= callers
	})
	open()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
		if got, want := results[i].Revision, repo.Head(); got != want {
			t.Errorf("caller %d: Revision = %s, want %s", i, got, want)
		}
	}
	if got, want := repo.Requests()-before, oneFetch; got != want {
		t.Errorf("%d concurrent fetches made %d requests, want %d (one fetch)", callers, got, want)
	}
}

// goroutinesIn counts the goroutines blocked in state (a wait reason as a
// goroutine dump shows it, e.g. "select" or "sync.RWMutex.Lock") with
// frame (e.g. "git.(*Fetcher).Fetch(") on their stack: how a test sees
// that a call has reached the point where it waits.
func goroutinesIn(state, frame string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, stack, _ := strings.Cut(g, "\n")
		if (strings.Contains(header, "["+state+"]") || strings.Contains(header, "["+state+",")) && strings.Contains(stack, frame) {
			count++
		}
	}
	return count
}

// waitFor polls cond until it holds, failing the test after 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, what, 30*time.Second, cond)
}

func TestFetchRejectsCredentialsInURL(t *testing.T) {
	const password = "hunter2hunter2"
	err := fetchErr(t, &Fetcher{}, t.TempDir(), Options{URL: "https://user:" + password + "@example.com/repo.git"})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error %q does not match ErrInvalid", err)
	}
	if strings.Contains(err.Error(), password) {
		t.Errorf("error %q contains the password", err)
	}
}

func TestFetchRefusesForeignDir(t *testing.T) {
	repo := newTestRepo(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious.txt"), []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := fetchErr(t, &Fetcher{}, dir, Options{URL: repo.URL})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error %q does not match ErrInvalid", err)
	}
	if got, want := readFile(t, dir, "precious.txt"), "keep me"; got != want {
		t.Errorf("precious.txt = %q, want %q", got, want)
	}
}

func TestFetchRepairsCheckoutAfterRestart(t *testing.T) {
	repo := newTestRepo(t)
	dir := t.TempDir()
	opts := Options{URL: repo.URL, Ref: Ref{Branch: "main"}}
	fetch(t, &Fetcher{}, dir, opts)

	// Someone (or an interrupted checkout) changed the working tree.
	if err := os.WriteFile(filepath.Join(dir, "apps", "a", "cm.yaml"), []byte("tampered\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "apps", "stray.yaml"), []byte("kind: Secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// A new Fetcher (a restarted controller) puts it back.
	res := fetch(t, &Fetcher{}, dir, opts)
	if got, want := res.Revision, repo.Head(); got != want {
		t.Fatalf("Revision = %s, want %s", got, want)
	}
	if got, want := readFile(t, dir, "apps/a/cm.yaml"), "kind: ConfigMap\nmetadata:\n  name: a\n"; got != want {
		t.Errorf("apps/a/cm.yaml = %q, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "apps", "stray.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("untracked apps/stray.yaml survived (stat: %v)", err)
	}
}

func TestHoldBlocksFetch(t *testing.T) {
	repo := newTestRepo(t)
	dir := t.TempDir()
	f := &Fetcher{}
	opts := Options{URL: repo.URL, Ref: Ref{Branch: "main"}, Timeout: 30 * time.Second}
	fetch(t, f, dir, opts)
	next := repo.Commit("while held", map[string]string{"README.md": "held\n"})

	release := f.Hold(dir)
	defer release()
	done := make(chan *Result, 1)
	go func() {
		res, err := f.Fetch(context.Background(), dir, opts)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	// The fetch reaches the directory's lock and waits there.
	waitFor(t, "the fetch to wait for the hold", func() bool {
		select {
		case <-done:
			t.Fatal("Fetch finished while the checkout was held")
		default:
		}
		return goroutinesIn("sync.RWMutex.Lock", "git.(*Fetcher).fetchDir(") > 0
	})
	if got, want := readFile(t, dir, "README.md"), "# platform\n"; got != want {
		t.Errorf("README.md while held = %q, want %q", got, want)
	}
	release()
	if res := <-done; res != nil && res.Revision != next {
		t.Errorf("Revision after release = %s, want %s", res.Revision, next)
	}
}

// TestChangesCountedFromTheLastGoodFetch: a fetch that failed after its
// checkout leaves HEAD at a commit nobody was told about; the next fetch
// reports what changed since the commit its caller last got, not "nothing".
func TestChangesCountedFromTheLastGoodFetch(t *testing.T) {
	repo := newTestRepo(t)
	dir := t.TempDir()
	f := &Fetcher{}
	opts := Options{URL: repo.URL, Ref: Ref{Branch: "main"}, Timeout: 30 * time.Second}
	first := fetch(t, f, dir, opts)
	next := repo.Commit("change a", map[string]string{"apps/a/cm.yaml": "kind: ConfigMap\nmetadata:\n  name: a2\n"})
	// What a fetch that failed after `git checkout` leaves behind.
	runGit(t, dir, "fetch", "--quiet", "--depth=1", repo.URL, "main")
	runGit(t, dir, "checkout", "--quiet", "--detach", "FETCH_HEAD")

	res := fetch(t, f, dir, opts)
	if res.Revision != next {
		t.Fatalf("fetched %s, want %s", res.Revision, next)
	}
	if res.Previous != first.Revision || !slices.Equal(res.ChangedFiles, []string{"apps/a/cm.yaml"}) {
		t.Errorf("fetch after a checkout nobody was told about: previous %s, changed %q; want %s and [apps/a/cm.yaml]", res.Previous, res.ChangedFiles, first.Revision)
	}
}
