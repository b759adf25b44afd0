package forge

import (
	"context"
	"strings"
	"testing"

	"github.com/tend-gitops/tend/internal/forge/forgetest"
)

// Each provider: Open opens a pull request once (a second Open finds it),
// Get follows it to merged with its merge commit, or to closed; a wrong
// token is a permanent error that does not show the token.
func TestPullRequests(t *testing.T) {
	ctx := context.Background()
	for _, provider := range []string{GitHub, GitLab, Gitea} {
		t.Run(provider, func(t *testing.T) {
			srv := forgetest.NewServer(t, provider, "t0ken", "team", "config")
			c, err := NewClient(provider, srv.URL, "t0ken", "https://git.example.com/team/config.git")
			if err != nil {
				t.Fatal(err)
			}
			pr, err := c.Open(ctx, "tend/promote/prod", "main", "promote prod to web:1.1.0", "freight abc")
			if err != nil || pr.Number != 1 || pr.State != StateOpen || !strings.HasSuffix(pr.URL, "/pull/1") {
				t.Fatalf("Open: %+v, %v", pr, err)
			}
			again, err := c.Open(ctx, "tend/promote/prod", "main", "promote prod to web:1.1.0", "freight abc")
			if err != nil || again.Number != 1 || len(srv.PRs()) != 1 {
				t.Errorf("a second Open: %+v, %v; %d opened", again, err, len(srv.PRs()))
			}
			if got := srv.PRs()[0]; got.Head != "tend/promote/prod" || got.Base != "main" || got.Title != "promote prod to web:1.1.0" || got.Body != "freight abc" {
				t.Errorf("opened %+v", got)
			}
			srv.Merge(1, "c0ffee")
			if pr, err = c.Get(ctx, 1); err != nil || pr.State != StateMerged || pr.MergeCommit != "c0ffee" {
				t.Errorf("Get after merge: %+v, %v", pr, err)
			}
			other, err := c.Open(ctx, "tend/promote/dev", "main", "promote dev", "")
			if err != nil || other.Number != 2 {
				t.Fatalf("Open another: %+v, %v", other, err)
			}
			srv.Close(2)
			if pr, err = c.Get(ctx, 2); err != nil || pr.State != StateClosed {
				t.Errorf("Get after close: %+v, %v", pr, err)
			}
			bad, err := NewClient(provider, srv.URL, "wr0ng", "https://git.example.com/team/config.git")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := bad.Get(ctx, 1); !IsPermanent(err) || strings.Contains(err.Error(), "wr0ng") || !strings.Contains(err.Error(), "HTTP 401") {
				t.Errorf("a wrong token: %v", err)
			}
		})
	}
}

// The API is found from the repository URL when no address is given.
func TestClientAddress(t *testing.T) {
	for _, tc := range []struct{ provider, address, repo, want string }{
		{GitHub, "", "https://github.com/team/config.git", "https://api.github.com/repos/team/config/pulls/1"},
		{GitHub, "", "git@ghe.example.com:team/config.git", "https://ghe.example.com/api/v3/repos/team/config/pulls/1"},
		{GitLab, "", "https://gitlab.com/group/sub/config.git", "https://gitlab.com/api/v4/projects/group%2Fsub%2Fconfig/merge_requests/1"},
		{GitLab, "https://git.example.com/api/v4", "https://git.example.com/group/config.git", "https://git.example.com/api/v4/projects/group%2Fconfig/merge_requests/1"},
		{Gitea, "", "http://gitea.local:3000/team/config.git", "http://gitea.local:3000/api/v1/repos/team/config/pulls/1"},
	} {
		c, err := NewClient(tc.provider, tc.address, "t", tc.repo)
		if err != nil {
			t.Errorf("%s %s: %v", tc.provider, tc.repo, err)
			continue
		}
		got := c.repoURL("/pulls/1")
		if tc.provider == GitLab {
			got = c.projectURL("/merge_requests/1")
		}
		if got != tc.want {
			t.Errorf("%s %s: %s, want %s", tc.provider, tc.repo, got, tc.want)
		}
	}
	if _, err := NewClient("bitbucket", "", "t", "https://bitbucket.org/a/b.git"); err == nil {
		t.Error("an unknown provider was accepted")
	}
}
