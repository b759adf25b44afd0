package install

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// chartValue is one value of the chart: its dotted path, default and
// documentation, for values.yaml and the README.
type chartValue struct {
	Path    string
	Default any
	Doc     string
}

// chartValues lists every value of the chart, in the order of values.yaml.
func chartValues() ([]chartValue, error) {
	resources, affinity, err := deploymentDefaults()
	if err != nil {
		return nil, err
	}
	families := slices.Sorted(maps.Keys(compatGroups))
	return []chartValue{
		{"image.repository", DefaultImageRepo, "Controller image repository."},
		{"image.tag", "", "Image tag; empty: the chart's appVersion."},
		{"image.pullPolicy", "", "imagePullPolicy of the controller; empty: Kubernetes' default (Always for :latest, IfNotPresent otherwise)."},
		{"imagePullSecrets", []any{}, "Secrets in the release namespace to pull the image with, as [{name: regcred}]."},
		{"replicas", DefaultReplicas, "Controller replicas. They elect one leader through a Lease; a standby takes over within about 12 s."},
		{"resources", resources, "Resources of the controller container. GOMEMLIMIT follows limits.memory; no CPU limit, as throttling slows reconciles without protecting anyone."},
		{"rbac.mode", "leastPrivilege", "leastPrivilege: tend reads everything and writes its own kinds and a list of common workload kinds (docs/install.md). clusterAdmin: bind the cluster-admin ClusterRole, for Apps that apply arbitrary kinds or cluster-wide RBAC."},
		{"watchNamespaces", []any{}, "Only manage Apps, Sources and AppSets in these namespaces (--watch-namespace); empty: all."},
		{"compat", []any{}, fmt.Sprintf("Foreign API families tend reconciles as they are (--compat): %s. Adds their CRDs (see compatCRDs) and lets tend write those objects.", strings.Join(families, ", "))},
		{"compatCRDs", true, "Install the CRDs of the compat families. Set false while Argo CD's or Flux's own CRDs are in the cluster: Helm refuses objects another tool installed."},
		{"argoDecryptionSecret", "", "With compat argo: the Secret, in each Application's namespace, holding the SOPS keys KSOPS and SOPS files decrypt with (--argo-decryption-secret)."},
		{"extraArgs", []any{}, "More arguments of `tend controller`, e.g. [--app-workers=16, --log-json]."},
		{"webhook.service.type", "ClusterIP", "Type of the Service tend (ports http-webhook 9292 and http-metrics 8080). Prefer the Ingress to a LoadBalancer: the Service exposes /metrics too."},
		{"webhook.service.annotations", map[string]any{}, "Annotations of the Service."},
		{"webhook.ingress.enabled", false, fmt.Sprintf("An Ingress routing %s (push webhooks from GitHub, GitLab, Gitea, Bitbucket or any sender) and, with compat flux, Flux's Receivers at %s to the Service's webhook port.", webhookPath, fluxReceiverPath)},
		{"webhook.ingress.className", "", "ingressClassName; empty: the cluster's default class."},
		{"webhook.ingress.host", "", "Host of the Ingress rule; empty: any host."},
		{"webhook.ingress.annotations", map[string]any{}, "Annotations of the Ingress (cert-manager, the controller's)."},
		{"webhook.ingress.tls", []any{}, "TLS of the Ingress, as [{hosts: [tend.example.com], secretName: tend-tls}]."},
		{"dashboard.url", "", "The dashboard's public URL, such as https://tend.example.com (--dashboard-url): required with single sign-on; https makes its cookies Secure. The dashboard listens on the Service's port http-dashboard (8090); sign in with the token `tend dashboard token` prints, or with single sign-on."},
		{"dashboard.oidc.issuer", "", "OIDC issuer URL for single sign-on (Dex, Keycloak, authentik, GitLab, Google). The client secret goes into the key oidc-client-secret of the Secret tend-dashboard-auth."},
		{"dashboard.oidc.clientID", "", "The dashboard's client ID at the issuer."},
		{"dashboard.oidc.scopes", []any{}, "Scopes to ask for; empty: openid, profile, email, groups (Google and GitLab: set [openid, profile, email])."},
		{"dashboard.oidc.groupsClaim", "", "ID token claim listing the user's groups; empty: groups."},
		{"dashboard.policy", []any{}, "Roles of the dashboard's users, as a list of grants ({groups, users, role: viewer|operator|admin, namespaces}), written to the ConfigMap tend-dashboard-auth (policy.yaml); empty: no ConfigMap (manage it yourself, or only the admin token signs in)."},
		{"dashboard.ingress.enabled", false, "An Ingress routing / of dashboard.ingress.host to the Service's dashboard port."},
		{"dashboard.ingress.className", "", "ingressClassName of the dashboard's Ingress; empty: the cluster's default class."},
		{"dashboard.ingress.host", "", "Host of the dashboard's Ingress rule (the host of dashboard.url); empty: any host."},
		{"dashboard.ingress.annotations", map[string]any{}, "Annotations of the dashboard's Ingress."},
		{"dashboard.ingress.tls", []any{}, "TLS of the dashboard's Ingress, as [{hosts: [tend.example.com], secretName: tend-tls}]."},
		{"podAnnotations", map[string]any{}, "Annotations of the controller's pods."},
		{"nodeSelector", map[string]any{}, "nodeSelector of the controller's pods."},
		{"tolerations", []any{}, "Tolerations of the controller's pods."},
		{"affinity", affinity, "Affinity of the controller's pods; the default prefers replicas on different nodes. null drops it (Helm merges a map given with the default)."},
		{"monitoring.dashboard.enabled", false, "A ConfigMap with tend's Grafana dashboard, labelled grafana_dashboard: \"1\" for Grafana's dashboard sidecar."},
		{"monitoring.serviceMonitor.enabled", false, "A ServiceMonitor (Prometheus Operator) scraping the controller's /metrics."},
		{"monitoring.serviceMonitor.labels", map[string]any{}, "More labels of the ServiceMonitor, for the Prometheus that selects it (e.g. release: kube-prometheus-stack)."},
		{"monitoring.prometheusRule.enabled", false, "A PrometheusRule (Prometheus Operator) with tend's alerts."},
		{"monitoring.prometheusRule.labels", map[string]any{}, "More labels of the PrometheusRule, for the Prometheus that selects it."},
	}, nil
}

// valuesYAML is values.yaml: every value with its documentation.
func valuesYAML(vals []chartValue) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n# Values of the tend chart; README.md lists them too.\n", generatedBy)
	var prev []string
	for _, v := range vals {
		segs := strings.Split(v.Path, ".")
		parents, prevParents := segs[:len(segs)-1], []string(nil)
		if len(prev) > 0 {
			prevParents = prev[:len(prev)-1]
		}
		same := 0
		for same < len(parents) && same < len(prevParents) && parents[same] == prevParents[same] {
			same++
		}
		for i := same; i < len(parents); i++ {
			if i == 0 {
				b.WriteString("\n")
			}
			fmt.Fprintf(&b, "%s%s:\n", strings.Repeat("  ", i), parents[i])
		}
		if len(parents) == 0 {
			b.WriteString("\n")
		}
		indent := strings.Repeat("  ", len(parents))
		for _, l := range wrap(v.Doc, 76-len(indent)) {
			fmt.Fprintf(&b, "%s# %s\n", indent, l)
		}
		y, err := yaml.Marshal(v.Default)
		if err != nil {
			panic(fmt.Sprintf("install: value %s: %v", v.Path, err)) // literals and Manifests' fields
		}
		if lines := strings.Split(strings.TrimSuffix(string(y), "\n"), "\n"); len(lines) == 1 {
			fmt.Fprintf(&b, "%s%s: %s\n", indent, segs[len(segs)-1], lines[0])
		} else {
			fmt.Fprintf(&b, "%s%s:\n", indent, segs[len(segs)-1])
			for _, l := range lines {
				fmt.Fprintf(&b, "%s  %s\n", indent, l)
			}
		}
		prev = segs
	}
	return []byte(b.String())
}

// wrap splits s into lines of at most width characters, at spaces.
func wrap(s string, width int) []string {
	var lines []string
	var line string
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}

// chartReadme is the chart's README.md.
func chartReadme(vals []chartValue) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `<!-- %s -->

# tend Helm chart

tend, a GitOps controller for Kubernetes: the CRDs, a ServiceAccount and its RBAC, the
controller Deployment and its Service, the same objects as
[config/install/tend.yaml](../../config/install/tend.yaml) (a test in `+"`internal/install`"+`
renders both and compares), less the Namespace.

`+"```sh"+`
helm install tend charts/tend -n %[2]s --create-namespace
kubectl label namespace %[2]s pod-security.kubernetes.io/enforce=restricted
helm upgrade tend charts/tend -n %[2]s --reuse-values --set replicas=3
`+"```"+`

- **Namespace.** Helm creates the release namespace (`+"`--create-namespace`"+`) without labels;
  the controller's pods meet the restricted Pod Security Standard, so label it as above (the
  plain install does). One release per namespace: the objects are named %[3]q. In
  %[2]s the ClusterRole and ClusterRoleBinding are named %[3]q, elsewhere
  "%[3]s-<namespace>", so installs in several namespaces do not clash.
- **CRDs** are templates, not files of `+"`crds/`"+` (which Helm installs once and never
  upgrades): `+"`helm upgrade`"+` brings a new tend's CRDs. They carry
  `+"`helm.sh/resource-policy: keep`"+`: `+"`helm uninstall`"+` leaves them, and with them every App,
  Source and AppSet; delete them by hand to remove those too.
- **Versions.** The chart's appVersion tags the default image and labels the objects; a
  release packages the chart with `+"`helm package --version <v> --app-version <v>`"+`. The
  checked-in chart is version %[4]s with appVersion %[5]q.

The chart is generated from `+"`internal/install`"+` by `+"`go run ./internal/install/gen`"+`; do not
edit it by hand.

## Values

| Value | Default | Description |
|---|---|---|
`, generatedBy, DefaultNamespace, Name, ChartVersion, DefaultVersion)
	for _, v := range vals {
		def := "`" + compactJSON(v.Default) + "`"
		if m, ok := v.Default.(map[string]any); ok && len(m) > 0 {
			def = "see values.yaml"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", v.Path, def, strings.ReplaceAll(v.Doc, "|", `\|`))
	}
	return []byte(b.String())
}

func compactJSON(v any) string {
	y, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(y)
}

// deploymentDefaults are the controller's resources and the pod's
// affinity in Manifests: the defaults of values resources and affinity.
func deploymentDefaults() (resources, affinity any, err error) {
	objs, err := Manifests(Options{})
	if err != nil {
		return nil, nil, err
	}
	dep := kindOf(objs, "Deployment")[0]
	pod := dep.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	c := pod["containers"].([]any)[0].(map[string]any)
	return c["resources"], pod["affinity"], nil
}
