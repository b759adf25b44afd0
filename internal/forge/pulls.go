package forge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Providers a Client speaks to (Forgejo speaks Gitea's API).
const (
	GitHub = "github"
	GitLab = "gitlab"
	Gitea  = "gitea"
)

// States of a PullRequest.
const (
	StateOpen   = "open"
	StateMerged = "merged"
	StateClosed = "closed"
)

// PullRequest is a pull request (GitLab: merge request) as tend follows it.
type PullRequest struct {
	// Number is GitHub's and Gitea's number, GitLab's iid.
	Number int
	// URL is its web page.
	URL string
	// State is StateOpen, StateMerged or StateClosed (without merging).
	State string
	// MergeCommit is the commit its merge made on the base branch (the
	// merge, squash or last rebased commit), when merged.
	MergeCommit string
}

// Client opens and reads the pull requests of one repository.
type Client struct {
	provider string
	// base is the API base: https://api.github.com,
	// https://ghe.example.com/api/v3, https://gitlab.example.com/api/v4,
	// https://gitea.example.com/api/v1.
	base  string
	token string
	repo  Repo
	// project is GitLab's project path; owner and name GitHub's and
	// Gitea's.
	project, owner, name string
	http                 *http.Client
}

// NewClient returns a Client for the repository at repoURL on provider,
// whose API is at address (GitHub: the API URL; GitLab, Gitea: the
// instance URL, with or without its /api/v4 or /api/v1; empty: derived
// from repoURL's host), acting with token.
func NewClient(provider, address, token, repoURL string) (*Client, error) {
	if token == "" {
		return nil, errors.New("no token to call the forge's API with")
	}
	repo, err := ParseRepo(repoURL)
	if err != nil {
		return nil, err
	}
	c := &Client{provider: provider, token: token, repo: repo, http: &http.Client{Timeout: 30 * time.Second}}
	address = strings.TrimRight(address, "/")
	if address != "" {
		if u, err := url.Parse(address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("address %q: want an http(s) URL", address)
		}
	}
	instance := address
	switch provider {
	case GitHub:
		c.base = address
		if c.base == "" {
			c.base = GitHubAPI(repo)
		}
	case GitLab:
		instance = strings.TrimSuffix(instance, "/api/v4")
		if instance == "" {
			instance = GitLabBase(repo)
		}
		c.base = instance + "/api/v4"
	case Gitea:
		instance = strings.TrimSuffix(instance, "/api/v1")
		if instance == "" {
			instance = repo.WebScheme() + "://" + repo.Host
		}
		c.base = instance + "/api/v1"
	default:
		return nil, fmt.Errorf("provider %q: want github, gitlab or gitea", provider)
	}
	if provider == GitLab {
		if c.project, err = repo.ProjectPath(instance); err != nil {
			return nil, err
		}
	} else if c.owner, c.name, err = repo.OwnerRepo(provider, instance); err != nil {
		return nil, err
	}
	return c, nil
}

// Open opens a pull request of branch head into base, or returns the one
// open already.
func (c *Client) Open(ctx context.Context, head, base, title, body string) (*PullRequest, error) {
	if c.provider == GitLab {
		q := url.Values{"state": {"opened"}, "source_branch": {head}, "target_branch": {base}}
		var open []gitlabMR
		if err := c.do(ctx, "GET", c.projectURL("/merge_requests?"+q.Encode()), nil, &open); err != nil {
			return nil, err
		}
		if len(open) > 0 {
			return open[0].pr(), nil
		}
		var mr gitlabMR
		req := map[string]any{"source_branch": head, "target_branch": base, "title": title, "description": body, "remove_source_branch": true}
		if err := c.do(ctx, "POST", c.projectURL("/merge_requests"), req, &mr); err != nil {
			return nil, err
		}
		return mr.pr(), nil
	}
	var open []githubPR
	q := url.Values{"state": {"open"}}
	if c.provider == GitHub {
		q.Set("head", c.owner+":"+head)
		q.Set("base", base)
	}
	if err := c.do(ctx, "GET", c.repoURL("/pulls?"+q.Encode()), nil, &open); err != nil {
		return nil, err
	}
	for _, p := range open {
		if p.Head.Ref == head && p.Base.Ref == base {
			return p.pr(), nil
		}
	}
	var pr githubPR
	if err := c.do(ctx, "POST", c.repoURL("/pulls"), map[string]any{"head": head, "base": base, "title": title, "body": body}, &pr); err != nil {
		return nil, err
	}
	return pr.pr(), nil
}

// Get reads pull request number.
func (c *Client) Get(ctx context.Context, number int) (*PullRequest, error) {
	if c.provider == GitLab {
		var mr gitlabMR
		if err := c.do(ctx, "GET", c.projectURL("/merge_requests/"+strconv.Itoa(number)), nil, &mr); err != nil {
			return nil, err
		}
		return mr.pr(), nil
	}
	var pr githubPR
	if err := c.do(ctx, "GET", c.repoURL("/pulls/"+strconv.Itoa(number)), nil, &pr); err != nil {
		return nil, err
	}
	return pr.pr(), nil
}

func (c *Client) repoURL(rest string) string {
	return c.base + "/repos/" + url.PathEscape(c.owner) + "/" + url.PathEscape(c.name) + rest
}

func (c *Client) projectURL(rest string) string {
	return c.base + "/projects/" + url.PathEscape(c.project) + rest
}

// githubPR is a pull request of GitHub's and Gitea's APIs.
type githubPR struct {
	Number         int    `json:"number"`
	HTMLURL        string `json:"html_url"`
	State          string `json:"state"`
	Merged         bool   `json:"merged"`
	MergedAt       string `json:"merged_at"`
	MergeCommitSHA string `json:"merge_commit_sha"`
	Head           struct {
		Ref string `json:"ref"`
	} `json:"head"`
	Base struct {
		Ref string `json:"ref"`
	} `json:"base"`
}

func (p githubPR) pr() *PullRequest {
	out := &PullRequest{Number: p.Number, URL: p.HTMLURL, State: StateOpen}
	switch {
	case p.Merged || p.MergedAt != "":
		out.State, out.MergeCommit = StateMerged, p.MergeCommitSHA
	case p.State == "closed":
		out.State = StateClosed
	}
	return out
}

// gitlabMR is a merge request of GitLab's API.
type gitlabMR struct {
	IID             int    `json:"iid"`
	WebURL          string `json:"web_url"`
	State           string `json:"state"`
	SHA             string `json:"sha"`
	MergeCommitSHA  string `json:"merge_commit_sha"`
	SquashCommitSHA string `json:"squash_commit_sha"`
}

func (m gitlabMR) pr() *PullRequest {
	out := &PullRequest{Number: m.IID, URL: m.WebURL, State: StateOpen}
	switch m.State {
	case "merged":
		// A fast-forward merge makes no commit: the head is on the base.
		out.State = StateMerged
		for _, c := range []string{m.MergeCommitSHA, m.SquashCommitSHA, m.SHA} {
			if c != "" {
				out.MergeCommit = c
				break
			}
		}
	case "closed", "locked":
		out.State = StateClosed
	}
	return out
}

// HTTPError is an answer of the forge's API other than a success.
type HTTPError struct {
	Method, URL string
	Status      int
	// Body is the start of the answer (forges say what is wrong there).
	Body string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.URL, e.Status, e.Body)
}

// Permanent says that asking again will not help: the token is refused,
// lacks a permission, or the repository or branch is not there.
func (e *HTTPError) Permanent() bool {
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusBadRequest, http.StatusConflict:
		return true
	}
	return false
}

// IsPermanent says whether err is an answer that asking again will not
// change.
func IsPermanent(err error) bool {
	var he *HTTPError
	return errors.As(err, &he) && he.Permanent()
}

func (c *Client) do(ctx context.Context, method, u string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch c.provider {
	case GitHub:
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Accept", "application/vnd.github+json")
		req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	case GitLab:
		req.Header.Set("PRIVATE-TOKEN", c.token)
	case Gitea:
		req.Header.Set("Authorization", "token "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, redactQuery(u), errors.Unwrap(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		msg := strings.Join(strings.Fields(string(data)), " ")
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		msg = strings.ReplaceAll(msg, c.token, "[token]")
		return &HTTPError{Method: method, URL: redactQuery(u), Status: resp.StatusCode, Body: msg}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not what the %s API sends: %w", method, redactQuery(u), c.provider, err)
	}
	return nil
}

// redactQuery drops a URL's query (it names branches, never secrets, but
// is noise in an error).
func redactQuery(u string) string {
	before, _, _ := strings.Cut(u, "?")
	return before
}
