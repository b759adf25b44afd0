package git

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// DefaultTimeout bounds one Fetch or ListRemoteTags when Options.Timeout is
// zero.
const DefaultTimeout = 60 * time.Second

// targetRef is the local ref every fetch writes the fetched commit (or tag)
// to. Force-updated on each fetch, so a rewritten branch is no problem.
const targetRef = "refs/tend/target"

// Auth holds the credentials from a Source's Secret. For http(s) URLs,
// Password (a password or a token) is sent with basic auth; for ssh URLs,
// SSHPrivateKey and SSHKnownHosts are used. The other fields are ignored.
type Auth struct {
	// Username for basic auth. Empty means "git", which is what token
	// authentication on the common forges expects.
	Username string
	// Password is a password or an access token.
	Password string
	// SSHPrivateKey is a PEM or OpenSSH private key without passphrase.
	SSHPrivateKey []byte
	// SSHKnownHosts holds known_hosts lines for the server. Required for ssh
	// URLs: the host key is checked strictly.
	SSHKnownHosts []byte
}

// Ref says which commit to check out. At most one of Branch, Tag and SemVer
// may be set. Commit may be given alone (the commit is fetched directly) or
// with Branch (the branch is fetched and the commit must be in its history).
// The zero Ref means the remote's default branch (its HEAD).
type Ref struct {
	Branch string
	Tag    string
	// SemVer is a semantic version range (e.g. ">=1.2.0 <2.0.0", "~1.4");
	// the highest tag that satisfies it is checked out. Tags may carry a "v"
	// prefix.
	SemVer string
	// Commit is a full commit SHA.
	Commit string
}

func (r Ref) String() string {
	switch {
	case r.Branch != "" && r.Commit != "":
		return fmt.Sprintf("commit %s on branch %q", r.Commit, r.Branch)
	case r.Commit != "":
		return "commit " + r.Commit
	case r.Branch != "":
		return fmt.Sprintf("branch %q", r.Branch)
	case r.Tag != "":
		return fmt.Sprintf("tag %q", r.Tag)
	case r.SemVer != "":
		return fmt.Sprintf("semver range %q", r.SemVer)
	}
	return "the default branch"
}

// Options describe one fetch.
type Options struct {
	// URL of the repository: https://, http://, ssh:// or scp-like
	// user@host:path. Credentials belong in Auth, never in the URL.
	URL string
	// Ref selects the commit.
	Ref Ref
	// Auth is nil for a public repository.
	Auth *Auth
	// Timeout bounds the whole fetch, including resolving the ref and the
	// checkout. Zero means DefaultTimeout.
	Timeout time.Duration
}

// Result describes the checkout after a successful Fetch.
type Result struct {
	// Revision is the full SHA of the checked-out commit.
	Revision string
	// Dir is the checkout root; its working tree is at Revision.
	Dir string
	// Ref is the resolved remote ref, e.g. refs/heads/main or
	// refs/tags/v1.2.0; for a commit fetched alone it is the commit SHA.
	Ref string
	// ChangedFiles lists the paths (slash-separated, relative to Dir) that
	// differ between the commit Dir held before this Fetch and Revision. It
	// is nil when that is unknown (the first fetch into Dir, or the diff
	// failed): treat every file as changed. It is empty, not nil, when the
	// revision did not change.
	ChangedFiles []string
	// CommitSubject is the first line of Revision's commit message.
	CommitSubject string
	// Previous is the commit Dir held before this Fetch ("" for the first
	// fetch into Dir); ChangedFiles is the difference from it.
	Previous string
	// URL is the repository the revision was fetched from (Options.URL).
	URL string
}

// Fetcher fetches git repositories into checkout directories it owns, one
// per Source, updating each in place. The zero Fetcher is ready to use and
// runs "git" from PATH. A Fetcher must be the only writer of its
// directories, also across processes.
type Fetcher struct {
	// Git is the git binary to run. Empty means "git" from PATH.
	Git string
	// OnCheckout, when set, is told about every successful fetch while
	// the fetch still holds the directory (dir is absolute), so that what
	// it records is in place before anyone holding the directory (Hold)
	// reads the new files.
	OnCheckout func(dir string, res *Result)

	mu    sync.Mutex
	dirs  map[string]*dirState
	calls map[string]*call
	// running counts fetches in flight, which go on after their callers
	// give up (Wait).
	running sync.WaitGroup
}

// Wait blocks until no fetch is running: a process stopping calls it so
// that no git process writes into a checkout after it returns.
func (f *Fetcher) Wait() { f.running.Wait() }

// dirState serialises the fetches into one directory.
type dirState struct {
	// mu is held for writing by a fetch and for reading by Hold.
	mu sync.RWMutex
	// good is the commit the last successful fetch checked out, kept
	// after a failed one: a fetch that failed after its checkout leaves
	// HEAD at a commit no caller was told about, so changes are counted
	// from good, not from HEAD.
	good string
	// verified is "<branch tip> <commit>" of the last branch+commit fetch
	// that found the commit in the branch's history, so an unchanged branch
	// is not walked again.
	verified string
	// clean is set once this process has checked the working tree out
	// completely; until then (and after a failed checkout) the next fetch
	// forces it.
	clean bool
}

// call is one fetch in flight, shared by every caller asking for the same
// directory, URL, ref and credentials.
type call struct {
	done chan struct{}
	res  *Result
	err  error
}

// Fetch brings dir to the commit opts selects and describes it. dir is
// created if needed; a directory that exists, is not empty and is not a
// checkout made by a Fetcher is an error. Fetches into one dir run one at a
// time; callers asking for the same dir and options while a fetch runs
// share its result. If ctx ends first, Fetch returns its error, and the
// fetch goes on (bounded by Timeout) for the callers still waiting.
//
// Errors match ErrAuth, ErrRefNotFound, ErrRepoNotFound, ErrHostKey,
// ErrUnreachable, ErrTimeout or ErrInvalid with errors.Is, and never contain
// credentials.
func (f *Fetcher) Fetch(ctx context.Context, dir string, opts Options) (*Result, error) {
	if err := validate(opts); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("git checkout dir %q: %w", dir, err)
	}
	key := callKey(abs, opts)

	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]*call{}
	}
	c, running := f.calls[key]
	if !running {
		c = &call{done: make(chan struct{})}
		f.calls[key] = c
		st := f.dirLocked(abs)
		// The fetch runs on its own so that one caller giving up does not
		// fail the others; Timeout bounds it.
		f.running.Add(1)
		go func() {
			defer f.running.Done()
			c.res, c.err = f.fetchDir(context.WithoutCancel(ctx), st, abs, opts)
			f.mu.Lock()
			delete(f.calls, key)
			f.mu.Unlock()
			close(c.done)
		}()
	}
	f.mu.Unlock()

	select {
	case <-c.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("fetch %s: %w", opts.URL, ctx.Err())
	}
	if c.err != nil {
		return nil, c.err
	}
	res := *c.res
	if res.ChangedFiles != nil {
		res.ChangedFiles = append([]string{}, res.ChangedFiles...)
	}
	return &res, nil
}

// Clean reports whether dir's working tree is known to be a complete
// checkout of the commit its last successful fetch returned: false before
// this process fetched into dir, and after a fetch failed while checking
// files out and could not put the previous commit back. Call it while
// holding dir (Hold).
func (f *Fetcher) Clean(dir string) bool {
	return f.dirState(dir).clean
}

// Hold blocks fetches into dir until release is called, so that a caller
// can read the checkout while it stays at one revision. It waits for a
// fetch that is running.
func (f *Fetcher) Hold(dir string) (release func()) {
	st := f.dirState(dir)
	st.mu.RLock()
	return sync.OnceFunc(st.mu.RUnlock)
}

// Lock blocks fetches into dir and Holds of it until release is called,
// for a writer of dir other than git (the artifact Store unpacking an OCI
// artifact), so that readers wait on one lock whatever wrote the files.
func (f *Fetcher) Lock(dir string) (release func()) {
	st := f.dirState(dir)
	st.mu.Lock()
	return sync.OnceFunc(st.mu.Unlock)
}

// dirState returns the lock state of dir.
func (f *Fetcher) dirState(dir string) *dirState {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = filepath.Clean(dir)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dirLocked(abs)
}

func (f *Fetcher) dirLocked(abs string) *dirState {
	if f.dirs == nil {
		f.dirs = map[string]*dirState{}
	}
	st, ok := f.dirs[abs]
	if !ok {
		st = &dirState{}
		f.dirs[abs] = st
	}
	return st
}

// callKey identifies fetches that can share one result. Credentials are
// part of it (hashed) so that a caller with a wrong Secret never gets the
// result of a caller with the right one.
func callKey(dir string, opts Options) string {
	h := sha256.New()
	for _, s := range []string{dir, opts.URL, opts.Ref.Branch, opts.Ref.Tag, opts.Ref.SemVer, opts.Ref.Commit} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	if a := opts.Auth; a != nil {
		for _, b := range [][]byte{[]byte(a.Username), []byte(a.Password), a.SSHPrivateKey, a.SSHKnownHosts} {
			h.Write(b)
			h.Write([]byte{0})
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func timeoutOf(opts Options) time.Duration {
	if opts.Timeout > 0 {
		return opts.Timeout
	}
	return DefaultTimeout
}

// fetchDir does one fetch into dir with the directory lock held.
func (f *Fetcher) fetchDir(ctx context.Context, st *dirState, dir string, opts Options) (*Result, error) {
	st.mu.Lock()
	defer st.mu.Unlock()

	s, ctx, cancel, err := f.newSession(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer s.close()

	res, err := s.fetch(ctx, st, dir)
	if err != nil {
		return nil, s.explain(ctx, err)
	}
	st.good = res.Revision
	res.URL = opts.URL
	if f.OnCheckout != nil {
		f.OnCheckout(dir, res)
	}
	return res, nil
}

// fetch resolves the ref, fetches and checks out. Errors are raw; the caller
// explains them.
func (s *session) fetch(ctx context.Context, st *dirState, dir string) (*Result, error) {
	ref := s.opts.Ref
	want, err := s.resolve(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.ensureRepo(ctx, dir); err != nil {
		return nil, err
	}
	old, _ := s.git(ctx, dir, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")

	// Nothing to fetch when the remote still points at what is checked out:
	// the steady state costs one ls-remote.
	upToDate := want.sha != "" && want.sha == old
	if ref.Branch != "" && ref.Commit != "" {
		upToDate = old == ref.Commit && st.verified == want.sha+" "+ref.Commit
	}
	rev := old
	if !upToDate {
		if rev, err = s.fetchRev(ctx, st, dir, want); err != nil {
			return nil, err
		}
	}

	// A checkout this process has not seen complete (it just started, or a
	// checkout was interrupted) is forced back to rev, untracked files and
	// all; otherwise only a new revision is checked out.
	if rev != old || !st.clean {
		wasClean := st.clean
		st.clean = false
		if _, err := s.git(ctx, dir, "checkout", "--quiet", "--force", "--detach", rev); err != nil {
			s.restore(ctx, st, dir, old)
			return nil, fmt.Errorf("check out %s: %w", rev, err)
		}
		if !wasClean {
			if _, err := s.git(ctx, dir, "clean", "-q", "-ffdx"); err != nil {
				return nil, fmt.Errorf("clean checkout: %w", err)
			}
		}
		st.clean = true
	}
	base := old
	if st.good != "" {
		base = st.good
	}
	return s.result(ctx, dir, want.name, base, rev)
}

// restore puts the working tree back at old after a checkout of another
// commit failed half way (a full disk, say), which leaves some files at the
// new commit and some at the old one: readers must never see such a mix. It
// leaves st.clean false (Clean says the checkout cannot be read) unless the
// tree is whole at old again.
func (s *session) restore(ctx context.Context, st *dirState, dir, old string) {
	if old == "" {
		return
	}
	// The half-written new files are untracked (the index was not
	// updated): removing them first frees the space the checkout needs.
	if _, err := s.git(ctx, dir, "clean", "-q", "-ffdx"); err != nil {
		return
	}
	if _, err := s.git(ctx, dir, "checkout", "--quiet", "--force", "--detach", old); err != nil {
		return
	}
	if _, err := s.git(ctx, dir, "clean", "-q", "-ffdx"); err != nil {
		return
	}
	st.clean = true
}

// fetchRev fetches want with depth 1 and returns the commit to check out.
func (s *session) fetchRev(ctx context.Context, st *dirState, dir string, want remoteRef) (string, error) {
	ref := s.opts.Ref
	refspec := "+" + want.name + ":" + targetRef
	if want.name == "" {
		refspec = "+" + ref.Commit + ":" + targetRef
	}
	if _, err := s.git(ctx, dir, "fetch", "--quiet", "--depth=1", "--no-tags", "--no-recurse-submodules", "--", s.opts.URL, refspec); err != nil {
		return "", err
	}
	rev, err := s.git(ctx, dir, "rev-parse", "--verify", targetRef+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("resolve fetched commit: %w", err)
	}
	if ref.Branch != "" && ref.Commit != "" {
		if err := s.ensureAncestor(ctx, dir, want.name, ref.Commit, rev); err != nil {
			return "", err
		}
		st.verified = rev + " " + ref.Commit
		rev = ref.Commit
	}
	return rev, nil
}

// result describes the checkout at rev, which was at old before.
func (s *session) result(ctx context.Context, dir, refName, old, rev string) (*Result, error) {
	subject, err := s.git(ctx, dir, "show", "--no-patch", "--format=%s", rev)
	if err != nil {
		return nil, fmt.Errorf("read commit %s: %w", rev, err)
	}
	if refName == "" {
		refName = rev
	}
	return &Result{
		Revision:      rev,
		Dir:           dir,
		Ref:           refName,
		ChangedFiles:  s.changedFiles(ctx, dir, old, rev),
		CommitSubject: subject,
		Previous:      old,
	}, nil
}

// changedFiles lists the paths that differ between the trees of two
// commits. Both trees are present after a shallow fetch (the old commit is
// still HEAD while the new one is fetched), so no history is needed. nil
// means unknown.
func (s *session) changedFiles(ctx context.Context, dir, old, rev string) []string {
	if old == "" {
		return nil
	}
	if old == rev {
		return []string{}
	}
	out, err := s.gitRaw(ctx, dir, "diff-tree", "-r", "-z", "--name-only", "--no-renames", "--no-commit-id", old, rev)
	if err != nil {
		return nil
	}
	files := []string{}
	for p := range strings.SplitSeq(string(out), "\x00") {
		if p != "" {
			files = append(files, p)
		}
	}
	return files
}

// ensureRepo makes dir a git repository if it is not one yet, and clears
// lock files a killed git may have left (the directory lock says no other
// git runs here).
func (s *session) ensureRepo(ctx context.Context, dir string) error {
	gitDir := filepath.Join(dir, ".git")
	if _, err := os.Stat(filepath.Join(gitDir, "HEAD")); err == nil {
		if _, err := s.git(ctx, dir, "rev-parse", "--git-dir"); err == nil {
			for _, lock := range []string{"index.lock", "shallow.lock", "HEAD.lock", targetRef + ".lock"} {
				if err := os.Remove(filepath.Join(gitDir, lock)); err != nil && !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("remove stale lock: %w", err)
				}
			}
			return nil
		}
		// A repository this package made but that git no longer reads
		// (e.g. a process killed during init): start over.
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove broken checkout %s: %w", dir, err)
		}
	} else if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		if _, statErr := os.Stat(gitDir); statErr != nil {
			return &Error{kind: ErrInvalid, msg: fmt.Sprintf("checkout dir %s is not empty and is not a git checkout; refusing to use it", dir)}
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove broken checkout %s: %w", dir, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create checkout dir: %w", err)
	}
	// No template: no sample hooks, fewer files.
	if _, err := s.git(ctx, dir, "init", "--quiet", "--template="); err != nil {
		return fmt.Errorf("git init %s: %w", dir, err)
	}
	return nil
}

// ensureAncestor checks that commit is in the history of tip, deepening the
// shallow checkout step by step (and in the end fetching the whole branch)
// until it is found.
func (s *session) ensureAncestor(ctx context.Context, dir, branchRef, commit, tip string) error {
	if commit == tip {
		return nil
	}
	refspec := "+" + branchRef + ":" + targetRef
	for _, deepen := range []string{"--deepen=50", "--deepen=1000", "--unshallow"} {
		if shallow, _ := s.git(ctx, dir, "rev-parse", "--is-shallow-repository"); shallow != "true" {
			break
		}
		if _, err := s.git(ctx, dir, "fetch", "--quiet", deepen, "--no-tags", "--no-recurse-submodules", "--", s.opts.URL, refspec); err != nil {
			return err
		}
		if s.isAncestor(ctx, dir, commit, tip) {
			return nil
		}
	}
	if s.isAncestor(ctx, dir, commit, tip) {
		return nil
	}
	return &Error{kind: ErrRefNotFound, msg: fmt.Sprintf("commit %s is not in the history of branch %q in %s; check spec.ref", commit, s.opts.Ref.Branch, s.opts.URL)}
}

func (s *session) isAncestor(ctx context.Context, dir, commit, tip string) bool {
	_, err := s.git(ctx, dir, "merge-base", "--is-ancestor", commit, tip)
	return err == nil
}
