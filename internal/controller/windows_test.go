package controller

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

func TestSyncWindows(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	ws, err := parseWindows([]tendv1.SyncWindow{
		{Kind: "deny", Schedule: "0 22 * * *", Duration: metav1.Duration{Duration: 2 * time.Hour}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		t       string
		blocked bool
	}{
		{"2026-11-22T21:59:00Z", false},
		{"2026-11-22T22:00:00Z", true},
		{"2026-11-22T23:59:00Z", true},
		{"2026-11-23T00:00:00Z", false},
	} {
		b, manual, _ := syncBlocked(ws, at(tc.t))
		if b != tc.blocked {
			t.Errorf("%s: blocked = %v, want %v", tc.t, b, tc.blocked)
		}
		if b && manual {
			t.Errorf("%s: manual sync allowed by a window without manualSync", tc.t)
		}
	}
	if got, want := nextAllowed(ws, at("2026-11-22T22:30:00Z")), at("2026-11-23T00:00:00Z"); !got.Equal(want) {
		t.Errorf("next allowed = %s, want %s", got, want)
	}

	allow, err := parseWindows([]tendv1.SyncWindow{
		{Kind: "allow", Schedule: "0 9 * * 1-5", Duration: metav1.Duration{Duration: 8 * time.Hour}, ManualSync: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Sunday is outside every allow window, but a manual sync is allowed.
	if b, manual, why := syncBlocked(allow, at("2026-11-22T10:00:00Z")); !b || !manual || !strings.Contains(why, "allow") {
		t.Errorf("Sunday: blocked=%v manual=%v why=%q", b, manual, why)
	}
	if b, _, _ := syncBlocked(allow, at("2026-11-23T10:00:00Z")); b {
		t.Errorf("Monday 10:00 blocked")
	}
}

func TestSyncWindowErrors(t *testing.T) {
	for _, w := range []tendv1.SyncWindow{
		{Kind: "deny", Schedule: "every day", Duration: metav1.Duration{Duration: time.Hour}},
		{Kind: "deny", Schedule: "0 1 * * *"},
		{Kind: "maybe", Schedule: "0 1 * * *", Duration: metav1.Duration{Duration: time.Hour}},
		{Kind: "deny", Schedule: "0 1 * * *", Duration: metav1.Duration{Duration: time.Hour}, TimeZone: "Mars/Olympus"},
	} {
		if _, err := parseWindows([]tendv1.SyncWindow{w}); err == nil || !strings.Contains(err.Error(), "spec.sync.windows[0]") {
			t.Errorf("%+v: error %v does not name the window", w, err)
		}
	}
}
