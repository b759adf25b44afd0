// Package monitoring owns the observability tend ships with, as Argo CD
// and Flux do: a Grafana dashboard over tend's own metrics, the
// Prometheus Operator ServiceMonitor that scrapes them and a
// PrometheusRule with the alerts an operator should get.
//
// The objects are built as unstructured objects, so that tend does not
// need the Prometheus Operator's Go types, and deterministically: the same
// Options always give the same objects, so generated manifests and the
// Helm chart change only when these do. This package's tests check every
// metric, label and label value the dashboard and the alerts query
// against what a real running controller exports.
package monitoring

import (
	_ "embed"
	"maps"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Options for the monitoring objects of one tend install.
type Options struct {
	// Namespace tend runs in; the objects go there too. Empty: the objects
	// get no namespace (the one they are applied to) and the alerts and
	// the ServiceMonitor are not restricted to one namespace.
	Namespace string
	// Labels are put on every object (e.g. app.kubernetes.io/name: tend
	// and the version). A Prometheus or Grafana that selects rules,
	// ServiceMonitors or dashboards by label needs its labels here.
	Labels map[string]string
	// Selector holds the labels of tend's metrics Service, which the
	// ServiceMonitor selects (default app.kubernetes.io/name: tend).
	Selector map[string]string
}

// Names of the objects and of what they refer to.
const (
	// Name names the ServiceMonitor and the PrometheusRule.
	Name = "tend"
	// DashboardName names the dashboard's ConfigMap.
	DashboardName = "tend-dashboard"
	// DashboardKey is the ConfigMap key holding the dashboard.
	DashboardKey = "tend.json"
	// DashboardUID is the dashboard's stable Grafana uid: links to
	// /d/tend keep working across versions.
	DashboardUID = "tend"
	// MetricsPort is the name of the metrics port of tend's Service.
	MetricsPort = "http-metrics"
	// Job is the job label Prometheus gives tend's targets: the Prometheus
	// Operator names the job after the Service, "tend".
	Job = "tend"
)

// GrafanaDashboardLabel is the label Grafana's dashboard sidecar (as in
// kube-prometheus-stack) looks for on ConfigMaps to load as dashboards.
const GrafanaDashboardLabel = "grafana_dashboard"

//go:embed dashboard.json
var dashboard []byte

// Dashboard returns the Grafana dashboard as JSON (a copy: callers may
// change it). Its data source is the variable "datasource" (any
// Prometheus), and the variables "namespace" and "job" pick the tend.
func Dashboard() []byte {
	return append([]byte(nil), dashboard...)
}

// DashboardConfigMap returns the ConfigMap "tend-dashboard" holding the
// dashboard under "tend.json", labelled grafana_dashboard: "1" so that
// Grafana's sidecar loads it.
func DashboardConfigMap(o Options) *unstructured.Unstructured {
	labels := maps.Clone(o.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[GrafanaDashboardLabel] = "1"
	u := object("v1", "ConfigMap", DashboardName, o.Namespace, labels)
	u.Object["data"] = map[string]any{DashboardKey: string(dashboard)}
	return u
}

// ServiceMonitor returns the monitoring.coreos.com/v1 ServiceMonitor
// "tend", which has the Prometheus Operator scrape /metrics on the
// "http-metrics" port of tend's Service.
func ServiceMonitor(o Options) *unstructured.Unstructured {
	u := object("monitoring.coreos.com/v1", "ServiceMonitor", Name, o.Namespace, o.Labels)
	spec := map[string]any{
		"selector": map[string]any{"matchLabels": stringMap(selector(o))},
		"endpoints": []any{
			map[string]any{"port": MetricsPort, "path": "/metrics", "scheme": "http"},
		},
	}
	if o.Namespace != "" {
		spec["namespaceSelector"] = map[string]any{"matchNames": []any{o.Namespace}}
	}
	u.Object["spec"] = spec
	return u
}

// object returns an empty object of kind.
func object(apiVersion, kind, name, namespace string, labels map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	u.SetName(name)
	if namespace != "" {
		u.SetNamespace(namespace)
	}
	if len(labels) > 0 {
		u.SetLabels(maps.Clone(labels))
	}
	return u
}

func selector(o Options) map[string]string {
	if len(o.Selector) == 0 {
		return map[string]string{"app.kubernetes.io/name": "tend"}
	}
	return o.Selector
}

// stringMap converts to the map type unstructured objects hold, so that
// they deep-copy and convert.
func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
