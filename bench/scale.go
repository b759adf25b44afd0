package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// scaleConfig says what the scale benchmark runs.
type scaleConfig struct {
	// Apps and Objects per App (at least 4: Objects-3 ConfigMaps, a
	// Deployment, a Service and a Secret).
	Apps, Objects int
	// Steady is how long the steady-state phase watches an idle controller.
	Steady time.Duration
	// AppInterval is every App's spec.sync.interval (0: tend's default,
	// 10m). Each periodic reconcile reads the Apps' decryption Secret: the
	// steady state covers that read only if AppInterval is shorter than
	// Steady.
	AppInterval time.Duration
	// Runs is how many one-App commits the incremental phase makes.
	Runs int
	// PushCommits is how many webhook-triggered commits the push phase makes.
	PushCommits int
	// SyncOnly runs only baseline, cold sync and one one-App commit (the
	// scaling curve).
	SyncOnly bool
	// BaselineWorkers is the baseline's number of concurrent applies.
	BaselineWorkers int
	// ColdTimeout bounds the cold sync; PushTimeout one commit's wait for
	// its object; SettleTimeout the wait for every App to report a commit.
	ColdTimeout, PushTimeout, SettleTimeout time.Duration
	// Sample is the sampler's period.
	Sample time.Duration
	// TendBin is the tend binary; Kubeconfig the cluster; Out receives
	// controller logs and profiles; Work is scratch space.
	TendBin, Kubeconfig, Out, Work string
	// ControllerArgs are appended to `tend controller`.
	ControllerArgs []string
	// Soak, when positive, replaces the phases after the cold sync with an
	// endurance run this long: a commit every SoakCommitEvery, a drifted
	// object every SoakDriftEvery, a sample every SoakSampleEvery.
	Soak, SoakCommitEvery, SoakDriftEvery, SoakSampleEvery time.Duration
	// Dashboard has the controller serve its dashboard, with one
	// signed-in browser session on the App list throughout the run.
	Dashboard bool
	// TendBuild says which tend was measured; Note is printed with the
	// results.
	TendBuild, Note string
	Logf            func(string, ...any)
}

// scaleResult is what one scale run measured.
type scaleResult struct {
	Apps           int                    `json:"apps"`
	ObjectsPerApp  int                    `json:"objectsPerApp"`
	ControllerArgs []string               `json:"controllerArgs,omitempty"`
	TendBuild      string                 `json:"tend,omitempty"`
	Note           string                 `json:"note,omitempty"`
	Baseline       *baselineResult        `json:"baseline"`
	Cold           *coldResult            `json:"coldSync"`
	Steady         *steadyResult          `json:"steadyState,omitempty"`
	Incremental    *incrResult            `json:"incremental"`
	Push           *pushResult            `json:"push,omitempty"`
	Phases         map[string]*phaseStats `json:"phases"`
	PhaseOrder     []string               `json:"-"`
	PeakRSS        uint64                 `json:"peakRSSBytes"`
	Scrape         *scrapeCost            `json:"metricsScrape,omitempty"`
	Profiles       []string               `json:"profiles,omitempty"`
	ProfileNote    string                 `json:"profileNote,omitempty"`
	Targets        []target               `json:"targets"`
	ControllerLog  string                 `json:"controllerLog"`
	// Soak is the endurance run, when there was one.
	Soak *soakResult `json:"soak,omitempty"`
	// Dashboard is what the browser session did, when there was one.
	Dashboard *dashSessionResult `json:"dashboard,omitempty"`
}

type coldResult struct {
	// Seconds from creating the Source and AppSet until every App is
	// Synced and Healthy at the commit.
	Seconds float64 `json:"seconds"`
	// AppsCreatedSeconds is when the AppSet had created every App.
	AppsCreatedSeconds float64 `json:"appsCreatedSeconds"`
	Ready              int     `json:"appsReady"`
	Ratio              float64 `json:"ratioToBaseline"`
	// TendRequests are tend's API requests during the cold sync, by
	// verb; TendWrites its writes by verb and resource.
	TendRequests map[string]float64 `json:"tendRequests"`
	TendWrites   map[string]float64 `json:"tendWritesByResource"`
	// TendByResource has every request by verb and resource.
	TendByResource map[string]float64 `json:"tendRequestsByResource"`
	// Syncs counts the syncs in the Apps' history by their message ("new
	// revision", "self-heal: ..."); more syncs than Apps is work to explain.
	Syncs map[string]float64 `json:"syncs"`
}

type steadyResult struct {
	Seconds float64 `json:"seconds"`
	// RequestsPerMinute counts every request the controller sent, of any
	// verb, but watches and lease renewals (target: 0); Requests has them
	// by verb and resource, per minute.
	RequestsPerMinute float64            `json:"requestsPerMinute"`
	Requests          map[string]float64 `json:"requestsByResourcePerMinute"`
	// RequestPaths counts those requests by verb and URL path (not per
	// minute), so that a nonzero steady state names the objects.
	RequestPaths map[string]float64 `json:"requestsByPath,omitempty"`
	// WatchesPerMinute counts watch requests (streams opened or re-opened)
	// and LeaseRequestsPerMinute leader election's Lease reads and
	// renewals, apart from the requests.
	WatchesPerMinute       float64 `json:"watchesPerMinute"`
	LeaseRequestsPerMinute float64 `json:"leaseRequestsPerMinute"`
	// AppReconciles counts the App reconciles in the phase
	// (controller_runtime_reconcile_total): periodic ones read what the
	// Apps reference (their decryption Secret); -1 when not exported.
	AppReconciles float64 `json:"appReconciles"`
	// Per minute, every request the controller sent (counted by the
	// proxy in front of the apiserver), by verb; writes and dry runs also
	// by resource.
	TendPerMinute        map[string]float64 `json:"tendRequestsPerMinute"`
	TendWritesPerMinute  float64            `json:"tendWritesPerMinute"`
	TendDryRunsPerMinute float64            `json:"tendDryRunsPerMinute"`
	TendWrites           map[string]float64 `json:"tendWritesByResourcePerMinute"`
	// TendCounterPerMinute is tend's own tend_api_requests_total (its apply
	// connection only), per minute.
	TendCounterPerMinute map[string]float64 `json:"tendCounterPerMinute"`
	// Per minute, from the apiserver's apiserver_request_total: every
	// client of the apiserver, not only tend.
	APIServerPerMinute        map[string]float64 `json:"apiserverRequestsPerMinute"`
	APIServerDryRunsPerMinute float64            `json:"apiserverDryRunsPerMinute"`
	CPUSecondsPerMinute       float64            `json:"controllerCPUSecondsPerMinute"`
}

// incrResult is the median of the one-App commits.
type incrResult struct {
	Runs int `json:"runs"`
	// AppliedSeconds: push to the changed object in the cluster; -1 when
	// the median commit was not applied within the timeout.
	AppliedSeconds float64 `json:"appliedSeconds"`
	// SettledSeconds: until every App reports the new revision.
	SettledSeconds float64 `json:"settledSeconds"`
	Settled        bool    `json:"settled"`
	// ReRendered is the tend_renders_total delta; -1 when the controller
	// does not export it.
	ReRendered int `json:"appsReRendered"`
	// RenderRequests counts render requests, cache hits included
	// (tend_render_duration_seconds_count).
	RenderRequests int `json:"renderRequests"`
	// Synced counts syncs (tend_syncs_total): Apps that applied something.
	Synced int `json:"appsSynced"`
	// TendWrites is the median number of tend's write requests per
	// commit; TendRequests and TendWritesByResource are the last commit's.
	TendWrites           float64            `json:"tendWrites"`
	TendRequests         map[string]float64 `json:"tendRequests"`
	TendWritesByResource map[string]float64 `json:"tendWritesByResource"`
	CPUSeconds           float64            `json:"controllerCPUSeconds"`
	All                  []commitResult     `json:"each"`
}

type pushResult struct {
	Commits     int            `json:"commits"`
	Applied     int            `json:"applied"`
	P50         float64        `json:"p50Seconds"`
	P95         float64        `json:"p95Seconds"`
	Max         float64        `json:"maxSeconds"`
	RateLimited int            `json:"rateLimited"`
	All         []commitResult `json:"each"`
}

type commitResult struct {
	App            string  `json:"app"`
	Revision       string  `json:"revision"`
	GitSeconds     float64 `json:"gitSeconds"` // commit + push into the served repository
	WebhookStatus  int     `json:"webhookStatus"`
	AppliedSeconds float64 `json:"appliedSeconds"` // -1: not applied within the timeout
	SettledSeconds float64 `json:"settledSeconds"`
	Settled        bool    `json:"settled"`
}

// scrapeCost is what one read of the idle controller's /metrics costs it.
type scrapeCost struct {
	CPUMillis  float64 `json:"cpuMillis"` // CPU time, at USER_HZ resolution over all reads
	AllocBytes float64 `json:"allocBytes"`
}

type target struct {
	Name     string `json:"name"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Met      string `json:"met"` // yes, no, n/a
}

// keysSecretName is the Secret every App names in spec.decryption: an age
// identity (the monorepo has nothing encrypted), read at each reconcile.
const keysSecretName = "bench-keys"

// scaleRun is one N: its repository, namespaces and controller.
type scaleRun struct {
	cfg        scaleConfig
	c          *cluster
	repo       *gitRepo
	ns, baseNS string
	configMaps int
	rev        string
	proc       *tendProc
	proxy      *apiProxy
	samp       *sampler
	apps       *appWatch
	secret     string
	res        *scaleResult
}

const webhookSecretName = "bench-webhook"

// benchScale runs the scale benchmark for cfg.Apps Apps on the cluster c.
func benchScale(ctx context.Context, c *cluster, cfg scaleConfig) (_ *scaleResult, err error) {
	if cfg.Objects < 4 {
		return nil, errors.New("-objects must be at least 4 (ConfigMaps, a Deployment, a Service and a Secret)")
	}
	id := randomID()
	s := &scaleRun{
		cfg: cfg, c: c, configMaps: cfg.Objects - 3,
		ns: "bench-" + id, baseNS: "bench-" + id + "-base",
		secret: "bench-" + randomID() + randomID(),
		res: &scaleResult{Apps: cfg.Apps, ObjectsPerApp: cfg.Objects, ControllerArgs: cfg.ControllerArgs,
			TendBuild: cfg.TendBuild, Note: cfg.Note, Phases: map[string]*phaseStats{}},
	}
	logf := cfg.Logf
	work := filepath.Join(cfg.Work, fmt.Sprintf("scale-%d-%s", cfg.Apps, id))
	if s.repo, err = newGitRepo(work); err != nil {
		return nil, err
	}
	defer s.repo.Close()
	if err := writeMonorepo(s.repo.Work, cfg.Apps, s.configMaps); err != nil {
		return nil, err
	}
	if err := s.repo.commit("monorepo"); err != nil {
		return nil, err
	}
	if s.rev, err = s.repo.head(); err != nil {
		return nil, err
	}
	logf("scale: %d Apps x %d objects in %s (namespaces %s, %s)", cfg.Apps, cfg.Objects, s.repo.URL, s.baseNS, s.ns)

	// Baseline.
	objs, err := renderAll(ctx, s.repo.Work, cfg.Apps, s.baseNS)
	if err != nil {
		return nil, err
	}
	if s.res.Baseline, err = runBaseline(ctx, c, s.baseNS, objs, cfg.BaselineWorkers, logf); err != nil {
		_, _ = c.deleteNamespace(context.WithoutCancel(ctx), s.baseNS, 15*time.Minute)
		return nil, fmt.Errorf("baseline: %w", err)
	}

	// tend.
	if err := c.createNamespace(ctx, s.ns); err != nil {
		return nil, err
	}
	defer func() {
		if s.proc != nil {
			s.proc.stop()
		}
		if s.proxy != nil {
			s.proxy.Close()
		}
		logf("deleting namespace %s", s.ns)
		if _, derr := c.deleteNamespace(context.WithoutCancel(ctx), s.ns, 15*time.Minute); derr != nil {
			err = errors.Join(err, derr)
		}
	}()
	if _, err := c.Clientset.CoreV1().Secrets(s.ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: webhookSecretName},
		StringData: map[string]string{"generic": s.secret},
	}, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	ageKey, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, err
	}
	if _, err := c.Clientset.CoreV1().Secrets(s.ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: keysSecretName},
		StringData: map[string]string{"bench.agekey": ageKey.String()},
	}, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if s.apps, err = watchApps(wctx, c, s.ns); err != nil {
		return nil, err
	}
	if s.proxy, err = newAPIProxy(c.Config); err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(work, "tend.kubeconfig")
	if err := s.proxy.writeKubeconfig(kubeconfig); err != nil {
		return nil, err
	}
	s.res.ControllerLog = filepath.Join(cfg.Out, fmt.Sprintf("controller-%d-apps.log", cfg.Apps))
	extra, dashAddr := cfg.ControllerArgs, ""
	if cfg.Dashboard {
		if dashAddr, err = freeAddr(); err != nil {
			return nil, err
		}
		extra = append(slices.Clone(extra), "--dashboard-addr="+dashAddr)
		s.res.ControllerLog = strings.TrimSuffix(s.res.ControllerLog, ".log") + "-dashboard.log"
	}
	s.proc, err = startTend(ctx, tendOptions{
		Bin: cfg.TendBin, Kubeconfig: kubeconfig, Namespace: s.ns,
		DataDir: filepath.Join(work, "tend-data"), LogPath: s.res.ControllerLog,
		WebhookSecret: webhookSecretName, Extra: extra,
	})
	if err != nil {
		return nil, err
	}
	if cfg.Dashboard {
		sess, err := openDashSession(ctx, c.Clientset, "http://"+dashAddr, s.ns)
		if err != nil {
			return nil, err
		}
		logf("a browser session is on the dashboard's App list at http://%s", dashAddr)
		defer func() { s.res.Dashboard = sess.close() }()
	}
	if s.proc.pprofURL == "" {
		s.res.ProfileNote = "tend controller has no --pprof-addr flag: no profiles"
	}
	s.samp = newSampler(s.proc, cfg.Sample, func() float64 { return countWrites(byVerb(s.proxy.snapshot())) })
	sctx, stopSampler := context.WithCancel(ctx)
	defer stopSampler()
	go s.samp.run(sctx)
	s.phase("startup")
	// Whatever happens next, judge what was measured.
	defer func() {
		for _, p := range s.res.Phases {
			s.res.PeakRSS = max(s.res.PeakRSS, p.PeakRSS, p.ProcessPeakRSS)
		}
		s.res.Targets = targets(s.res)
	}()

	if err := s.cold(ctx); err != nil {
		return s.res, fmt.Errorf("cold sync: %w", err)
	}
	if cfg.Soak > 0 {
		if err := s.soak(ctx); err != nil {
			return s.res, fmt.Errorf("soak: %w", err)
		}
		return s.res, nil
	}
	if !cfg.SyncOnly {
		if err := s.steady(ctx); err != nil {
			return s.res, fmt.Errorf("steady state: %w", err)
		}
	}
	runs := cfg.Runs
	if cfg.SyncOnly {
		runs = 1
	}
	if err := s.incremental(ctx, runs); err != nil {
		return s.res, fmt.Errorf("incremental: %w", err)
	}
	if !cfg.SyncOnly && cfg.PushCommits > 0 {
		if err := s.push(ctx); err != nil {
			return s.res, fmt.Errorf("push: %w", err)
		}
	}
	return s.res, nil
}

// phase ends the sampler's current phase and records it under name.
func (s *scaleRun) phase(name string) *phaseStats {
	st := s.samp.mark()
	s.res.Phases[name] = &st
	s.res.PhaseOrder = append(s.res.PhaseOrder, name)
	return &st
}

func (s *scaleRun) check() error {
	if s.proc != nil {
		return s.proc.exited()
	}
	return nil
}

// cold creates the Source and the AppSet and waits until every App is
// Synced and Healthy at the commit.
func (s *scaleRun) cold(ctx context.Context) error {
	logf := s.cfg.Logf
	before := s.proxy.snapshot()
	src := &tendv1.Source{
		ObjectMeta: metav1.ObjectMeta{Name: "monorepo", Namespace: s.ns},
		Spec: tendv1.SourceSpec{
			Git: &tendv1.GitSource{URL: s.repo.URL, Ref: tendv1.GitRef{Branch: "main"}},
			// Long enough that polling never applies a commit during the
			// benchmark: webhooks do.
			Interval: metav1.Duration{Duration: 10 * time.Minute},
		},
	}
	set := &tendv1.AppSet{
		ObjectMeta: metav1.ObjectMeta{Name: "apps", Namespace: s.ns},
		Spec: tendv1.AppSetSpec{
			Generators: []tendv1.Generator{{Directories: &tendv1.DirectoriesGenerator{
				SourceRef: tendv1.NamespacedObjectReference{Name: "monorepo"}, Include: []string{"apps/*"},
			}}},
			Template: tendv1.AppTemplate{
				Metadata: tendv1.AppTemplateMeta{Name: "{{path.basename}}"},
				Spec: tendv1.AppSpec{
					SourceRef:   tendv1.NamespacedObjectReference{Name: "monorepo"},
					Path:        "{{path}}",
					Destination: tendv1.Destination{Namespace: s.ns},
					Sync:        tendv1.SyncPolicy{Prune: true, Interval: metav1.Duration{Duration: s.cfg.AppInterval}},
					// Something every App references, read at each
					// reconcile (the steady state must not ask for it).
					Decryption: &tendv1.Decryption{SecretRef: tendv1.LocalObjectReference{Name: keysSecretName}},
				},
			},
		},
	}
	prof := s.startCPUProfile(ctx, "cold", 30*time.Second)
	start := time.Now()
	for _, o := range []client.Object{src, set} {
		if err := s.c.Client.Create(ctx, o); err != nil {
			return fmt.Errorf("create %T: %w", o, err)
		}
	}
	logf("cold sync: created Source and AppSet; waiting for %d Apps to be Synced and Healthy", s.cfg.Apps)
	res := &coldResult{}
	lastLog := time.Now()
	for {
		if err := s.check(); err != nil {
			return err
		}
		total, ready := s.apps.count(s.rev)
		if total >= s.cfg.Apps && res.AppsCreatedSeconds == 0 {
			res.AppsCreatedSeconds = time.Since(start).Seconds()
		}
		res.Ready = ready
		if ready >= s.cfg.Apps {
			break
		}
		if time.Since(start) > s.cfg.ColdTimeout {
			res.Seconds = time.Since(start).Seconds()
			d := requestDelta(before, s.proxy.snapshot())
			res.TendRequests, res.TendWrites, res.TendByResource = byVerb(d), writesByResource(d), d
			s.res.Cold = res
			s.phase("cold sync")
			return fmt.Errorf("only %d of %d Apps Synced and Healthy after %s (controller log: %s)", ready, s.cfg.Apps, s.cfg.ColdTimeout, s.res.ControllerLog)
		}
		if time.Since(lastLog) >= 15*time.Second {
			logf("cold sync: %.0fs: %d Apps exist, %d Synced and Healthy", time.Since(start).Seconds(), total, ready)
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	res.Seconds = time.Since(start).Seconds()
	if s.res.Baseline != nil && s.res.Baseline.Seconds > 0 {
		res.Ratio = res.Seconds / s.res.Baseline.Seconds
	}
	d := requestDelta(before, s.proxy.snapshot())
	res.TendRequests, res.TendWrites, res.TendByResource = byVerb(d), writesByResource(d), d
	res.Syncs = s.apps.syncs()
	s.res.Cold = res
	st := s.phase("cold sync")
	s.saveHeapProfile(ctx, "cold")
	prof()
	logf("cold sync: every App Synced and Healthy after %.1fs (%.2fx the baseline); controller CPU %.1fs, peak RSS %s",
		res.Seconds, res.Ratio, st.CPUSeconds, mib(st.PeakRSS))
	return nil
}

// waitQuiet waits until tend has sent no write for d (at most limit).
func (s *scaleRun) waitQuiet(ctx context.Context, d, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for s.samp.quietFor() < d {
		if time.Now().After(deadline) || s.check() != nil {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(s.cfg.Sample):
		}
	}
	return true
}

// steadyScrape is how often the steady-state phase reads the controller's
// /metrics: at 4 Hz the scrapes alone cost an idle controller about 0.8
// CPU-seconds a minute, more than everything else it does then.
const steadyScrape = 15 * time.Second

// steady watches the idle controller: no commit, no change in the cluster.
func (s *scaleRun) steady(ctx context.Context) error {
	logf := s.cfg.Logf
	if !s.waitQuiet(ctx, 10*time.Second, 5*time.Minute) {
		logf("steady state: tend still writing 5 minutes after the cold sync; measuring anyway")
	}
	s.phase("settling after cold sync")
	logf("steady state: watching for %s", s.cfg.Steady)
	prof := s.startCPUProfile(ctx, "steady", s.cfg.Steady)
	s.samp.scrapeEach(steadyScrape)
	defer s.samp.scrapeEach(s.cfg.Sample)
	tBefore, pBefore := s.proxy.snapshot(), s.proxy.pathSnapshot()
	cBefore, err := s.samp.latest(ctx)
	if err != nil {
		return err
	}
	aBefore, err := scrapeAPIServer(ctx, s.c.Clientset)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(s.cfg.Steady):
	}
	if err := s.check(); err != nil {
		return err
	}
	tAfter, pAfter := s.proxy.snapshot(), s.proxy.pathSnapshot()
	cAfter, err := s.samp.latest(ctx)
	if err != nil {
		return err
	}
	aAfter, err := scrapeAPIServer(ctx, s.c.Clientset)
	if err != nil {
		return err
	}
	st := s.phase("steady state")
	prof()
	// What the idle controller keeps: the heap profile of live data.
	s.saveHeapProfile(ctx, "steady")
	min := st.Seconds / 60
	res := &steadyResult{Seconds: st.Seconds, CPUSecondsPerMinute: st.CPUSeconds / min}
	d := requestDelta(tBefore, tAfter)
	res.TendPerMinute = perMinute(byVerb(d), min)
	res.TendWritesPerMinute = countWrites(res.TendPerMinute)
	res.TendDryRunsPerMinute = countDryRuns(res.TendPerMinute)
	res.TendWrites = perMinute(writesByResource(d), min)
	reqs, watches, leases := steadyRequests(d)
	res.Requests, res.WatchesPerMinute, res.LeaseRequestsPerMinute = perMinute(reqs, min), watches/min, leases/min
	for _, v := range reqs {
		res.RequestsPerMinute += v / min
	}
	if res.RequestsPerMinute > 0 {
		res.RequestPaths = requestDelta(pBefore, pAfter)
	}
	res.AppReconciles = -1
	if cAfter.has("controller_runtime_reconcile_total") {
		app := func(l map[string]string) bool { return l["controller"] == "app" }
		res.AppReconciles = cAfter.sum("controller_runtime_reconcile_total", app) - cBefore.sum("controller_runtime_reconcile_total", app)
	}
	res.TendCounterPerMinute = perMinute(requestDelta(cBefore.by("tend_api_requests_total", "verb", nil), cAfter.by("tend_api_requests_total", "verb", nil)), min)
	res.APIServerPerMinute = perMinute(requestDelta(aBefore.by("apiserver_request_total", "verb", nil), aAfter.by("apiserver_request_total", "verb", nil)), min)
	dry := func(l map[string]string) bool { return l["dry_run"] != "" }
	res.APIServerDryRunsPerMinute = (aAfter.sum("apiserver_request_total", dry) - aBefore.sum("apiserver_request_total", dry)) / min
	s.res.Steady = res
	logf("steady state: tend %.1f requests/min (%.1f writes, %.1f dry-runs; %.1f watches, %.1f lease requests apart) over %.0f App reconciles; apiserver (all clients) %.1f dry-runs/min; controller CPU %.2fs/min",
		res.RequestsPerMinute, res.TendWritesPerMinute, res.TendDryRunsPerMinute, res.WatchesPerMinute, res.LeaseRequestsPerMinute, res.AppReconciles, res.APIServerDryRunsPerMinute, res.CPUSecondsPerMinute)
	return nil
}

func perMinute(m map[string]float64, minutes float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		out[k] = v / minutes
	}
	return out
}

// appWatch keeps the bench namespace's Apps in an informer, so that
// waiting on them costs the apiserver one watch, not a list per poll.
type appWatch struct {
	cache cache.Cache
}

func watchApps(ctx context.Context, c *cluster, ns string) (*appWatch, error) {
	ca, err := cache.New(c.Config, cache.Options{Scheme: c.Client.Scheme(), DefaultNamespaces: map[string]cache.Config{ns: {}}})
	if err != nil {
		return nil, err
	}
	if _, err := ca.GetInformer(ctx, &tendv1.App{}); err != nil {
		return nil, err
	}
	go func() { _ = ca.Start(ctx) }()
	if !ca.WaitForCacheSync(ctx) {
		return nil, errors.New("the App informer did not sync")
	}
	return &appWatch{cache: ca}, nil
}

// count returns how many Apps exist and how many are Synced and Healthy at
// rev for their current spec.
func (w *appWatch) count(rev string) (total, ready int) {
	var list tendv1.AppList
	if err := w.cache.List(context.Background(), &list, client.UnsafeDisableDeepCopy); err != nil {
		return 0, 0
	}
	for i := range list.Items {
		a := &list.Items[i]
		if a.Status.Sync == tendv1.SyncSynced && a.Status.Health == "Healthy" && a.Status.Revision == rev && a.Status.ObservedGeneration == a.Generation {
			ready++
		}
	}
	return len(list.Items), ready
}

// syncs counts the syncs recorded in the Apps' history by message (the
// first word, or up to the colon: "new revision", "self-heal").
func (w *appWatch) syncs() map[string]float64 {
	var list tendv1.AppList
	if err := w.cache.List(context.Background(), &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	out := map[string]float64{}
	for i := range list.Items {
		for _, h := range list.Items[i].Status.History {
			msg, why, _ := strings.Cut(h.Message, ":")
			key := msg + " (" + strings.ToLower(h.Result) + ")"
			if h.Result != "Succeeded" && why != "" {
				// Failures by cause, names of Apps and namespaces elided.
				why = benchNames.ReplaceAllString(strings.TrimSpace(why), "…")
				if len(why) > 160 {
					why = why[:160] + "…"
				}
				key += ": " + why
			}
			out[key]++
		}
	}
	return out
}

// benchNames matches the generated App and namespace names in messages.
var benchNames = regexp.MustCompile(`app-[0-9]+|bench-[0-9a-f]+`)

// atRevision counts the Apps whose status reports rev.
func (w *appWatch) atRevision(rev string) int {
	var list tendv1.AppList
	if err := w.cache.List(context.Background(), &list, client.UnsafeDisableDeepCopy); err != nil {
		return 0
	}
	n := 0
	for i := range list.Items {
		if list.Items[i].Status.Revision == rev {
			n++
		}
	}
	return n
}

// startCPUProfile records a CPU profile of the controller for up to d in
// the background, when it serves pprof; the returned func waits for it.
func (s *scaleRun) startCPUProfile(ctx context.Context, name string, d time.Duration) func() {
	if s.proc.pprofURL == "" {
		return func() {}
	}
	secs := int(math.Max(1, math.Min(d.Seconds(), 60)))
	path := filepath.Join(s.cfg.Out, fmt.Sprintf("cpu-%s-%d-apps.pprof", name, s.cfg.Apps))
	done := make(chan error, 1)
	go func() { done <- s.proc.profile(ctx, fmt.Sprintf("profile?seconds=%d", secs), path) }()
	return func() {
		if err := <-done; err != nil {
			s.cfg.Logf("cpu profile %s: %v", name, err)
			return
		}
		s.res.Profiles = append(s.res.Profiles, path)
	}
}

func (s *scaleRun) saveHeapProfile(ctx context.Context, name string) {
	if s.proc.pprofURL == "" {
		return
	}
	path := filepath.Join(s.cfg.Out, fmt.Sprintf("heap-%s-%d-apps.pprof", name, s.cfg.Apps))
	if err := s.proc.profile(ctx, "heap", path); err != nil {
		s.cfg.Logf("heap profile %s: %v", name, err)
		return
	}
	s.res.Profiles = append(s.res.Profiles, path)
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// ensureDir creates dir (for -out).
func ensureDir(dir string) error { return os.MkdirAll(dir, 0o755) }
