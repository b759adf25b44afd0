package dashboard

import (
	"net/http"
	"net/http/httptest"
	"testing"
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
