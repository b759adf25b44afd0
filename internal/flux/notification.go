package flux

import (
	"fmt"
	"maps"
	"net/url"
	"regexp"
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
	n.Spec.InclusionList, n.Spec.ExclusionList = spec.InclusionList, spec.ExclusionList
	for field, list := range map[string][]string{"spec.inclusionList": spec.InclusionList, "spec.exclusionList": spec.ExclusionList} {
		for i, x := range list {
			if _, err := regexp.Compile(x); err != nil {
				c.fail(fmt.Sprintf("%s[%d]", field, i), "%v", err)
			}
		}
	}
	if len(spec.InclusionList) > 0 || len(spec.ExclusionList) > 0 {
		c.warn("spec.inclusionList and spec.exclusionList are matched against tend's own event messages and errors (\"fetched 0123456789ab: <subject>\", \"sync of ... failed\"), not Flux's texts: check that the expressions still match what they should")
	}
	// Flux adds eventMetadata to each event, and the deprecated summary
	// as the metadata key "summary".
	if len(spec.EventMetadata) > 0 || spec.Summary != "" {
		n.Spec.Metadata = maps.Clone(spec.EventMetadata)
		if n.Spec.Metadata == nil {
			n.Spec.Metadata = map[string]string{}
		}
		if _, ok := n.Spec.Metadata["summary"]; !ok && spec.Summary != "" {
			n.Spec.Metadata["summary"] = spec.Summary
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

// sourceTypes maps Flux's source kinds to the types of tend Sources they
// become.
var sourceTypes = map[string]tendv1.SourceType{
	"GitRepository": tendv1.SourceTypeGit, "HelmRepository": tendv1.SourceTypeHelm, "OCIRepository": tendv1.SourceTypeOCI,
}

// eventSources maps an Alert's event sources to what the Notifier sends
// for: Kustomizations and HelmReleases become the Apps of their names, "*"
// with matchLabels an App selector; GitRepositories, HelmRepositories and
// OCIRepositories become spec.sources (their fetch failures and new
// revisions).
func (c *converter) eventSources(srcs []notifyv1.CrossNamespaceObjectReference, ns string, spec *tendv1.NotifierSpec) {
	apps := &selection{}
	sources := &selection{}
	for i, s := range srcs {
		field := fmt.Sprintf("spec.eventSources[%d]", i)
		if s.Namespace != "" && s.Namespace != ns {
			c.fail(field+".namespace", "events of another namespace (%s) cannot be sent: a Notifier sends the events of its own namespace's Apps and Sources; put an Alert in %s", s.Namespace, s.Namespace)
			continue
		}
		var sel *selection
		switch s.Kind {
		case "Kustomization", "HelmRelease":
			sel = apps
		case "GitRepository", "HelmRepository", "OCIRepository":
			sel = sources
			if !slices.Contains(sources.types, sourceTypes[s.Kind]) {
				sources.types = append(sources.types, sourceTypes[s.Kind])
			}
		default:
			c.warn("%s: events of %s objects are not sent: tend sends the events of Apps (Flux's Kustomizations and HelmReleases) and Sources (GitRepositories, HelmRepositories, OCIRepositories)", field, s.Kind)
			continue
		}
		sel.any = true
		switch {
		case s.Name == "*" && len(s.MatchLabels) == 0:
			sel.all = true
		case s.Name == "*":
			sel.selectors = append(sel.selectors, s.MatchLabels)
		default:
			if len(s.MatchLabels) > 0 {
				c.warn("%s.matchLabels is not applied with a name: %s %s is selected by its name", field, s.Kind, s.Name)
			}
			sel.names = append(sel.names, s.Name)
		}
	}
	if !apps.any && !sources.any {
		c.fail("spec.eventSources", "no Kustomization, HelmRelease, GitRepository, HelmRepository or OCIRepository: tend sends only the events of Apps and Sources, so this Alert would send nothing")
		return
	}
	if apps.any {
		names, selector, ok := apps.resolve()
		if !ok {
			c.fail("spec.eventSources", "Kustomization or HelmRelease names and several matchLabels cannot be combined in one Notifier: split the Alert into one per matchLabels")
		}
		spec.Apps = names
		spec.AppSelector = selector
		if sources.any && len(names) == 0 && selector == nil {
			// With spec.sources set, no apps and no selector means no
			// App: the empty selector selects every App.
			spec.AppSelector = &metav1.LabelSelector{}
		}
	}
	if sources.any {
		names, selector, ok := sources.resolve()
		if !ok || (sources.all || selector != nil) && len(sources.names) > 0 || sources.all && len(sources.selectors) > 0 {
			c.fail("spec.eventSources", "source names cannot be combined with \"*\" or matchLabels of source kinds in one Notifier: split the Alert")
		}
		spec.Sources = &tendv1.NotifierSources{Names: names, Selector: selector, Types: sources.types}
		if len(names) > 0 {
			// A name selects one Source whatever its kind.
			spec.Sources.Types = nil
		}
	}
}

// selection is what the event sources of one family (Apps or Sources)
// select.
type selection struct {
	any, all  bool
	names     []string
	selectors []map[string]string
	types     []tendv1.SourceType
}

// resolve returns the names or the label selector the selection is; not
// ok when it cannot be one Notifier's (names with matchLabels, or several
// matchLabels). "*" without labels is no names and no selector.
func (s *selection) resolve() (names []string, selector *metav1.LabelSelector, ok bool) {
	switch {
	case s.all:
		return nil, nil, true
	case len(s.selectors) > 1 || (len(s.selectors) == 1 && len(s.names) > 0):
		return nil, nil, false
	case len(s.selectors) == 1:
		return nil, &metav1.LabelSelector{MatchLabels: s.selectors[0]}, true
	}
	names = slices.Clone(s.names)
	sort.Strings(names)
	return slices.Compact(names), nil, true
}
