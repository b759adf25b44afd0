package main

import (
	"fmt"
	"sort"
	"strings"
)

// The performance targets (docs/benchmark.md).
const (
	targetColdRatio  = 1.5
	targetAppliedSec = 2.0
	targetPushP50Sec = 2.0
	targetRSSBytes   = 150 << 20
)

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// targets judges a run against the performance targets.
func targets(r *scaleResult) []target {
	var out []target
	if c := r.Cold; c != nil && r.Baseline != nil {
		measured := fmt.Sprintf("%.2fx (%s vs %s)", c.Ratio, secs(c.Seconds), secs(r.Baseline.Seconds))
		if c.Ready < r.Apps {
			measured = fmt.Sprintf("more than %.1fx: %d of %d Apps after %s (baseline %s)", c.Seconds/r.Baseline.Seconds, c.Ready, r.Apps, secs(c.Seconds), secs(r.Baseline.Seconds))
		}
		out = append(out, target{Name: "cold sync", Target: fmt.Sprintf("within %.1fx the baseline", targetColdRatio),
			Measured: measured, Met: yesNo(c.Ready >= r.Apps && c.Ratio <= targetColdRatio)})
	}
	if st := r.Steady; st != nil {
		out = append(out, target{Name: "steady state", Target: "0 requests per minute (tend's, every verb; watches and lease renewals apart)",
			Measured: fmt.Sprintf("%s requests/min (%s writes, %s dry-runs) over %s App reconciles", num(st.RequestsPerMinute), num(st.TendWritesPerMinute), num(st.TendDryRunsPerMinute), reconciles(st.AppReconciles)),
			Met:      yesNo(st.RequestsPerMinute == 0)})
	}
	if in := r.Incremental; in != nil {
		rendered, met := "unknown (the controller exports no tend_renders_total)", "n/a"
		if in.ReRendered >= 0 {
			rendered = fmt.Sprint(in.ReRendered)
			met = yesNo(in.ReRendered == 1)
		}
		out = append(out, target{Name: "one-App commit: Apps re-rendered", Target: "1", Measured: rendered, Met: met})
		out = append(out, target{Name: "one-App commit: applied", Target: fmt.Sprintf("under %.0f s", targetAppliedSec),
			Measured: latencyText(in.AppliedSeconds), Met: yesNo(in.AppliedSeconds >= 0 && in.AppliedSeconds < targetAppliedSec)})
	}
	if p := r.Push; p != nil {
		out = append(out, target{Name: "push to applied (webhook)", Target: fmt.Sprintf("p50 under %.0f s", targetPushP50Sec),
			Measured: fmt.Sprintf("p50 %s, p95 %s (%d commits)", latencyText(p.P50), latencyText(p.P95), p.Commits),
			Met:      yesNo(p.P50 >= 0 && p.P50 < targetPushP50Sec)})
	}
	met := "n/a (target is for 1,000 Apps x 10 objects)"
	if r.Apps == 1000 && r.ObjectsPerApp == 10 {
		met = yesNo(r.PeakRSS < targetRSSBytes)
	}
	out = append(out, target{Name: "controller peak RSS", Target: "under 150 MiB at 1,000 Apps x 10 objects", Measured: mib(r.PeakRSS), Met: met})
	return out
}

func reconciles(n float64) string {
	if n < 0 {
		return "unknown"
	}
	return num(n)
}

func secs(s float64) string {
	switch {
	case s < 0:
		return "not measured"
	case s < 10:
		return fmt.Sprintf("%.2f s", s)
	default:
		return fmt.Sprintf("%.1f s", s)
	}
}

func latencyText(s float64) string {
	if s < 0 {
		return "not applied within the timeout"
	}
	return secs(s)
}

// verbs formats a by-verb map, largest first.
func verbs(m map[string]float64, unit string) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %s", k, num(m[k])))
	}
	return strings.Join(parts, ", ") + unit
}

func num(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprint(int64(v))
	}
	return fmt.Sprintf("%.1f", v)
}

// scaleTable is the markdown of one full scale run.
func scaleTable(r *scaleResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Scale: %d Apps x %d objects (%d ConfigMaps, a Deployment, a Service, a Secret) in one git monorepo served by git http-backend on loopback, one AppSet over apps/*; `tend controller` as its own process",
		r.Apps, r.ObjectsPerApp, r.ObjectsPerApp-3)
	if len(r.ControllerArgs) > 0 {
		fmt.Fprintf(&b, " with `%s`", strings.Join(r.ControllerArgs, " "))
	}
	b.WriteString(". tend's requests are counted by a proxy between the controller and the apiserver: every request it sent, by verb (LIST, WATCH, CREATE, UPDATE, PATCH, APPLY = server-side apply, ..., dry runs as *_DRYRUN).\n\n")
	if r.Dashboard != nil {
		fmt.Fprintf(&b, "The controller served its dashboard throughout, with one signed-in browser session on the App list: %s.\n\n", dashText(r.Dashboard))
	}
	b.WriteString(buildLine(r.TendBuild, r.Note))
	b.WriteString("| target | measured | met |\n|---|---|---|\n")
	for _, t := range r.Targets {
		fmt.Fprintf(&b, "| %s: %s | %s | %s |\n", t.Name, t.Target, t.Measured, t.Met)
	}
	b.WriteString("\n| phase | measured |\n|---|---|\n")
	if bl := r.Baseline; bl != nil {
		fmt.Fprintf(&b, "| baseline: %d objects by %d concurrent server-side applies (client-go), until every Deployment is Available | %s (applied in %s, %.0f objects/s) |\n",
			bl.Objects, bl.Workers, secs(bl.Seconds), secs(bl.ApplySeconds), bl.ObjectsPerSecond)
	}
	if c := r.Cold; c != nil {
		if c.Ready < r.Apps {
			fmt.Fprintf(&b, "| cold sync: Source and AppSet created until every App is Synced and Healthy | not finished: %d of %d Apps after %s (all Apps created after %s) |\n",
				c.Ready, r.Apps, secs(c.Seconds), secs(c.AppsCreatedSeconds))
		} else {
			fmt.Fprintf(&b, "| cold sync: Source and AppSet created until every App is Synced and Healthy | %s, %.2fx the baseline (all Apps created after %s) |\n",
				secs(c.Seconds), c.Ratio, secs(c.AppsCreatedSeconds))
		}
		fmt.Fprintf(&b, "| ... tend's requests | %s |\n", verbs(c.TendRequests, ""))
		fmt.Fprintf(&b, "| ... tend's writes | %s |\n", verbs(c.TendWrites, ""))
		if len(c.Syncs) > 0 {
			fmt.Fprintf(&b, "| ... syncs in the Apps' history, by message | %s |\n", verbs(c.Syncs, ""))
		}
	}
	if st := r.Steady; st != nil {
		fmt.Fprintf(&b, "| steady state (%s, nothing changes, %s App reconciles): tend's requests, watches and lease renewals apart | %s |\n",
			secs(st.Seconds), reconciles(st.AppReconciles), verbs(st.Requests, " per minute"))
		fmt.Fprintf(&b, "| ... watches (opened or re-opened) / lease requests | %s / %s per minute |\n", num(st.WatchesPerMinute), num(st.LeaseRequestsPerMinute))
		fmt.Fprintf(&b, "| steady state: the apiserver's apiserver_request_total, every client | %s; dry-runs %s per minute |\n", verbs(st.APIServerPerMinute, " per minute"), num(st.APIServerDryRunsPerMinute))
		fmt.Fprintf(&b, "| steady state: controller CPU | %.2f s per minute |\n", st.CPUSecondsPerMinute)
	}
	if in := r.Incremental; in != nil {
		rendered := "unknown (no tend_renders_total)"
		if in.ReRendered >= 0 {
			rendered = fmt.Sprint(in.ReRendered)
		}
		fmt.Fprintf(&b, "| one-App commit + webhook, median of %d: applied | %s |\n", in.Runs, latencyText(in.AppliedSeconds))
		fmt.Fprintf(&b, "| ... every App reports the new revision | %s%s |\n", secs(in.SettledSeconds), map[bool]string{true: "", false: " (not every commit settled within the timeout)"}[in.Settled])
		fmt.Fprintf(&b, "| ... Apps re-rendered / render requests / Apps synced | %s / %d / %d |\n", rendered, in.RenderRequests, in.Synced)
		fmt.Fprintf(&b, "| ... tend's requests (last commit) / controller CPU (median) | %s / %.2f s |\n", verbs(in.TendRequests, ""), in.CPUSeconds)
		fmt.Fprintf(&b, "| ... tend's writes (last commit) | %s |\n", verbs(in.TendWritesByResource, ""))
	}
	if p := r.Push; p != nil {
		fmt.Fprintf(&b, "| push to applied, %d webhook commits (one object each) | p50 %s, p95 %s, max %s; %d of %d applied%s |\n",
			p.Commits, latencyText(p.P50), latencyText(p.P95), latencyText(p.Max), p.Applied, p.Commits, rateLimited(p.RateLimited))
	}
	if sc := r.Scrape; sc != nil {
		fmt.Fprintf(&b, "| one read of the idle controller's /metrics (mean of %d) | %.1f ms CPU, %.2f MiB allocated |\n", scrapes, sc.CPUMillis, sc.AllocBytes/(1<<20))
	}
	b.WriteString("\nController resources by phase (RSS from /proc/<pid>/status, CPU from /proc/<pid>/stat, heap from go_memstats on its /metrics, sampled):\n\n")
	b.WriteString(phaseTable(r))
	if len(r.Profiles) > 0 {
		fmt.Fprintf(&b, "\nProfiles: %s\n", strings.Join(r.Profiles, ", "))
	} else if r.ProfileNote != "" {
		fmt.Fprintf(&b, "\nProfiles: none (%s).\n", r.ProfileNote)
	}
	if r.Soak != nil {
		b.WriteString(soakTable(r.Soak))
	}
	return b.String()
}

func buildLine(build, note string) string {
	var b strings.Builder
	if build != "" {
		fmt.Fprintf(&b, "Measured: %s.", build)
	}
	if note != "" {
		fmt.Fprintf(&b, " %s", note)
	}
	if b.Len() == 0 {
		return ""
	}
	return strings.TrimSpace(b.String()) + "\n\n"
}

func rateLimited(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d webhook deliveries rate limited and retried)", n)
}

func phaseTable(r *scaleResult) string {
	var b strings.Builder
	b.WriteString("| phase | duration | CPU | peak RSS | ... anon + file | Go runtime (sys) | peak heap in use | peak heap alloc |\n|---|---|---|---|---|---|---|---|\n")
	for _, name := range r.PhaseOrder {
		p := r.Phases[name]
		if p.Seconds < 1 && p.MetricsScrapes == 0 {
			continue // a moment between phases: nothing to show
		}
		split := ""
		if p.PeakRSSAnon+p.PeakRSSFile > 0 {
			split = mib(p.PeakRSSAnon) + " + " + mib(p.PeakRSSFile)
		}
		fmt.Fprintf(&b, "| %s | %s | %.1f s | %s | %s | %s | %s | %s |\n", name, secs(p.Seconds), p.CPUSeconds, mib(p.PeakRSS), split, mib(p.PeakGoSys), mib(p.PeakHeapInuse), mib(p.PeakHeapAlloc))
	}
	return b.String()
}

// curveTable is the markdown of the scaling curve.
func curveTable(rs []*scaleResult) string {
	var b strings.Builder
	if len(rs) == 0 {
		return ""
	}
	fmt.Fprintf(&b, "Scaling curve: baseline, cold sync and one one-App commit for each N (x %d objects), a fresh controller process each.\n\n", rs[0].ObjectsPerApp)
	b.WriteString(buildLine(rs[0].TendBuild, rs[0].Note))
	b.WriteString("| Apps | objects | dashboard | baseline | cold sync | ratio | cold sync CPU | peak RSS | peak heap in use | one-App commit applied | Apps re-rendered | every App at the commit | one /metrics read |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		cold, ratio, cpu := "failed", "", ""
		if r.Cold != nil {
			cold, ratio = secs(r.Cold.Seconds), fmt.Sprintf("%.2fx", r.Cold.Ratio)
			if r.Cold.Ready < r.Apps {
				cold = fmt.Sprintf("%d/%d after %s", r.Cold.Ready, r.Apps, secs(r.Cold.Seconds))
			}
		}
		if p := r.Phases["cold sync"]; p != nil {
			cpu = fmt.Sprintf("%.1f s", p.CPUSeconds)
		}
		base := "failed"
		if r.Baseline != nil {
			base = secs(r.Baseline.Seconds)
		}
		heap := peakHeap(r)
		applied, rendered, settled := "", "", ""
		if in := r.Incremental; in != nil {
			applied, settled = latencyText(in.AppliedSeconds), secs(in.SettledSeconds)
			rendered = "unknown"
			if in.ReRendered >= 0 {
				rendered = fmt.Sprint(in.ReRendered)
			}
		}
		scrape := ""
		if sc := r.Scrape; sc != nil {
			scrape = fmt.Sprintf("%.1f ms, %.2f MiB", sc.CPUMillis, sc.AllocBytes/(1<<20))
		}
		dash := "off"
		if r.Dashboard != nil {
			dash = "on: " + dashText(r.Dashboard)
		}
		fmt.Fprintf(&b, "| %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Apps, r.Apps*r.ObjectsPerApp, dash, base, cold, ratio, cpu, mib(r.PeakRSS), mib(heap), applied, rendered, settled, scrape)
	}
	b.WriteString(pairSummary(rs))
	return b.String()
}

// pairSummary says what the dashboard cost in each run without it
// followed by one with it at the same size (-dashboard pair), and the
// median of those differences; "" when rs holds no such pair.
func pairSummary(rs []*scaleResult) string {
	var rss, heap []float64
	for i := 0; i+1 < len(rs); i++ {
		off, on := rs[i], rs[i+1]
		if off.Dashboard != nil || on.Dashboard == nil || off.Apps != on.Apps {
			continue
		}
		rss = append(rss, float64(on.PeakRSS)-float64(off.PeakRSS))
		heap = append(heap, float64(peakHeap(on))-float64(peakHeap(off)))
		i++
	}
	if len(rss) == 0 {
		return ""
	}
	list := func(xs []float64) string {
		s := make([]string, len(xs))
		for i, x := range xs {
			s[i] = fmt.Sprintf("%+.1f", x/(1<<20))
		}
		return strings.Join(s, ", ")
	}
	return fmt.Sprintf("\nThe dashboard's cost, with minus without, pair by pair: peak RSS %s MiB (median %+.1f MiB); peak heap in use %s MiB (median %+.1f MiB).\n",
		list(rss), median(rss)/(1<<20), list(heap), median(heap)/(1<<20))
}

// peakHeap is the largest heap in use over r's phases.
func peakHeap(r *scaleResult) uint64 {
	var heap uint64
	for _, p := range r.Phases {
		heap = max(heap, p.PeakHeapInuse)
	}
	return heap
}

// dashText says what a browser session on the dashboard did.
func dashText(d *dashSessionResult) string {
	s := fmt.Sprintf("%d live updates, %d list reloads (p50 %.1f ms, p95 %.1f ms)", d.Changes, d.Lists, d.ListP50Ms, d.ListP95Ms)
	if len(d.Errors) > 0 {
		s += fmt.Sprintf(", %d errors (first: %s)", len(d.Errors), d.Errors[0])
	}
	return s
}
