package webhook

import (
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
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
