package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// soakResult is what -soak measured: the controller at cfg.Apps Apps,
// under a commit every SoakCommitEvery and a drifted object every
// SoakDriftEvery, sampled every SoakSampleEvery.
type soakResult struct {
	Minutes     float64 `json:"minutes"`
	Commits     int     `json:"commits"`
	Drifts      int     `json:"drifts"`
	CommitEvery string  `json:"commitEvery"`
	DriftEvery  string  `json:"driftEvery"`
	// WindowMinutes is the end of the run the slopes are fitted over.
	WindowMinutes float64 `json:"windowMinutes"`
	// Series: at the window's start and end (least-squares fit), and the
	// slope per hour; RSS and heap in MiB.
	Series []soakSeries `json:"series"`
	// Settled says whether every App reported the last commit afterwards.
	Settled bool         `json:"settled"`
	Samples []soakSample `json:"samples"`
}

type soakSeries struct {
	Name          string  `json:"name"`
	Start         float64 `json:"start"`
	End           float64 `json:"end"`
	SlopePerHour  float64 `json:"slopePerHour"`
	SlopePercentH float64 `json:"slopePercentPerHour"`
}

type soakSample struct {
	Minute     float64 `json:"minute"`
	RSSMiB     float64 `json:"rssMiB"`
	HeapMiB    float64 `json:"heapInuseMiB"`
	Goroutines float64 `json:"goroutines"`
	OpenFiles  float64 `json:"openFiles"`
}

// soak runs the endurance phase: commits to one App at a time and drift on
// another's objects, for cfg.Soak, sampling the controller's memory,
// goroutines and open files; then fits each series over the last 40
// minutes (two thirds of a shorter run).
func (s *scaleRun) soak(ctx context.Context) error {
	cfg, logf := s.cfg, s.cfg.Logf
	res := &soakResult{CommitEvery: cfg.SoakCommitEvery.String(), DriftEvery: cfg.SoakDriftEvery.String()}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	start := time.Now()
	commits := time.NewTicker(cfg.SoakCommitEvery)
	defer commits.Stop()
	drifts := time.NewTicker(cfg.SoakDriftEvery)
	defer drifts.Stop()
	samples := time.NewTicker(cfg.SoakSampleEvery)
	defer samples.Stop()
	s.samp.scrapeEach(time.Minute)
	var last string
	logf("soak: %s at %d Apps, a commit every %s, drift every %s", cfg.Soak, cfg.Apps, cfg.SoakCommitEvery, cfg.SoakDriftEvery)
	for time.Since(start) < cfg.Soak {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-commits.C:
			app := rng.IntN(cfg.Apps)
			if err := touchApp(s.repo.Work, app, s.configMaps, fmt.Sprintf("soak-%d", res.Commits)); err != nil {
				return err
			}
			if err := s.repo.commit(fmt.Sprintf("soak %d: %s", res.Commits, appName(app))); err != nil {
				return err
			}
			rev, err := s.repo.head()
			if err != nil {
				return err
			}
			if _, _, err := s.hook(ctx); err != nil {
				return err
			}
			res.Commits++
			last = rev
		case <-drifts.C:
			name := appName(rng.IntN(cfg.Apps)) + "-config-0"
			patch := fmt.Sprintf(`{"data":{"drift":"%d"}}`, res.Drifts)
			if _, err := s.c.Clientset.CoreV1().ConfigMaps(s.ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "bench-drift"}); err != nil {
				return fmt.Errorf("drift %s: %w", name, err)
			}
			res.Drifts++
		case <-samples.C:
			sm, err := s.soakSample(ctx, time.Since(start))
			if err != nil {
				return err
			}
			res.Samples = append(res.Samples, sm)
			if len(res.Samples)%10 == 0 {
				logf("soak: %.0f min, %d commits, %d drifts; RSS %.1f MiB, heap %.1f MiB, %0.f goroutines, %0.f open files",
					sm.Minute, res.Commits, res.Drifts, sm.RSSMiB, sm.HeapMiB, sm.Goroutines, sm.OpenFiles)
			}
		}
		if err := s.check(); err != nil {
			return err
		}
	}
	res.Minutes = time.Since(start).Minutes()
	if last != "" {
		deadline := time.Now().Add(cfg.SettleTimeout)
		for !res.Settled && time.Now().Before(deadline) {
			res.Settled = s.apps.atRevision(last) >= cfg.Apps
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
	}
	window := min(40.0, res.Minutes*2/3)
	res.WindowMinutes = window
	for _, series := range []struct {
		name string
		get  func(soakSample) float64
	}{
		{"RSS (MiB)", func(x soakSample) float64 { return x.RSSMiB }},
		{"heap in use (MiB)", func(x soakSample) float64 { return x.HeapMiB }},
		{"goroutines", func(x soakSample) float64 { return x.Goroutines }},
		{"open files", func(x soakSample) float64 { return x.OpenFiles }},
	} {
		var xs, ys []float64
		for _, sm := range res.Samples {
			if sm.Minute >= res.Minutes-window {
				xs, ys = append(xs, sm.Minute), append(ys, series.get(sm))
			}
		}
		slope, icept := fitLine(xs, ys)
		if math.IsNaN(slope) {
			continue
		}
		from, to := res.Minutes-window, res.Minutes
		st := soakSeries{Name: series.name, Start: icept + slope*from, End: icept + slope*to, SlopePerHour: slope * 60}
		if st.Start != 0 {
			st.SlopePercentH = 100 * st.SlopePerHour / st.Start
		}
		res.Series = append(res.Series, st)
	}
	s.res.Soak = res
	s.phase("soak")
	return nil
}

// soakSample reads the controller's RSS, open files, heap and goroutines.
func (s *scaleRun) soakSample(ctx context.Context, at time.Duration) (soakSample, error) {
	sm := soakSample{Minute: at.Minutes()}
	pid := s.proc.pid()
	rss, _, err := memStatus(pid)
	if err != nil {
		return sm, err
	}
	sm.RSSMiB = float64(rss) / (1 << 20)
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return sm, err
	}
	sm.OpenFiles = float64(len(fds))
	sc, err := s.samp.latest(ctx)
	if err != nil {
		return sm, fmt.Errorf("the controller's /metrics: %w", err)
	}
	sm.HeapMiB = sc.sum("go_memstats_heap_inuse_bytes", nil) / (1 << 20)
	sm.Goroutines = sc.sum("go_goroutines", nil)
	return sm, nil
}

// fitLine is the least-squares line through (xs, ys): its slope and
// intercept; NaN when there are fewer than two points.
func fitLine(xs, ys []float64) (slope, intercept float64) {
	n := float64(len(xs))
	if len(xs) < 2 {
		return math.NaN(), math.NaN()
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx, sy, sxx, sxy = sx+xs[i], sy+ys[i], sxx+xs[i]*xs[i], sxy+xs[i]*ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return math.NaN(), math.NaN()
	}
	slope = (n*sxy - sx*sy) / d
	return slope, (sy - slope*sx) / n
}

// soakTable reports a soak.
func soakTable(r *soakResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nSoak: %.0f minutes, %d commits (one App each, every %s, each announced by a webhook), %d drifted ConfigMaps (every %s); every App at the last commit afterwards: %v. Fitted over the last %.0f minutes:\n\n",
		r.Minutes, r.Commits, r.CommitEvery, r.Drifts, r.DriftEvery, r.Settled, r.WindowMinutes)
	b.WriteString("| series | window start | window end | slope per hour | per hour, of the start |\n|---|---|---|---|---|\n")
	for _, s := range r.Series {
		fmt.Fprintf(&b, "| %s | %.1f | %.1f | %+.2f | %+.1f%% |\n", s.Name, s.Start, s.End, s.SlopePerHour, s.SlopePercentH)
	}
	return b.String()
}
