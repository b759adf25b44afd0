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

	"github.com/tend-gitops/tend/internal/forge"
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
	repo, err := forge.ParseRepo(e.RepoURL)
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
			base = forge.GitHubAPI(repo)
		}
		owner, repoName, err := repo.OwnerRepo("github", "")
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
			base = forge.GitLabBase(repo)
		}
		project, err := repo.ProjectPath(base)
		if err != nil {
			return err
		}
		reqURL = base + "/api/v4/projects/" + url.PathEscape(project) + "/statuses/" + sha
		header.Set("PRIVATE-TOKEN", cs.token)
		payload = gitlabStatus{State: state.gitlab, Name: statusName, Description: desc, TargetURL: m.Link}
	case "gitea":
		owner, repoName, err := repo.OwnerRepo("gitea", cs.address)
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
