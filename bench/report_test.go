package main

import (
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
		Push:        &pushResult{Commits: 20, P50: 0.5, P95: -1, Max: -1, Applied: 19},
		PeakRSS:     160 << 20,
		Phases:      map[string]*phaseStats{"cold sync": {Seconds: 720}},
		PhaseOrder:  []string{"cold sync"},
	}
	r.Targets = targets(r)
	met := map[string]string{}
	for _, tg := range r.Targets {
		met[tg.Name] = tg.Met
	}
	for name, want := range map[string]string{
		"cold sync":                        "**no**",
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
	for _, want := range []string{"310 of 1000 Apps after 720.0 s", "not applied within the timeout", "unknown (no tend_renders_total)"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}
