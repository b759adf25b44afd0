package git

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Kinds of failure, for errors.Is. A controller treats ErrAuth, ErrHostKey,
// ErrRefNotFound, ErrRepoNotFound and ErrInvalid as needing a change to the
// Source or its Secret, and ErrUnreachable and ErrTimeout as worth retrying.
var (
	ErrAuth         = errors.New("authentication failed")
	ErrHostKey      = errors.New("ssh host key verification failed")
	ErrRefNotFound  = errors.New("ref not found")
	ErrRepoNotFound = errors.New("repository not found")
	ErrUnreachable  = errors.New("host unreachable")
	ErrTimeout      = errors.New("timed out")
	ErrInvalid      = errors.New("invalid source")
)

// Error is a fetch failure with a message meant for the user (it says what
// to check) and a kind to match with errors.Is. It never holds credentials.
type Error struct {
	kind error
	msg  string
}

func (e *Error) Error() string { return e.msg }

// Unwrap returns the kind, one of the Err variables.
func (e *Error) Unwrap() error { return e.kind }

// explain turns a failure of the session's git commands into an Error that
// says what went wrong and what to check.
func (s *session) explain(ctx context.Context, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	u := s.opts.URL
	if errors.Is(context.Cause(ctx), errTimedOut) {
		return &Error{kind: ErrTimeout, msg: fmt.Sprintf("fetch %s: timed out after %s: the server did not answer in time; check that it is up, or raise the timeout for a large repository", u, s.timeout)}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("fetch %s: %w", u, ctx.Err())
	}
	var ce *commandError
	if !errors.As(err, &ce) {
		return fmt.Errorf("fetch %s: %w", u, err)
	}
	stderr := strings.ToLower(ce.stderr)
	has := func(subs ...string) bool {
		for _, sub := range subs {
			if strings.Contains(stderr, sub) {
				return true
			}
		}
		return false
	}
	detail := printable(lastLines(ce.stderr, 1))
	switch {
	case has("host key verification failed", "remote host identification has changed", "host key is known for"):
		return &Error{kind: ErrHostKey, msg: fmt.Sprintf("ssh host key verification failed for %s: the server's host key is missing from, or does not match, the known_hosts in the Secret; check known_hosts (a changed key can also mean someone is intercepting the connection)", hostOf(u))}
	case has("permission denied (publickey", "permission denied, please try again", "too many authentication failures"):
		return &Error{kind: ErrAuth, msg: fmt.Sprintf("authentication failed for %s: the server did not accept the ssh private key; check the identity in the Secret and that its public key has read access", u)}
	case has("authentication failed", "could not read username", "could not read password", "returned error: 401", "returned error: 403", "http 401", "http 403"):
		return &Error{kind: ErrAuth, msg: fmt.Sprintf("authentication failed for %s: check the username and password or token in the Secret, and that they can read the repository", u)}
	case has("could not resolve host", "could not resolve hostname", "name or service not known", "temporary failure in name resolution"):
		return &Error{kind: ErrUnreachable, msg: fmt.Sprintf("cannot reach %s: the host name does not resolve (%s); check the URL and DNS", hostOf(u), detail)}
	case has("failed to connect", "couldn't connect to server", "connection refused", "connection timed out", "no route to host", "network is unreachable", "connection reset", "connection closed by", "operation timed out"):
		return &Error{kind: ErrUnreachable, msg: fmt.Sprintf("cannot reach %s (%s); check the URL, that the server is up and that the network allows the connection", hostOf(u), detail)}
	case has("couldn't find remote ref", "not our ref", "unadvertised object", "no such remote ref", "fatal: invalid refspec"):
		return &Error{kind: ErrRefNotFound, msg: fmt.Sprintf("%s not found in %s; check spec.ref", s.opts.Ref, u)}
	case has("repository not found", "not found", "does not appear to be a git repository", "returned error: 404", "not a git repository"):
		return &Error{kind: ErrRepoNotFound, msg: fmt.Sprintf("repository not found at %s; check the URL, and that the credentials in the Secret (if any) can read it", u)}
	case has("no space left on device", "out of diskspace", "disk quota exceeded"):
		return fmt.Errorf("fetch %s: the disk holding the checkout is full (%s); free space in the controller's --data-dir (tend tries again, and keeps serving the last good revision meanwhile)", u, detail)
	case has("protocol error", "invalid server response", "bad band", "bad packet", "unexpected flush", "not valid: is this a git repository"):
		return &Error{kind: ErrUnreachable, msg: fmt.Sprintf("%s did not answer as a git server (%s); check that the URL points at a git repository and that no proxy in between rewrites git's traffic", hostOf(u), detail)}
	case has("could not read from remote repository"):
		return &Error{kind: ErrUnreachable, msg: fmt.Sprintf("cannot read from %s (%s); check the URL, that the server is up and that the network allows the connection", hostOf(u), detail)}
	}
	return fmt.Errorf("fetch %s: %w", u, printableError{err})
}

// printable replaces what is not printable text in s (a server's junk
// bytes, which git quotes in its messages) with "?", so that a message
// meant for a condition stays readable.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || (!unicode.IsPrint(r) && r != ' ') {
			return '?'
		}
		return r
	}, s)
}

// printableError is err with a printable message; it unwraps to err.
type printableError struct{ err error }

func (e printableError) Error() string { return printable(e.err.Error()) }
func (e printableError) Unwrap() error { return e.err }

// hostOf returns the host (and port) of a git URL, for messages.
func hostOf(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Host
	}
	if scpLike(raw) {
		h := raw[:strings.IndexByte(raw, ':')]
		return h[strings.LastIndexByte(h, '@')+1:]
	}
	return raw
}

var (
	commitPattern = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)
	// badRefName matches what git's check-ref-format rejects that could
	// matter here: control characters, spaces, "..", "~^:?*[\", a leading
	// "-" (option injection) and "@{".
	badRefName = regexp.MustCompile(`[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|^-|^/|/$|\.lock$|\.$`)
)

// validate rejects options git would misread or that are ambiguous.
func validate(opts Options) error {
	invalid := func(format string, args ...any) error {
		return &Error{kind: ErrInvalid, msg: fmt.Sprintf(format, args...)}
	}
	if opts.URL == "" {
		return invalid("git source has no URL")
	}
	if _, err := transportOf(opts.URL); err != nil {
		return err
	}
	if u, err := url.Parse(opts.URL); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return invalid("git URL %s has a password in it: put credentials in the Source's Secret, not in the URL", redactURL(opts.URL))
		}
	}
	r := opts.Ref
	set := 0
	for _, v := range []string{r.Branch, r.Tag, r.SemVer} {
		if v != "" {
			set++
		}
	}
	if set > 1 {
		return invalid("ref of %s sets more than one of branch, tag and semver; set one", opts.URL)
	}
	if r.Commit != "" && (r.Tag != "" || r.SemVer != "") {
		return invalid("ref of %s sets a commit with a tag or semver range; a commit goes alone or with a branch", opts.URL)
	}
	if r.Commit != "" && !commitPattern.MatchString(r.Commit) {
		return invalid("commit %q of %s is not a full lowercase commit SHA (40 hex digits)", r.Commit, opts.URL)
	}
	for _, name := range []string{r.Branch, r.Tag} {
		if name != "" && badRefName.MatchString(name) {
			return invalid("%q is not a valid git ref name (ref of %s)", name, opts.URL)
		}
	}
	return nil
}
