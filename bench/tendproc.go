package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// buildTend builds ./cmd/tend of the module at root into dir, with the
// Makefile's build tags (GO_TAGS), as `make build` does.
func buildTend(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "tend")
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "kustomize_disable_go_plugin_support", "-o", bin, "./cmd/tend")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/tend: %w\n%s", err, out)
	}
	return bin, nil
}

// tendProc is `tend controller` running as its own process, so that its
// memory and CPU are its own (/proc/<pid>) and not the benchmark's.
type tendProc struct {
	cmd        *exec.Cmd
	logPath    string
	metricsURL string
	probeURL   string
	webhookURL string
	pprofURL   string // "" when the binary has no --pprof-addr
	done       chan struct{}
	waitErr    error
}

// tendOptions say how to run the controller.
type tendOptions struct {
	Bin, Kubeconfig, Namespace, DataDir, LogPath, WebhookSecret string
	// Extra flags appended to the command line (-controller-args).
	Extra []string
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// hasFlag says whether `tend controller --help` lists flag.
func hasFlag(ctx context.Context, bin, flag string) bool {
	out, _ := exec.CommandContext(ctx, bin, "controller", "--help").CombinedOutput()
	return bytes.Contains(out, []byte(flag+" "))
}

// startTend starts the controller restricted to one namespace, with every
// listener on a free loopback port and leader election off, and waits until
// it is ready.
func startTend(ctx context.Context, o tendOptions) (*tendProc, error) {
	var addrs [4]string
	for i := range addrs {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		addrs[i] = a
	}
	args := []string{"controller",
		"--kubeconfig", o.Kubeconfig,
		"--watch-namespace", o.Namespace,
		"--leader-election-namespace", o.Namespace,
		"--metrics-addr", addrs[0],
		"--probe-addr", addrs[1],
		"--webhook-addr", addrs[2],
		"--webhook-secret", o.WebhookSecret,
		"--data-dir", o.DataDir,
		"--log-json",
	}
	p := &tendProc{
		logPath:    o.LogPath,
		metricsURL: "http://" + addrs[0] + "/metrics",
		probeURL:   "http://" + addrs[1] + "/readyz",
		webhookURL: "http://" + addrs[2] + "/hooks/generic",
		done:       make(chan struct{}),
	}
	if hasFlag(ctx, o.Bin, "--pprof-addr") {
		args = append(args, "--pprof-addr", addrs[3])
		p.pprofURL = "http://" + addrs[3] + "/debug/pprof"
	}
	args = append(args, o.Extra...)
	logf, err := os.Create(o.LogPath)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(o.Bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start tend controller: %w", err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := http.Get(p.probeURL); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("tend controller exited before it was ready (%v):\n%s", p.waitErr, tail(o.LogPath, 30))
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("tend controller not ready after 60s:\n%s", tail(o.LogPath, 30))
		}
	}
}

func (p *tendProc) pid() int { return p.cmd.Process.Pid }

// exited reports an unexpected exit.
func (p *tendProc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("tend controller exited (%v):\n%s", p.waitErr, tail(p.logPath, 30))
	default:
		return nil
	}
}

// stop sends SIGTERM, and SIGKILL to the process group after 15 s.
func (p *tendProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// profile saves a pprof profile (kind "profile?seconds=N" or "heap") to
// path, when the controller serves pprof.
func (p *tendProc) profile(ctx context.Context, kind, path string) error {
	if p.pprofURL == "" {
		return errors.New("tend controller has no --pprof-addr flag")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.pprofURL+"/"+kind, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof %s: %s", kind, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat;
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuSeconds is the process's user + system CPU time.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields count from after
	// its closing parenthesis, where field 3 (state) is index 0.
	s := string(b)
	s = s[strings.LastIndexByte(s, ')')+1:]
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return float64(ut+st) / clockTicks, nil
}

// memStatus reads VmRSS and VmHWM (peak RSS since start) in bytes.
func memStatus(pid int) (rss, hwm uint64, err error) {
	m, err := procStatus(pid)
	return m["VmRSS"], m["VmHWM"], err
}

// procStatus reads the memory lines of /proc/<pid>/status (VmRSS, VmHWM,
// RssAnon, RssFile, ...) in bytes.
func procStatus(pid int) (map[string]uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok || !strings.HasSuffix(v, " kB") {
			continue
		}
		var kb uint64
		if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d", &kb); err == nil {
			out[k] = kb << 10
		}
	}
	return out, nil
}

// phaseStats is what the sampler saw of the controller during one phase.
type phaseStats struct {
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpuSeconds"`
	PeakRSS    uint64  `json:"peakRSSBytes"`
	// PeakRSSAnon and PeakRSSFile split the peak RSS sample: anonymous
	// memory (the Go heap, stacks, runtime) and pages of files mapped in,
	// almost all of them the tend binary's own code and data.
	PeakRSSAnon     uint64 `json:"peakRSSAnonBytes,omitempty"`
	PeakRSSFile     uint64 `json:"peakRSSFileBytes,omitempty"`
	PeakGoSys       uint64 `json:"peakGoSysBytes,omitempty"` // go_memstats_sys_bytes: all memory the Go runtime obtained
	PeakHeapInuse   uint64 `json:"peakHeapInuseBytes"`
	PeakHeapAlloc   uint64 `json:"peakHeapAllocBytes"`
	ProcessPeakRSS  uint64 `json:"processPeakRSSBytes"` // VmHWM at the end of the phase: since the process started
	MetricsScrapes  int    `json:"metricsScrapes"`
	MetricsFailures int    `json:"metricsFailures,omitempty"`
}

// sampler reads the controller's RSS every tick and its heap from
// /metrics, keeping the maxima of the current phase, and notes when tend
// last wrote to the apiserver.
type sampler struct {
	proc   *tendProc
	every  time.Duration
	writes func() float64 // tend's write requests so far

	mu          sync.Mutex
	scrapeEvery time.Duration // how often /metrics is read (default every)
	lastScrape  time.Time
	cur         phaseStats
	start       time.Time
	startCPU    float64
	lastWrite   time.Time // when tend's write count last changed
	lastWrites  float64
}

func newSampler(p *tendProc, every time.Duration, writes func() float64) *sampler {
	s := &sampler{proc: p, every: every, writes: writes, scrapeEvery: every}
	s.start, s.lastWrite = time.Now(), time.Now()
	s.startCPU, _ = cpuSeconds(p.pid())
	return s
}

// run samples until ctx ends.
func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		s.sample(ctx, false)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sample reads RSS and, when due (or forced), the controller's /metrics.
func (s *sampler) sample(ctx context.Context, force bool) {
	m, err := procStatus(s.proc.pid())
	if err != nil {
		return
	}
	s.mu.Lock()
	if rss := m["VmRSS"]; rss > s.cur.PeakRSS {
		s.cur.PeakRSS, s.cur.PeakRSSAnon, s.cur.PeakRSSFile = rss, m["RssAnon"], m["RssFile"]
	}
	if w := s.writes(); w != s.lastWrites {
		s.lastWrites, s.lastWrite = w, time.Now()
	}
	due := force || time.Since(s.lastScrape) >= s.scrapeEvery
	s.mu.Unlock()
	if !due {
		return
	}
	sc, serr := scrapeURL(ctx, s.proc.metricsURL)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastScrape = time.Now()
	if serr != nil {
		s.cur.MetricsFailures++
		return
	}
	s.cur.MetricsScrapes++
	if v := sc.sum("go_memstats_heap_inuse_bytes", nil); !math.IsNaN(v) {
		s.cur.PeakHeapInuse = max(s.cur.PeakHeapInuse, uint64(v))
	}
	if v := sc.sum("go_memstats_heap_alloc_bytes", nil); !math.IsNaN(v) {
		s.cur.PeakHeapAlloc = max(s.cur.PeakHeapAlloc, uint64(v))
	}
	if v := sc.sum("go_memstats_sys_bytes", nil); !math.IsNaN(v) {
		s.cur.PeakGoSys = max(s.cur.PeakGoSys, uint64(v))
	}
}

// scrapeEach sets how often /metrics is read: each scrape costs the
// controller CPU (it serializes every metric and lists its Apps), which
// matters when the controller is otherwise idle.
func (s *sampler) scrapeEach(d time.Duration) {
	s.mu.Lock()
	s.scrapeEvery = d
	s.mu.Unlock()
}

// mark ends the current phase: it returns what was seen since the last
// mark and starts a new phase.
func (s *sampler) mark() phaseStats {
	s.sample(context.Background(), true)
	cpu, _ := cpuSeconds(s.proc.pid())
	_, hwm, _ := memStatus(s.proc.pid())
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.cur
	st.Seconds = time.Since(s.start).Seconds()
	st.CPUSeconds = cpu - s.startCPU
	st.ProcessPeakRSS = hwm
	s.cur = phaseStats{}
	s.start, s.startCPU = time.Now(), cpu
	return st
}

// latest reads the controller's /metrics now.
func (s *sampler) latest(ctx context.Context) (scrape, error) {
	return scrapeURL(ctx, s.proc.metricsURL)
}

// quietFor returns how long tend has sent no write request (as far as the
// sampler has seen).
func (s *sampler) quietFor() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Since(s.lastWrite)
}
