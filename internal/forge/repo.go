// Package forge speaks to the APIs of the forges git repositories live on
// (GitHub, GitLab, Gitea and Forgejo): where a repository's API is, from
// its git URL, and pull (merge) requests, which Stages open for their
// promotions. Commit statuses are posted by package notify.
package forge

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Public API bases; Enterprise and self-hosted instances are derived from
// the repository's host.
const (
	githubAPI = "https://api.github.com"
	gitlabAPI = "https://gitlab.com"
)

// Repo is a git URL taken apart: https://host/owner/repo.git,
// ssh://git@host:22/owner/repo.git or git@host:owner/repo.git.
type Repo struct {
	// Scheme is http or https for web URLs, ssh otherwise.
	Scheme string
	// Host keeps the port of a web URL; an SSH URL's port is not the web
	// server's and is dropped.
	Host string
	// Path is the repository path without slashes at the ends or ".git".
	Path string
}

func ParseRepo(raw string) (Repo, error) {
	var r Repo
	if strings.Contains(raw, "://") {
		u, err := url.Parse(raw)
		if err != nil {
			return r, fmt.Errorf("cannot read the repository URL: %w", err)
		}
		switch u.Scheme {
		case "http", "https":
			r.Scheme, r.Host = u.Scheme, u.Host
		default:
			r.Scheme, r.Host = "ssh", u.Hostname()
		}
		r.Path = u.Path
	} else {
		// scp-like: [user@]host:path
		hostPart, path, ok := strings.Cut(raw, ":")
		if !ok || strings.Contains(hostPart, "/") {
			return r, fmt.Errorf("cannot read the repository URL %q: want https://host/owner/repo or git@host:owner/repo", raw)
		}
		if _, h, ok := strings.Cut(hostPart, "@"); ok {
			hostPart = h
		}
		r.Scheme, r.Host, r.Path = "ssh", hostPart, path
	}
	r.Path = strings.TrimSuffix(strings.Trim(r.Path, "/"), ".git")
	if r.Host == "" || strings.Count(r.Path, "/") < 1 {
		return r, fmt.Errorf("cannot tell the repository from the repository URL %s: want https://host/owner/repo or git@host:owner/repo", redactURL(raw))
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
func (r Repo) Hostname() string {
	if u, err := url.Parse("//" + r.Host); err == nil {
		return u.Hostname()
	}
	return r.Host
}

// webScheme is the scheme the forge's web server answers on.
func (r Repo) WebScheme() string {
	if r.Scheme == "http" {
		return "http"
	}
	return "https"
}

// GitHubAPI is the API of github.com, or of the GitHub Enterprise Server
// the repository is on.
func GitHubAPI(r Repo) string {
	host := strings.ToLower(r.Host)
	if host == "github.com" || host == "www.github.com" || host == "ssh.github.com" {
		return githubAPI
	}
	return r.WebScheme() + "://" + r.Host + "/api/v3"
}

// GitLabBase is gitlab.com or the self-hosted GitLab the repository is on.
func GitLabBase(r Repo) string {
	if strings.ToLower(r.Host) == "gitlab.com" {
		return gitlabAPI
	}
	return r.WebScheme() + "://" + r.Host
}

// relPath is the repository path below the instance's own path, for
// instances served under a prefix (https://example.com/gitlab).
func (r Repo) RelPath(instance string) string {
	u, err := url.Parse(instance)
	if err != nil || !strings.EqualFold(u.Hostname(), r.Hostname()) {
		return r.Path
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" && strings.HasPrefix(r.Path, prefix+"/") {
		return strings.TrimPrefix(r.Path, prefix+"/")
	}
	return r.Path
}

// ownerRepo is "owner", "repo" of a GitHub or Gitea repository.
func (r Repo) OwnerRepo(forge, instance string) (string, string, error) {
	parts := strings.Split(r.RelPath(instance), "/")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return "", "", fmt.Errorf("%s: cannot tell owner/repo from the repository path %q", forge, r.Path)
	}
	return parts[0], parts[1], nil
}

// projectPath is the GitLab project's full path, nested groups included.
func (r Repo) ProjectPath(instance string) (string, error) {
	p := r.RelPath(instance)
	if strings.Count(p, "/") < 1 {
		return "", fmt.Errorf("gitlab: cannot tell the project from the repository path %q", r.Path)
	}
	return p, nil
}
