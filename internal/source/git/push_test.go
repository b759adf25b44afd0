package git

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tend-gitops/tend/internal/testenv"
)

// Push commits a change as its author to a branch behind basic auth; a
// change that edits nothing pushes nothing; a Change error pushes nothing;
// a push racing another writer lands on top of it (a rejected push starts
// again from the new head); a change branch is made from the branch and
// leaves it alone; a wrong password is ErrAuth.
func TestPush(t *testing.T) {
	repo := testenv.NewGitRepo(t, map[string]string{"envs/dev/tag.txt": "1.0.0\n"}, testenv.GitBasicAuth("bot", "s3cret"))
	ctx := context.Background()
	f := &Fetcher{}
	auth := &Auth{Username: "bot", Password: "s3cret"}
	write := func(name, content string) func(string) error {
		return func(dir string) error {
			return os.WriteFile(filepath.Join(dir, filepath.FromSlash(name)), []byte(content), 0o644)
		}
	}
	opts := PushOptions{
		Options: Options{URL: repo.URL, Auth: auth},
		Branch:  "main",
		Author:  Signature{Name: "tend", Email: "tend@example.com"},
		Message: "promote dev to 1.1.0",
		Change:  write("envs/dev/tag.txt", "1.1.0\n"),
	}
	res, err := f.Push(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	repo.Pull()
	if !res.Pushed || res.Revision != repo.Head() || res.Attempts != 1 {
		t.Fatalf("push: %+v, head %s", res, repo.Head())
	}
	if got := repo.Git("log", "-1", "--format=%an <%ae> %s"); got != "tend <tend@example.com> promote dev to 1.1.0" {
		t.Errorf("commit %q", got)
	}
	if b, _ := os.ReadFile(filepath.Join(repo.Dir, "envs/dev/tag.txt")); string(b) != "1.1.0\n" {
		t.Errorf("tag.txt %q after the push", b)
	}

	// Nothing to change: nothing pushed.
	res, err = f.Push(ctx, opts)
	if err != nil || res.Pushed || res.Revision != repo.Head() {
		t.Errorf("an unchanged tree: %+v, %v; want nothing pushed at %s", res, err, repo.Head())
	}
	// A Change that fails pushes nothing.
	bad := opts
	bad.Change = func(string) error { return errors.New("would not render") }
	if _, err := f.Push(ctx, bad); err == nil || !strings.Contains(err.Error(), "would not render") {
		t.Errorf("failing change: %v", err)
	}

	// Another writer pushes while the change is made: the first push is
	// rejected, the second, from the new head, lands on top of it.
	race := opts
	race.Message = "promote staging to 1.1.0"
	calls := 0
	race.Change = func(dir string) error {
		calls++
		if calls == 1 {
			repo.Commit("someone else", map[string]string{"README": "theirs\n"})
		}
		return write("envs/staging.txt", "1.1.0\n")(dir)
	}
	res, err = f.Push(ctx, race)
	if err != nil {
		t.Fatal(err)
	}
	repo.Pull()
	if res.Attempts != 2 || res.Revision != repo.Head() {
		t.Errorf("racing push: %+v, want 2 attempts and the head %s", res, repo.Head())
	}
	for _, name := range []string{"README", "envs/staging.txt"} {
		if _, err := os.Stat(filepath.Join(repo.Dir, name)); err != nil {
			t.Errorf("%s lost: %v", name, err)
		}
	}

	// A change branch, for a pull request: main stays.
	main := repo.Head()
	pr := opts
	pr.PushBranch = "tend/promote-prod"
	pr.Change = write("envs/prod.txt", "1.1.0\n")
	if res, err = f.Push(ctx, pr); err != nil || !res.Pushed {
		t.Fatalf("push to a change branch: %+v, %v", res, err)
	}
	if got := repo.Git("ls-remote", "origin", "refs/heads/main", "refs/heads/tend/promote-prod"); !strings.Contains(got, main+"\trefs/heads/main") || !strings.Contains(got, res.Revision+"\trefs/heads/tend/promote-prod") {
		t.Errorf("remote refs:\n%s\nwant main at %s and the change branch at %s", got, main, res.Revision)
	}

	wrong := opts
	wrong.Auth = &Auth{Username: "bot", Password: "wrong"}
	if _, err := f.Push(ctx, wrong); !errors.Is(err, ErrAuth) || strings.Contains(err.Error(), "wrong") {
		t.Errorf("wrong password: %v, want ErrAuth without the password", err)
	}
}

// Contains finds a commit in the history of a later one, also beyond the
// first fetch's depth, and says no for a commit of another branch or a
// later commit than the tip.
func TestContains(t *testing.T) {
	repo := testenv.NewGitRepo(t, map[string]string{"a.txt": "0\n"}, testenv.GitBasicAuth("bot", "s3cret"))
	ctx := context.Background()
	f := &Fetcher{}
	opts := Options{URL: repo.URL, Auth: &Auth{Username: "bot", Password: "s3cret"}}
	first := repo.Head()
	for i := 1; i <= 60; i++ { // deeper than the first fetch (50)
		repo.Commit("change", map[string]string{"a.txt": strings.Repeat("x", i) + "\n"})
	}
	tip := repo.Head()
	repo.Git("checkout", "-q", "-b", "other", first)
	other := repo.Commit("elsewhere", map[string]string{"b.txt": "b\n"})
	for _, tc := range []struct {
		name        string
		commit, tip string
		branch      string
		want        bool
	}{
		{"the tip itself", tip, tip, "main", true},
		{"60 commits back", first, tip, "main", true},
		{"a later commit than the tip", tip, first, "main", false},
		{"a commit of another branch", other, tip, "main", false},
	} {
		got, err := f.Contains(ctx, opts, tc.branch, tc.commit, tc.tip)
		if err != nil || got != tc.want {
			t.Errorf("%s: %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if _, err := f.Contains(ctx, Options{URL: repo.URL, Auth: &Auth{Username: "bot", Password: "wrong"}}, "main", first, tip); !errors.Is(err, ErrAuth) {
		t.Errorf("wrong password: %v, want ErrAuth", err)
	}
}
