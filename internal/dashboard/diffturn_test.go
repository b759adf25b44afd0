package dashboard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tend-gitops/tend/internal/dashboard/auth"
)

// TestDiffTurns: at most maxDiffs diffs run at once; one more gets 429
// with Retry-After, and a turn given back is taken again.
func TestDiffTurns(t *testing.T) {
	s := &Server{diffs: make(chan struct{}, maxDiffs)}
	var releases []func()
	for i := range maxDiffs {
		release, ok := s.diffTurn(httptest.NewRecorder())
		if !ok {
			t.Fatalf("turn %d of %d refused", i+1, maxDiffs)
		}
		releases = append(releases, release)
	}
	w := httptest.NewRecorder()
	if _, ok := s.diffTurn(w); ok || w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("turn %d: ok=%v, %d, Retry-After %q; want 429 with Retry-After", maxDiffs+1, ok, w.Code, w.Header().Get("Retry-After"))
	}
	releases[0]()
	if _, ok := s.diffTurn(httptest.NewRecorder()); !ok {
		t.Fatal("a turn given back was not taken again")
	}
}

// TestTeamStreamsEnd: behind the sign-in, a live-update stream ends after
// its time, so that the browser reconnects through the sign-in.
func TestTeamStreamsEnd(t *testing.T) {
	s := &Server{hub: newHub(), team: true, streamFor: 10 * time.Millisecond}
	req := httptest.NewRequest(http.MethodGet, "/api/v1/events", nil)
	req = req.WithContext(auth.WithUser(req.Context(), &auth.User{Name: "admin", Admin: true}))
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		s.events(w, req)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the stream did not end")
	}
	if !strings.HasPrefix(w.Body.String(), ": connected") {
		t.Errorf("stream %q", w.Body.String())
	}
}
