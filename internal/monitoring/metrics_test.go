package monitoring_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/monitoring"
	"github.com/tend-gitops/tend/internal/notify"
	"github.com/tend-gitops/tend/internal/testenv"
)

// targetLabels are the labels Prometheus (and the Prometheus Operator,
// from the ServiceMonitor) puts on every scraped series; tend does not
// export them.
var targetLabels = []string{"job", "instance", "namespace", "service", "pod", "container", "endpoint"}

// exported maps the series names a scrape of /metrics has (histograms'
// _bucket, _sum and _count included) to their label sets.
type exported map[string][]map[string]string

// gather reads the registry controller-runtime serves on /metrics.
func gather(t *testing.T) exported {
	t.Helper()
	mfs, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	out := exported{}
	for _, mf := range mfs {
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			with := func(k, v string) map[string]string {
				c := map[string]string{k: v}
				for lk, lv := range labels {
					c[lk] = lv
				}
				return c
			}
			switch mf.GetType().String() {
			case "HISTOGRAM", "GAUGE_HISTOGRAM":
				for _, b := range m.GetHistogram().GetBucket() {
					out[name+"_bucket"] = append(out[name+"_bucket"], with("le", strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)))
				}
				out[name+"_bucket"] = append(out[name+"_bucket"], with("le", "+Inf"))
				out[name+"_sum"] = append(out[name+"_sum"], labels)
				out[name+"_count"] = append(out[name+"_count"], labels)
			case "SUMMARY":
				for _, q := range m.GetSummary().GetQuantile() {
					out[name] = append(out[name], with("quantile", strconv.FormatFloat(q.GetQuantile(), 'g', -1, 64)))
				}
				out[name+"_sum"] = append(out[name+"_sum"], labels)
				out[name+"_count"] = append(out[name+"_count"], labels)
			default:
				out[name] = append(out[name], labels)
			}
		}
	}
	return out
}

// check returns what in q does not match the exported series: metrics
// that are not exported, selectors no series matches (a label or value
// tend never exports), and grouping or legend labels no selected metric
// has.
func (e exported) check(q promQL) []string {
	parsed, err := parseQuery(q.expr)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", q.where, err)}
	}
	var problems []string
	known := map[string]bool{}
	for _, l := range targetLabels {
		known[l] = true
	}
	for _, s := range parsed.Selectors {
		if s.Metric == "up" {
			// Prometheus's own, one series per target: only target labels.
			for _, m := range s.Matchers {
				if !slices.Contains(targetLabels, m.Label) {
					problems = append(problems, fmt.Sprintf("%s: %s: up has no label %s", q.where, s, m.Label))
				}
			}
			continue
		}
		series, ok := e[s.Metric]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: %s is not a metric tend exports", q.where, s.Metric))
			continue
		}
		for _, labels := range series {
			for l := range labels {
				known[l] = true
			}
		}
		if !slices.ContainsFunc(series, func(labels map[string]string) bool { return selects(s, labels) }) {
			problems = append(problems, fmt.Sprintf("%s: %s selects none of tend's series: %v", q.where, s, labelSets(series)))
		}
	}
	for _, l := range append(parsed.Grouping, q.legend...) {
		if !known[l] {
			problems = append(problems, fmt.Sprintf("%s: label %s is on no metric of %s", q.where, l, q.expr))
		}
	}
	return problems
}

// selects tells whether a series with labels matches s, taking
// matchers on target labels and on Grafana variables as matching any
// value tend exports.
func selects(s selector, labels map[string]string) bool {
	for _, m := range s.Matchers {
		if slices.Contains(targetLabels, m.Label) {
			continue
		}
		v, has := labels[m.Label]
		if strings.Contains(m.Value, "$") {
			if !has && (m.Op == "=" || m.Op == "=~") {
				return false
			}
			continue
		}
		var ok bool
		switch m.Op {
		case "=":
			ok = v == m.Value
		case "!=":
			ok = v != m.Value
		case "=~", "!~":
			re, err := regexp.Compile("^(?:" + m.Value + ")$")
			if err != nil {
				return false
			}
			ok = re.MatchString(v) == (m.Op == "=~")
		}
		if !ok {
			return false
		}
	}
	return true
}

// labelSets shows a metric's series in a failure message.
func labelSets(series []map[string]string) string {
	var sets []string
	for _, labels := range series {
		var kv []string
		for k, v := range labels {
			kv = append(kv, k+"="+strconv.Quote(v))
		}
		sort.Strings(kv)
		sets = append(sets, "{"+strings.Join(kv, ",")+"}")
	}
	sort.Strings(sets)
	if len(sets) > 8 {
		sets = append(sets[:8], fmt.Sprintf("... (%d series)", len(sets)))
	}
	return strings.Join(sets, " ")
}

func TestExportedMetricsCheck(t *testing.T) {
	e := exported{
		"tend_syncs_total":   {{"result": "Succeeded"}, {"result": "Failed"}},
		"tend_x_bucket":      {{"result": "Failed", "le": "+Inf"}},
		"tend_notifications": {{"notifier": "a/b", "result": "sent"}},
	}
	for _, tc := range []struct {
		expr     string
		legend   []string
		problems int
	}{
		{expr: `sum by (result) (rate(tend_syncs_total{job=~"$job", namespace="x"}[5m]))`, legend: []string{"result", "pod"}},
		{expr: `tend_syncs_total{result="Failed"} unless tend_syncs_total{result!="Failed"}`},
		{expr: `histogram_quantile(0.9, sum by (le) (rate(tend_x_bucket{result=~"Fail.*"}[5m])))`},
		{expr: `absent(up{job="tend", namespace="x"} == 1)`},
		{expr: `tend_notifications{result=~"failed|sent", notifier=~"$n"}`},
		{expr: `tend_sync_total`, problems: 1},                                 // a typo in the name
		{expr: `tend_syncs_total{result="failed"}`, problems: 1},               // a value tend never exports
		{expr: `tend_syncs_total{reason="x"}`, problems: 1},                    // a label it does not have
		{expr: `tend_syncs_total{result=~"$r", reason=~"$x"}`, problems: 1},    // a label it does not have
		{expr: `sum by (results) (tend_syncs_total)`, problems: 1},             // grouping by a missing label
		{expr: `sum(tend_syncs_total)`, legend: []string{"verb"}, problems: 1}, // legend of a missing label
		{expr: `up{result="x"}`, problems: 1},                                  // up has only target labels
		{expr: `sum(rate(tend_syncs_total[5m])`, problems: 1},                  // does not parse
		{expr: `go_memstats_heap_inuse_bytes + tend_syncs_total`, problems: 1}, // one of two
	} {
		if got := e.check(promQL{where: "test", expr: tc.expr, legend: tc.legend}); len(got) != tc.problems {
			t.Errorf("%s: problems %q, want %d", tc.expr, got, tc.problems)
		}
	}
}

// TestQueriesUseExportedMetrics runs a tend controller against the local
// control plane, makes it export every series the dashboard and the
// alerts select (synced, failing and degraded Apps, a Source that cannot
// be fetched, notifications that are delivered and that fail), and
// checks each query against what it exports: a renamed metric or label
// breaks this test, not a user's dashboard.
func TestQueriesUseExportedMetrics(t *testing.T) {
	env := testenv.New(t)
	testenv.InstallCRDs(t, env.Config)
	ctx := context.Background()
	c, err := client.New(env.Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	hook := func(status int) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	repo := testenv.NewGitRepo(t, map[string]string{
		"good/cm.yaml":         "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: good\ndata:\n  a: b\n",
		"bad/cm.yaml":          "kind: ConfigMap\nmetadata: [not, a, map\n",
		"degraded/deploy.yaml": deploymentYAML("degraded", "tend.dev/kwok-pod: not-ready"),
	})
	source := func(name, url string) *tendv1.Source {
		return &tendv1.Source{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: env.Namespace}, Spec: tendv1.SourceSpec{
			Git:      &tendv1.GitSource{URL: url, Ref: tendv1.GitRef{Branch: "main"}},
			Interval: metav1.Duration{Duration: time.Second},
			Timeout:  metav1.Duration{Duration: 30 * time.Second},
		}}
	}
	app := func(name string) *tendv1.App {
		return &tendv1.App{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: env.Namespace}, Spec: tendv1.AppSpec{
			SourceRef:   tendv1.NamespacedObjectReference{Name: "repo"},
			Path:        name,
			Destination: tendv1.Destination{Namespace: env.Namespace},
			Sync:        tendv1.SyncPolicy{Prune: true},
			Health:      tendv1.HealthSpec{Timeout: metav1.Duration{Duration: 3 * time.Second}},
		}}
	}
	notifier := func(name, url string) *tendv1.Notifier {
		return &tendv1.Notifier{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: env.Namespace}, Spec: tendv1.NotifierSpec{Provider: "webhook", Address: url}}
	}

	cctx, cancel := context.WithCancel(ctx)
	ctl, err := controller.New(cctx, controller.Options{
		Config: env.Config, DataDir: t.TempDir(), MetricsAddr: "0", ProbeAddr: "0",
		Namespaces: []string{env.Namespace}, Version: "v0.0.0-monitoring",
		// One attempt: a failing delivery is counted at once.
		Notify: notify.Options{Attempts: 1},
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ctl.Start(cctx) }()
	t.Cleanup(func() {
		// Apps first, while the controller runs (finalizers), then stop it.
		var apps tendv1.AppList
		_ = c.List(ctx, &apps, client.InNamespace(env.Namespace))
		for i := range apps.Items {
			_ = c.Delete(ctx, &apps.Items[i])
		}
		testenv.Within(30*time.Second, func() bool {
			return c.List(ctx, &apps, client.InNamespace(env.Namespace)) == nil && len(apps.Items) == 0
		})
		cancel()
		<-done
	})
	for _, o := range []client.Object{
		notifier("ok", hook(http.StatusNoContent)),
		notifier("down", hook(http.StatusBadGateway)),
		source("repo", repo.URL),
		source("gone", repo.Server.URL+"/missing.git"),
		app("good"), app("bad"), app("degraded"),
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	var queries []promQL
	queries = append(queries, dashboardQueries(t)...)
	queries = append(queries, ruleQueries(t, monitoring.Options{Namespace: "tend-system"})...)
	// Series appear as the Apps sync, fail and degrade, and as
	// notifications go out: wait until every query finds its series.
	var problems []string
	testenv.Within(3*time.Minute, func() bool {
		e := gather(t)
		problems = nil
		for _, q := range queries {
			problems = append(problems, e.check(q)...)
		}
		return len(problems) == 0
	})
	for _, p := range problems {
		t.Error(p)
	}
}

func deploymentYAML(name, podAnnotations string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: 1
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
      annotations: {%[2]s}
    spec:
      containers:
      - name: app
        image: %[1]s:1
`, name, podAnnotations)
}
