package webhook

import (
	"testing"
	"time"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

func TestNormalizeURL(t *testing.T) {
	same := []string{
		"https://github.com/Acme/App.git",
		"https://github.com/acme/app",
		"https://github.com/acme/app/",
		"https://github.com:443/acme/app.git",
		"http://github.com/acme/app",
		"https://token@github.com/acme/app.git",
		"ssh://git@github.com/acme/app.git",
		"ssh://git@github.com:22/acme/app.git",
		"git@github.com:acme/app.git",
		"git@GitHub.com:acme/app",
		"github.com:acme/app.git",
	}
	for _, u := range same {
		if got, want := normalizeURL(u), "github.com/acme/app"; got != want {
			t.Errorf("normalizeURL(%q) = %q, want %q", u, got, want)
		}
	}
	for u, want := range map[string]string{
		"https://gitea.example.com:3000/acme/app.git":  "gitea.example.com:3000/acme/app",
		"http://gitea.example.com:80/acme/app":         "gitea.example.com/acme/app",
		"ssh://git@gitea.example.com:2222/acme/app":    "gitea.example.com/acme/app",
		"https://gitlab.example.com/group/sub/app.git": "gitlab.example.com/group/sub/app",
		"":                   "",
		"not a url":          "",
		"https://github.com": "",
		"/local/path":        "",
	} {
		if got := normalizeURL(u); got != want {
			t.Errorf("normalizeURL(%q) = %q, want %q", u, got, want)
		}
	}
}

func TestFollows(t *testing.T) {
	for _, tc := range []struct {
		ref           tendv1.GitRef
		pushed        string
		defaultBranch string
		want          bool
	}{
		{tendv1.GitRef{}, "refs/heads/main", "", true},
		{tendv1.GitRef{}, "refs/heads/master", "", false},
		{tendv1.GitRef{}, "refs/heads/master", "master", true},
		{tendv1.GitRef{}, "refs/heads/main", "master", false},
		{tendv1.GitRef{Branch: "dev"}, "refs/heads/dev", "main", true},
		{tendv1.GitRef{Branch: "dev"}, "refs/heads/main", "main", false},
		{tendv1.GitRef{Branch: "dev", Commit: "0123456789012345678901234567890123456789"}, "refs/heads/dev", "", true},
		{tendv1.GitRef{Commit: "0123456789012345678901234567890123456789"}, "refs/heads/main", "", false},
		{tendv1.GitRef{Tag: "v1.0.0"}, "refs/tags/v1.0.0", "", true},
		{tendv1.GitRef{Tag: "v1.0.0"}, "refs/tags/v1.0.1", "", false},
		{tendv1.GitRef{Tag: "v1.0.0"}, "refs/heads/main", "", false},
		{tendv1.GitRef{SemVer: ">=1"}, "refs/tags/v2.0.0", "", true},
		{tendv1.GitRef{SemVer: ">=1"}, "refs/heads/main", "", false},
		{tendv1.GitRef{}, "refs/tags/v1", "", false},
		{tendv1.GitRef{}, "refs/pull/1/head", "", false},
	} {
		if got := follows(tc.ref, tc.pushed, tc.defaultBranch); got != tc.want {
			t.Errorf("follows(%+v, %q, %q) = %v, want %v", tc.ref, tc.pushed, tc.defaultBranch, got, tc.want)
		}
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(1e9, 0)
	l := newLimiter(2)
	l.now = func() time.Time { return now }
	for i := range 2 {
		if !l.allow("a") {
			t.Fatalf("trigger %d refused: the first two are within the burst", i+1)
		}
	}
	if l.allow("a") {
		t.Fatal("third trigger in the same instant allowed")
	}
	if !l.allow("b") {
		t.Fatal("Sources share a bucket")
	}
	if got, want := l.retryAfter([]string{"a"}), 30*time.Second; got != want {
		t.Fatalf("retryAfter = %s, want %s", got, want)
	}
	now = now.Add(30 * time.Second)
	if !l.allow("a") {
		t.Fatal("no token after 30s at 2/min")
	}
	if l.allow("a") {
		t.Fatal("two tokens after 30s at 2/min")
	}
}
