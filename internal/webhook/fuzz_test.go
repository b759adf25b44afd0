package webhook

import (
	"bytes"
	"encoding/hex"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// Fuzz targets for what a webhook sender controls: the payload and the
// signature headers. `make fuzz-smoke` runs each briefly; see
// docs/development.md for longer runs.

var fuzzForges = []string{ForgeGitHub, ForgeGitea, ForgeGitLab, ForgeBitbucket, ForgeGeneric}

// FuzzPayload parses a delivery as each forge's receiver does. It never
// panics; a push names only refs/heads/ and refs/tags/ refs where tend
// builds them (Bitbucket, generic), and the payload of GitHub and Gitea
// means the same sent as JSON or as the form field "payload".
func FuzzPayload(f *testing.F) {
	f.Add(uint8(0), "push", []byte(`{"ref":"refs/heads/main","repository":{"clone_url":"https://github.com/o/r.git","ssh_url":"git@github.com:o/r.git","html_url":"https://github.com/o/r","default_branch":"main"}}`))
	f.Add(uint8(1), "push", []byte(`{"ref":"refs/tags/v1.2.0","repository":{"clone_url":"https://git.example.com/o/r.git"}}`))
	f.Add(uint8(2), "Push Hook", []byte(`{"object_kind":"push","ref":"refs/heads/main","project":{"git_http_url":"https://gitlab.com/o/r.git","git_ssh_url":"git@gitlab.com:o/r.git","web_url":"https://gitlab.com/o/r","default_branch":"main"}}`))
	f.Add(uint8(2), "System Hook", []byte(`{"event_name":"repository_update"}`))
	f.Add(uint8(3), "repo:push", []byte(`{"repository":{"full_name":"o/r","links":{"html":{"href":"https://bitbucket.org/o/r"}}},"push":{"changes":[{"new":{"type":"branch","name":"main"}},{"new":null,"old":{"type":"tag","name":"v1"}}]}}`))
	f.Add(uint8(3), "diagnostics:ping", []byte(`{}`))
	f.Add(uint8(4), "", []byte(`{"repository":"https://git.example.com/o/r","ref":"main"}`))
	f.Add(uint8(0), "ping", []byte(`{"zen":"Keep it logically awesome."}`))
	f.Fuzz(func(t *testing.T, forge uint8, kind string, body []byte) {
		name := fuzzForges[int(forge)%len(fuzzForges)]
		h := http.Header{}
		for _, k := range []string{"X-GitHub-Event", "X-Gitea-Event", "X-Gitlab-Event", "X-Event-Key"} {
			h.Set(k, kind)
		}
		h.Set("Content-Type", "application/json")
		ev, err := parse(name, h, body)
		if err != nil {
			if msg := err.Error(); !strings.Contains(msg, "payload") {
				t.Fatalf("%s: error does not say the payload is at fault: %v", name, err)
			}
			return
		}
		for _, u := range ev.urls {
			if n := normalizeURL(u); n != strings.ToLower(n) {
				t.Fatalf("normalizeURL(%q) = %q, not lower case", u, n)
			}
		}
		if !ev.ping && ev.ignore == "" && (name == ForgeBitbucket || name == ForgeGeneric) {
			for _, r := range ev.refs {
				if !strings.HasPrefix(r, "refs/heads/") && !strings.HasPrefix(r, "refs/tags/") && !(name == ForgeGeneric && strings.HasPrefix(r, "refs/")) {
					t.Fatalf("%s: ref %q is neither a branch nor a tag", name, r)
				}
			}
		}
		if name == ForgeGitHub || name == ForgeGitea {
			hf := h.Clone()
			hf.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
			form := []byte(url.Values{"payload": {string(body)}}.Encode())
			evf, err := parse(name, hf, form)
			if err != nil {
				t.Fatalf("%s: the payload parses as JSON but not as a form: %v", name, err)
			}
			if !reflect.DeepEqual(evf, ev) {
				t.Fatalf("%s: form payload means %+v, JSON %+v", name, evf, ev)
			}
		}
	})
}

// signedHeader returns the header a forge sends for body signed with
// secret.
func signedHeader(forge string, body, secret []byte) http.Header {
	sig := hex.EncodeToString(sign(secret, body))
	h := http.Header{}
	switch forge {
	case ForgeGitHub:
		h.Set("X-Hub-Signature-256", "sha256="+sig)
	case ForgeGitea:
		h.Set("X-Gitea-Signature", sig)
	case ForgeBitbucket:
		h.Set("X-Hub-Signature", "sha256="+sig)
	case ForgeGeneric:
		h.Set("X-Tend-Signature", "sha256="+sig)
	case ForgeGitLab:
		h.Set("X-Gitlab-Token", string(secret))
	}
	return h
}

// FuzzSignature signs body with secret as each forge does. The signature
// verifies for that body and secret only: another body, another secret or
// a changed signature header is refused, and what a refusal says depends
// on the headers alone (it cannot show the secret or the expected
// signature).
func FuzzSignature(f *testing.F) {
	for i := range fuzzForges {
		f.Add(uint8(i), []byte("s3cret"), []byte(`{"ref":"refs/heads/main"}`), []byte(`{"ref":"refs/heads/main "}`), "")
	}
	f.Add(uint8(0), []byte("k"), []byte{}, []byte{0}, "sha256=00")
	f.Add(uint8(4), []byte("a long shared secret of more than sixty-four bytes, longer than the block"), []byte("body"), []byte("Body"), "sha1=ab")
	f.Fuzz(func(t *testing.T, forge uint8, secret, body, other []byte, forged string) {
		name := fuzzForges[int(forge)%len(fuzzForges)]
		if len(secret) == 0 || (name == ForgeGitLab && !validHeaderValue(secret)) {
			return // receivers refuse to run without a secret; a header cannot carry it
		}
		h := signedHeader(name, body, secret)
		if err := verify(name, h, body, secret); err != nil {
			t.Fatalf("%s: a correctly signed delivery is refused: %v", name, err)
		}
		// What a refusal says depends on the headers alone, so it cannot
		// show the secret or the signature the body would need.
		refused := func(what string, h http.Header, body, secret []byte) {
			t.Helper()
			err := verify(name, h, body, secret)
			if err == nil {
				t.Fatalf("%s: %s is accepted", name, what)
			}
			if other := verify(name, h, []byte("an unrelated body"), []byte("an unrelated secret")); other != nil && other.Error() != err.Error() {
				t.Fatalf("%s: %s: the error depends on the body or the secret:\n%v\n%v", name, what, err, other)
			}
		}
		if name != ForgeGitLab && !bytes.Equal(body, other) {
			refused("a signature for another body", h, other, secret)
		}
		refused("a signature with another secret", h, body, append(append([]byte{}, secret...), 'x'))
		for k := range h {
			if strings.EqualFold(forged, h.Get(k)) {
				continue // hex is case-insensitive
			}
			hf := http.Header{}
			hf.Set(k, forged)
			refused("a changed signature header "+k+": "+forged, hf, body, secret)
		}
	})
}

// validHeaderValue reports whether b survives as an HTTP header value.
func validHeaderValue(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return len(bytes.TrimSpace(b)) == len(b)
}
