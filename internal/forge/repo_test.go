package forge

import (
	"strings"
	"testing"
)

func TestParseRepoURL(t *testing.T) {
	for raw, want := range map[string]Repo{
		"https://github.com/acme/app.git":              {"https", "github.com", "acme/app"},
		"https://github.com/acme/app/":                 {"https", "github.com", "acme/app"},
		"http://git.local:3000/ops/app":                {"http", "git.local:3000", "ops/app"},
		"ssh://git@ghe.example.com:2222/acme/app.git":  {"ssh", "ghe.example.com", "acme/app"},
		"git@github.com:acme/app.git":                  {"ssh", "github.com", "acme/app"},
		"git@gitlab.com:group/sub/project.git":         {"ssh", "gitlab.com", "group/sub/project"},
		"https://user:pw@gitlab.example.com/g/s/p.git": {"https", "gitlab.example.com", "g/s/p"},
	} {
		got, err := ParseRepo(raw)
		if err != nil || got != want {
			t.Errorf("ParseRepo(%q) = %+v, %v; want %+v", raw, got, err, want)
		}
	}
	for _, raw := range []string{"", "/srv/git/app", "https://github.com/app", "https://user:pw@example.com/app"} {
		_, err := ParseRepo(raw)
		if err == nil {
			t.Errorf("ParseRepo(%q) succeeded", raw)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("ParseRepo(%q) error %q shows the password", raw, err)
		}
	}
}

func TestAPIBase(t *testing.T) {
	for raw, want := range map[string]string{
		"https://github.com/acme/app.git":      "https://api.github.com",
		"git@github.com:acme/app.git":          "https://api.github.com",
		"https://ghe.example.com/acme/app.git": "https://ghe.example.com/api/v3",
		"git@ghe.example.com:acme/app.git":     "https://ghe.example.com/api/v3",
	} {
		r, _ := ParseRepo(raw)
		if got := GitHubAPI(r); got != want {
			t.Errorf("GitHubAPI(%s) = %s, want %s", raw, got, want)
		}
	}
	for raw, want := range map[string]string{
		"https://gitlab.com/g/p.git":                        "https://gitlab.com",
		"ssh://git@gitlab.example.com:2222/g/p.git":         "https://gitlab.example.com",
		"http://gitlab.internal:8080/group/sub/project.git": "http://gitlab.internal:8080",
	} {
		r, _ := ParseRepo(raw)
		if got := GitLabBase(r); got != want {
			t.Errorf("GitLabBase(%s) = %s, want %s", raw, got, want)
		}
	}
}
