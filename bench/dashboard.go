package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// dashboardResult is what -mode dashboard measured of `tend dashboard`
// serving N Apps.
type dashboardResult struct {
	Apps int `json:"apps"`
	// Requests per kind of request; latencies are medians and 95th
	// percentiles over them, in milliseconds.
	Requests int                   `json:"requests"`
	Latency  map[string][2]float64 `json:"latencyMs"`
	RSS      map[string]float64    `json:"rssMiB"`
	Paint    []float64             `json:"firstPaintMs,omitempty"`
	Bytes    map[string]int        `json:"bytes"`
	Notes    []string              `json:"notes,omitempty"`
}

// runDashboardMode starts `tend dashboard` as its own process, measures
// its RSS before and after N Apps appear in a namespace, the API's
// latency for the list (a page of 50, a search, a sort by last sync), an
// App's page and its tree, and the time to first paint of the App list in
// Chromium (when internal/dashboard/e2e's Playwright and chromium are
// there).
func runDashboardMode(ctx context.Context, sc scaleFlags, apps, runs int, work, resultsDir, section string, out io.Writer, logf func(string, ...any)) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	kubeconfig := sc.kubeconfig
	if kubeconfig == "" {
		if kubeconfig, err = clusterUp(ctx, root, benchClusterDir(), logf); err != nil {
			return err
		}
	}
	c, err := newCluster(kubeconfig)
	if err != nil {
		return err
	}
	if err := c.ensureCRDs(ctx); err != nil {
		return err
	}
	bin := sc.tendBin
	if bin == "" {
		logf("building tend")
		if bin, err = buildTend(ctx, root, work); err != nil {
			return err
		}
	}
	ns := "bench-dashboard-" + randomID()
	if err := c.createNamespace(ctx, ns); err != nil {
		return err
	}
	defer func() {
		_, _ = c.deleteNamespace(context.Background(), ns, 2*time.Minute)
	}()

	logf("starting tend dashboard")
	cmd := exec.CommandContext(ctx, bin, "dashboard", "--kubeconfig", kubeconfig, "--addr", "127.0.0.1:0")
	cmd.Stderr = io.Discard
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	url := ""
	sc2 := bufio.NewScanner(stdout)
	for sc2.Scan() {
		if _, u, ok := strings.Cut(sc2.Text(), ": open "); ok {
			url = u
			break
		}
	}
	if url == "" {
		return fmt.Errorf("tend dashboard printed no URL")
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	res := &dashboardResult{Apps: apps, Requests: runs, Latency: map[string][2]float64{}, RSS: map[string]float64{}, Bytes: map[string]int{}}
	res.Notes = append(res.Notes, fmt.Sprintf("ready (cache synced, URL printed) %.2f s after start", time.Since(start).Seconds()))
	rss := func(key string) {
		if r, hwm, err := memStatus(cmd.Process.Pid); err == nil {
			res.RSS[key] = float64(r) / (1 << 20)
			res.RSS["peak"] = float64(hwm) / (1 << 20)
		}
	}
	rss("idle, before the Apps")

	jar, _ := cookiejar.New(nil)
	web := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := web.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	base := strings.SplitN(url, "/?", 2)[0]

	logf("creating %d Apps in %s", apps, ns)
	if err := createDashboardApps(ctx, c, ns, apps); err != nil {
		return err
	}
	// Wait until the dashboard's cache has them all.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var l struct{ Total int }
		if err := getJSON(web, base+"/api/v1/apps?namespace="+ns+"&pageSize=1", &l); err == nil && l.Total == apps {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the dashboard did not list %d Apps within 5 minutes", apps)
		}
		time.Sleep(200 * time.Millisecond)
	}
	rss("idle, with the Apps")

	requests := map[string]string{
		"list, first page of 50":    "/api/v1/apps?namespace=" + ns,
		"list, search":              "/api/v1/apps?namespace=" + ns + "&q=app-0999",
		"list, sorted by last sync": "/api/v1/apps?namespace=" + ns + "&sort=lastSync&page=3",
		"list, all namespaces":      "/api/v1/apps",
		"App page":                  "/api/v1/apps/" + ns + "/app-0500",
		"App tree":                  "/api/v1/apps/" + ns + "/app-0500/tree",
	}
	names := make([]string, 0, len(requests))
	for n := range requests {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		var lat []float64
		for i := 0; i < runs; i++ {
			t0 := time.Now()
			resp, err := web.Get(base + requests[n])
			if err != nil {
				return err
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %s", requests[n], resp.Status)
			}
			lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
			res.Bytes[n] = len(b)
		}
		sort.Float64s(lat)
		res.Latency[n] = [2]float64{lat[len(lat)/2], lat[(len(lat)*95)/100]}
	}
	rss("after the requests")

	if paint, note := firstPaint(ctx, root, url, ns, apps); paint != nil {
		res.Paint = paint
	} else {
		res.Notes = append(res.Notes, note)
	}
	table := dashboardTable(res)
	fmt.Fprint(out, "\n"+table)
	if resultsDir == "" {
		return nil
	}
	return record(resultsDir, or(section, "dashboard"), res, table)
}

// createDashboardApps creates n Apps with statuses spread over the states
// a real platform has, 16 at a time.
func createDashboardApps(ctx context.Context, c *cluster, ns string, n int) error {
	states := [][2]string{{"Synced", "Healthy"}, {"Synced", "Healthy"}, {"Synced", "Healthy"}, {"OutOfSync", "Healthy"}, {"Synced", "Progressing"}, {"Failed", "Degraded"}}
	sem := make(chan struct{}, 16)
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			a := &tendv1.App{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%04d", i), Namespace: ns, Labels: map[string]string{"team": fmt.Sprintf("team-%d", i%10)}},
				Spec:       tendv1.AppSpec{SourceRef: tendv1.NamespacedObjectReference{Name: "platform"}, Path: fmt.Sprintf("apps/app-%04d", i)},
			}
			err := c.Client.Create(ctx, a)
			if err == nil {
				st := states[i%len(states)]
				a.Status.Sync, a.Status.Health, a.Status.Revision = st[0], st[1], "0123456789abcdef0123456789abcdef01234567"
				a.Status.Conditions = []metav1.Condition{{Type: tendv1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Synced", Message: "synced", LastTransitionTime: metav1.Now()}}
				for h := 0; h < 10; h++ {
					a.Status.History = append(a.Status.History, tendv1.SyncRecord{ID: int64(10 - h), Revision: a.Status.Revision,
						StartedAt: metav1.NewTime(time.Now().Add(-time.Duration(i+h*n) * time.Second)), Duration: metav1.Duration{Duration: time.Second}, Result: "Succeeded", Changed: 3})
				}
				err = c.Client.Status().Update(ctx, a)
			}
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	return first
}

func getJSON(web *http.Client, url string, out any) error {
	resp, err := web.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// firstPaint runs internal/dashboard/e2e/paint.mjs: the time from
// navigation to the App list's rows drawn, five times. It returns nil and
// why when Chromium or Playwright is missing.
func firstPaint(ctx context.Context, root, url, ns string, apps int) ([]float64, string) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		return nil, "first paint not measured: no chromium (apt-get install chromium)"
	}
	dir := filepath.Join(root, "internal", "dashboard", "e2e")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		return nil, "first paint not measured: run npm ci in internal/dashboard/e2e"
	}
	cfg, _ := json.Marshal(map[string]any{"url": url, "chromium": chromium, "namespace": ns, "total": apps, "runs": 5})
	cmd := exec.CommandContext(ctx, "node", "paint.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TEND_E2E="+string(cfg))
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Sprintf("first paint not measured: %v", err)
	}
	var ms []float64
	if err := json.Unmarshal(b, &ms); err != nil {
		return nil, fmt.Sprintf("first paint not measured: %v", err)
	}
	sort.Float64s(ms)
	return ms, ""
}

func dashboardTable(r *dashboardResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "`tend dashboard` (its own process, local mode) serving %d Apps with 10 history entries each; latencies over %d requests of each kind on loopback\n\n", r.Apps, r.Requests)
	fmt.Fprintf(&b, "| request | p50 | p95 | response |\n|---|---|---|---|\n")
	names := make([]string, 0, len(r.Latency))
	for n := range r.Latency {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		l := r.Latency[n]
		fmt.Fprintf(&b, "| %s | %.1f ms | %.1f ms | %.1f KiB |\n", n, l[0], l[1], float64(r.Bytes[n])/1024)
	}
	fmt.Fprintf(&b, "\n| RSS | MiB |\n|---|---|\n")
	for _, k := range []string{"idle, before the Apps", "idle, with the Apps", "after the requests", "peak"} {
		fmt.Fprintf(&b, "| %s | %.1f |\n", k, r.RSS[k])
	}
	if len(r.Paint) > 0 {
		fmt.Fprintf(&b, "\nFirst paint of the App list in headless Chromium (navigation to rows drawn): median %.0f ms, max %.0f ms over %d loads\n", r.Paint[len(r.Paint)/2], r.Paint[len(r.Paint)-1], len(r.Paint))
	}
	fmt.Fprintf(&b, "\nThe App page and tree ask the API server (events; the inventory Secret and the tree's objects): back to back, as here, they run into the dashboard's client-side limit of 50 requests a second (kubectl's), which sets their p50 near 20 ms. The list and search are answered from the informer cache.\n")
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\n%s\n", n)
	}
	return b.String()
}
