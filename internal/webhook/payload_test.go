package webhook

import (
	"fmt"
	"net/http"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, forge string
		h           http.Header
		body        string
		want        string // fmt of refs, "ignore" or "ping"
	}{
		{"bitbucket changes", ForgeBitbucket, http.Header{"X-Event-Key": {"repo:push"}},
			`{"repository":{"full_name":"a/b","links":{"html":{"href":"https://bitbucket.org/a/b"}}},"push":{"changes":[
				{"new":null,"old":{"type":"branch","name":"gone"}},
				{"new":{"type":"tag","name":"v1"},"old":null},
				{"new":{"type":"branch","name":"main"},"old":{"type":"branch","name":"main"}}]}}`,
			"[refs/heads/gone refs/tags/v1 refs/heads/main]"},
		{"bitbucket other event", ForgeBitbucket, http.Header{"X-Event-Key": {"pullrequest:created"}}, `{}`, "ignore"},
		{"gitlab tag push", ForgeGitLab, http.Header{"X-Gitlab-Event": {"Tag Push Hook"}},
			`{"object_kind":"tag_push","ref":"refs/tags/v2","project":{"git_http_url":"https://gl/a/b.git"}}`, "[refs/tags/v2]"},
		{"gitlab system hook push", ForgeGitLab, http.Header{"X-Gitlab-Event": {"System Hook"}},
			`{"object_kind":"push","event_name":"push","ref":"refs/heads/main","project":{"git_http_url":"https://gl/a/b.git"}}`, "[refs/heads/main]"},
		{"gitlab system hook other", ForgeGitLab, http.Header{"X-Gitlab-Event": {"System Hook"}},
			`{"event_name":"project_create"}`, "ignore"},
		{"github issue", ForgeGitHub, http.Header{"X-Github-Event": {"issues"}}, `{}`, "ignore"},
		{"forgejo push", ForgeGitea, http.Header{"X-Forgejo-Event": {"push"}},
			`{"ref":"refs/heads/x","repository":{"clone_url":"https://f/a/b.git"}}`, "[refs/heads/x]"},
		{"generic bare branch", ForgeGeneric, nil, `{"repository":"https://g/a/b","ref":"dev"}`, "[refs/heads/dev]"},
	} {
		ev, err := parse(tc.forge, tc.h, []byte(tc.body))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		got := fmt.Sprint(ev.refs)
		switch {
		case ev.ping:
			got = "ping"
		case ev.ignore != "":
			got = "ignore"
		}
		if got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
	for _, body := range []string{`{"ref":"main"}`, `{"repository":"https://g/a/b"}`, `not json`} {
		if _, err := parse(ForgeGeneric, nil, []byte(body)); err == nil {
			t.Errorf("generic %s: no error", body)
		}
	}
}
