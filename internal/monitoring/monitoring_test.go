package monitoring_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/tend-gitops/tend/internal/monitoring"
	"github.com/tend-gitops/tend/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// grafanaDashboard is the part of Grafana's dashboard model the tests read.
type grafanaDashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name       string      `json:"name"`
			Type       string      `json:"type"`
			Query      any         `json:"query"`
			Definition string      `json:"definition"`
			Datasource *datasource `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct{ X, Y, W, H int }
	Targets    []struct {
		Datasource   *datasource `json:"datasource"`
		Expr         string      `json:"expr"`
		LegendFormat string      `json:"legendFormat"`
		RefID        string      `json:"refId"`
	} `json:"targets"`
}

func readDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	var d grafanaDashboard
	dec := json.NewDecoder(bytes.NewReader(monitoring.Dashboard()))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	return d
}

// labelValuesQuery is Grafana's label_values(SELECTOR, LABEL) variable query.
var labelValuesQuery = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// promQL is one PromQL expression of the dashboard or the alerts, with
// where it comes from and the labels its legend names.
type promQL struct {
	where, expr string
	legend      []string
}

var legendLabel = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)

// dashboardQueries returns the dashboard's PromQL: panel targets and
// the selectors of its variable queries.
func dashboardQueries(t *testing.T) []promQL {
	t.Helper()
	d := readDashboard(t)
	var out []promQL
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValuesQuery.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Fatalf("variable %s: query %q is not label_values(SELECTOR, LABEL)", v.Name, v.Definition)
		}
		out = append(out, promQL{where: "variable " + v.Name, expr: m[1], legend: []string{m[2]}})
	}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			var legend []string
			for _, m := range legendLabel.FindAllStringSubmatch(tg.LegendFormat, -1) {
				legend = append(legend, m[1])
			}
			out = append(out, promQL{where: "panel " + p.Title + " " + tg.RefID, expr: tg.Expr, legend: legend})
		}
	}
	return out
}

func TestDashboard(t *testing.T) {
	d := readDashboard(t)
	if d.UID != monitoring.DashboardUID || d.Title == "" {
		t.Errorf("uid %q, title %q; want uid %q and a title", d.UID, d.Title, monitoring.DashboardUID)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: Grafana would migrate the dashboard on every load", d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type == "datasource" && v.Query != "prometheus" {
			t.Errorf("variable %s picks %v data sources, want prometheus", v.Name, v.Query)
		}
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
			t.Errorf("variable %s does not query the chosen data source: %+v", v.Name, v.Datasource)
		}
	}
	if want := map[string]string{"datasource": "datasource", "namespace": "query", "job": "query"}; !reflect.DeepEqual(vars, want) {
		t.Errorf("variables %v, want %v", vars, want)
	}
	if len(d.Panels) == 0 {
		t.Fatal("no panels")
	}
	ids := map[int]string{}
	var cells [][24]string // rows of 24 grid columns
	for _, p := range d.Panels {
		if other, dup := ids[p.ID]; dup || p.ID <= 0 {
			t.Errorf("panel %q: id %d (also %q)", p.Title, p.ID, other)
		}
		ids[p.ID] = p.Title
		if p.Type != "timeseries" && p.Type != "stat" {
			t.Errorf("panel %q: type %q", p.Title, p.Type)
		}
		if p.Datasource == nil || *p.Datasource != (datasource{Type: "prometheus", UID: "${datasource}"}) {
			t.Errorf("panel %q: datasource %+v, want the datasource variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q query %s: datasource %+v, want the datasource variable", p.Title, tg.RefID, tg.Datasource)
			}
			if refs[tg.RefID] || tg.RefID == "" {
				t.Errorf("panel %q: refId %q repeated or empty", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
		}
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 || g.Y < 0 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
			continue
		}
		overlaps := ""
		for y := g.Y; y < g.Y+g.H; y++ {
			for len(cells) <= y {
				cells = append(cells, [24]string{})
			}
			for x := g.X; x < g.X+g.W; x++ {
				if cells[y][x] != "" && overlaps == "" {
					overlaps = cells[y][x]
				}
				cells[y][x] = p.Title
			}
		}
		if overlaps != "" {
			t.Errorf("panel %q overlaps %q", p.Title, overlaps)
		}
	}
	// Every query parses, and every panel shows only the chosen tend.
	for _, q := range dashboardQueries(t) {
		parsed, err := parseQuery(q.expr)
		if err != nil {
			t.Errorf("%s: %v", q.where, err)
			continue
		}
		if len(parsed.Selectors) == 0 {
			t.Errorf("%s: %s selects no metric", q.where, q.expr)
		}
		if strings.HasPrefix(q.where, "variable") {
			continue
		}
		for _, s := range parsed.Selectors {
			if !slices.Contains(s.Matchers, matcher{"job", "=~", "$job"}) || !slices.Contains(s.Matchers, matcher{"namespace", "=~", "$namespace"}) {
				t.Errorf("%s: %s is not restricted to the chosen job and namespace", q.where, s)
			}
		}
	}
}

func TestDashboardConfigMap(t *testing.T) {
	o := monitoring.Options{Namespace: "tend-system", Labels: map[string]string{"app.kubernetes.io/name": "tend", "app.kubernetes.io/version": "v1.2.3"}}
	cm := roundTrip(t, monitoring.DashboardConfigMap(o))
	if cm.GetAPIVersion() != "v1" || cm.GetKind() != "ConfigMap" || cm.GetName() != "tend-dashboard" || cm.GetNamespace() != "tend-system" {
		t.Errorf("got %s %s %s/%s", cm.GetAPIVersion(), cm.GetKind(), cm.GetNamespace(), cm.GetName())
	}
	want := map[string]string{"app.kubernetes.io/name": "tend", "app.kubernetes.io/version": "v1.2.3", "grafana_dashboard": "1"}
	if got := cm.GetLabels(); !reflect.DeepEqual(got, want) {
		t.Errorf("labels %v, want %v", got, want)
	}
	if len(o.Labels) != 2 {
		t.Errorf("the caller's labels were changed: %v", o.Labels)
	}
	data, _, _ := unstructured.NestedString(cm.Object, "data", "tend.json")
	if data != string(monitoring.Dashboard()) {
		t.Errorf("data tend.json is not the dashboard (%d bytes, want %d)", len(data), len(monitoring.Dashboard()))
	}
	// With zero Options: no namespace, only the sidecar's label.
	cm = roundTrip(t, monitoring.DashboardConfigMap(monitoring.Options{}))
	if cm.GetNamespace() != "" || !reflect.DeepEqual(cm.GetLabels(), map[string]string{"grafana_dashboard": "1"}) {
		t.Errorf("zero options: namespace %q, labels %v", cm.GetNamespace(), cm.GetLabels())
	}
}

func TestServiceMonitor(t *testing.T) {
	type serviceMonitor struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name, Namespace string
			Labels          map[string]string
		}
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			NamespaceSelector *struct {
				MatchNames []string `json:"matchNames"`
			} `json:"namespaceSelector"`
			Endpoints []struct{ Port, Path, Scheme string } `json:"endpoints"`
		} `json:"spec"`
	}
	o := monitoring.Options{
		Namespace: "gitops",
		Labels:    map[string]string{"release": "prometheus"},
		Selector:  map[string]string{"app.kubernetes.io/name": "tend", "app.kubernetes.io/instance": "x"},
	}
	var sm serviceMonitor
	fromYAML(t, monitoring.ServiceMonitor(o), &sm)
	if sm.APIVersion != "monitoring.coreos.com/v1" || sm.Kind != "ServiceMonitor" || sm.Metadata.Name != "tend" || sm.Metadata.Namespace != "gitops" {
		t.Errorf("got %s %s %s/%s", sm.APIVersion, sm.Kind, sm.Metadata.Namespace, sm.Metadata.Name)
	}
	if !reflect.DeepEqual(sm.Metadata.Labels, o.Labels) {
		t.Errorf("labels %v, want %v", sm.Metadata.Labels, o.Labels)
	}
	if !reflect.DeepEqual(sm.Spec.Selector.MatchLabels, o.Selector) {
		t.Errorf("selects %v, want %v", sm.Spec.Selector.MatchLabels, o.Selector)
	}
	if sm.Spec.NamespaceSelector == nil || !reflect.DeepEqual(sm.Spec.NamespaceSelector.MatchNames, []string{"gitops"}) {
		t.Errorf("namespaceSelector %+v, want tend's namespace", sm.Spec.NamespaceSelector)
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "http-metrics" || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("endpoints %+v, want port http-metrics, path /metrics", sm.Spec.Endpoints)
	}
	// Zero Options select tend's Service by name, never every Service.
	sm = serviceMonitor{}
	fromYAML(t, monitoring.ServiceMonitor(monitoring.Options{}), &sm)
	if want := map[string]string{"app.kubernetes.io/name": "tend"}; !reflect.DeepEqual(sm.Spec.Selector.MatchLabels, want) {
		t.Errorf("zero options select %v, want %v", sm.Spec.Selector.MatchLabels, want)
	}
	if sm.Spec.NamespaceSelector != nil || sm.Metadata.Namespace != "" {
		t.Errorf("zero options: namespace %q, namespaceSelector %+v", sm.Metadata.Namespace, sm.Spec.NamespaceSelector)
	}
}

type prometheusRule struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name, Namespace string
		Labels          map[string]string
	}
	Spec struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Record      string            `json:"record"`
				Expr        string            `json:"expr"`
				For         string            `json:"for"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// ruleQueries returns the alerts' expressions.
func ruleQueries(t *testing.T, o monitoring.Options) []promQL {
	t.Helper()
	var r prometheusRule
	fromYAML(t, monitoring.PrometheusRule(o), &r)
	var out []promQL
	for _, g := range r.Spec.Groups {
		for _, rule := range g.Rules {
			out = append(out, promQL{where: "alert " + rule.Alert, expr: rule.Expr})
		}
	}
	return out
}

func TestPrometheusRule(t *testing.T) {
	o := monitoring.Options{Namespace: "tend-system", Labels: map[string]string{"release": "prometheus"}}
	var r prometheusRule
	fromYAML(t, monitoring.PrometheusRule(o), &r)
	if r.APIVersion != "monitoring.coreos.com/v1" || r.Kind != "PrometheusRule" || r.Metadata.Name != "tend" || r.Metadata.Namespace != "tend-system" {
		t.Errorf("got %s %s %s/%s", r.APIVersion, r.Kind, r.Metadata.Namespace, r.Metadata.Name)
	}
	if !reflect.DeepEqual(r.Metadata.Labels, o.Labels) {
		t.Errorf("labels %v, want %v", r.Metadata.Labels, o.Labels)
	}
	var names []string
	for _, g := range r.Spec.Groups {
		if g.Name == "" {
			t.Error("a rule group without a name")
		}
		for _, rule := range g.Rules {
			names = append(names, rule.Alert)
			if rule.Alert == "" || rule.Record != "" {
				t.Errorf("rule %+v is not an alert", rule)
			}
			if d, err := time.ParseDuration(rule.For); err != nil || d <= 0 {
				t.Errorf("%s: for %q", rule.Alert, rule.For)
			}
			if s := rule.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q", rule.Alert, s)
			}
			if rule.Annotations["summary"] == "" {
				t.Errorf("%s has no summary", rule.Alert)
			}
			if d := rule.Annotations["description"]; !strings.Contains(d, "`tend ") && !strings.Contains(d, "`kubectl ") {
				t.Errorf("%s: description does not say what to run: %q", rule.Alert, d)
			}
			q, err := parseQuery(rule.Expr)
			if err != nil {
				t.Errorf("%s: %v", rule.Alert, err)
				continue
			}
			for _, s := range q.Selectors {
				if !slices.Contains(s.Matchers, matcher{"namespace", "=", "tend-system"}) {
					t.Errorf("%s: %s is not restricted to the install's namespace", rule.Alert, s)
				}
			}
		}
	}
	// Users route and silence alerts by name: these never change.
	want := []string{"TendAppDegraded", "TendAppSyncFailing", "TendSourceFetchFailing", "TendNotificationsFailing", "TendControllerDown"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("alerts %q, want %q", names, want)
	}
	// A target that vanished fires the controller alert as a down one does.
	for _, q := range ruleQueries(t, monitoring.Options{}) {
		if q.where == "alert TendControllerDown" && q.expr != `absent(up{job="tend"} == 1)` {
			t.Errorf("TendControllerDown without a namespace: %s", q.expr)
		}
	}
}

func TestObjectsAreDeterministic(t *testing.T) {
	o := monitoring.Options{Namespace: "tend-system", Labels: map[string]string{"b": "2", "a": "1"}, Selector: map[string]string{"y": "1", "x": "2"}}
	for name, f := range map[string]func(monitoring.Options) *unstructured.Unstructured{
		"ConfigMap":      monitoring.DashboardConfigMap,
		"ServiceMonitor": monitoring.ServiceMonitor,
		"PrometheusRule": monitoring.PrometheusRule,
	} {
		a, err := yaml.Marshal(f(o).Object)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := yaml.Marshal(f(o).Object)
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two calls", name)
		}
		// Unstructured objects must deep-copy: their maps hold only JSON types.
		if u := f(o); !reflect.DeepEqual(u.DeepCopy().Object, u.Object) {
			t.Errorf("%s does not deep-copy", name)
		}
	}
	d := monitoring.Dashboard()
	d[0] = 'x'
	if monitoring.Dashboard()[0] == 'x' {
		t.Error("Dashboard returns the embedded bytes: callers can change them")
	}
}

// roundTrip passes an object through YAML, as it reaches the cluster.
func roundTrip(t *testing.T, u *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	var m map[string]any
	fromYAML(t, u, &m)
	return &unstructured.Unstructured{Object: m}
}

func fromYAML(t *testing.T, u *unstructured.Unstructured, into any) {
	t.Helper()
	b, err := yaml.Marshal(u.Object)
	if err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	if err := yaml.UnmarshalStrict(b, into); err != nil {
		t.Fatalf("%s %s is not valid YAML for its kind: %v\n%s", u.GetKind(), u.GetName(), err, b)
	}
}
