package git

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrRejected says the remote refused a push that was not a fast-forward
// every time it was tried: others kept pushing to the branch.
var ErrRejected = errors.New("push rejected")

// Signature names a commit's author and committer.
type Signature struct {
	Name  string
	Email string
}

// PushOptions describe one commit pushed to a branch.
type PushOptions struct {
	// URL, Auth and Timeout are as a fetch's (Options); Timeout bounds
	// each attempt.
	Options
	// Branch is the branch the change starts from.
	Branch string
	// PushBranch is the branch pushed to; empty means Branch. A different
	// branch is created from Branch's head, or replaced (force-pushed) if
	// it exists: it holds this one change, for a pull request.
	PushBranch string
	// Author of the commit (also its committer).
	Author Signature
	// Message of the commit.
	Message string
	// Change edits the checkout of Branch's head at dir. It may run more
	// than once, on a newer head each time, and must edit from what it
	// finds. Its error ends the push, nothing pushed.
	Change func(dir string) error
	// Signer, when set, signs the commit (OpenPGP or SSH, in its gpgsig
	// header, as git commit -S does).
	Signer Signer
	// Attempts bounds the tries when the push is rejected because the
	// branch moved meanwhile (default 3): each starts again from the new
	// head.
	Attempts int
}

// PushResult says what a push did.
type PushResult struct {
	// Revision is the commit pushed, or Branch's head when Change left the
	// files as they were (nothing is pushed then).
	Revision string
	// Pushed is false when there was nothing to commit.
	Pushed bool
	// Attempts is how many tries it took.
	Attempts int
}

// Push checks Branch's head out into a temporary directory, runs Change
// on it, commits what changed as Author and pushes the commit to
// PushBranch (or Branch). When the branch moved meanwhile (a rejected
// push), it starts again from the new head, up to Attempts times. Errors
// are *Error values like a fetch's, or ErrRejected.
func (f *Fetcher) Push(ctx context.Context, opts PushOptions) (*PushResult, error) {
	if err := validate(opts.Options); err != nil {
		return nil, err
	}
	if opts.Branch == "" {
		return nil, &Error{kind: ErrInvalid, msg: "push: no branch to start from"}
	}
	if opts.Author.Name == "" || opts.Author.Email == "" {
		return nil, &Error{kind: ErrInvalid, msg: "push: a commit needs an author name and email"}
	}
	attempts := opts.Attempts
	if attempts <= 0 {
		attempts = 3
	}
	target := opts.PushBranch
	if target == "" {
		target = opts.Branch
	}
	var last error
	for i := 1; i <= attempts; i++ {
		res, err := f.pushOnce(ctx, opts, target)
		if err == nil {
			res.Attempts = i
			return res, nil
		}
		if !errors.Is(err, ErrRejected) {
			return nil, err
		}
		last = err
	}
	return nil, fmt.Errorf("push to branch %q of %s: %w %d times (the branch kept moving)", target, redactURL(opts.URL), last, attempts)
}

func (f *Fetcher) pushOnce(ctx context.Context, opts PushOptions, target string) (*PushResult, error) {
	s, ctx, cancel, err := f.newSession(ctx, opts.Options)
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer s.close()
	dir := filepath.Join(s.tmp, "work")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	run := func(args ...string) (string, error) {
		out, err := s.git(ctx, dir, args...)
		if err != nil {
			return "", s.explain(ctx, err)
		}
		return out, nil
	}
	if _, err := run("init", "--quiet"); err != nil {
		return nil, err
	}
	if _, err := run("remote", "add", "origin", opts.URL); err != nil {
		return nil, err
	}
	// Only the branch's head: a commit on it needs no history to push
	// (the server has its parent).
	if _, err := run("fetch", "--quiet", "--no-tags", "--depth=1", "origin", "+refs/heads/"+opts.Branch+":refs/remotes/origin/"+opts.Branch); err != nil {
		return nil, err
	}
	head, err := run("rev-parse", "refs/remotes/origin/"+opts.Branch)
	if err != nil {
		return nil, err
	}
	if _, err := run("checkout", "--quiet", "-B", "tend-work", head); err != nil {
		return nil, err
	}
	if err := opts.Change(dir); err != nil {
		return nil, err
	}
	if _, err := run("add", "--all"); err != nil {
		return nil, err
	}
	if _, err := s.git(ctx, dir, "diff", "--cached", "--quiet"); err == nil {
		return &PushResult{Revision: head}, nil // nothing changed
	}
	who := []string{"-c", "user.name=" + opts.Author.Name, "-c", "user.email=" + opts.Author.Email}
	if _, err := run(append(who, "commit", "--quiet", "--no-verify", "-m", opts.Message)...); err != nil {
		return nil, err
	}
	if opts.Signer != nil {
		if err := s.sign(ctx, dir, opts.Signer); err != nil {
			return nil, err
		}
	}
	rev, err := run("rev-parse", "HEAD")
	if err != nil {
		return nil, err
	}
	refspec := "HEAD:refs/heads/" + target
	if target != opts.Branch {
		refspec = "+" + refspec // a change branch holds this change only
	}
	if _, err := s.git(ctx, dir, "push", "--quiet", "--porcelain", "origin", refspec); err != nil {
		var ce *commandError
		if errors.As(err, &ce) && rejected(ce.stderr) {
			return nil, ErrRejected
		}
		return nil, s.explain(ctx, err)
	}
	return &PushResult{Revision: rev, Pushed: true}, nil
}

// rejected says whether git push's stderr reports a non-fast-forward (the
// branch moved since it was fetched).
func rejected(stderr string) bool {
	for _, s := range []string{"Updates were rejected", "non-fast-forward", "fetch first", "[rejected]", "failed to update ref", "cannot lock ref"} {
		if strings.Contains(stderr, s) {
			return true
		}
	}
	return false
}

// Contains reports whether commit is tip or in tip's history, as branch
// of the repository opts names holds them: it fetches the branch into a
// temporary directory, deeper each time, until both commits are there or
// the whole branch is. A tip the branch does not hold yields false.
func (f *Fetcher) Contains(ctx context.Context, opts Options, branch, commit, tip string) (bool, error) {
	if commit == tip {
		return true, nil
	}
	if err := validate(opts); err != nil {
		return false, err
	}
	s, ctx, cancel, err := f.newSession(ctx, opts)
	if err != nil {
		return false, err
	}
	defer cancel()
	defer s.close()
	dir := filepath.Join(s.tmp, "work")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return false, err
	}
	if _, err := s.git(ctx, dir, "init", "--quiet", "--bare"); err != nil {
		return false, s.explain(ctx, err)
	}
	has := func(rev string) bool {
		_, err := s.git(ctx, dir, "cat-file", "-e", rev+"^{commit}")
		return err == nil
	}
	refspec := "+refs/heads/" + branch + ":refs/remotes/origin/" + branch
	for _, depth := range []string{"--depth=50", "--deepen=1000", "--unshallow"} {
		if _, err := s.git(ctx, dir, "fetch", "--quiet", depth, "--no-tags", "--", opts.URL, refspec); err != nil {
			return false, s.explain(ctx, err)
		}
		if has(tip) && has(commit) {
			return s.isAncestor(ctx, dir, commit, tip), nil
		}
		if shallow, _ := s.git(ctx, dir, "rev-parse", "--is-shallow-repository"); shallow != "true" {
			break
		}
	}
	return false, nil
}

// sign replaces HEAD's commit in dir with the same commit signed by
// signer.
func (s *session) sign(ctx context.Context, dir string, signer Signer) error {
	raw, err := s.gitRaw(ctx, dir, "cat-file", "commit", "HEAD")
	if err != nil {
		return s.explain(ctx, err)
	}
	sig, err := signer.Sign(raw)
	if err != nil {
		return &Error{kind: ErrInvalid, msg: "sign the commit: " + err.Error()}
	}
	signed, err := withSignature(raw, sig)
	if err != nil {
		return err
	}
	file := filepath.Join(s.tmp, "signed-commit")
	if err := os.WriteFile(file, signed, 0o600); err != nil {
		return err
	}
	rev, err := s.git(ctx, dir, "hash-object", "-t", "commit", "-w", file)
	if err != nil {
		return s.explain(ctx, err)
	}
	if _, err := s.git(ctx, dir, "update-ref", "HEAD", rev); err != nil {
		return s.explain(ctx, err)
	}
	return nil
}
