package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// touchApp changes one object of App i: the "setting" of its first
// ConfigMap. Nothing else in the repository changes.
func touchApp(root string, i, configMaps int, value string) error {
	path := filepath.Join(root, "apps", appName(i), "config.yaml")
	return os.WriteFile(path, []byte(configYAML(appName(i), configMaps, "v1", value)), 0o644)
}

// hook posts a signed generic push event for the repository's main branch,
// as a forge or CI job would right after the push; it retries after a 429
// and returns the final status and how many 429s it got.
func (s *scaleRun) hook(ctx context.Context) (status, limited int, err error) {
	body, _ := json.Marshal(map[string]string{"repository": s.repo.URL, "ref": "refs/heads/main"})
	mac := hmac.New(sha256.New, []byte(s.secret))
	mac.Write(body)
	sig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.proc.webhookURL, bytes.NewReader(body))
		if err != nil {
			return 0, limited, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Tend-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, limited, fmt.Errorf("webhook: %w", err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests && limited < 3 {
			limited++
			wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			time.Sleep(time.Duration(max(wait, 1)) * time.Second)
			continue
		}
		if resp.StatusCode != http.StatusAccepted {
			return resp.StatusCode, limited, fmt.Errorf("webhook answered %s: %s", resp.Status, bytes.TrimSpace(msg))
		}
		return resp.StatusCode, limited, nil
	}
}

// commitOne commits a change to one object of App app, posts the webhook
// and measures until the object changed in the cluster, then until every
// App reports the commit (at most settle).
func (s *scaleRun) commitOne(ctx context.Context, app int, value string, settle time.Duration) (commitResult, int, error) {
	name := appName(app) + "-config-0"
	cr := commitResult{App: appName(app), AppliedSeconds: -1}
	cm, err := s.c.Clientset.CoreV1().ConfigMaps(s.ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return cr, 0, fmt.Errorf("read ConfigMap %s before the commit: %w", name, err)
	}

	t0 := time.Now()
	if err := touchApp(s.repo.Work, app, s.configMaps, value); err != nil {
		return cr, 0, err
	}
	if err := s.repo.commit("change " + name); err != nil {
		return cr, 0, err
	}
	if cr.Revision, err = s.repo.head(); err != nil {
		return cr, 0, err
	}
	cr.GitSeconds = time.Since(t0).Seconds()
	start := time.Now()
	status, limited, err := s.hook(ctx)
	cr.WebhookStatus = status
	if err != nil {
		return cr, limited, err
	}
	ok, err := s.waitConfigMap(ctx, name, value, cm.ResourceVersion, start.Add(s.cfg.PushTimeout))
	if err != nil {
		return cr, limited, err
	}
	if ok {
		cr.AppliedSeconds = time.Since(start).Seconds()
	}
	if cr.AppliedSeconds < 0 {
		s.cfg.Logf("commit %s: %s not changed %s after the webhook", shortSHA(cr.Revision), name, s.cfg.PushTimeout)
	}
	// Every App reports the new revision: the commit is fully handled.
	end := time.Now().Add(settle)
	for {
		if s.apps.atRevision(cr.Revision) >= s.cfg.Apps {
			cr.Settled = true
			break
		}
		if time.Now().After(end) || s.check() != nil {
			break
		}
		select {
		case <-ctx.Done():
			return cr, limited, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	cr.SettledSeconds = time.Since(start).Seconds()
	return cr, limited, s.check()
}

// waitConfigMap watches ConfigMap name from resourceVersion rv until its
// "setting" is value (true) or deadline passes (false). A watch the
// apiserver ends early (timeouts, "too large resource version" while its
// watch cache lags) is resumed after a read.
func (s *scaleRun) waitConfigMap(ctx context.Context, name, value, rv string, deadline time.Time) (bool, error) {
	cms := s.c.Clientset.CoreV1().ConfigMaps(s.ns)
	for time.Now().Before(deadline) {
		secs := int64(time.Until(deadline).Seconds()) + 1
		w, err := cms.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name, ResourceVersion: rv, TimeoutSeconds: &secs})
		if err == nil {
			found, closed := watchFor(ctx, w, value, deadline)
			w.Stop()
			if found {
				return true, nil
			}
			if !closed {
				break
			}
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		// Read the current state and resume from it.
		cm, err := cms.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, fmt.Errorf("read ConfigMap %s: %w", name, err)
		}
		if cm.Data["setting"] == value {
			return true, nil
		}
		rv = cm.ResourceVersion
		time.Sleep(50 * time.Millisecond)
	}
	return false, ctx.Err()
}

// watchFor reads w until a ConfigMap with setting value arrives (found),
// the watch ends (closed) or deadline passes.
func watchFor(ctx context.Context, w watch.Interface, value string, deadline time.Time) (found, closed bool) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok || ev.Type == watch.Error {
				return false, true
			}
			if o, isCM := ev.Object.(*corev1.ConfigMap); isCM && o.Data["setting"] == value {
				return true, false
			}
		case <-timer.C:
			return false, false
		case <-ctx.Done():
			return false, false
		}
	}
}

// scrapes is how many back-to-back reads of /metrics measureScrape times.
const scrapes = 20

// measureScrape reads the idle controller's /metrics scrapes times and
// records what one read costs it (CPU and allocation): the sampler's
// observer effect, and what any Prometheus scraping costs users.
func (s *scaleRun) measureScrape(ctx context.Context) error {
	first, err := s.samp.latest(ctx)
	if err != nil {
		return err
	}
	cpu0, _ := cpuSeconds(s.proc.pid())
	last := first
	for i := 0; i < scrapes; i++ {
		if last, err = s.samp.latest(ctx); err != nil {
			return err
		}
	}
	cpu1, _ := cpuSeconds(s.proc.pid())
	alloc := last.sum("go_memstats_alloc_bytes_total", nil) - first.sum("go_memstats_alloc_bytes_total", nil)
	s.res.Scrape = &scrapeCost{CPUMillis: 1000 * (cpu1 - cpu0) / scrapes, AllocBytes: nanZero(alloc) / scrapes}
	s.phase("measuring a /metrics scrape")
	return nil
}

func shortSHA(rev string) string {
	if len(rev) > 10 {
		return rev[:10]
	}
	return rev
}

// incremental makes runs one-App commits, one at a time, and measures what
// each costs: renders, syncs, requests and CPU between a quiet controller
// before and a quiet controller after.
func (s *scaleRun) incremental(ctx context.Context, runs int) error {
	logf := s.cfg.Logf
	if !s.waitQuiet(ctx, 3*time.Second, 3*time.Minute) {
		logf("incremental: tend still writing; measuring anyway")
	}
	s.phase("settling before the commits")
	if err := s.measureScrape(ctx); err != nil {
		return err
	}
	var applied, settled, cpu, writes []float64
	var renders, renderReqs, syncs []int
	res := &incrResult{Runs: runs, ReRendered: -1, Settled: true}
	for run := 0; run < runs; run++ {
		app := (run*s.cfg.Apps)/max(runs, 1) + s.cfg.Apps/(2*max(runs, 1))
		before, err := s.samp.latest(ctx)
		if err != nil {
			return err
		}
		pBefore := s.proxy.snapshot()
		cpu0, _ := cpuSeconds(s.proc.pid())
		cr, _, err := s.commitOne(ctx, app%s.cfg.Apps, fmt.Sprintf("incremental-%d", run+1), s.cfg.SettleTimeout)
		if err != nil {
			return err
		}
		s.waitQuiet(ctx, 3*time.Second, 2*time.Minute)
		after, err := s.samp.latest(ctx)
		if err != nil {
			return err
		}
		cpu1, _ := cpuSeconds(s.proc.pid())
		d := requestDelta(pBefore, s.proxy.snapshot())
		reqs := byVerb(d)
		rr := -1
		if after.has("tend_renders_total") {
			rr = int(after.sum("tend_renders_total", nil) - before.sum("tend_renders_total", nil))
		}
		rq := int(nanZero(after.sum("tend_render_duration_seconds_count", nil)) - nanZero(before.sum("tend_render_duration_seconds_count", nil)))
		sy := int(nanZero(after.sum("tend_syncs_total", nil)) - nanZero(before.sum("tend_syncs_total", nil)))
		applied, settled = append(applied, latency(cr)), append(settled, cr.SettledSeconds)
		cpu, writes = append(cpu, cpu1-cpu0), append(writes, countWrites(reqs))
		renders, renderReqs, syncs = append(renders, rr), append(renderReqs, rq), append(syncs, sy)
		res.Settled = res.Settled && cr.Settled
		res.All = append(res.All, cr)
		res.TendRequests, res.TendWritesByResource = reqs, writesByResource(d)
		rendered := "unknown (no tend_renders_total)"
		if rr >= 0 {
			rendered = strconv.Itoa(rr)
		}
		logf("incremental %d/%d: %s changed; applied %.2fs after the webhook, all Apps at the commit after %.1fs (settled %v); re-rendered %s, render requests %d, syncs %d, tend writes %.0f, CPU %.2fs",
			run+1, runs, cr.App, cr.AppliedSeconds, cr.SettledSeconds, cr.Settled, rendered, rq, sy, countWrites(reqs), cpu1-cpu0)
	}
	res.AppliedSeconds, res.SettledSeconds = finite(median(applied)), median(settled)
	res.CPUSeconds, res.TendWrites = median(cpu), median(writes)
	res.ReRendered, res.RenderRequests, res.Synced = medianInt(renders), medianInt(renderReqs), medianInt(syncs)
	s.res.Incremental = res
	s.phase("incremental")
	return nil
}

// push makes PushCommits commits, each to one object of a different App
// followed by a signed webhook, and reports push-to-applied latencies.
// Between commits it waits until every App reports the previous one (at
// most 20 s), as a team pushing every now and then would.
func (s *scaleRun) push(ctx context.Context) error {
	logf := s.cfg.Logf
	res := &pushResult{Commits: s.cfg.PushCommits}
	var lat []float64
	settle := min(20*time.Second, s.cfg.SettleTimeout)
	for k := 0; k < s.cfg.PushCommits; k++ {
		app := (k*37 + 11) % s.cfg.Apps
		cr, limited, err := s.commitOne(ctx, app, fmt.Sprintf("push-%d", k+1), settle)
		res.RateLimited += limited
		if err != nil {
			return err
		}
		res.All = append(res.All, cr)
		lat = append(lat, latency(cr))
		if cr.AppliedSeconds >= 0 {
			res.Applied++
		}
		logf("push %d/%d: %s applied %.2fs after the webhook", k+1, s.cfg.PushCommits, cr.App, cr.AppliedSeconds)
	}
	sort.Float64s(lat)
	res.P50, res.P95, res.Max = finite(percentile(lat, 50)), finite(percentile(lat, 95)), finite(lat[len(lat)-1])
	s.res.Push = res
	s.phase("push")
	logf("push to applied over %d commits: p50 %.2fs, p95 %.2fs, max %.2fs (%d applied)", len(lat), res.P50, res.P95, res.Max, res.Applied)
	return nil
}

// percentile of sorted xs, nearest rank.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// latency is a commit's push-to-applied time, +Inf when not applied.
func latency(cr commitResult) float64 {
	if cr.AppliedSeconds < 0 {
		return math.Inf(1)
	}
	return cr.AppliedSeconds
}

// finite turns +Inf and NaN (not applied, not measured) into -1, which
// JSON can hold.
func finite(v float64) float64 {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return -1
	}
	return v
}

func medianInt(xs []int) int {
	s := append([]int(nil), xs...)
	sort.Ints(s)
	return s[len(s)/2]
}

func nanZero(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}
