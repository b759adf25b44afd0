package controller

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// window is a parsed sync window.
type window struct {
	spec  tendv1.SyncWindow
	sched cron.Schedule
	loc   *time.Location
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// parseWindows parses an App's windows; errors name the window.
func parseWindows(ws []tendv1.SyncWindow) ([]window, error) {
	out := make([]window, 0, len(ws))
	for i, w := range ws {
		loc := time.UTC
		if w.TimeZone != "" {
			l, err := time.LoadLocation(w.TimeZone)
			if err != nil {
				return nil, fmt.Errorf("spec.sync.windows[%d].timeZone %q: %v", i, w.TimeZone, err)
			}
			loc = l
		}
		s, err := cronParser.Parse(w.Schedule)
		if err != nil {
			return nil, fmt.Errorf("spec.sync.windows[%d].schedule %q is not a cron expression (5 fields, e.g. \"0 22 * * *\"): %v", i, w.Schedule, err)
		}
		if w.Duration.Duration <= 0 {
			return nil, fmt.Errorf("spec.sync.windows[%d].duration must be positive, e.g. 2h", i)
		}
		if w.Kind != "allow" && w.Kind != "deny" {
			return nil, fmt.Errorf("spec.sync.windows[%d].kind %q: want allow or deny", i, w.Kind)
		}
		out = append(out, window{spec: w, sched: s, loc: loc})
	}
	return out, nil
}

// active reports whether t is inside the window: the window started within
// the last duration.
func (w window) active(t time.Time) bool {
	start := w.sched.Next(t.In(w.loc).Add(-w.spec.Duration.Duration))
	return !start.After(t)
}

// syncBlocked says whether windows block a sync at t, whether a manual
// sync is still allowed, and which window decides.
func syncBlocked(ws []window, t time.Time) (blocked, manualAllowed bool, why string) {
	var allows, activeAllow int
	manualAllowed = true
	for _, w := range ws {
		switch w.spec.Kind {
		case "deny":
			if w.active(t) {
				blocked = true
				manualAllowed = manualAllowed && w.spec.ManualSync
				why = fmt.Sprintf("deny window %q (%s)", w.spec.Schedule, w.spec.Duration.Duration)
			}
		case "allow":
			allows++
			if w.active(t) {
				activeAllow++
			}
		}
	}
	if allows > 0 && activeAllow == 0 {
		blocked = true
		manual := false
		for _, w := range ws {
			if w.spec.Kind == "allow" && w.spec.ManualSync {
				manual = true
			}
		}
		manualAllowed = manualAllowed && manual
		if why == "" {
			why = "outside every allow window"
		}
	}
	if !blocked {
		manualAllowed = true
	}
	return blocked, manualAllowed, why
}

// nextAllowed returns when windows next allow a sync after t (within two
// weeks), or the zero time.
func nextAllowed(ws []window, t time.Time) time.Time {
	step := time.Minute
	for c := t.Truncate(step).Add(step); c.Before(t.Add(14 * 24 * time.Hour)); c = c.Add(step) {
		if b, _, _ := syncBlocked(ws, c); !b {
			return c
		}
	}
	return time.Time{}
}
