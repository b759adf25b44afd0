package controller

import (
	"context"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/cluster"
	"github.com/tend-gitops/tend/internal/livestate"
	"github.com/tend-gitops/tend/internal/render"
)

// tendMetrics are tend's own Prometheus metrics, served on /metrics next
// to controller-runtime's (reconcile durations per controller, work queues).
type tendMetrics struct {
	syncs       *prometheus.CounterVec
	syncSeconds *prometheus.HistogramVec
	fetch       *prometheus.HistogramVec
	render      *prometheus.HistogramVec
	requests    *prometheus.CounterVec
	build       *prometheus.GaugeVec

	mu      sync.Mutex
	sources []stateSource
	caches  []*render.Cache
}

type stateSource struct {
	client   client.Client
	clusters *cluster.Clusters
}

var (
	metricsOnce sync.Once
	metricsInst *tendMetrics
)

// registerMetrics registers tend's metrics once per process.
func registerMetrics() *tendMetrics {
	metricsOnce.Do(func() {
		m := &tendMetrics{
			syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "tend_syncs_total", Help: "Syncs by result (Succeeded, Failed).",
			}, []string{"result"}),
			syncSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
				Name: "tend_sync_duration_seconds", Help: "Duration of syncs, including waits for health.",
				Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
			}, []string{"result"}),
			fetch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
				Name: "tend_source_fetch_duration_seconds", Help: "Duration of Source fetches.",
				Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
			}, []string{"result"}),
			render: prometheus.NewHistogramVec(prometheus.HistogramOpts{
				Name: "tend_render_duration_seconds", Help: "Duration of App renders (cache hits included).",
				Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
			}, []string{"result"}),
			requests: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "tend_api_requests_total", Help: "Requests tend sent to Kubernetes API servers, by cluster and verb.",
			}, []string{"cluster", "verb"}),
			build: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Name: "tend_build_info", Help: "1, labelled with the running tend's version, commit and Go version.",
			}, []string{"version", "commit", "goversion"}),
		}
		crmetrics.Registry.MustRegister(m.syncs, m.syncSeconds, m.fetch, m.render, m.requests, m.build, m)
		metricsInst = m
	})
	return metricsInst
}

// buildInfo sets tend_build_info for the binary ("dev" and "unknown" when
// it was built without version stamps).
func (m *tendMetrics) buildInfo(version, commit string) {
	if version == "" {
		version = "dev"
	}
	if commit == "" {
		commit = "unknown"
	}
	m.build.WithLabelValues(version, commit, runtime.Version()).Set(1)
}

var (
	appsDesc    = prometheus.NewDesc("tend_apps", "Apps by sync and health state.", []string{"sync", "health"}, nil)
	liveDesc    = prometheus.NewDesc("tend_live_objects", "Objects in the watch caches, by cluster and kind.", []string{"cluster", "group", "kind"}, nil)
	rendersDesc = prometheus.NewDesc("tend_renders_total", "App renders that ran (render cache misses). A commit should re-render only the Apps whose files it touched.", nil, nil)
	skipsDesc   = prometheus.NewDesc("tend_render_skips_total", "App render requests answered without rendering, by reason: hit (same revision and spec) or unaffected (the commit touched no file the App read).", []string{"reason"}, nil)
)

// Describe implements prometheus.Collector.
func (m *tendMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- appsDesc
	ch <- liveDesc
	ch <- rendersDesc
	ch <- skipsDesc
}

// AddRenderCache adds a render cache's counters to the scrape as
// tend_renders_total and tend_render_skips_total (summed over caches). The
// App reconciler's cache is registered when the controller is built.
func (m *tendMetrics) AddRenderCache(c *render.Cache) {
	m.mu.Lock()
	m.caches = append(m.caches, c)
	m.mu.Unlock()
}

// Collect implements prometheus.Collector: App states from the informer
// cache and live-cache sizes, computed at scrape time.
func (m *tendMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	sources := append([]stateSource(nil), m.sources...)
	caches := append([]*render.Cache(nil), m.caches...)
	m.mu.Unlock()
	if len(caches) > 0 {
		var st render.CacheStats
		for _, c := range caches {
			s := c.Stats()
			st.Renders += s.Renders
			st.Hits += s.Hits
			st.Reused += s.Reused
		}
		ch <- prometheus.MustNewConstMetric(rendersDesc, prometheus.CounterValue, float64(st.Renders))
		ch <- prometheus.MustNewConstMetric(skipsDesc, prometheus.CounterValue, float64(st.Hits), "hit")
		ch <- prometheus.MustNewConstMetric(skipsDesc, prometheus.CounterValue, float64(st.Reused), "unaffected")
	}
	counts := map[[2]string]int{}
	for _, s := range sources {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		// Read-only and from the informer cache: without deep copies, a
		// scrape of 1,000 Apps costs no more than counting them.
		var apps tendv1.AppList
		if err := s.client.List(ctx, &apps, client.UnsafeDisableDeepCopy); err == nil {
			for _, a := range apps.Items {
				counts[[2]string{orUnknown(a.Status.Sync), orUnknown(a.Status.Health)}]++
			}
		}
		cancel()
		for _, c := range s.clusters.All() {
			for gvk, n := range c.Live.Counts() {
				ch <- prometheus.MustNewConstMetric(liveDesc, prometheus.GaugeValue, float64(n), c.Display(), gvk.Group, gvk.Kind)
			}
		}
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(appsDesc, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "Unknown"
	}
	return s
}

// collector adds a controller's state to the scrape.
func (m *tendMetrics) addSource(c client.Client, clusters *cluster.Clusters) {
	m.mu.Lock()
	m.sources = append(m.sources, stateSource{client: c, clusters: clusters})
	m.mu.Unlock()
}

// wrapTransport counts requests by verb (dry runs separately).
func (m *tendMetrics) wrapTransport(cluster string, rt http.RoundTripper) http.RoundTripper {
	if cluster == "" {
		cluster = "in-cluster"
	}
	return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		verb := r.Method
		switch {
		case r.Method == http.MethodGet && r.URL.Query().Get("watch") == "true":
			verb = "WATCH"
		case r.URL.Query().Has("dryRun"):
			verb += "_DRYRUN"
		}
		m.requests.WithLabelValues(cluster, verb).Inc()
		return rt.RoundTrip(r)
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func resultLabel(err error) string {
	if err != nil {
		return "Failed"
	}
	return "Succeeded"
}

// handlerFunc adapts a function to livestate.Handler.
func handlerFunc(f func(gvk schema.GroupVersionKind, old, new *unstructured.Unstructured)) livestate.Handler {
	return livestate.HandlerFunc(f)
}
