package artifact

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/tend-gitops/tend/internal/source/git"
	"github.com/tend-gitops/tend/internal/testenv"
)

func TestChangedBetween(t *testing.T) {
	s := NewStore(t.TempDir(), nil)
	src := types.NamespacedName{Namespace: "ns", Name: "repo"}
	s.Set(src, Artifact{Revision: "a"}, nil)
	s.Set(src, Artifact{Revision: "b"}, []string{"apps/x/f.yaml"})
	s.Set(src, Artifact{Revision: "c"}, []string{"apps/y/g.yaml", "apps/x/f.yaml"})
	s.Set(src, Artifact{Revision: "c2"}, []string{})
	for _, tc := range []struct {
		from, to string
		want     []string
	}{
		{"a", "b", []string{"apps/x/f.yaml"}},
		{"a", "c", []string{"apps/x/f.yaml", "apps/y/g.yaml"}},
		{"b", "c", []string{"apps/x/f.yaml", "apps/y/g.yaml"}},
		{"c", "c", []string{}},
		{"c", "c2", []string{}}, // a new commit that changed no file
		{"zzz", "c", nil},
	} {
		if got := s.ChangedBetween(src, tc.from, tc.to); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ChangedBetween(%s, %s) = %#v, want %#v", tc.from, tc.to, got, tc.want)
		}
	}
	s.Set(src, Artifact{Revision: "d"}, nil) // a fetch whose changes are unknown
	if got := s.ChangedBetween(src, "c2", "d"); got != nil {
		t.Errorf("unknown step: got %v, want nil", got)
	}
	if got := s.ChangedBetween(src, "a", "d"); got != nil {
		t.Errorf("through an unknown step: got %v, want nil", got)
	}
}

// TestOpenNamesTheFilesOnDisk: the Store learns of a fetch from the fetcher
// while the fetch still holds the checkout, so whoever opens the artifact
// reads the revision whose files are on disk, even when the fetch's own
// caller has not returned yet (here: a fetch made behind the Store's back,
// straight through the Fetcher).
func TestOpenNamesTheFilesOnDisk(t *testing.T) {
	repo := testenv.NewGitRepo(t, map[string]string{"app/cm.yaml": "one\n"})
	f := &git.Fetcher{}
	s := NewStore(t.TempDir(), f)
	src := types.NamespacedName{Namespace: "ns", Name: "repo"}
	if _, _, ok := s.Open(src); ok {
		t.Fatal("Open before any fetch found an artifact")
	}
	opts := git.Options{URL: repo.URL, Ref: git.Ref{Branch: "main"}, Timeout: 30 * time.Second}
	ctx := context.Background()
	art, res, first, err := s.Fetch(ctx, src, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !first || art.Revision != repo.Head() || art.Subject != "initial commit" || art.Ref != "refs/heads/main" || res.Revision != art.Revision {
		t.Fatalf("first Fetch = %+v (first %v), want %s, initial commit, refs/heads/main, first", art, first, repo.Head())
	}

	next := repo.Commit("second", map[string]string{"app/cm.yaml": "two\n", "other/x.yaml": "x\n"})
	if _, err := f.Fetch(ctx, s.Dir(src), opts); err != nil {
		t.Fatal(err)
	}
	got, release, ok := s.Open(src)
	if !ok {
		t.Fatal("Open after a fetch found no artifact")
	}
	data, err := os.ReadFile(filepath.Join(got.Dir, "app", "cm.yaml"))
	release()
	if err != nil {
		t.Fatal(err)
	}
	if got.Revision != next || got.Subject != "second" || string(data) != "two\n" {
		t.Errorf("Open = %s %q with app/cm.yaml %q, want %s %q with %q", got.Revision, got.Subject, data, next, "second", "two\n")
	}
	if ch := s.ChangedBetween(src, art.Revision, next); !reflect.DeepEqual(ch, []string{"app/cm.yaml", "other/x.yaml"}) {
		t.Errorf("ChangedBetween = %q, want [app/cm.yaml other/x.yaml]", ch)
	}

	// The next Fetch through the Store is not a first one, and a failed
	// fetch leaves the artifact as it was.
	if _, _, first, err := s.Fetch(ctx, src, opts); err != nil || first {
		t.Errorf("second Fetch: first %v, err %v; want false, nil", first, err)
	}
	if _, _, _, err := s.Fetch(ctx, src, git.Options{URL: repo.URL, Ref: git.Ref{Branch: "nope"}, Timeout: 30 * time.Second}); err == nil {
		t.Fatal("fetch of a missing branch succeeded")
	}
	if cur, _ := s.Current(src); cur.Revision != next {
		t.Errorf("after a failed fetch the artifact is %s, want %s", cur.Revision, next)
	}

	if err := s.Remove(src); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Current(src); ok {
		t.Error("Remove kept the artifact")
	}
	if _, err := os.Stat(s.Dir(src)); !os.IsNotExist(err) {
		t.Errorf("Remove kept the checkout: %v", err)
	}
}

// ReadFileIn reads inside its directory only: neither .. nor a symlink
// leads out of it.
func TestReadFileInStaysInside(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret.yaml"), []byte("password: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "envs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "envs", "prod.yaml"), []byte("a: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret.yaml"), filepath.Join(dir, "envs", "link.yaml")); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFileIn(dir, "envs/prod.yaml"); err != nil || string(b) != "a: 1\n" {
		t.Errorf("envs/prod.yaml: %q, %v", b, err)
	}
	rel, _ := filepath.Rel(dir, filepath.Join(outside, "secret.yaml"))
	for _, name := range []string{"envs/link.yaml", filepath.ToSlash(rel)} {
		if b, err := ReadFileIn(dir, name); err == nil {
			t.Errorf("%s read outside the directory: %q", name, b)
		}
	}
	if _, err := ReadFileIn(dir, "envs/absent.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file: %v, want fs.ErrNotExist", err)
	}
}

// TestPullReplacesFiles: Pull unpacks into a directory of its own and
// swaps it in only when the pull succeeds; a pull that finds the revision
// the Store has changes nothing; a failed pull keeps the last artifact's
// files; a git fetch after an OCI artifact starts from an empty directory.
func TestPullReplacesFiles(t *testing.T) {
	ctx := context.Background()
	s := NewStore(t.TempDir(), &git.Fetcher{})
	src := types.NamespacedName{Namespace: "ns", Name: "oci"}
	pull := func(rev, content string, fail error) PullFunc {
		return func(_ context.Context, have, dir string) (Artifact, bool, error) {
			if fail != nil {
				os.WriteFile(filepath.Join(dir, "half.yaml"), []byte("x"), 0o644)
				return Artifact{}, false, fail
			}
			if have == rev {
				return Artifact{Revision: rev}, false, nil
			}
			return Artifact{Revision: rev}, true, os.WriteFile(filepath.Join(dir, "cm.yaml"), []byte(content), 0o644)
		}
	}
	read := func() string {
		data, _, err := s.ReadFile(src, "cm.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	art, first, changed, err := s.Pull(ctx, src, "", pull("sha256:1", "one", nil))
	if err != nil || !first || !changed || !art.OCI || art.Revision != "sha256:1" || read() != "one" {
		t.Fatalf("first pull: %+v first %v changed %v err %v", art, first, changed, err)
	}
	if _, first, changed, err = s.Pull(ctx, src, "", pull("sha256:1", "other", nil)); err != nil || first || changed || read() != "one" {
		t.Fatalf("pull of the same revision: first %v changed %v err %v, files %q", first, changed, err, read())
	}
	if _, _, _, err = s.Pull(ctx, src, "", pull("sha256:2", "", errors.New("registry down"))); err == nil || read() != "one" {
		t.Fatalf("failed pull: err %v, files %q", err, read())
	}
	if _, err := os.Stat(filepath.Join(s.Dir(src), "half.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed pull's files reached the artifact: %v", err)
	}
	if _, _, changed, err = s.Pull(ctx, src, "", pull("sha256:2", "two", nil)); err != nil || !changed || read() != "two" {
		t.Fatalf("new revision: changed %v err %v files %q", changed, err, read())
	}
	// The same revision under another selector (a layerSelector changed)
	// is pulled again.
	if _, _, changed, err = s.Pull(ctx, src, "other-layer", pull("sha256:2", "two, other layer", nil)); err != nil || !changed || read() != "two, other layer" {
		t.Fatalf("same revision, other selector: changed %v err %v files %q", changed, err, read())
	}
	if got := s.ChangedBetween(src, "sha256:1", "sha256:2"); got != nil {
		t.Errorf("ChangedBetween two artifacts = %v, want nil (unknown: render everything)", got)
	}

	repo := testenv.NewGitRepo(t, nil)
	rev := repo.Commit("c", map[string]string{"cm.yaml": "git"})
	got, _, first, err := s.Fetch(ctx, src, git.Options{URL: repo.URL, Ref: git.Ref{Branch: "main"}})
	if err != nil || got.Revision != rev || got.OCI || !first || read() != "git" {
		t.Fatalf("git fetch after an OCI artifact: %+v first %v err %v", got, first, err)
	}

	// After a restart (a new Store on the same directory), a Source that
	// was an OCI artifact and is now git fetches too.
	other := types.NamespacedName{Namespace: "ns", Name: "was-oci"}
	if _, _, _, err := s.Pull(ctx, other, "", pull("sha256:3", "three", nil)); err != nil {
		t.Fatal(err)
	}
	restarted := NewStore(s.root, &git.Fetcher{})
	if got, _, _, err := restarted.Fetch(ctx, other, git.Options{URL: repo.URL, Ref: git.Ref{Branch: "main"}}); err != nil || got.Revision != rev {
		t.Fatalf("git fetch into a directory an OCI artifact was unpacked in before a restart: %+v, %v", got, err)
	}
}
