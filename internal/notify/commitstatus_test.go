package notify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestCommitStatusGitHub(t *testing.T) {
	srv := newHookServer(t, http.StatusCreated, `{}`)
	p := mustNew(t, Config{Type: "github", Address: srv.URL + "/", Token: "ghp_secret"})
	for kind, want := range map[Kind]string{
		SyncStarted:     "pending",
		SyncSucceeded:   "success",
		HealthRecovered: "success",
		SyncFailed:      "failure",
		HookFailed:      "failure",
		HealthDegraded:  "failure",
	} {
		srv.reset()
		m := testMessage()
		m.Event.Kind = kind
		mustSend(t, p, m)
		r := srv.only(t)
		checkRequest(t, r, "POST")
		if got, want := r.Path, "/repos/acme/app/statuses/"+testSHA; got != want {
			t.Errorf("path = %q, want %q", got, want)
		}
		if got, want := r.Header.Get("Authorization"), "Bearer ghp_secret"; got != want {
			t.Errorf("Authorization = %q, want %q", got, want)
		}
		if got, want := r.Header.Get("Accept"), "application/vnd.github+json"; got != want {
			t.Errorf("Accept = %q, want %q", got, want)
		}
		var got statusPayload
		decodeJSON(t, r.Body, &got)
		if got.State != want || got.Context != "tend/default/web" || got.TargetURL != "https://tend.example.com/apps/default/web" {
			t.Errorf("%s: status = %+v, want state %s, context tend/default/web and the link", kind, got, want)
		}
		if n := len([]rune(got.Description)); n == 0 || n > 140 {
			t.Errorf("description %q has %d characters, want 1 to 140", got.Description, n)
		}
	}

	// Nothing is posted for other kinds, short or chart revisions, or
	// sources without a repository.
	srv.reset()
	for _, mod := range []func(*Event){
		func(e *Event) { e.Kind = DriftDetected },
		func(e *Event) { e.Kind = Pruned },
		func(e *Event) { e.Revision = "0123456789ab" },
		func(e *Event) { e.Revision = "chart" },
		func(e *Event) { e.RepoURL = "" },
	} {
		m := testMessage()
		mod(&m.Event)
		mustSend(t, p, m)
	}
	if n := len(srv.requests()); n != 0 {
		t.Errorf("%d requests for events that post no status", n)
	}
}

func TestCommitStatusGitHubRateLimit(t *testing.T) {
	srv := newHookServer(t, http.StatusForbidden, `{"message": "API rate limit exceeded"}`)
	reset := time.Now().Add(90 * time.Second).Unix()
	srv.header.Set("X-RateLimit-Remaining", "0")
	srv.header.Set("X-RateLimit-Reset", fmt.Sprint(reset))
	p := mustNew(t, Config{Type: "github", Address: srv.URL, Token: "ghp_secret"})
	var he *HTTPError
	if err := p.Send(context.Background(), testMessage()); !errors.As(err, &he) {
		t.Fatalf("Send = %v, want an HTTPError", err)
	}
	if he.Status != 403 || he.RetryAfter < 80*time.Second || he.RetryAfter > 90*time.Second {
		t.Errorf("HTTPError = %+v, want 403 with RetryAfter until the reset (~90s)", he)
	}
	if !he.Retryable() {
		t.Errorf("a rate-limit 403 is not retryable")
	}
	if (&HTTPError{Status: 403}).Retryable() {
		t.Errorf("a plain 403 (bad token) is retryable")
	}
}

func TestCommitStatusGitLab(t *testing.T) {
	srv := newHookServer(t, http.StatusCreated, `{}`)
	p := mustNew(t, Config{Type: "gitlab", Address: srv.URL + "/api/v4", Token: "glpat-secret"})
	m := testMessage()
	m.Event.RepoURL = "git@gitlab.example.com:platform/team/deploy/app.git"
	m.Event.Kind = SyncStarted
	mustSend(t, p, m)
	m.Event.Kind = SyncFailed
	mustSend(t, p, m)

	reqs := srv.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	for i, want := range []string{"running", "failed"} {
		r := reqs[i]
		checkRequest(t, r, "POST")
		if got, want := r.EscapedPath, "/api/v4/projects/platform%2Fteam%2Fdeploy%2Fapp/statuses/"+testSHA; got != want {
			t.Errorf("path = %q, want %q", got, want)
		}
		if got, want := r.Header.Get("PRIVATE-TOKEN"), "glpat-secret"; got != want {
			t.Errorf("PRIVATE-TOKEN = %q, want %q", got, want)
		}
		var got gitlabStatus
		decodeJSON(t, r.Body, &got)
		if got.State != want || got.Name != "tend/default/web" || got.TargetURL == "" || got.Description == "" {
			t.Errorf("status = %+v, want state %s and name tend/default/web", got, want)
		}
	}

	// GitLab refuses running → running; the status is already there.
	srv.answer(http.StatusBadRequest, `{"message":"Cannot transition status via :run from :running (Reason(s): Status cannot transition via \"run\")"}`)
	m.Event.Kind = SyncStarted
	if err := p.Send(context.Background(), m); err != nil {
		t.Errorf("Send with the status already running = %v, want nil", err)
	}
	srv.answer(http.StatusBadRequest, `{"message":"name is missing"}`)
	var he *HTTPError
	if err := p.Send(context.Background(), m); !errors.As(err, &he) || he.Status != 400 {
		t.Errorf("Send = %v, want an HTTPError 400", err)
	}
}

func TestCommitStatusGitea(t *testing.T) {
	srv := newHookServer(t, http.StatusCreated, `{}`)
	p := mustNew(t, Config{Type: "gitea", Address: srv.URL + "/git", Token: "gitea-secret"})
	m := testMessage()
	m.Event.RepoURL = srv.URL + "/git/ops/app.git"
	m.Event.Kind = HealthRecovered
	mustSend(t, p, m)

	r := srv.only(t)
	checkRequest(t, r, "POST")
	if got, want := r.Path, "/git/api/v1/repos/ops/app/statuses/"+testSHA; got != want {
		t.Errorf("path = %q, want %q", got, want)
	}
	if got, want := r.Header.Get("Authorization"), "token gitea-secret"; got != want {
		t.Errorf("Authorization = %q, want %q", got, want)
	}
	var got statusPayload
	decodeJSON(t, r.Body, &got)
	if got.State != "success" || got.Context != "tend/default/web" {
		t.Errorf("status = %+v, want success for tend/default/web", got)
	}
}

func TestStatusDescription(t *testing.T) {
	m := testMessage()
	m.Event.Error = strings.Repeat("x", 300) + "\nsecond line"
	d := statusDescription(m)
	if n := len([]rune(d)); n != 140 || !strings.HasPrefix(d, "Sync failed at wave 2: xxx") || !strings.HasSuffix(d, "…") {
		t.Errorf("description = %q (%d characters), want the message and the error cut to 140", d, n)
	}
	m.Summary = "flapping: 6 changes in 10m"
	if d := statusDescription(m); !strings.HasPrefix(d, "flapping: 6 changes in 10m") {
		t.Errorf("description = %q, want the summary first", d)
	}
}
