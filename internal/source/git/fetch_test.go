package git

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
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
	srv := newGitServer(t, repo.root, "", "")
	dir := filepath.Join(t.TempDir(), "ns", "source")
	f := &Fetcher{}
	opts := Options{URL: srv.repoURL(), Ref: Ref{Branch: "main"}}

	first := fetch(t, f, dir, opts)
	if got, want := first.Revision, repo.head(t); got != want {
		t.Fatalf("Revision = %s, want %s", got, want)
	}
	if got, want := first.Ref, "refs/heads/main"; got != want {
		t.Errorf("Ref = %q, want %q", got, want)
	}
	if first.ChangedFiles != nil {
		t.Errorf("ChangedFiles on first fetch = %q, want nil (unknown)", first.ChangedFiles)
	}
	if got, want := first.CommitSubject, "initial"; got != want {
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
	second := repo.commit(t, "change a", map[string]string{"apps/a/cm.yaml": "kind: ConfigMap\nmetadata:\n  name: a2\n"})
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
	third := repo.commit(t, "move b to c", map[string]string{"apps/b/cm.yaml": "", "apps/c/cm.yaml": "kind: ConfigMap\n"})
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
	before := srv.requests.Load()
	res = fetch(t, f, dir, opts)
	if got, want := res.Revision, third; got != want {
		t.Fatalf("Revision = %s, want %s", got, want)
	}
	if res.ChangedFiles == nil || len(res.ChangedFiles) != 0 {
		t.Errorf("ChangedFiles without a new commit = %#v, want empty", res.ChangedFiles)
	}
	// An unchanged remote costs one ls-remote (protocol v2: GET info/refs
	// and POST ls-refs), no fetch.
	if got, want := srv.requests.Load()-before, int64(2); got != want {
		t.Errorf("requests for an unchanged remote = %d, want %d", got, want)
	}
}

func TestFetchDefaultBranch(t *testing.T) {
	repo := newTestRepo(t)
	srv := newGitServer(t, repo.root, "", "")
	res := fetch(t, &Fetcher{}, t.TempDir(), Options{URL: srv.repoURL()})
	if got, want := res.Revision, repo.head(t); got != want {
		t.Errorf("Revision = %s, want %s", got, want)
	}
	if got, want := res.Ref, "refs/heads/main"; got != want {
		t.Errorf("Ref = %q, want %q", got, want)
	}
}

func TestFetchTag(t *testing.T) {
	repo := newTestRepo(t)
	first := repo.head(t)
	runGit(t, repo.dir, "tag", "-a", "v1.0.0", "-m", "release 1.0.0")
	runGit(t, repo.dir, "tag", "light")
	repo.commit(t, "after the tags", map[string]string{"README.md": "# later\n"})
	srv := newGitServer(t, repo.root, "", "")
	f := &Fetcher{}

	for _, tag := range []string{"v1.0.0", "light"} {
		t.Run(tag, func(t *testing.T) {
			res := fetch(t, f, t.TempDir(), Options{URL: srv.repoURL(), Ref: Ref{Tag: tag}})
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
	runGit(t, repo.dir, "tag", "v1.0.0")
	want := repo.commit(t, "1.2", map[string]string{"README.md": "1.2\n"})
	runGit(t, repo.dir, "tag", "-a", "1.2.0", "-m", "no v prefix")
	repo.commit(t, "rc", map[string]string{"README.md": "1.3-rc\n"})
	runGit(t, repo.dir, "tag", "v1.3.0-rc.1")
	repo.commit(t, "2.0", map[string]string{"README.md": "2.0\n"})
	runGit(t, repo.dir, "tag", "v2.0.0")
	runGit(t, repo.dir, "tag", "latest")
	srv := newGitServer(t, repo.root, "", "")
	f := &Fetcher{}

	res := fetch(t, f, t.TempDir(), Options{URL: srv.repoURL(), Ref: Ref{SemVer: ">=1.0.0 <2.0.0"}})
	if got := res.Revision; got != want {
		t.Errorf("Revision = %s, want %s (tag 1.2.0)", got, want)
	}
	if got, want := res.Ref, "refs/tags/1.2.0"; got != want {
		t.Errorf("Ref = %q, want %q", got, want)
	}

	err := fetchErr(t, f, t.TempDir(), Options{URL: srv.repoURL(), Ref: Ref{SemVer: "^3.0"}})
	if !errors.Is(err, ErrRefNotFound) {
		t.Errorf("error %q does not match ErrRefNotFound", err)
	}
	for _, s := range []string{"no tag in " + srv.repoURL() + ` matches semver range "^3.0"`, "highest v2.0.0"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}

	err = fetchErr(t, f, t.TempDir(), Options{URL: srv.repoURL(), Ref: Ref{SemVer: "not a range"}})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error %q for a bad range does not match ErrInvalid", err)
	}

	tags, err := f.ListRemoteTags(context.Background(), Options{URL: srv.repoURL()})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tags, []string{"1.2.0", "latest", "v1.0.0", "v1.3.0-rc.1", "v2.0.0"}; !slices.Equal(got, want) {
		t.Errorf("ListRemoteTags = %q, want %q", got, want)
	}
}

func TestFetchCommit(t *testing.T) {
	repo := newTestRepo(t)
	first := repo.head(t)
	second := repo.commit(t, "second", map[string]string{"apps/a/cm.yaml": "v2\n"})
	for i := range 80 { // deeper than the first deepening step
		repo.commit(t, "filler", map[string]string{"README.md": strings.Repeat("x", i+1) + "\n"})
	}
	tip := repo.head(t)
	runGit(t, repo.dir, "checkout", "-q", "-b", "other", first)
	elsewhere := repo.commit(t, "only on other", map[string]string{"README.md": "other\n"})
	runGit(t, repo.dir, "checkout", "-q", "main")
	srv := newGitServer(t, repo.root, "", "")
	f := &Fetcher{}

	t.Run("alone", func(t *testing.T) {
		dir := t.TempDir()
		res := fetch(t, f, dir, Options{URL: srv.repoURL(), Ref: Ref{Commit: second}})
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
		res = fetch(t, f, dir, Options{URL: srv.repoURL(), Ref: Ref{Commit: first}})
		if got, want := res.ChangedFiles, []string{"apps/a/cm.yaml"}; !slices.Equal(got, want) {
			t.Errorf("ChangedFiles = %q, want %q", got, want)
		}
	})

	t.Run("on branch", func(t *testing.T) {
		dir := t.TempDir()
		res := fetch(t, f, dir, Options{URL: srv.repoURL(), Ref: Ref{Branch: "main", Commit: second}})
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
		before := srv.requests.Load()
		res = fetch(t, f, dir, Options{URL: srv.repoURL(), Ref: Ref{Branch: "main", Commit: second}})
		if got, want := res.Revision, second; got != want {
			t.Fatalf("Revision = %s, want %s", got, want)
		}
		if got, want := srv.requests.Load()-before, int64(2); got != want {
			t.Errorf("requests for an unchanged pin = %d, want %d (one ls-remote)", got, want)
		}
	})

	t.Run("not on branch", func(t *testing.T) {
		err := fetchErr(t, f, t.TempDir(), Options{URL: srv.repoURL(), Ref: Ref{Branch: "main", Commit: elsewhere}})
		if !errors.Is(err, ErrRefNotFound) {
			t.Errorf("error %q does not match ErrRefNotFound", err)
		}
		if want := "commit " + elsewhere + ` is not in the history of branch "main"`; !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	})

	t.Run("missing", func(t *testing.T) {
		missing := strings.Repeat("ab", 20)
		err := fetchErr(t, f, t.TempDir(), Options{URL: srv.repoURL(), Ref: Ref{Commit: missing}})
		if !errors.Is(err, ErrRefNotFound) {
			t.Errorf("error %q does not match ErrRefNotFound", err)
		}
		if want := "commit " + missing + " not found in " + srv.repoURL(); !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	})
}

func TestFetchForcePushedBranch(t *testing.T) {
	repo := newTestRepo(t)
	repo.commit(t, "to be rewritten", map[string]string{"apps/a/cm.yaml": "old\n"})
	srv := newGitServer(t, repo.root, "", "")
	dir := t.TempDir()
	f := &Fetcher{}
	opts := Options{URL: srv.repoURL(), Ref: Ref{Branch: "main"}}
	fetch(t, f, dir, opts)

	runGit(t, repo.dir, "reset", "-q", "--hard", "HEAD~1")
	rewritten := repo.commit(t, "rewritten", map[string]string{"apps/b/cm.yaml": "new\n"})

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
	repo := newTestRepo(t)
	srv := newGitServer(t, repo.root, user, password)
	f := &Fetcher{}

	dir := t.TempDir()
	res := fetch(t, f, dir, Options{URL: srv.repoURL(), Auth: &Auth{Username: user, Password: password}})
	if got, want := res.Revision, repo.head(t); got != want {
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
			err := fetchErr(t, f, t.TempDir(), Options{URL: srv.repoURL(), Auth: tc.auth})
			if !errors.Is(err, ErrAuth) {
				t.Errorf("error %q does not match ErrAuth", err)
			}
			for _, s := range []string{"authentication failed for " + srv.repoURL(), "Secret"} {
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
	repo := newTestRepo(t)
	srv := newGitServer(t, repo.root, "git", token)
	res := fetch(t, &Fetcher{}, t.TempDir(), Options{URL: srv.repoURL(), Auth: &Auth{Password: token}})
	if got, want := res.Revision, repo.head(t); got != want {
		t.Errorf("Revision = %s, want %s", got, want)
	}
}

func TestFetchMissingRef(t *testing.T) {
	repo := newTestRepo(t)
	srv := newGitServer(t, repo.root, "", "")
	f := &Fetcher{}
	for _, tc := range []struct {
		ref  Ref
		want string
	}{
		{Ref{Branch: "nope"}, `branch "nope" not found in ` + srv.repoURL()},
		{Ref{Tag: "v9.9.9"}, `tag "v9.9.9" not found in ` + srv.repoURL()},
	} {
		err := fetchErr(t, f, t.TempDir(), Options{URL: srv.repoURL(), Ref: tc.ref})
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
	srv := newGitServer(t, repo.root, "", "")
	err := fetchErr(t, &Fetcher{}, t.TempDir(), Options{URL: srv.URL + "/missing.git"})
	if !errors.Is(err, ErrRepoNotFound) {
		t.Errorf("error %q does not match ErrRepoNotFound", err)
	}
	if want := "repository not found at " + srv.URL + "/missing.git"; !strings.Contains(err.Error(), want) {
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

	const timeout = time.Second
	start := time.Now()
	_, err := (&Fetcher{}).Fetch(context.Background(), t.TempDir(), Options{URL: hang.URL + "/repo.git", Timeout: timeout})
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("Fetch from a hanging server succeeded")
	}
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("error %q does not match ErrTimeout", err)
	}
	if want := "timed out after 1s"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if elapsed > timeout+3*time.Second {
		t.Errorf("Fetch returned after %s, want about %s", elapsed, timeout)
	}
}

func TestFetchConcurrentSharesOneFetch(t *testing.T) {
	repo := newTestRepo(t)
	srv := newGitServer(t, repo.root, "", "")
	srv.delay.Store(int64(100 * time.Millisecond)) // keep the first fetch running while the others arrive
	f := &Fetcher{}
	opts := Options{URL: srv.repoURL(), Ref: Ref{Branch: "main"}, Timeout: 30 * time.Second}

	fetch(t, f, t.TempDir(), opts)
	oneFetch := srv.requests.Load()

	srv.requests.Store(0)
	dir := t.TempDir()
	const callers = 10
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		results = make([]*Result, callers)
		errs    = make([]error, callers)
	)
	for i := range callers {
		wg.Go(func() {
			<-start
			results[i], errs[i] = f.Fetch(context.Background(), dir, opts)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
		if got, want := results[i].Revision, repo.head(t); got != want {
			t.Errorf("caller %d: Revision = %s, want %s", i, got, want)
		}
	}
	if got, want := srv.requests.Load(), oneFetch; got != want {
		t.Errorf("%d concurrent fetches made %d requests, want %d (one fetch)", callers, got, want)
	}
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
	srv := newGitServer(t, repo.root, "", "")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious.txt"), []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := fetchErr(t, &Fetcher{}, dir, Options{URL: srv.repoURL()})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error %q does not match ErrInvalid", err)
	}
	if got, want := readFile(t, dir, "precious.txt"), "keep me"; got != want {
		t.Errorf("precious.txt = %q, want %q", got, want)
	}
}

func TestFetchRepairsCheckoutAfterRestart(t *testing.T) {
	repo := newTestRepo(t)
	srv := newGitServer(t, repo.root, "", "")
	dir := t.TempDir()
	opts := Options{URL: srv.repoURL(), Ref: Ref{Branch: "main"}}
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
	if got, want := res.Revision, repo.head(t); got != want {
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
	srv := newGitServer(t, repo.root, "", "")
	dir := t.TempDir()
	f := &Fetcher{}
	opts := Options{URL: srv.repoURL(), Ref: Ref{Branch: "main"}, Timeout: 30 * time.Second}
	fetch(t, f, dir, opts)
	next := repo.commit(t, "while held", map[string]string{"README.md": "held\n"})

	release := f.Hold(dir)
	done := make(chan *Result)
	go func() {
		res, err := f.Fetch(context.Background(), dir, opts)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	select {
	case <-done:
		t.Fatal("Fetch changed the checkout while it was held")
	case <-time.After(500 * time.Millisecond):
	}
	if got, want := readFile(t, dir, "README.md"), "# platform\n"; got != want {
		t.Errorf("README.md while held = %q, want %q", got, want)
	}
	release()
	if res := <-done; res != nil && res.Revision != next {
		t.Errorf("Revision after release = %s, want %s", res.Revision, next)
	}
}

// TestCheckedOutNamesTheFilesOnDisk: once a fetch has finished, the
// commit on disk and what changed since the one before are known to
// whoever holds the directory, even before the fetch's caller has recorded
// the result; a failed fetch forgets them.
func TestCheckedOutNamesTheFilesOnDisk(t *testing.T) {
	repo := newTestRepo(t)
	srv := newGitServer(t, repo.root, "", "")
	dir := t.TempDir()
	f := &Fetcher{}
	if co := f.CheckedOut(dir); co.Revision != "" {
		t.Errorf("CheckedOut before any fetch = %q, want empty", co.Revision)
	}
	opts := Options{URL: srv.repoURL(), Ref: Ref{Branch: "main"}, Timeout: 30 * time.Second}
	first := fetch(t, f, dir, opts)
	if co := f.CheckedOut(dir); co.Revision != first.Revision || co.Previous != "" || co.ChangedFiles != nil {
		t.Errorf("CheckedOut after the first fetch = %+v, want %s with no previous commit and unknown changes", co, first.Revision)
	}
	next := repo.commit(t, "second commit", map[string]string{"README.md": "two\n"})
	fetch(t, f, dir, opts)
	release := f.Hold(dir)
	co := f.CheckedOut(dir)
	release()
	if co.Revision != next || co.Subject != "second commit" || co.Previous != first.Revision {
		t.Errorf("CheckedOut = %s %q from %s, want %s %q from %s", co.Revision, co.Subject, co.Previous, next, "second commit", first.Revision)
	}
	if !slices.Equal(co.ChangedFiles, []string{"README.md"}) {
		t.Errorf("CheckedOut changed files = %q, want [README.md]", co.ChangedFiles)
	}
	if err := fetchErr(t, f, dir, Options{URL: srv.repoURL(), Ref: Ref{Branch: "nope"}, Timeout: 30 * time.Second}); err == nil {
		t.Fatal("fetch of a missing branch succeeded")
	}
	if co := f.CheckedOut(dir); co.Revision != "" || co.ChangedFiles != nil {
		t.Errorf("CheckedOut after a failed fetch = %+v, want empty", co)
	}
}

// TestChangesCountedFromTheLastGoodFetch: a fetch that failed after its
// checkout leaves HEAD at a commit nobody was told about; the next fetch
// reports what changed since the commit its caller last got, not "nothing".
func TestChangesCountedFromTheLastGoodFetch(t *testing.T) {
	repo := newTestRepo(t)
	srv := newGitServer(t, repo.root, "", "")
	dir := t.TempDir()
	f := &Fetcher{}
	opts := Options{URL: srv.repoURL(), Ref: Ref{Branch: "main"}, Timeout: 30 * time.Second}
	first := fetch(t, f, dir, opts)
	next := repo.commit(t, "change a", map[string]string{"apps/a/cm.yaml": "kind: ConfigMap\nmetadata:\n  name: a2\n"})
	// What a fetch that failed after `git checkout` leaves behind.
	runGit(t, dir, "fetch", "--quiet", "--depth=1", srv.repoURL(), "main")
	runGit(t, dir, "checkout", "--quiet", "--detach", "FETCH_HEAD")

	res := fetch(t, f, dir, opts)
	if res.Revision != next {
		t.Fatalf("fetched %s, want %s", res.Revision, next)
	}
	if res.Previous != first.Revision || !slices.Equal(res.ChangedFiles, []string{"apps/a/cm.yaml"}) {
		t.Errorf("fetch after a checkout nobody was told about: previous %s, changed %q; want %s and [apps/a/cm.yaml]", res.Previous, res.ChangedFiles, first.Revision)
	}
}
