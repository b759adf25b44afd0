package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// verify checks a delivery's signature (or GitLab's shared token) against
// secret in constant time. Its errors are safe to show to the sender: they
// never contain the expected value.
func verify(forge string, h http.Header, body, secret []byte) error {
	switch forge {
	case ForgeGitHub:
		return verifyHMAC(h, body, secret, "X-Hub-Signature-256", "sha256=")
	case ForgeGitea:
		// Gitea and Forgejo send the bare hex digest; Forgejo names the
		// header after itself (and also sends X-Gitea-Signature).
		if h.Get("X-Forgejo-Signature") != "" {
			return verifyHMAC(h, body, secret, "X-Forgejo-Signature", "")
		}
		return verifyHMAC(h, body, secret, "X-Gitea-Signature", "")
	case ForgeBitbucket:
		return verifyHMAC(h, body, secret, "X-Hub-Signature", "sha256=")
	case ForgeGeneric:
		return verifyHMAC(h, body, secret, "X-Tend-Signature", "sha256=")
	case ForgeGitLab:
		got := h.Get("X-Gitlab-Token")
		if got == "" {
			return errors.New("missing X-Gitlab-Token header: set the webhook's secret token in GitLab")
		}
		if subtle.ConstantTimeCompare([]byte(got), secret) != 1 {
			return errors.New("X-Gitlab-Token does not match the configured secret")
		}
		return nil
	}
	return fmt.Errorf("unknown forge %q", forge)
}

// verifyHMAC checks header = prefix + hex(HMAC-SHA256(secret, body)).
func verifyHMAC(h http.Header, body, secret []byte, header, prefix string) error {
	got := h.Get(header)
	if got == "" {
		return fmt.Errorf("missing %s header: set the webhook's secret in the forge", header)
	}
	hexSig, ok := strings.CutPrefix(got, prefix)
	if !ok {
		return fmt.Errorf("%s must start with %q", header, prefix)
	}
	sig, err := hex.DecodeString(hexSig)
	if err != nil {
		return fmt.Errorf("%s is not hex", header)
	}
	if !hmac.Equal(sig, sign(secret, body)) {
		return fmt.Errorf("%s does not match the body signed with the configured secret", header)
	}
	return nil
}

func sign(secret, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return m.Sum(nil)
}
