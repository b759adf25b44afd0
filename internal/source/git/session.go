package git

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// session runs the git commands of one Fetch or ListRemoteTags: a clean
// environment, credentials handed to git without touching the repository
// config or argv, and a private temporary directory removed by close.
type session struct {
	gitBin  string
	opts    Options
	timeout time.Duration
	tmp     string   // private (0700) dir: HOME, ssh key and known_hosts
	env     []string // environment of every git command
	secrets []string // strings scrubbed from anything git prints
}

// errTimedOut is the context cause set when Options.Timeout expires.
var errTimedOut = errors.New("git timeout")

// newSession prepares the environment for opts and returns a context
// bounded by the timeout. The caller must call cancel and s.close.
func (f *Fetcher) newSession(ctx context.Context, opts Options) (s *session, _ context.Context, cancel context.CancelFunc, _ error) {
	s = &session{gitBin: f.Git, opts: opts, timeout: timeoutOf(opts)}
	if s.gitBin == "" {
		s.gitBin = "git"
	}
	tmp, err := os.MkdirTemp("", "tend-git-")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("git session temp dir: %w", err)
	}
	s.tmp = tmp
	if err := s.setupEnv(); err != nil {
		s.close()
		return nil, nil, nil, err
	}
	ctx, cancel = context.WithTimeoutCause(ctx, s.timeout, errTimedOut)
	return s, ctx, cancel, nil
}

// close removes the session's temporary directory and the credentials in it.
func (s *session) close() {
	if s.tmp != "" {
		_ = os.RemoveAll(s.tmp)
	}
}

// passthroughEnv are the variables a git in a container may legitimately
// need from the controller's environment: proxies and CA bundles.
var passthroughEnv = []string{
	"http_proxy", "https_proxy", "no_proxy", "all_proxy",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
	"SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO",
}

func (s *session) setupEnv() error {
	s.env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + s.tmp,
		"LC_ALL=C",
		"LANG=C",
		// No user or system configuration, no prompts, no helpers.
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		// Only these transports: not ext::, not file, not git://.
		"GIT_ALLOW_PROTOCOL=http:https:ssh",
	}
	for _, k := range passthroughEnv {
		if v, ok := os.LookupEnv(k); ok {
			s.env = append(s.env, k+"="+v)
		}
	}

	// Configuration for every command, passed as if with -c (the
	// GIT_CONFIG_COUNT protocol) so nothing is written to .git/config and
	// nothing shows in argv.
	config := [][2]string{
		{"protocol.version", "2"},
		{"core.hooksPath", "/dev/null"},
		{"core.logAllRefUpdates", "false"}, // no reflogs keeping old revisions alive
		{"fetch.unpackLimit", "1"},         // keep each fetch as one pack: fewer files than loose objects
		{"gc.autoPackLimit", "20"},         // then repack and prune when 20 have piled up
		{"gc.autoDetach", "false"},         // auto gc runs inside the fetch, under its lock
		{"gc.pruneExpire", "now"},          // old revisions are not kept
		{"maintenance.autoDetach", "false"},
		{"fetch.writeCommitGraph", "false"},
		{"advice.detachedHead", "false"},
		{"init.defaultBranch", "main"},
		{"credential.helper", ""},
	}
	kind, err := transportOf(s.opts.URL)
	if err != nil {
		return err
	}
	a := s.opts.Auth
	switch {
	case kind == "http" && a != nil && (a.Username != "" || a.Password != ""):
		user := a.Username
		if user == "" {
			user = "git"
		}
		basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + a.Password))
		config = append(config, [2]string{"http.extraHeader", "Authorization: Basic " + basic})
		s.secrets = append(s.secrets, basic, user+":"+a.Password, a.Password, url.QueryEscape(a.Password), url.PathEscape(a.Password))
	case kind == "ssh":
		if err := s.setupSSH(); err != nil {
			return err
		}
	}
	s.env = append(s.env, "GIT_CONFIG_COUNT="+strconv.Itoa(len(config)))
	for i, kv := range config {
		s.env = append(s.env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", i, kv[0]), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", i, kv[1]))
	}
	return nil
}

// setupSSH writes the key and known_hosts into the private temp dir and
// points GIT_SSH_COMMAND at them, with the host key checked strictly and no
// user ssh config, agent or default identities.
func (s *session) setupSSH() error {
	a := s.opts.Auth
	if a == nil || len(bytes.TrimSpace(a.SSHKnownHosts)) == 0 {
		return &Error{kind: ErrInvalid, msg: fmt.Sprintf("%s is an ssh URL but the Secret has no known_hosts: add the server's host key (ssh-keyscan output, checked out of band) under known_hosts", s.opts.URL)}
	}
	knownHosts := filepath.Join(s.tmp, "known_hosts")
	if err := os.WriteFile(knownHosts, a.SSHKnownHosts, 0o600); err != nil {
		return fmt.Errorf("write known_hosts: %w", err)
	}
	cmd := []string{"ssh",
		"-F", "/dev/null",
		"-o", "UserKnownHostsFile=" + shellQuote(knownHosts),
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes",
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none",
		"-o", "ConnectTimeout=" + strconv.Itoa(max(1, int(s.timeout.Seconds()))),
	}
	if len(a.SSHPrivateKey) > 0 {
		key := filepath.Join(s.tmp, "identity")
		pem := a.SSHPrivateKey
		if !bytes.HasSuffix(pem, []byte("\n")) {
			pem = append(append([]byte{}, pem...), '\n') // ssh rejects a key without the final newline
		}
		if err := os.WriteFile(key, pem, 0o600); err != nil {
			return fmt.Errorf("write ssh key: %w", err)
		}
		cmd = append(cmd, "-i", shellQuote(key))
	} else {
		cmd = append(cmd, "-o", "IdentityFile=none")
	}
	s.env = append(s.env, "GIT_SSH_COMMAND="+strings.Join(cmd, " "), "GIT_SSH_VARIANT=ssh")
	return nil
}

// shellQuote quotes s for the shell that runs GIT_SSH_COMMAND.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// commandError is a git command that failed, with its (scrubbed) stderr.
type commandError struct {
	args   []string
	stderr string
	err    error
}

func (e *commandError) Error() string {
	return fmt.Sprintf("git %s: %v: %s", e.args[0], e.err, lastLines(e.stderr, 3))
}

func (e *commandError) Unwrap() error { return e.err }

// git runs a git command in dir and returns its trimmed stdout.
func (s *session) git(ctx context.Context, dir string, args ...string) (string, error) {
	out, err := s.gitRaw(ctx, dir, args...)
	return strings.TrimSpace(string(out)), err
}

// gitRaw runs a git command in dir (the session's temp dir when empty) and
// returns its stdout. The whole process group is killed when ctx ends.
func (s *session) gitRaw(ctx context.Context, dir string, args ...string) ([]byte, error) {
	if dir == "" {
		dir = s.tmp
	}
	cmd := exec.CommandContext(ctx, s.gitBin, args...)
	cmd.Dir = dir
	cmd.Env = s.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	killGroupOnCancel(cmd)
	if err := cmd.Run(); err != nil {
		return nil, &commandError{args: args, stderr: s.scrub(stderr.String()), err: err}
	}
	return stdout.Bytes(), nil
}

// scrub removes every credential of the session from text.
func (s *session) scrub(text string) string {
	for _, secret := range s.secrets {
		if secret != "" {
			text = strings.ReplaceAll(text, secret, "***")
		}
	}
	return text
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

// transportOf says how git will talk to rawURL: "http" or "ssh".
func transportOf(rawURL string) (string, error) {
	switch {
	case strings.HasPrefix(rawURL, "https://"), strings.HasPrefix(rawURL, "http://"):
		return "http", nil
	case strings.HasPrefix(rawURL, "ssh://"):
		return "ssh", nil
	case !strings.Contains(rawURL, "://") && scpLike(rawURL):
		return "ssh", nil
	}
	return "", &Error{kind: ErrInvalid, msg: fmt.Sprintf("unsupported git URL %q: use https://, http://, ssh:// or user@host:path", redactURL(rawURL))}
}

// scpLike reports whether u has the form [user@]host:path.
func scpLike(u string) bool {
	colon := strings.IndexByte(u, ':')
	if colon <= 0 || strings.HasPrefix(u, "-") {
		return false
	}
	// "transport::address" selects a remote helper (e.g. ext::), not ssh.
	if strings.HasPrefix(u[colon:], "::") {
		return false
	}
	return !strings.ContainsAny(u[:colon], "/ \t")
}

// redactURL hides a password in a URL's user info.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
