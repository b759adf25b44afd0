// Package forgetest serves the pull request endpoints of GitHub's,
// GitLab's and Gitea's APIs on loopback, for tests: what forge.Client and
// Stages call, answered as those forges answer, with the state in memory.
package forgetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// PR is a pull request the server holds.
type PR struct {
	Number                  int
	Head, Base, Title, Body string
	State                   string // open, merged, closed
	MergeCommit             string
}

// Server is a forge API with one repository, owner/name (GitLab: the
// project path owner/name).
type Server struct {
	URL                string
	provider, token    string
	owner, name        string
	mu                 sync.Mutex
	prs                []*PR
	requests, refusals int
}

// NewServer serves provider's ("github", "gitlab", "gitea") API for the
// repository owner/name, accepting token only.
func NewServer(t *testing.T, provider, token, owner, name string) *Server {
	s := &Server{provider: provider, token: token, owner: owner, name: name}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// PRs returns copies of the pull requests opened, oldest first.
func (s *Server) PRs() []PR {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PR, 0, len(s.prs))
	for _, p := range s.prs {
		out = append(out, *p)
	}
	return out
}

// Merge marks pull request number merged by commit.
func (s *Server) Merge(number int, commit string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.prs[number-1]
	p.State, p.MergeCommit = "merged", commit
}

// Close closes pull request number without merging.
func (s *Server) Close(number int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prs[number-1].State = "closed"
}

// Refusals counts requests refused for their token.
func (s *Server) Refusals() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refusals
}

func (s *Server) authorized(r *http.Request) bool {
	switch s.provider {
	case "github":
		return r.Header.Get("Authorization") == "Bearer "+s.token
	case "gitlab":
		return r.Header.Get("PRIVATE-TOKEN") == s.token
	}
	return r.Header.Get("Authorization") == "token "+s.token
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if !s.authorized(r) {
		s.refusals++
		http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
		return
	}
	var prefix, list string
	switch s.provider {
	case "github":
		prefix, list = "/repos/"+s.owner+"/"+s.name, "/pulls"
	case "gitea":
		prefix, list = "/api/v1/repos/"+s.owner+"/"+s.name, "/pulls"
	case "gitlab":
		prefix, list = "/api/v4/projects/"+url.PathEscape(s.owner+"/"+s.name), "/merge_requests"
	}
	path := r.URL.EscapedPath()
	if !strings.HasPrefix(path, prefix+list) {
		http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
		return
	}
	rest := strings.TrimPrefix(path, prefix+list)
	switch {
	case rest == "" && r.Method == "GET":
		s.list(w, r)
	case rest == "" && r.Method == "POST":
		s.create(w, r)
	case strings.HasPrefix(rest, "/") && r.Method == "GET":
		n, err := strconv.Atoi(rest[1:])
		if err != nil || n < 1 || n > len(s.prs) {
			http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
			return
		}
		writeJSON(w, http.StatusOK, s.render(s.prs[n-1]))
	default:
		http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
	}
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	out := []any{}
	for _, p := range s.prs {
		if p.State != "open" {
			continue
		}
		switch s.provider {
		case "github":
			if q.Get("head") != "" && q.Get("head") != s.owner+":"+p.Head || q.Get("base") != "" && q.Get("base") != p.Base {
				continue
			}
		case "gitlab":
			if q.Get("state") != "opened" || q.Get("source_branch") != p.Head || q.Get("target_branch") != p.Base {
				continue
			}
		}
		out = append(out, s.render(p))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var in map[string]any
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, `{"message":"Problems parsing JSON"}`, http.StatusBadRequest)
		return
	}
	str := func(k string) string { v, _ := in[k].(string); return v }
	p := &PR{Number: len(s.prs) + 1, State: "open"}
	if s.provider == "gitlab" {
		p.Head, p.Base, p.Title, p.Body = str("source_branch"), str("target_branch"), str("title"), str("description")
	} else {
		p.Head, p.Base, p.Title, p.Body = str("head"), str("base"), str("title"), str("body")
	}
	if p.Head == "" || p.Base == "" || p.Title == "" {
		http.Error(w, `{"message":"Validation Failed"}`, http.StatusUnprocessableEntity)
		return
	}
	s.prs = append(s.prs, p)
	writeJSON(w, http.StatusCreated, s.render(p))
}

// render is p as the provider's API shows it.
func (s *Server) render(p *PR) map[string]any {
	web := fmt.Sprintf("https://forge.example.com/%s/%s/pull/%d", s.owner, s.name, p.Number)
	if s.provider == "gitlab" {
		state := map[string]string{"open": "opened"}[p.State]
		if state == "" {
			state = p.State
		}
		m := map[string]any{"iid": p.Number, "web_url": web, "state": state, "source_branch": p.Head, "target_branch": p.Base, "sha": "head", "merge_commit_sha": nil}
		if p.State == "merged" {
			m["merge_commit_sha"] = p.MergeCommit
		}
		return m
	}
	state := "open"
	if p.State != "open" {
		state = "closed"
	}
	m := map[string]any{"number": p.Number, "html_url": web, "state": state, "merged": p.State == "merged",
		"head": map[string]any{"ref": p.Head}, "base": map[string]any{"ref": p.Base}, "merge_commit_sha": nil}
	if p.State == "merged" {
		m["merge_commit_sha"] = p.MergeCommit
	}
	return m
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
