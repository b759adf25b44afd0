package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// secrets are the webhook Secret's values in every test.
var secrets = map[string]string{
	ForgeGitHub:    "gh-secret",
	ForgeGitLab:    "gl-token",
	ForgeGitea:     "gitea-secret",
	ForgeBitbucket: "bb-secret",
	ForgeGeneric:   "generic-secret",
}

// forge builds deliveries the way one forge documents them.
type forge struct {
	name string
	// sourceURL is how a user would write the repository in a Source,
	// deliberately in a different form from the payload's URLs.
	sourceURL func(repo string) string
	// push is an unsigned push delivery of ref to repo.
	push func(repo, ref string) (http.Header, []byte)
	// ping is the forge's connectivity test (or another non-push event
	// when the forge has none).
	ping func() (http.Header, []byte)
	// sign adds the forge's signature made with secret.
	sign func(h http.Header, body []byte, secret string)
}

func jsonBody(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func headers(kv ...string) http.Header {
	h := http.Header{"Content-Type": {"application/json"}}
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

var forges = []forge{
	{
		// https://docs.github.com/en/webhooks/webhook-events-and-payloads#push
		name:      ForgeGitHub,
		sourceURL: func(repo string) string { return "https://github.com/Acme/" + repo },
		push: func(repo, ref string) (http.Header, []byte) {
			return headers("X-GitHub-Event", "push", "X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958", "User-Agent", "GitHub-Hookshot/044aadd"),
				jsonBody(map[string]any{
					"ref": ref, "before": strings.Repeat("0", 40), "after": strings.Repeat("a", 40),
					"repository": map[string]any{
						"name": repo, "full_name": "acme/" + repo, "default_branch": "main",
						"html_url":  "https://github.com/acme/" + repo,
						"clone_url": "https://github.com/acme/" + repo + ".git",
						"ssh_url":   "git@github.com:acme/" + repo + ".git",
					},
				})
		},
		ping: func() (http.Header, []byte) {
			return headers("X-GitHub-Event", "ping"), jsonBody(map[string]any{"zen": "Keep it logically awesome.", "hook_id": 1})
		},
		sign: func(h http.Header, body []byte, secret string) {
			h.Set("X-Hub-Signature-256", "sha256="+hexHMAC(secret, string(body)))
		},
	},
	{
		// https://docs.gitlab.com/user/project/integrations/webhook_events/#push-events
		name:      ForgeGitLab,
		sourceURL: func(repo string) string { return "git@gitlab.example.com:group/" + repo + ".git" },
		push: func(repo, ref string) (http.Header, []byte) {
			return headers("X-Gitlab-Event", "Push Hook", "X-Gitlab-Instance", "https://gitlab.example.com"),
				jsonBody(map[string]any{
					"object_kind": "push", "event_name": "push", "ref": ref,
					"project": map[string]any{
						"path_with_namespace": "group/" + repo, "default_branch": "main",
						"web_url":      "https://gitlab.example.com/group/" + repo,
						"git_http_url": "https://gitlab.example.com/group/" + repo + ".git",
						"git_ssh_url":  "git@gitlab.example.com:group/" + repo + ".git",
					},
				})
		},
		ping: func() (http.Header, []byte) { // GitLab has no ping
			return headers("X-Gitlab-Event", "Merge Request Hook"), jsonBody(map[string]any{"object_kind": "merge_request"})
		},
		sign: func(h http.Header, _ []byte, secret string) { h.Set("X-Gitlab-Token", secret) },
	},
	{
		// https://docs.gitea.com/usage/webhooks and
		// https://forgejo.org/docs/latest/user/webhooks/
		name:      ForgeGitea,
		sourceURL: func(repo string) string { return "ssh://git@gitea.example.com:2222/acme/" + repo + ".git" },
		push: func(repo, ref string) (http.Header, []byte) {
			return headers("X-Gitea-Event", "push", "X-Forgejo-Event", "push", "X-Gitea-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473"),
				jsonBody(map[string]any{
					"ref": ref, "before": strings.Repeat("0", 40), "after": strings.Repeat("a", 40),
					"repository": map[string]any{
						"full_name": "acme/" + repo, "default_branch": "main",
						"html_url":  "https://gitea.example.com:3000/acme/" + repo,
						"clone_url": "https://gitea.example.com:3000/acme/" + repo + ".git",
						"ssh_url":   "ssh://git@gitea.example.com:2222/acme/" + repo + ".git",
					},
				})
		},
		ping: func() (http.Header, []byte) { // Gitea has no ping
			return headers("X-Gitea-Event", "issues"), jsonBody(map[string]any{"action": "opened"})
		},
		sign: func(h http.Header, body []byte, secret string) {
			sig := hexHMAC(secret, string(body))
			h.Set("X-Gitea-Signature", sig)
			h.Set("X-Forgejo-Signature", sig)
		},
	},
	{
		// https://support.atlassian.com/bitbucket-cloud/docs/event-payloads/#Push
		name:      ForgeBitbucket,
		sourceURL: func(repo string) string { return "https://someone@bitbucket.org/acme/" + repo + ".git" },
		push: func(repo, ref string) (http.Header, []byte) {
			kind, name := "branch", strings.TrimPrefix(ref, "refs/heads/")
			if tag, ok := strings.CutPrefix(ref, "refs/tags/"); ok {
				kind, name = "tag", tag
			}
			return headers("X-Event-Key", "repo:push", "X-Hook-UUID", "{b8a1e0a4}", "X-Request-UUID", "{9a8b7c}"),
				jsonBody(map[string]any{
					"repository": map[string]any{
						"type": "repository", "full_name": "acme/" + repo,
						"links": map[string]any{"html": map[string]any{"href": "https://bitbucket.org/acme/" + repo}},
					},
					"push": map[string]any{"changes": []any{map[string]any{
						"new": map[string]any{"type": kind, "name": name},
						"old": map[string]any{"type": kind, "name": name},
					}}},
				})
		},
		ping: func() (http.Header, []byte) {
			return headers("X-Event-Key", "diagnostics:ping"), jsonBody(map[string]any{"test": true})
		},
		sign: func(h http.Header, body []byte, secret string) {
			h.Set("X-Hub-Signature", "sha256="+hexHMAC(secret, string(body)))
		},
	},
	{
		name:      ForgeGeneric,
		sourceURL: func(repo string) string { return "http://git.example.com/team/" + repo },
		push: func(repo, ref string) (http.Header, []byte) {
			return headers(), jsonBody(GenericPush{Repository: "https://git.example.com/team/" + repo + ".git", Ref: ref})
		},
		ping: func() (http.Header, []byte) { // no ping: a push of a branch nobody follows
			return headers(), jsonBody(GenericPush{Repository: "https://git.example.com/team/none.git", Ref: "main"})
		},
		sign: func(h http.Header, body []byte, secret string) {
			h.Set("X-Tend-Signature", "sha256="+hexHMAC(secret, string(body)))
		},
	},
}

// hookEnv is a receiver on loopback with its Secret in a test namespace.
type hookEnv struct {
	*testenv.Env
	c    client.Client
	url  string
	logs *syncBuffer
}

// syncBuffer collects the receiver's log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startReceiver(t *testing.T, mutate func(*Receiver)) *hookEnv {
	t.Helper()
	env := testenv.New(t)
	testenv.InstallCRDs(t, env.Config)
	c, err := client.New(env.Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: env.Namespace, Name: "webhook"}, StringData: secrets}
	if err := c.Create(context.Background(), sec); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(logs, t.Output()), nil))
	r := &Receiver{Client: c, SecretNamespace: env.Namespace, SecretName: "webhook", Log: log}
	if mutate != nil {
		mutate(r)
	}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &hookEnv{Env: env, c: c, url: srv.URL, logs: logs}
}

func (e *hookEnv) source(t *testing.T, name, gitURL string, ref tendv1.GitRef) {
	t.Helper()
	src := &tendv1.Source{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.Namespace, Name: name},
		Spec:       tendv1.SourceSpec{Git: &tendv1.GitSource{URL: gitURL, Ref: ref}},
	}
	if err := e.c.Create(context.Background(), src); err != nil {
		t.Fatal(err)
	}
}

// requestedAt is the Source's tend.dev/requested-at annotation.
func (e *hookEnv) requestedAt(t *testing.T, name string) string {
	t.Helper()
	var src tendv1.Source
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: e.Namespace, Name: name}, &src); err != nil {
		t.Fatal(err)
	}
	return src.Annotations[controller.AnnotationRequestedAt]
}

// post delivers body to /hooks/<forge> and decodes the answer.
func (e *hookEnv) post(t *testing.T, forge string, h http.Header, body []byte) (*http.Response, Response) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+"/hooks/"+forge, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out Response
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("answer %d is not JSON: %v\n%s", resp.StatusCode, err, b)
	}
	return resp, out
}

func TestReceiverForges(t *testing.T) {
	for _, f := range forges {
		t.Run(f.name, func(t *testing.T) {
			e := startReceiver(t, func(r *Receiver) { r.RatePerMinute = 2 })
			repo := e.Namespace // unique across tests sharing the cluster
			e.source(t, "app", f.sourceURL(repo), tendv1.GitRef{})
			e.source(t, "dev", f.sourceURL(repo), tendv1.GitRef{Branch: "dev"})
			me := e.Namespace + "/app"

			send := func(h http.Header, b []byte) (*http.Response, Response) { return e.post(t, f.name, h, b) }
			signed := func(repo, ref string) (http.Header, []byte) {
				h, b := f.push(repo, ref)
				f.sign(h, b, secrets[f.name])
				return h, b
			}
			expect := func(what string, resp *http.Response, got Response, status int, sources ...string) {
				t.Helper()
				if resp.StatusCode != status {
					t.Fatalf("%s: status %d (%s), want %d", what, resp.StatusCode, got.Message, status)
				}
				if fmt.Sprint(got.Sources) != fmt.Sprint(append([]string{}, sources...)) {
					t.Fatalf("%s: sources %v, want %v", what, got.Sources, sources)
				}
			}

			h, b := f.push(repo, "refs/heads/main")
			f.sign(h, b, "wrong-secret")
			resp, got := e.post(t, f.name, h, b)
			expect("wrong signature", resp, got, http.StatusUnauthorized)
			h, _ = f.push(repo, "refs/heads/main")
			resp, got = e.post(t, f.name, h, b)
			expect("unsigned", resp, got, http.StatusUnauthorized)

			h, b = signed(repo, "refs/heads/main")
			big := append(bytes.Repeat([]byte(" "), MaxBodyBytes), b...)
			f.sign(h, big, secrets[f.name])
			resp, got = e.post(t, f.name, h, big)
			expect("oversized body", resp, got, http.StatusRequestEntityTooLarge)

			resp, got = send((signed("unknown-"+repo, "refs/heads/main")))
			expect("unknown repository", resp, got, http.StatusOK)
			resp, got = send((signed(repo, "refs/heads/feature")))
			expect("other branch", resp, got, http.StatusOK)
			if !strings.HasPrefix(got.Message, "ignored") {
				t.Errorf("other branch: message %q does not say ignored", got.Message)
			}
			h, b = f.ping()
			f.sign(h, b, secrets[f.name])
			resp, got = e.post(t, f.name, h, b)
			expect("ping", resp, got, http.StatusOK)
			if v := e.requestedAt(t, "app"); v != "" {
				t.Fatalf("Source annotated (%q) without a valid push of its branch", v)
			}

			resp, got = send((signed(repo, "refs/heads/main")))
			expect("push", resp, got, http.StatusAccepted, me)
			first := e.requestedAt(t, "app")
			if _, err := time.Parse(time.RFC3339Nano, first); err != nil {
				t.Fatalf("requested-at %q: %v", first, err)
			}
			if v := e.requestedAt(t, "dev"); v != "" {
				t.Fatalf("Source following dev annotated by a push of main")
			}

			resp, got = send((signed(repo, "refs/heads/main")))
			expect("second push", resp, got, http.StatusAccepted, me)
			second := e.requestedAt(t, "app")
			if second == first {
				t.Fatal("second push did not change requested-at")
			}
			resp, got = send((signed(repo, "refs/heads/main")))
			expect("third push within a minute at 2/min", resp, got, http.StatusTooManyRequests)
			if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
				t.Fatalf("Retry-After %q, want 1..60 seconds", resp.Header.Get("Retry-After"))
			}
			if fmt.Sprint(got.RateLimited) != fmt.Sprint([]string{me}) {
				t.Fatalf("rateLimited %v, want [%s]", got.RateLimited, me)
			}
			if v := e.requestedAt(t, "app"); v != second {
				t.Fatal("rate-limited push annotated the Source")
			}

			// The dev Source has its own budget.
			resp, got = send((signed(repo, "refs/heads/dev")))
			expect("push of dev", resp, got, http.StatusAccepted, e.Namespace+"/dev")

			logs := e.logs.String()
			if !strings.Contains(logs, "webhook") {
				t.Fatalf("nothing logged:\n%s", logs)
			}
			if strings.Contains(logs, secrets[f.name]) || strings.Contains(logs, "sha256=") || strings.Contains(logs, `"ref"`) {
				t.Fatalf("log reveals a secret, a signature or a body:\n%s", logs)
			}
		})
	}
}

func TestReceiverTags(t *testing.T) {
	e := startReceiver(t, nil)
	repo := e.Namespace
	gh := forges[0]
	e.source(t, "branch", gh.sourceURL(repo), tendv1.GitRef{})
	e.source(t, "semver", gh.sourceURL(repo), tendv1.GitRef{SemVer: ">=1.0.0"})
	e.source(t, "tag", gh.sourceURL(repo), tendv1.GitRef{Tag: "v1.2.0"})
	e.source(t, "oldtag", gh.sourceURL(repo), tendv1.GitRef{Tag: "v1.0.0"})
	h, b := gh.push(repo, "refs/tags/v1.2.0")
	gh.sign(h, b, secrets[ForgeGitHub])
	resp, got := e.post(t, ForgeGitHub, h, b)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d (%s), want 202", resp.StatusCode, got.Message)
	}
	if got, want := fmt.Sprint(got.Sources), fmt.Sprintf("[%[1]s/semver %[1]s/tag]", e.Namespace); got != want {
		t.Fatalf("sources %s, want %s", got, want)
	}
	if e.requestedAt(t, "branch") != "" || e.requestedAt(t, "oldtag") != "" {
		t.Fatal("tag push annotated a Source following a branch or another tag")
	}
}

func TestReceiverRequests(t *testing.T) {
	e := startReceiver(t, nil)
	repo := e.Namespace
	gh := forges[0]
	e.source(t, "app", gh.sourceURL(repo), tendv1.GitRef{})

	resp, err := http.Get(e.url + "/hooks/github")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Fatalf("GET: status %d Allow %q, want 405 POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
	resp, _ = e.post(t, "gogs", headers(), []byte("{}"))
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown forge: status %d, want 404", resp.StatusCode)
	}

	// GitHub's other content type: the JSON in a form field, the
	// signature over the form.
	h, b := gh.push(repo, "refs/heads/main")
	form := []byte(url.Values{"payload": {string(b)}}.Encode())
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	gh.sign(h, form, secrets[ForgeGitHub])
	resp, got := e.post(t, ForgeGitHub, h, form)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("form push: status %d (%s), want 202", resp.StatusCode, got.Message)
	}

	// A forge without a key in the Secret is refused, signed or not.
	sec := &corev1.Secret{}
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: e.Namespace, Name: "webhook"}, sec); err != nil {
		t.Fatal(err)
	}
	delete(sec.Data, ForgeGitHub)
	if err := e.c.Update(context.Background(), sec); err != nil {
		t.Fatal(err)
	}
	h, b = gh.push(repo, "refs/heads/main")
	gh.sign(h, b, secrets[ForgeGitHub])
	resp, got = e.post(t, ForgeGitHub, h, b)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(got.Message, "no webhook secret configured") {
		t.Fatalf("no secret key: status %d (%s), want 401 saying no secret is configured", resp.StatusCode, got.Message)
	}
	if err := e.c.Delete(context.Background(), sec); err != nil {
		t.Fatal(err)
	}
	resp, got = e.post(t, ForgeGitHub, h, b)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(got.Message, "create Secret") {
		t.Fatalf("no Secret: status %d (%s), want 401 saying to create the Secret", resp.StatusCode, got.Message)
	}
}
