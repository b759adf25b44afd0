package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Public API bases; Enterprise and self-hosted instances are derived from
// the repository's host when spec.address is empty.
const (
	githubAPI = "https://api.github.com"
	gitlabAPI = "https://gitlab.com"
)

// maxStatusDescription is the longest description a forge shows whole.
const maxStatusDescription = 140

// commitStatus posts the App's sync and health to the commit it synced, as
// a commit status named "tend/<namespace>/<app>" on GitHub, GitLab or
// Gitea. Only full commit SHAs of git sources get a status; other events
// and revisions are skipped without a request.
type commitStatus struct {
	forge string // github, gitlab, gitea
	// address is the API base (github) or instance URL (gitlab, gitea);
	// empty derives it from the repository URL (github, gitlab).
	address string
	token   string
	t       *transport
}

var _ Provider = (*commitStatus)(nil)

func newCommitStatus(cfg Config) (*commitStatus, error) {
	cs := &commitStatus{forge: cfg.Type, token: cfg.Token}
	if cfg.Type == "gitea" && cfg.Address == "" {
		return nil, errNoAddress("gitea", "Gitea address (https://gitea.example.com)")
	}
	address, err := apiBase(cfg.Type, cfg.Address, "")
	if err != nil {
		return nil, err
	}
	// People paste the API URL; the paths below add the API prefix.
	switch cfg.Type {
	case "gitlab":
		address = strings.TrimSuffix(address, "/api/v4")
	case "gitea":
		address = strings.TrimSuffix(address, "/api/v1")
	}
	cs.address = address
	if cfg.Token == "" {
		what := map[string]string{
			"github": "GitHub token allowed to write commit statuses (fine-grained: \"Commit statuses: write\")",
			"gitlab": "GitLab access token with the api scope (Developer role or higher)",
			"gitea":  "Gitea access token with write:repository",
		}[cfg.Type]
		return nil, errNoToken(cfg.Type, what)
	}
	cs.t = newTransport(cfg.Type, cfg, cfg.Token)
	if cfg.Type == "github" {
		cs.t.retryAfter = githubRateLimitReset
	}
	return cs, nil
}

// statusState is the state a kind posts: GitHub and Gitea share their
// names, GitLab has its own.
type statusState struct{ github, gitlab string }

// statusStates maps event kinds to states; kinds not listed post nothing.
var statusStates = map[Kind]statusState{
	SyncStarted:     {"pending", "running"},
	SyncSucceeded:   {"success", "success"},
	HealthRecovered: {"success", "success"},
	SyncFailed:      {"failure", "failed"},
	HookFailed:      {"failure", "failed"},
	HealthDegraded:  {"failure", "failed"},
}

func (cs *commitStatus) Send(ctx context.Context, m Message) error {
	e := m.Event
	state, ok := statusStates[e.Kind]
	if !ok || !isFullSHA(e.Revision) || e.RepoURL == "" {
		return nil
	}
	repo, err := parseRepoURL(e.RepoURL)
	if err != nil {
		return fmt.Errorf("%s: %w", cs.forge, err)
	}
	sha := strings.ToLower(e.Revision)
	statusName := "tend/" + e.AppNamespace + "/" + e.AppName
	desc := statusDescription(m)
	header := http.Header{}
	var reqURL string
	var payload any
	switch cs.forge {
	case "github":
		base := cs.address
		if base == "" {
			base = githubBase(repo)
		}
		owner, repoName, err := repo.ownerRepo("github", "")
		if err != nil {
			return err
		}
		reqURL = base + "/repos/" + url.PathEscape(owner) + "/" + url.PathEscape(repoName) + "/statuses/" + sha
		header.Set("Authorization", "Bearer "+cs.token)
		header.Set("Accept", "application/vnd.github+json")
		header.Set("X-GitHub-Api-Version", "2022-11-28")
		payload = statusPayload{State: state.github, Context: statusName, Description: desc, TargetURL: m.Link}
	case "gitlab":
		base := cs.address
		if base == "" {
			base = gitlabBase(repo)
		}
		project, err := repo.projectPath(base)
		if err != nil {
			return err
		}
		reqURL = base + "/api/v4/projects/" + url.PathEscape(project) + "/statuses/" + sha
		header.Set("PRIVATE-TOKEN", cs.token)
		payload = gitlabStatus{State: state.gitlab, Name: statusName, Description: desc, TargetURL: m.Link}
	case "gitea":
		owner, repoName, err := repo.ownerRepo("gitea", cs.address)
		if err != nil {
			return err
		}
		reqURL = cs.address + "/api/v1/repos/" + url.PathEscape(owner) + "/" + url.PathEscape(repoName) + "/statuses/" + sha
		header.Set("Authorization", "token "+cs.token)
		payload = statusPayload{State: state.github, Context: statusName, Description: desc, TargetURL: m.Link}
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	_, err = cs.t.do(ctx, "POST", reqURL, header, body)
	var he *HTTPError
	if errors.As(err, &he) {
		// GitLab refuses to set a running (or pending) status to itself:
		// the commit already shows what tend would post.
		if cs.forge == "gitlab" && he.Status == http.StatusBadRequest && strings.Contains(he.Body, "Cannot transition status") {
			return nil
		}
	}
	return err
}

// statusPayload is GitHub's and Gitea's commit status.
type statusPayload struct {
	State       string `json:"state"`
	Context     string `json:"context"`
	Description string `json:"description"`
	TargetURL   string `json:"target_url,omitempty"`
}

// gitlabStatus is GitLab's commit status (POST /projects/:id/statuses/:sha).
type gitlabStatus struct {
	State       string `json:"state"`
	Name        string `json:"name"`
	Description string `json:"description"`
	TargetURL   string `json:"target_url,omitempty"`
}

// statusDescription is the summary or message, with the first line of the
// error for failures, within maxStatusDescription characters.
func statusDescription(m Message) string {
	e := m.Event
	d := oneLine(m.Summary)
	if d == "" {
		d = oneLine(e.Message)
	}
	if d == "" {
		p := phrase(e.Kind)
		d = strings.ToUpper(p[:1]) + p[1:]
	}
	if first, _, _ := strings.Cut(strings.TrimSpace(e.Error), "\n"); first != "" && !strings.Contains(d, first) {
		d += ": " + oneLine(first)
	}
	return truncate(d, maxStatusDescription)
}

// githubRateLimitReset is how long until GitHub's primary rate limit
// resets, when the answer says it is exhausted
// (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api).
func githubRateLimitReset(h http.Header, now time.Time) time.Duration {
	if h.Get("X-RateLimit-Remaining") != "0" {
		return 0
	}
	reset, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
	if err != nil {
		return 0
	}
	return max(time.Unix(reset, 0).Sub(now), 0)
}

// isFullSHA reports whether rev is a full 40-hex-digit commit SHA.
func isFullSHA(rev string) bool {
	return len(rev) == 40 && isHex(strings.ToLower(rev))
}

// repoURL is a git URL taken apart: https://host/owner/repo.git,
// ssh://git@host:22/owner/repo.git or git@host:owner/repo.git.
type repoURL struct {
	// scheme is http or https for web URLs, ssh otherwise.
	scheme string
	// host keeps the port of a web URL; an SSH URL's port is not the web
	// server's and is dropped.
	host string
	// path is the repository path without slashes at the ends or ".git".
	path string
}

func parseRepoURL(raw string) (repoURL, error) {
	var r repoURL
	if strings.Contains(raw, "://") {
		u, err := url.Parse(raw)
		if err != nil {
			return r, fmt.Errorf("cannot read the App's repository URL: %w", err)
		}
		switch u.Scheme {
		case "http", "https":
			r.scheme, r.host = u.Scheme, u.Host
		default:
			r.scheme, r.host = "ssh", u.Hostname()
		}
		r.path = u.Path
	} else {
		// scp-like: [user@]host:path
		hostPart, path, ok := strings.Cut(raw, ":")
		if !ok || strings.Contains(hostPart, "/") {
			return r, fmt.Errorf("cannot read the App's repository URL %q: want https://host/owner/repo or git@host:owner/repo", raw)
		}
		if _, h, ok := strings.Cut(hostPart, "@"); ok {
			hostPart = h
		}
		r.scheme, r.host, r.path = "ssh", hostPart, path
	}
	r.path = strings.TrimSuffix(strings.Trim(r.path, "/"), ".git")
	if r.host == "" || strings.Count(r.path, "/") < 1 {
		return r, fmt.Errorf("cannot tell the repository from the App's repository URL %s: want https://host/owner/repo or git@host:owner/repo", redactURL(raw))
	}
	return r, nil
}

// redactURL drops credentials from a URL for an error.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		u.User = nil
		return strconv.Quote(u.String())
	}
	return strconv.Quote(raw)
}

// hostname is the host without its port.
func (r repoURL) hostname() string {
	if u, err := url.Parse("//" + r.host); err == nil {
		return u.Hostname()
	}
	return r.host
}

// webScheme is the scheme the forge's web server answers on.
func (r repoURL) webScheme() string {
	if r.scheme == "http" {
		return "http"
	}
	return "https"
}

// githubBase is the API of github.com, or of the GitHub Enterprise Server
// the repository is on.
func githubBase(r repoURL) string {
	host := strings.ToLower(r.host)
	if host == "github.com" || host == "www.github.com" || host == "ssh.github.com" {
		return githubAPI
	}
	return r.webScheme() + "://" + r.host + "/api/v3"
}

// gitlabBase is gitlab.com or the self-hosted GitLab the repository is on.
func gitlabBase(r repoURL) string {
	if strings.ToLower(r.host) == "gitlab.com" {
		return gitlabAPI
	}
	return r.webScheme() + "://" + r.host
}

// relPath is the repository path below the instance's own path, for
// instances served under a prefix (https://example.com/gitlab).
func (r repoURL) relPath(instance string) string {
	u, err := url.Parse(instance)
	if err != nil || !strings.EqualFold(u.Hostname(), r.hostname()) {
		return r.path
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" && strings.HasPrefix(r.path, prefix+"/") {
		return strings.TrimPrefix(r.path, prefix+"/")
	}
	return r.path
}

// ownerRepo is "owner", "repo" of a GitHub or Gitea repository.
func (r repoURL) ownerRepo(forge, instance string) (string, string, error) {
	parts := strings.Split(r.relPath(instance), "/")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return "", "", fmt.Errorf("%s: cannot tell owner/repo from the App's repository path %q", forge, r.path)
	}
	return parts[0], parts[1], nil
}

// projectPath is the GitLab project's full path, nested groups included.
func (r repoURL) projectPath(instance string) (string, error) {
	p := r.relPath(instance)
	if strings.Count(p, "/") < 1 {
		return "", fmt.Errorf("gitlab: cannot tell the project from the App's repository path %q", r.path)
	}
	return p, nil
}
