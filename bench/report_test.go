package main

import (
	"math"
	"strings"
	"testing"
)

// TestTargetsReportMisses checks that a run that missed its targets says
// so, instead of showing zeros as successes.
func TestTargetsReportMisses(t *testing.T) {
	r := &scaleResult{
		Apps: 1000, ObjectsPerApp: 10,
		Baseline:    &baselineResult{Objects: 10000, Workers: 32, Seconds: 40, ApplySeconds: 38},
		Cold:        &coldResult{Seconds: 720, Ready: 310},
		Incremental: &incrResult{Runs: 3, AppliedSeconds: -1, ReRendered: -1},
		// Reads are requests too: only watches and leases are apart.
		Steady:     &steadyResult{Seconds: 120, RequestsPerMinute: 3, Requests: map[string]float64{"GET secrets": 3}, WatchesPerMinute: 1, AppReconciles: 1000},
		Push:       &pushResult{Commits: 20, P50: 0.5, P95: -1, Max: -1, Applied: 19},
		PeakRSS:    160 << 20,
		Phases:     map[string]*phaseStats{"cold sync": {Seconds: 720}},
		PhaseOrder: []string{"cold sync"},
	}
	r.Targets = targets(r)
	met := map[string]string{}
	for _, tg := range r.Targets {
		met[tg.Name] = tg.Met
	}
	for name, want := range map[string]string{
		"cold sync":                        "**no**",
		"steady state":                     "**no**",
		"one-App commit: Apps re-rendered": "n/a",
		"one-App commit: applied":          "**no**",
		"push to applied (webhook)":        "yes",
		"controller peak RSS":              "**no**",
	} {
		if got := met[name]; got != want {
			t.Errorf("%s: met = %q, want %q", name, got, want)
		}
	}
	table := scaleTable(r)
	for _, want := range []string{"310 of 1000 Apps after 720.0 s", "not applied within the timeout", "unknown (no tend_renders_total)", "GET secrets 3 per minute"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}

// TestSteadyRequestsSetWatchesAndLeasesApart: every verb counts against the
// steady state but watches and leader election's Lease requests.
func TestSteadyRequestsSetWatchesAndLeasesApart(t *testing.T) {
	reqs, watches, leases := steadyRequests(map[string]float64{
		"GET secrets": 2, "LIST configmaps": 1, "GET discovery": 1, "UPDATE apps.tend.dev/status": 1,
		"WATCH secrets": 4, "WATCH apps.tend.dev": 1,
		"GET leases.coordination.k8s.io": 3, "UPDATE leases.coordination.k8s.io": 3,
	})
	if watches != 5 || leases != 6 {
		t.Errorf("watches, leases = %v, %v; want 5, 6", watches, leases)
	}
	if len(reqs) != 4 || reqs["GET secrets"] != 2 || reqs["GET discovery"] != 1 {
		t.Errorf("requests = %v, want the GETs, the LIST and the UPDATE", reqs)
	}
}

func TestFitLine(t *testing.T) {
	slope, icept := fitLine([]float64{0, 1, 2, 3}, []float64{10, 12, 14, 16})
	if slope != 2 || icept != 10 {
		t.Errorf("fitLine = %v, %v; want 2, 10", slope, icept)
	}
	if s, _ := fitLine([]float64{1}, []float64{1}); !math.IsNaN(s) {
		t.Errorf("fitLine of one point = %v, want NaN", s)
	}
}

func TestPairSummaryTakesMedianOfPairs(t *testing.T) {
	run := func(apps int, dash bool, rssMiB, heapMiB uint64) *scaleResult {
		r := &scaleResult{Apps: apps, PeakRSS: rssMiB << 20, Phases: map[string]*phaseStats{"cold sync": {PeakHeapInuse: heapMiB << 20}}}
		if dash {
			r.Dashboard = &dashSessionResult{}
		}
		return r
	}
	rs := []*scaleResult{
		run(1000, false, 140, 70), run(1000, true, 150, 71),
		run(1000, false, 145, 70), run(1000, true, 147, 69),
		run(1000, false, 150, 72), run(1000, true, 156, 75),
		run(500, false, 100, 50), // no partner: not a pair
	}
	got := pairSummary(rs)
	want := "peak RSS +10.0, +2.0, +6.0 MiB (median +6.0 MiB); peak heap in use +1.0, -1.0, +3.0 MiB (median +1.0 MiB)"
	if !strings.Contains(got, want) {
		t.Errorf("pairSummary = %q, want it to contain %q", got, want)
	}
	if s := pairSummary(rs[:1]); s != "" {
		t.Errorf("pairSummary of a lone run = %q, want empty", s)
	}
}
