package flux

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strings"

	notifyv1 "github.com/fluxcd/notification-controller/api/v1"
	notifyv1beta3 "github.com/fluxcd/notification-controller/api/v1beta3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// Flux's notification kinds: an Alert (which events) sends through a
// Provider (where). Together they become one Notifier named as the Alert.
const (
	kindAlert    = "notification.toolkit.fluxcd.io/Alert"
	kindProvider = "notification.toolkit.fluxcd.io/Provider"
)

// alertDoc is an Alert waiting for its Provider, which may come later in
// the input.
type alertDoc struct {
	where string
	alert *notifyv1beta3.Alert
}

// fluxProviders maps Flux Provider types to tend's Notifier providers.
var fluxProviders = map[string]string{
	"slack": "slack", "discord": "discord", "msteams": "teams", "matrix": "matrix", "telegram": "telegram",
	"generic": "webhook", "generic-hmac": "webhook", "github": "github", "gitlab": "gitlab", "gitea": "gitea",
}

// alerts converts the Alerts read, each with its Provider, to Notifiers.
func (c *converter) alerts() {
	for _, d := range c.pendingAlerts {
		c.where = d.where
		c.alert(d.alert)
	}
}

func (c *converter) alert(a *notifyv1beta3.Alert) {
	c.begin("Alert", &a.ObjectMeta)
	spec := &a.Spec
	p := c.providers[a.Namespace+"/"+spec.ProviderRef.Name]
	if p == nil {
		c.fail("spec.providerRef", "Provider %s/%s is not in the input: add it (the Alert becomes a Notifier with the Provider's address and type)", a.Namespace, spec.ProviderRef.Name)
		return
	}
	n := &tendv1.Notifier{
		TypeMeta:   metav1.TypeMeta{APIVersion: tendv1.GroupVersion.String(), Kind: "Notifier"},
		ObjectMeta: metav1.ObjectMeta{Name: a.Name, Namespace: a.Namespace, Labels: a.Labels},
		Spec:       tendv1.NotifierSpec{Suspend: spec.Suspend || p.Spec.Suspend},
	}
	c.provider(p, &n.Spec)
	switch spec.EventSeverity {
	case "", "info":
		n.Spec.Severity = "info"
	case "error":
		n.Spec.Severity = "error"
	}
	c.eventSources(spec.EventSources, a.Namespace, &n.Spec)
	ignored := map[string]bool{
		"spec.inclusionList": len(spec.InclusionList) > 0, "spec.exclusionList": len(spec.ExclusionList) > 0,
		"spec.eventMetadata": len(spec.EventMetadata) > 0, "spec.summary": spec.Summary != "",
	}
	for _, f := range slices.Sorted(maps.Keys(ignored)) {
		if ignored[f] {
			c.warn("%s is not applied: tend sends its own App events (SyncSucceeded, SyncFailed, HealthDegraded, ...) with its own messages; choose them with the Notifier's spec.events", f)
		}
	}
	key := n.Namespace + "/" + n.Name
	if prev, ok := c.notifiers[key]; ok {
		c.fail("metadata.name", "%s also becomes Notifier %s; rename one", prev, key)
		return
	}
	c.notifiers[key] = c.where + ": " + c.obj
	if c.converted() {
		c.res.Notifiers = append(c.res.Notifiers, n)
	}
}

// provider fills spec from the Alert's Provider p. Errors name the
// Provider's fields.
func (c *converter) provider(p *notifyv1beta3.Provider, spec *tendv1.NotifierSpec) {
	ps := &p.Spec
	field := fmt.Sprintf("Provider %s/%s spec", p.Namespace, p.Name)
	typ, ok := fluxProviders[ps.Type]
	if !ok {
		c.fail(field+".type", "%q is not supported: tend sends to slack, discord, msteams, matrix, telegram, generic (webhook), github, gitlab and gitea", ps.Type)
	}
	spec.Provider, spec.Channel, spec.Username = typ, ps.Channel, ps.Username
	if ps.SecretRef != nil {
		spec.SecretRef = &tendv1.LocalObjectReference{Name: ps.SecretRef.Name}
	}
	refused := map[string]bool{
		".proxy": ps.Proxy != "", ".proxySecretRef": ps.ProxySecretRef != nil, ".certSecretRef": ps.CertSecretRef != nil,
		".serviceAccountName": ps.ServiceAccountName != "", ".commitStatusExpr": ps.CommitStatusExpr != "",
	}
	for _, f := range slices.Sorted(maps.Keys(refused)) {
		if refused[f] {
			c.fail(field+f, "not supported; remove it")
		}
	}
	if ps.Timeout != nil || ps.Interval != nil {
		c.warn("%s.timeout and .interval are not applied: tend times deliveries out and retries them itself", field)
	}
	addr := ps.Address
	switch ps.Type {
	case "slack":
		// With a bot token Flux's address is the chat.postMessage URL;
		// tend's is the Web API base.
		addr = strings.TrimSuffix(addr, "/chat.postMessage")
	case "generic":
		c.warn("%s.type generic: tend posts its own JSON event (app, kind, revision, message), not Flux's event object; check what the receiver reads", field)
	case "generic-hmac":
		c.warn("%s.type generic-hmac: tend signs with the Secret's key \"hmacKey\" (Flux reads \"token\"): add hmacKey to Secret %v; and it posts its own JSON event, not Flux's", field, secretName(ps))
	case "github", "gitlab":
		// tend posts the status on the App's Source repository, on the
		// API of its host; Flux's address names that repository.
		addr = ""
	case "gitea":
		if u, err := url.Parse(addr); err == nil && u.Host != "" {
			addr = u.Scheme + "://" + u.Host
		}
	}
	spec.Address = addr
	if ps.Type == "github" || ps.Type == "gitlab" || ps.Type == "gitea" {
		c.warn("%s.type %s: tend posts commit statuses on the repository of each App's own Source, not on spec.address", field, ps.Type)
	}
}

func secretName(ps *notifyv1beta3.ProviderSpec) string {
	if ps.SecretRef == nil {
		return "(none set)"
	}
	return ps.SecretRef.Name
}

// eventSources maps an Alert's event sources to the Apps the Notifier
// sends for: Kustomizations and HelmReleases become the Apps of their
// names; "*" with matchLabels an App selector.
func (c *converter) eventSources(srcs []notifyv1.CrossNamespaceObjectReference, ns string, spec *tendv1.NotifierSpec) {
	var names []string
	all := false
	var selectors []map[string]string
	for i, s := range srcs {
		field := fmt.Sprintf("spec.eventSources[%d]", i)
		if s.Namespace != "" && s.Namespace != ns {
			c.fail(field+".namespace", "events of another namespace (%s) cannot be sent: a Notifier sends the events of its own namespace's Apps; put an Alert in %s", s.Namespace, s.Namespace)
			continue
		}
		switch s.Kind {
		case "Kustomization", "HelmRelease":
		default:
			c.warn("%s: events of %s objects are not sent: tend sends the events of Apps (Flux's Kustomizations and HelmReleases); a failing Source shows in the Apps that read it", field, s.Kind)
			continue
		}
		switch {
		case s.Name == "*" && len(s.MatchLabels) == 0:
			all = true
		case s.Name == "*":
			selectors = append(selectors, s.MatchLabels)
		default:
			if len(s.MatchLabels) > 0 {
				c.warn("%s.matchLabels is not applied with a name: the App %s is selected by its name", field, s.Name)
			}
			names = append(names, s.Name)
		}
	}
	switch {
	case all:
	case len(selectors) > 1 || (len(selectors) == 1 && len(names) > 0):
		c.fail("spec.eventSources", "names and several matchLabels cannot be combined in one Notifier: split the Alert into one per matchLabels")
	case len(selectors) == 1:
		spec.AppSelector = &metav1.LabelSelector{MatchLabels: selectors[0]}
	case len(names) > 0:
		sort.Strings(names)
		spec.Apps = slices.Compact(names)
	default:
		c.fail("spec.eventSources", "no Kustomization or HelmRelease: tend sends only the events of Apps, so this Alert would send nothing")
	}
}
