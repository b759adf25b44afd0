// Command bench measures tend on this machine and records the results in
// bench/RESULTS.md and bench/results.json.
//
//	go run ./bench -mode render [-apps 1000] [-runs 3]
//	go run ./bench -mode scale  [-apps 1000] [-objects 10] [-steady 2m] [-runs 3]
//	                            [-push-commits 20] [-kubeconfig K] [-scale 100,500,1000,2000]
//	go run ./bench -mode takeover -apps 100 [-objects 10] [-kubeconfig K]
//	go run ./bench -mode dashboard [-apps 1000] [-kubeconfig K]
//	go run ./bench -mode promotion [-runs 20] [-poll-interval 1s] [-kubeconfig K]
//
// The takeover mode leaves the Apps' objects as Flux leaves them
// (kustomize-controller's field manager and labels, Kustomizations with
// their status.inventory) and measures `tend controller --compat flux`
// taking them over: time, requests, and what changed (ReplicaSets created,
// objects deleted, fields left to Flux), which should be nothing.
//
// The render mode measures fetching and rendering in-process. The scale
// mode runs `tend controller` as its own process against a real control
// plane and measures cold sync against a raw server-side apply baseline,
// steady state, a one-App commit, push-to-applied latency through the
// webhook, and the controller's RSS, heap and CPU in each phase; see
// docs/benchmark.md.
//
// Figures are medians of repeated runs; speed is never asserted by tests.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	mode := fs.String("mode", "render", "what to measure: render, scale, takeover, dashboard or promotion")
	apps := fs.Int("apps", 1000, "number of Apps in the generated monorepo")
	runs := fs.Int("runs", 3, "repetitions (render runs; one-App commits in scale mode); medians are reported")
	resultsDir := fs.String("results", "bench", "directory for RESULTS.md and results.json (empty: print only)")
	section := fs.String("section", "", "name of the RESULTS.md section and results.json key to write (default: the mode; scale-curve for -scale)")
	pollInterval := fs.Duration("poll-interval", time.Second, "promotion: the Warehouse's spec.interval (the Source's is an hour: the Stage asks it to fetch)")
	var sc scaleFlags
	sc.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	runsSet := false
	fs.Visit(func(f *flag.Flag) { runsSet = runsSet || f.Name == "runs" })
	if *apps < 1 || *runs < 1 {
		return fmt.Errorf("-apps and -runs must be at least 1")
	}
	work, err := os.MkdirTemp("", "tend-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	logf := func(format string, a ...any) {
		fmt.Fprintf(out, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
	}

	switch *mode {
	case "scale":
		return runScaleMode(ctx, sc, *apps, *runs, work, *resultsDir, *section, out, logf)
	case "dashboard":
		return runDashboardMode(ctx, sc, *apps, max(*runs, 200), work, *resultsDir, *section, out, logf)
	case "promotion":
		if !runsSet {
			*runs = 20
		}
		if *pollInterval <= 0 {
			return fmt.Errorf("-poll-interval must be positive")
		}
		return runPromotionMode(ctx, sc, *runs, *pollInterval, work, *resultsDir, *section, out, logf)
	case "takeover":
		return runTakeoverMode(ctx, sc, *apps, work, *resultsDir, *section, out, logf)
	case "render":
		res, err := benchRender(ctx, work, *apps, *runs, logf)
		if err != nil {
			return err
		}
		table := renderTable(res)
		fmt.Fprint(out, "\n"+table)
		if *resultsDir == "" {
			return nil
		}
		return record(*resultsDir, or(*section, "render"), res, table)
	default:
		return fmt.Errorf("unknown -mode %q", *mode)
	}
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func renderTable(r *renderResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Render: %d Apps x %d objects from one git monorepo (plain YAML), medians of %d runs\n\n", r.Apps, r.ObjectsPerApp, r.Runs)
	fmt.Fprintf(&b, "| phase | time | allocated | allocations |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| shallow fetch (git CLI over smart HTTP) | %.2f s | | |\n", r.FetchCold)
	fmt.Fprintf(&b, "| render all Apps, cold | %.2f s (%.2f ms/App) | %.1f MiB | %d |\n", r.RenderCold, 1000*r.RenderCold/float64(r.Apps), float64(r.RenderColdAlloc)/(1<<20), r.RenderColdObjs)
	fmt.Fprintf(&b, "| incremental fetch after a one-App commit | %.2f s | | |\n", r.FetchIncr)
	fmt.Fprintf(&b, "| re-render after that commit (%d changed files) | %.3f s, %d App re-rendered | %.2f MiB | |\n", r.ChangedFiles, r.RenderIncr, r.ReRendered, float64(r.RenderIncrAlloc)/(1<<20))
	return b.String()
}

// record writes the section for mode into RESULTS.md (replacing an earlier
// one) and the raw figures into results.json.
func record(dir, mode string, res any, table string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	host, _ := os.Hostname()
	header := fmt.Sprintf("Measured %s on %s: %d cores, %s RAM, %s.", time.Now().UTC().Format("2006-01-02"), host, runtime.NumCPU(), memTotal(), runtime.Version())

	jsonPath := filepath.Join(dir, "results.json")
	all := map[string]any{}
	if b, err := os.ReadFile(jsonPath); err == nil {
		_ = json.Unmarshal(b, &all)
	}
	all[mode] = map[string]any{"machine": header, "result": res}
	b, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
		return err
	}

	mdPath := filepath.Join(dir, "RESULTS.md")
	md, err := os.ReadFile(mdPath)
	if err != nil {
		md = []byte("# Benchmark results\n\nWritten by `go run ./bench`; each section is replaced when its mode runs again.\n")
	}
	begin, end := "<!-- "+mode+" begin -->", "<!-- "+mode+" end -->"
	section := begin + "\n## " + mode + "\n\n" + header + "\n\n" + table + end
	s := string(md)
	if i, j := strings.Index(s, begin), strings.Index(s, end); i >= 0 && j > i {
		s = s[:i] + section + s[j+len(end):]
	} else {
		s = strings.TrimRight(s, "\n") + "\n\n" + section + "\n"
	}
	return os.WriteFile(mdPath, []byte(s), 0o644)
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown"
	}
	var kb int64
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "MemTotal:") {
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "MemTotal:")), "%d", &kb)
		}
	}
	return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
}
