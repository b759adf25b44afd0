package flux

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// Alerts become Notifiers with their Provider's type, address, channel
// and Secret: every Kustomization ("*"), named ones, or those with labels,
// and the Sources of GitRepositories, HelmRepositories and OCIRepositories
// (by kind, name or labels); the Provider may come after the Alert.
// Inclusion and exclusion lists, eventMetadata and summary are kept;
// what tend cannot honour is refused by field.
func TestConvertAlertsAndProviders(t *testing.T) {
	res := mustConvert(t, `
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {name: on-call, namespace: flux-system}
spec:
  providerRef: {name: slack}
  eventSeverity: error
  eventSources: [{kind: Kustomization, name: "*"}, {kind: GitRepository, name: "*"}]
  exclusionList: ["^Dependencies"]
`, `
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {name: fetches, namespace: flux-system}
spec:
  providerRef: {name: matrix}
  eventSources: [{kind: GitRepository, name: fleet}, {kind: OCIRepository, name: manifests}]
  inclusionList: ["fetch"]
  eventMetadata: {cluster: prod}
  summary: Production cluster
`, `
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {name: charts, namespace: flux-system}
spec:
  providerRef: {name: matrix}
  eventSources: [{kind: HelmRepository, name: "*", matchLabels: {tier: infra}}]
`, `
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {name: apps, namespace: flux-system}
spec:
  providerRef: {name: matrix}
  eventSources: [{kind: Kustomization, name: web}, {kind: HelmRelease, name: db}, {kind: Kustomization, name: web}]
`, `
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {name: team, namespace: flux-system}
spec:
  providerRef: {name: matrix}
  eventSources: [{kind: Kustomization, name: "*", matchLabels: {team: web}}]
  suspend: true
`, `
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {name: slack, namespace: flux-system}
spec: {type: slack, channel: C0123, address: https://slack.com/api/chat.postMessage, secretRef: {name: slack-token}}
`, `
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {name: matrix, namespace: flux-system}
spec: {type: matrix, address: https://matrix.example.org, channel: "!room:example.org", secretRef: {name: matrix-token}}
`)
	want := map[string]tendv1.NotifierSpec{
		"on-call": {Provider: "slack", Address: "https://slack.com/api", Channel: "C0123", SecretRef: &tendv1.LocalObjectReference{Name: "slack-token"}, Severity: "error",
			AppSelector: &metav1.LabelSelector{}, Sources: &tendv1.NotifierSources{Types: []tendv1.SourceType{"git"}}, ExclusionList: []string{"^Dependencies"}},
		"fetches": {Provider: "matrix", Address: "https://matrix.example.org", Channel: "!room:example.org", SecretRef: &tendv1.LocalObjectReference{Name: "matrix-token"}, Severity: "info",
			Sources: &tendv1.NotifierSources{Names: []string{"fleet", "manifests"}}, InclusionList: []string{"fetch"},
			Metadata: map[string]string{"cluster": "prod", "summary": "Production cluster"}},
		"charts": {Provider: "matrix", Address: "https://matrix.example.org", Channel: "!room:example.org", SecretRef: &tendv1.LocalObjectReference{Name: "matrix-token"}, Severity: "info",
			Sources: &tendv1.NotifierSources{Types: []tendv1.SourceType{"helm"}, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "infra"}}}},
		"apps": {Provider: "matrix", Address: "https://matrix.example.org", Channel: "!room:example.org", SecretRef: &tendv1.LocalObjectReference{Name: "matrix-token"}, Severity: "info", Apps: []string{"db", "web"}},
		"team": {Provider: "matrix", Address: "https://matrix.example.org", Channel: "!room:example.org", SecretRef: &tendv1.LocalObjectReference{Name: "matrix-token"}, Severity: "info",
			AppSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "web"}}, Suspend: true},
	}
	if len(res.Notifiers) != len(want) {
		t.Fatalf("Notifiers %v, want %d", res.Notifiers, len(want))
	}
	for _, n := range res.Notifiers {
		if n.Namespace != "flux-system" || n.Kind != "Notifier" || !reflect.DeepEqual(n.Spec, want[n.Name]) {
			t.Errorf("Notifier %s/%s %s:\n%+v\nwant\n%+v", n.Namespace, n.Name, n.Kind, n.Spec, want[n.Name])
		}
	}
	warnings := strings.Join(res.Warnings, "\n")
	for _, w := range []string{
		"Alert flux-system/on-call: spec.inclusionList and spec.exclusionList are matched against tend's own event messages",
	} {
		if !strings.Contains(warnings, w) {
			t.Errorf("warnings lack %q:\n%s", w, warnings)
		}
	}

	res = convert(t, `
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {name: lost, namespace: ns}
spec: {providerRef: {name: missing}, eventSources: [{kind: Kustomization, name: "*"}]}
`, `
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {name: odd, namespace: ns}
spec:
  providerRef: {name: pager}
  eventSources: [{kind: Kustomization, name: web, namespace: other}, {kind: GitRepository, name: "*"}, {kind: GitRepository, name: fleet}]
  exclusionList: ["(unclosed"]
`, `
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {name: buckets, namespace: ns}
spec:
  providerRef: {name: pager}
  eventSources: [{kind: Bucket, name: "*"}]
`, `
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {name: pager, namespace: ns}
spec: {type: pagerduty, proxy: "http://proxy:3128"}
`)
	if len(res.Notifiers) != 0 {
		t.Errorf("Notifiers %v, want none", res.Notifiers)
	}
	err := errors.Join(res.Errors...)
	for _, want := range []string{
		"Alert ns/lost: spec.providerRef: Provider ns/missing is not in the input",
		`Alert ns/odd: Provider ns/pager spec.type: "pagerduty" is not supported`,
		"Alert ns/odd: Provider ns/pager spec.proxy: not supported",
		"Alert ns/odd: spec.eventSources[0].namespace: events of another namespace (other)",
		"Alert ns/odd: spec.eventSources: source names cannot be combined",
		"Alert ns/odd: spec.exclusionList[0]: error parsing regexp",
		"Alert ns/buckets: spec.eventSources: no Kustomization, HelmRelease, GitRepository",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q:\n%v", want, err)
		}
	}
}
