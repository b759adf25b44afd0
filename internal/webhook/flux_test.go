package webhook

import (
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestVerifyFlux: each Receiver type checks what Flux checks; a wrong
// token fails, types tend does not serve are refused by name.
func TestVerifyFlux(t *testing.T) {
	body, token := []byte(`{"x":1}`), []byte("tok")
	sig := hex.EncodeToString(sign(token, body))
	for _, tc := range []struct {
		typ     string
		headers map[string]string
		event   string
		err     string
	}{
		{"generic", nil, "", ""},
		{"generic-hmac", map[string]string{"X-Signature": "sha256=" + sig}, "", ""},
		{"generic-hmac", map[string]string{"X-Signature": "sha256=" + strings.Repeat("0", 64)}, "", "does not match"},
		{"generic-hmac", map[string]string{"X-Signature": "sha1=abc"}, "", "sha256"},
		{"github", map[string]string{"X-Hub-Signature-256": "sha256=" + sig, "X-GitHub-Event": "push"}, "push", ""},
		{"gitlab", map[string]string{"X-Gitlab-Token": "tok", "X-Gitlab-Event": "Push Hook"}, "Push Hook", ""},
		{"gitlab", map[string]string{"X-Gitlab-Token": "nope"}, "", "does not match"},
		{"bitbucket", map[string]string{"X-Hub-Signature": "sha256=" + sig, "X-Event-Key": "repo:push"}, "repo:push", ""},
		{"harbor", nil, "", `"harbor" is not served by tend`},
	} {
		h := http.Header{}
		for k, v := range tc.headers {
			h.Set(k, v)
		}
		event, err := verifyFlux(tc.typ, h, body, token)
		switch {
		case tc.err == "" && (err != nil || event != tc.event):
			t.Errorf("%s %v: event %q, err %v; want event %q", tc.typ, tc.headers, event, err, tc.event)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s %v: err %v, want one saying %q", tc.typ, tc.headers, err, tc.err)
		}
	}
}

// TestFluxFilters: a Receiver's CEL filters read the resource (res) and
// the delivery's JSON body (req); every filter set must be true; one
// that does not compile, or does not return a bool, is an error.
func TestFluxFilters(t *testing.T) {
	obj := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"name": "fleet", "labels": map[string]any{"tier": "apps"}}}}
	req := requestVar([]byte(`{"ref":"refs/heads/main","commits":[{"id":"a"}]}`))
	for _, tc := range []struct {
		exprs []string
		want  bool
		err   string
	}{
		{[]string{"res.metadata.name == 'fleet'"}, true, ""},
		{[]string{"res.metadata.name == 'fleet'", "req.ref.endsWith('/dev')"}, false, ""},
		{[]string{"", "size(req.commits) == 1 && res.metadata.labels.tier == 'apps'"}, true, ""},
		{[]string{"res.metadata.name"}, false, "want true or false"},
		{[]string{"res.metadata.name +"}, false, "Syntax error"},
	} {
		got, err := accepts(tc.exprs, obj, req)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("%q: %v, %v; want %v", tc.exprs, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: err %v, want one saying %q", tc.exprs, err, tc.err)
		}
	}
	if got := requestVar([]byte("not json")); len(got) != 0 {
		t.Errorf("req of a body that is not JSON: %v, want an empty map", got)
	}
}
