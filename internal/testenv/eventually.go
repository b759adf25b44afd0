package testenv

import (
	"testing"
	"time"
)

// Eventually waits until cond holds, checking it every 50ms, and fails the
// test when it does not hold within timeout. The timeout is a give-up
// limit, not a claim about speed: tests wait for an observable state
// (a condition, a counter, an event) with it and never assert durations.
func Eventually(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	if !Within(timeout, cond) {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// Within waits until cond holds, checking it every 50ms, and says whether
// it did within timeout; for callers that report the failure themselves
// (with what the last check saw) or must not fail (cleanups).
func Within(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}
