package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
)

func hexHMAC(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

func TestVerify(t *testing.T) {
	const secret, body = "s3cret", `{"ref":"refs/heads/main"}`
	good := hexHMAC(secret, body)
	bad := hexHMAC("other", body)
	for _, tc := range []struct {
		forge, header, value string
		ok                   bool
	}{
		{ForgeGitHub, "X-Hub-Signature-256", "sha256=" + good, true},
		{ForgeGitHub, "X-Hub-Signature-256", "sha256=" + bad, false},
		{ForgeGitHub, "X-Hub-Signature-256", good, false},
		{ForgeGitHub, "X-Hub-Signature-256", "sha256=zz", false},
		{ForgeGitHub, "X-Hub-Signature", "sha256=" + good, false},
		{ForgeGitea, "X-Gitea-Signature", good, true},
		{ForgeGitea, "X-Gitea-Signature", bad, false},
		{ForgeGitea, "X-Forgejo-Signature", good, true},
		{ForgeGitea, "X-Forgejo-Signature", bad, false},
		{ForgeBitbucket, "X-Hub-Signature", "sha256=" + good, true},
		{ForgeBitbucket, "X-Hub-Signature", "sha256=" + bad, false},
		{ForgeGeneric, "X-Tend-Signature", "sha256=" + good, true},
		{ForgeGeneric, "X-Tend-Signature", "sha256=" + bad, false},
		{ForgeGitLab, "X-Gitlab-Token", secret, true},
		{ForgeGitLab, "X-Gitlab-Token", "s3cre", false},
		{ForgeGitLab, "X-Gitlab-Token", "", false},
	} {
		h := http.Header{}
		if tc.value != "" {
			h.Set(tc.header, tc.value)
		}
		err := verify(tc.forge, h, []byte(body), []byte(secret))
		if got := err == nil; got != tc.ok {
			t.Errorf("%s %s=%q: err = %v, want ok=%v", tc.forge, tc.header, tc.value, err, tc.ok)
		}
		if err != nil && (strings.Contains(err.Error(), good) || strings.Contains(err.Error(), secret)) {
			t.Errorf("%s: error %q reveals the expected value", tc.forge, err)
		}
	}
}
