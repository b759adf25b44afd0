package monitoring

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// alert is one Prometheus alerting rule. Names are stable: users route
// and silence by them.
type alert struct {
	name     string
	expr     string
	forDur   string
	severity string
	summary  string
	desc     string
}

// alerts returns tend's alerting rules. With a namespace they watch only
// the tend installed there, so that each install's rule alerts once.
func alerts(namespace string) []alert {
	// sel adds the install's namespace to a selector's matchers.
	sel := func(matchers ...string) string {
		if namespace != "" {
			matchers = append(matchers, fmt.Sprintf("namespace=%q", namespace))
		}
		return "{" + strings.Join(matchers, ", ") + "}"
	}
	// Every replica counts all Apps: sum within a replica, max over them.
	apps := func(matcher string) string {
		return "max by (namespace, job) (sum by (namespace, job, instance) (tend_apps" + sel(matcher) + "))"
	}
	return []alert{
		{
			name:     "TendAppDegraded",
			expr:     apps(`health="Degraded"`) + " > 0",
			forDur:   "10m",
			severity: "warning",
			summary:  "Apps managed by tend are Degraded.",
			desc: "{{ $value }} App(s) managed by the tend in {{ $labels.namespace }} have been Degraded for 10 minutes: an object they applied failed and will not recover by waiting. " +
				"`tend get apps -A` lists them; `tend get app NAME -n NAMESPACE` names the object and the reason; `kubectl describe` that object shows its events.",
		},
		{
			name:     "TendAppSyncFailing",
			expr:     apps(`sync="Failed"`) + " > 0",
			forDur:   "15m",
			severity: "warning",
			summary:  "Syncs of Apps managed by tend keep failing.",
			desc: "{{ $value }} App(s) managed by the tend in {{ $labels.namespace }} have had a failed last sync for 15 minutes; tend retries with backoff. " +
				"`tend get apps -A` lists them; `tend get app NAME -n NAMESPACE` and `kubectl describe apps.tend.dev NAME -n NAMESPACE` show the error (a render error names the file and commit).",
		},
		{
			name:     "TendSourceFetchFailing",
			expr:     "sum by (namespace, job) (rate(tend_source_fetch_duration_seconds_count" + sel(`result="Failed"`) + "[5m])) > 0",
			forDur:   "15m",
			severity: "warning",
			summary:  "tend cannot fetch Sources.",
			desc: "Source fetches of the tend in {{ $labels.namespace }} have kept failing for 15 minutes, so Apps do not get new commits or charts. " +
				"`tend get sources -A` shows which Source fails; `kubectl describe sources.tend.dev NAME -n NAMESPACE` shows the error (unreachable repository, credentials, missing ref).",
		},
		{
			name: "TendNotificationsFailing",
			expr: "sum by (namespace, job, notifier) (increase(tend_notifications_total" + sel(`result=~"failed|dropped"`) + "[15m])) > 0" +
				" unless on (namespace, job, notifier) sum by (namespace, job, notifier) (increase(tend_notifications_total" + sel(`result="sent"`) + "[15m])) > 0",
			forDur:   "15m",
			severity: "warning",
			summary:  "tend cannot deliver notifications.",
			desc: "Notifier {{ $labels.notifier }} of the tend in {{ $labels.namespace }} has failed every delivery for 15 minutes (or tend dropped messages because its queue was full). " +
				"`tend get notifiers -A` and `kubectl describe notifiers.tend.dev NAME -n NAMESPACE` show the last error; check the provider's address, the token and the Notifier's Secret.",
		},
		{
			name:     "TendControllerDown",
			expr:     "absent(up" + sel(fmt.Sprintf("job=%q", Job)) + " == 1)",
			forDur:   "5m",
			severity: "critical",
			summary:  "No tend controller is up.",
			desc: "Prometheus has scraped no tend controller for 5 minutes: nothing syncs Apps or fetches Sources. " +
				"`kubectl get pods -n NAMESPACE -l app.kubernetes.io/name=tend` and `kubectl describe pod` show why (crash loop, scheduling, image pull); `kubectl logs` the controller. If the pods run, check that the ServiceMonitor `tend` selects the Service.",
		},
	}
}

// PrometheusRule returns the monitoring.coreos.com/v1 PrometheusRule
// "tend" with tend's alerts: TendAppDegraded, TendAppSyncFailing,
// TendSourceFetchFailing, TendNotificationsFailing and TendControllerDown.
func PrometheusRule(o Options) *unstructured.Unstructured {
	u := object("monitoring.coreos.com/v1", "PrometheusRule", Name, o.Namespace, o.Labels)
	var rules []any
	for _, a := range alerts(o.Namespace) {
		rules = append(rules, map[string]any{
			"alert":  a.name,
			"expr":   a.expr,
			"for":    a.forDur,
			"labels": map[string]any{"severity": a.severity},
			"annotations": map[string]any{
				"summary":     a.summary,
				"description": a.desc,
			},
		})
	}
	u.Object["spec"] = map[string]any{
		"groups": []any{map[string]any{"name": "tend", "rules": rules}},
	}
	return u
}
