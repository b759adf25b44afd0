// Package flux reads Flux's API (GitRepository, HelmRepository,
// OCIRepository, Kustomization, HelmRelease with its HelmChart, Alert and Provider, decoded with Flux's own
// Go types) and maps it to tend's: Sources, Apps and Notifiers of the same
// meaning, named as the Flux
// objects are, so that dependsOn and sourceRef keep pointing where they
// did and the Secrets Flux reads (git credentials, SOPS keys, values) are
// read by tend unchanged.
//
// The mapping is strict, as internal/argocd's: a field tend cannot honour
// is an error naming the object and the field; a misspelt field too.
package flux

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	kustomizev1 "github.com/fluxcd/kustomize-controller/api/v1"
	notifyv1beta3 "github.com/fluxcd/notification-controller/api/v1beta3"
	"github.com/fluxcd/pkg/apis/kustomize"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/source/chart"
)

// Kinds Convert reads, by "group/kind".
const (
	kindGitRepository  = "source.toolkit.fluxcd.io/GitRepository"
	kindHelmRepository = "source.toolkit.fluxcd.io/HelmRepository"
	kindOCIRepository  = "source.toolkit.fluxcd.io/OCIRepository"
	kindKustomization  = "kustomize.toolkit.fluxcd.io/Kustomization"
	kindHelmRelease    = "helm.toolkit.fluxcd.io/HelmRelease"
	kindHelmChart      = "source.toolkit.fluxcd.io/HelmChart"
)

// IsFlux says whether apiVersion belongs to one of Flux's API groups.
func IsFlux(apiVersion string) bool {
	group, _, _ := strings.Cut(apiVersion, "/")
	return strings.HasSuffix(group, ".toolkit.fluxcd.io")
}

// Document is one object to convert and where it came from (for errors).
type Document struct {
	Where string
	Body  []byte
}

// Result is what a set of Flux objects maps to.
type Result struct {
	// Sources and Apps are the objects that converted completely.
	Sources []*tendv1.Source
	Apps    []*tendv1.App
	// AppKinds are the Flux kinds Apps were made from, in order:
	// Kustomization or HelmRelease.
	AppKinds []string
	// Notifiers are Flux's Alerts, each with its Provider.
	Notifiers []*tendv1.Notifier
	// Errors name, for each object that did not convert, the document,
	// the object and every field tend cannot honour (or why it could not
	// be read); such an object is left out rather than converted in part.
	Errors   []error
	Warnings []string
	// Skipped names the Flux objects of kinds that are not converted.
	Skipped []string
}

// Convert maps the Flux objects in docs; other objects are ignored.
func Convert(docs []Document) *Result {
	c := &converter{res: &Result{}, sources: map[string]string{}, apps: map[string]string{},
		notifiers: map[string]string{}, providers: map[string]*notifyv1beta3.Provider{}, helmCharts: map[string]*sourcev1.HelmChart{}}
	for _, d := range docs {
		c.where = d.Where
		c.document(d.Body)
	}
	for _, d := range c.pendingReleases {
		c.where = d.where
		c.helmRelease(d.release)
	}
	c.alerts()
	c.res.Errors = c.errs
	return c.res
}

type converter struct {
	res   *Result
	errs  []error
	mark  int    // len(errs) when the current object began
	where string // the current document
	obj   string // the current object, "Kind namespace/name"
	// sources and apps map "namespace/name" to where it was converted,
	// to refuse two Flux objects that become one tend object.
	sources, apps, notifiers map[string]string
	// providers are Flux's Providers by "namespace/name"; pendingAlerts
	// are converted once every document is read.
	providers     map[string]*notifyv1beta3.Provider
	pendingAlerts []alertDoc
	// helmCharts are Flux's HelmCharts by "namespace/name"; the
	// HelmReleases whose chartRef names one (pendingReleases) are
	// converted once every document is read.
	helmCharts      map[string]*sourcev1.HelmChart
	pendingReleases []releaseDoc
}

// releaseDoc is a HelmRelease waiting for its HelmChart.
type releaseDoc struct {
	where   string
	release *helmv2.HelmRelease
}

func (c *converter) fail(field, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%s: %s: %s: %s", c.where, c.obj, field, fmt.Sprintf(format, args...)))
}

// unsupported fails each set field, in the order of their names.
func (c *converter) unsupported(why string, fields map[string]bool) {
	for _, f := range slices.Sorted(maps.Keys(fields)) {
		if fields[f] {
			c.fail(f, "%s", why)
		}
	}
}

func (c *converter) warn(format string, args ...any) {
	c.res.Warnings = append(c.res.Warnings, fmt.Sprintf("%s: %s: %s", c.where, c.obj, fmt.Sprintf(format, args...)))
}

func (c *converter) document(body []byte) {
	var head metav1.TypeMeta
	if err := yaml.Unmarshal(body, &head); err != nil {
		c.errs = append(c.errs, fmt.Errorf("%s: %w", c.where, err))
		return
	}
	if !IsFlux(head.APIVersion) {
		return
	}
	group, _, _ := strings.Cut(head.APIVersion, "/")
	decode := func(into any) bool {
		if err := yaml.UnmarshalStrict(body, into); err != nil {
			c.errs = append(c.errs, fmt.Errorf("%s: %s %s: %w", c.where, head.Kind, head.APIVersion, err))
			return false
		}
		return true
	}
	switch group + "/" + head.Kind {
	case kindGitRepository:
		var o sourcev1.GitRepository
		if c.version(head, sourcev1.GroupVersion.Version) && decode(&o) {
			c.gitRepository(&o)
		}
	case kindHelmRepository:
		var o sourcev1.HelmRepository
		if c.version(head, sourcev1.GroupVersion.Version) && decode(&o) {
			c.helmRepository(&o)
		}
	case kindOCIRepository:
		var o sourcev1.OCIRepository
		if c.version(head, sourcev1.GroupVersion.Version) && decode(&o) {
			c.ociRepository(&o)
		}
	case kindKustomization:
		var o kustomizev1.Kustomization
		if c.version(head, kustomizev1.GroupVersion.Version) && decode(&o) {
			c.kustomization(&o)
		}
	case kindHelmRelease:
		var o helmv2.HelmRelease
		if c.version(head, helmv2.GroupVersion.Version) && decode(&o) {
			if o.Spec.ChartRef != nil && o.Spec.ChartRef.Kind == sourcev1.HelmChartKind {
				// Its HelmChart may come later in the input.
				c.pendingReleases = append(c.pendingReleases, releaseDoc{where: c.where, release: &o})
				return
			}
			c.helmRelease(&o)
		}
	case kindHelmChart:
		// Read by the HelmReleases whose chartRef names it; Flux's own
		// HelmCharts (of spec.chart) need nothing.
		var o sourcev1.HelmChart
		if c.version(head, sourcev1.GroupVersion.Version) && decode(&o) {
			c.helmCharts[o.Namespace+"/"+o.Name] = &o
		}
	case kindProvider:
		var o notifyv1beta3.Provider
		if c.version(head, notifyv1beta3.GroupVersion.Version) && decode(&o) {
			c.providers[o.Namespace+"/"+o.Name] = &o
		}
	case kindAlert:
		var o notifyv1beta3.Alert
		if c.version(head, notifyv1beta3.GroupVersion.Version) && decode(&o) {
			c.pendingAlerts = append(c.pendingAlerts, alertDoc{where: c.where, alert: &o})
		}
	default:
		c.res.Skipped = append(c.res.Skipped, fmt.Sprintf("%s: %s", c.where, head.Kind))
	}
}

// version refuses API versions other than the one Flux serves today.
func (c *converter) version(head metav1.TypeMeta, want string) bool {
	if _, v, _ := strings.Cut(head.APIVersion, "/"); v != want {
		c.errs = append(c.errs, fmt.Errorf("%s: %s %s: convert objects of Flux 2's current API (%s); run flux migrate first", c.where, head.Kind, head.APIVersion, want))
		return false
	}
	return true
}

func (c *converter) begin(kind string, meta *metav1.ObjectMeta) {
	c.obj = fmt.Sprintf("%s %s/%s", kind, meta.Namespace, meta.Name)
	c.mark = len(c.errs)
}

// converted says whether the current object converted without an error.
func (c *converter) converted() bool { return len(c.errs) == c.mark }

// addSource records s unless its object had errors, refusing a second
// Flux source of the same name.
func (c *converter) addSource(s *tendv1.Source) {
	key := s.Namespace + "/" + s.Name
	if prev, ok := c.sources[key]; ok {
		c.fail("metadata.name", "%s also becomes Source %s; rename one", prev, key)
		return
	}
	c.sources[key] = c.where + ": " + c.obj
	if c.converted() {
		c.res.Sources = append(c.res.Sources, s)
	}
}

func (c *converter) addApp(a *tendv1.App) {
	key := a.Namespace + "/" + a.Name
	if prev, ok := c.apps[key]; ok {
		c.fail("metadata.name", "%s also becomes App %s; rename one", prev, key)
		return
	}
	c.apps[key] = c.where + ": " + c.obj
	if c.converted() {
		kind, _, _ := strings.Cut(c.obj, " ")
		c.res.Apps = append(c.res.Apps, a)
		c.res.AppKinds = append(c.res.AppKinds, kind)
	}
}

func newSource(meta *metav1.ObjectMeta) *tendv1.Source {
	return &tendv1.Source{
		TypeMeta:   metav1.TypeMeta{APIVersion: tendv1.GroupVersion.String(), Kind: "Source"},
		ObjectMeta: metav1.ObjectMeta{Name: meta.Name, Namespace: meta.Namespace, Labels: meta.Labels},
	}
}

func newApp(meta *metav1.ObjectMeta) *tendv1.App {
	return &tendv1.App{
		TypeMeta:   metav1.TypeMeta{APIVersion: tendv1.GroupVersion.String(), Kind: "App"},
		ObjectMeta: metav1.ObjectMeta{Name: meta.Name, Namespace: meta.Namespace, Labels: meta.Labels},
	}
}

func duration(d *metav1.Duration) metav1.Duration {
	if d == nil {
		return metav1.Duration{}
	}
	return *d
}

func (c *converter) gitRepository(o *sourcev1.GitRepository) {
	c.begin("GitRepository", &o.ObjectMeta)
	s := o.Spec
	src := newSource(&o.ObjectMeta)
	g := &tendv1.GitSource{URL: s.URL}
	if s.SecretRef != nil {
		g.SecretRef = &tendv1.LocalObjectReference{Name: s.SecretRef.Name}
	}
	if r := s.Reference; r != nil {
		g.Ref = tendv1.GitRef{Branch: r.Branch, Tag: r.Tag, SemVer: r.SemVer, Commit: r.Commit}
		switch name := r.Name; {
		case name == "":
		case strings.HasPrefix(name, "refs/heads/"):
			g.Ref.Branch = strings.TrimPrefix(name, "refs/heads/")
		case strings.HasPrefix(name, "refs/tags/"):
			g.Ref.Tag = strings.TrimPrefix(name, "refs/tags/")
		default:
			c.fail("spec.ref.name", "%q: only refs/heads/... and refs/tags/... are supported", name)
		}
	}
	src.Spec = tendv1.SourceSpec{Git: g, Interval: s.Interval, Timeout: duration(s.Timeout), Suspend: s.Suspend}
	c.unsupported("not supported by tend's git Sources; remove it", map[string]bool{
		"spec.provider":           s.Provider != "" && s.Provider != sourcev1.GitProviderGeneric,
		"spec.serviceAccountName": s.ServiceAccountName != "",
		"spec.verify":             s.Verification != nil,
		"spec.proxySecretRef":     s.ProxySecretRef != nil,
		"spec.ignore":             s.Ignore != nil,
		"spec.recurseSubmodules":  s.RecurseSubmodules,
		"spec.include":            len(s.Include) > 0,
	})
	if len(s.SparseCheckout) > 0 {
		c.warn("spec.sparseCheckout: tend checks out the whole repository")
	}
	c.addSource(src)
}

func (c *converter) helmRepository(o *sourcev1.HelmRepository) {
	c.begin("HelmRepository", &o.ObjectMeta)
	s := o.Spec
	src := newSource(&o.ObjectMeta)
	var secret *tendv1.LocalObjectReference
	if s.SecretRef != nil {
		secret = &tendv1.LocalObjectReference{Name: s.SecretRef.Name}
	}
	if s.Type == sourcev1.HelmRepositoryTypeOCI {
		src.Spec.OCI = &tendv1.OCIRepositorySource{URL: s.URL, SecretRef: secret, Insecure: s.Insecure}
	} else {
		src.Spec.Helm = &tendv1.HelmRepositorySource{URL: s.URL, SecretRef: secret}
		if s.Insecure {
			c.fail("spec.insecure", "applies to OCI repositories only")
		}
	}
	src.Spec.Interval, src.Spec.Timeout, src.Spec.Suspend = s.Interval, duration(s.Timeout), s.Suspend
	c.unsupported("not supported by tend's chart Sources; remove it", map[string]bool{
		"spec.certSecretRef":   s.CertSecretRef != nil,
		"spec.passCredentials": s.PassCredentials,
		"spec.accessFrom":      s.AccessFrom != nil,
		"spec.provider":        s.Provider != "" && s.Provider != sourcev1.GenericOCIProvider,
	})
	c.addSource(src)
}

func (c *converter) ociRepository(o *sourcev1.OCIRepository) {
	c.begin("OCIRepository", &o.ObjectMeta)
	s := o.Spec
	src := newSource(&o.ObjectMeta)
	oci := &tendv1.OCIRepositorySource{URL: s.URL, Insecure: s.Insecure, Ref: &tendv1.OCIRef{}}
	if s.SecretRef != nil {
		oci.SecretRef = &tendv1.LocalObjectReference{Name: s.SecretRef.Name}
	}
	if r := s.Reference; r != nil {
		oci.Ref = &tendv1.OCIRef{Tag: r.Tag, SemVer: r.SemVer, SemverFilter: r.SemverFilter, Digest: r.Digest}
	}
	if r := oci.Ref; r.Tag == "" && r.SemVer == "" && r.Digest == "" {
		r.Tag = "latest" // Flux's default
	}
	if l := s.LayerSelector; l != nil {
		if l.MediaType != "" {
			oci.LayerSelector = &tendv1.OCILayerSelector{MediaType: l.MediaType}
		}
		if l.Operation == sourcev1.OCILayerCopy && l.MediaType != chart.ChartLayerMediaType {
			c.fail("spec.layerSelector.operation", "copy keeps the layer as an archive; tend unpacks layers (a Helm chart's too, to render it): remove it or select the Helm chart layer")
		}
	}
	src.Spec = tendv1.SourceSpec{OCI: oci, Interval: s.Interval, Timeout: duration(s.Timeout), Suspend: s.Suspend}
	c.unsupported("not supported by tend's OCI Sources; remove it", map[string]bool{
		"spec.provider":           s.Provider != "" && s.Provider != sourcev1.GenericOCIProvider,
		"spec.verify":             s.Verify != nil,
		"spec.serviceAccountName": s.ServiceAccountName != "",
		"spec.certSecretRef":      s.CertSecretRef != nil,
		"spec.proxySecretRef":     s.ProxySecretRef != nil,
		"spec.ignore":             s.Ignore != nil,
	})
	c.addSource(src)
}

// sourceRef maps a Flux source reference of an App; tend Sources have the
// Flux sources' names.
func (c *converter) sourceRef(field, kind, name, namespace string, want ...string) tendv1.NamespacedObjectReference {
	ok := false
	for _, k := range want {
		ok = ok || k == kind
	}
	if !ok {
		c.fail(field+".kind", "%s sources are not converted (want %s)", kind, strings.Join(want, " or "))
	}
	return tendv1.NamespacedObjectReference{Name: name, Namespace: namespace}
}

func (c *converter) kustomization(o *kustomizev1.Kustomization) {
	c.begin("Kustomization", &o.ObjectMeta)
	s := o.Spec
	app := newApp(&o.ObjectMeta)
	a := &app.Spec
	a.SourceRef = c.sourceRef("spec.sourceRef", s.SourceRef.Kind, s.SourceRef.Name, s.SourceRef.Namespace, sourcev1.GitRepositoryKind, sourcev1.OCIRepositoryKind)
	a.Path = strings.TrimPrefix(strings.TrimPrefix(s.Path, "./"), "/")
	if a.Path == "." {
		a.Path = ""
	}
	// Without a kustomization.yaml Flux applies every manifest below the
	// path; so does tend's recursive.
	a.Recursive = true
	a.Destination.Namespace = s.TargetNamespace
	a.Sync = tendv1.SyncPolicy{Prune: s.Prune, SelfHeal: true, Interval: s.Interval}
	if s.RetryInterval != nil {
		a.Sync.Retry = &tendv1.RetryPolicy{Backoff: *s.RetryInterval, MaxBackoff: *s.RetryInterval}
	}
	a.Health.Timeout = duration(s.Timeout)
	a.Suspend = s.Suspend
	for _, d := range s.DependsOn {
		a.DependsOn = append(a.DependsOn, tendv1.NamespacedObjectReference{Name: d.Name, Namespace: d.Namespace})
	}
	if d := s.Decryption; d != nil {
		if d.Provider != "sops" {
			c.fail("spec.decryption.provider", "%q: only sops is supported", d.Provider)
		}
		switch {
		case d.SecretRef != nil:
			a.Decryption = &tendv1.Decryption{SecretRef: tendv1.LocalObjectReference{Name: d.SecretRef.Name}}
		default:
			c.fail("spec.decryption.secretRef", "required: tend reads SOPS keys from a Secret (keys ending in .agekey or .asc, as Flux's)")
		}
		if d.ServiceAccountName != "" {
			c.fail("spec.decryption.serviceAccountName", "not supported: put the keys in a Secret")
		}
	}
	ks := &tendv1.KustomizeSpec{NamePrefix: s.NamePrefix, NameSuffix: s.NameSuffix, Components: s.Components}
	if m := s.CommonMetadata; m != nil {
		ks.CommonLabels, ks.CommonAnnotations = m.Labels, m.Annotations
	}
	ks.Images, ks.Patches = images(s.Images), patches(s.Patches)
	if pb := s.PostBuild; pb != nil {
		a.PostBuild = &tendv1.PostBuild{Substitute: pb.Substitute, SubstituteStrategy: string(pb.SubstituteStrategy)}
		for _, r := range pb.SubstituteFrom {
			a.PostBuild.SubstituteFrom = append(a.PostBuild.SubstituteFrom, tendv1.SubstituteReference{Kind: r.Kind, Name: r.Name, Optional: r.Optional})
		}
	}
	if ks.NamePrefix != "" || ks.NameSuffix != "" || len(ks.Components) > 0 || len(ks.CommonLabels) > 0 ||
		len(ks.CommonAnnotations) > 0 || len(ks.Images) > 0 || len(ks.Patches) > 0 {
		a.Kustomize = ks
	}
	// Flux's multi-tenancy: the Kustomization acts as a ServiceAccount.
	a.ServiceAccountName = s.ServiceAccountName
	a.Health.Rules = c.healthRules(s.HealthCheckExprs)
	for i, h := range s.HealthChecks {
		if h.APIVersion == "" {
			c.fail(fmt.Sprintf("spec.healthChecks[%d].apiVersion", i), "required by tend: add the %s's apiVersion (apps/v1 for a Deployment)", h.Kind)
			continue
		}
		a.Health.Checks = append(a.Health.Checks, tendv1.HealthCheck{APIVersion: h.APIVersion, Kind: h.Kind, Name: h.Name, Namespace: h.Namespace})
	}
	// Recreate what an immutable field's change makes the API server
	// refuse, as Flux's force does.
	a.Sync.Recreate = s.Force
	c.unsupported("not supported by tend's Apps yet; remove it", map[string]bool{
		"spec.kubeConfig":              s.KubeConfig != nil,
		"spec.ignoreMissingComponents": s.IgnoreMissingComponents,
		"spec.ignore":                  len(s.Ignore) > 0,
		"spec.buildMetadata":           len(s.BuildMetadata) > 0,
	})
	switch s.DeletionPolicy {
	case "", kustomizev1.DeletionPolicyMirrorPrune:
	case kustomizev1.DeletionPolicyDelete, kustomizev1.DeletionPolicyOrphan:
		a.DeletionPolicy = s.DeletionPolicy
	default:
		c.fail("spec.deletionPolicy", "%s is not supported: use MirrorPrune, Delete or Orphan", s.DeletionPolicy)
	}
	c.addApp(app)
}

// postRenderers maps a HelmRelease's kustomize post-renderers (in order)
// and commonMetadata to the App's kustomize overlay, which tend applies to
// a chart's output.
func (c *converter) postRenderers(prs []helmv2.PostRenderer, md *helmv2.CommonMetadata) *tendv1.KustomizeSpec {
	ks := &tendv1.KustomizeSpec{}
	for i, pr := range prs {
		if pr.Kustomize == nil {
			c.fail(fmt.Sprintf("spec.postRenderers[%d]", i), "only kustomize post-renderers are supported")
			continue
		}
		ks.Patches = append(ks.Patches, patches(pr.Kustomize.Patches)...)
		ks.Images = append(ks.Images, images(pr.Kustomize.Images)...)
	}
	if len(prs) > 0 {
		c.warn("spec.postRenderers: tend applies them to the chart's hooks too")
	}
	if md != nil {
		ks.CommonLabels, ks.CommonAnnotations = md.Labels, md.Annotations
	}
	if len(ks.Patches) == 0 && len(ks.Images) == 0 && len(ks.CommonLabels) == 0 && len(ks.CommonAnnotations) == 0 {
		return nil
	}
	return ks
}

func (c *converter) helmRelease(o *helmv2.HelmRelease) {
	c.begin("HelmRelease", &o.ObjectMeta)
	s := o.Spec
	app := newApp(&o.ObjectMeta)
	a := &app.Spec
	h := &tendv1.HelmSpec{ReleaseName: s.ReleaseName, Values: s.Values}
	if h.ReleaseName == "" {
		// Flux's default release name.
		h.ReleaseName = o.Name
		if s.TargetNamespace != "" {
			h.ReleaseName = s.TargetNamespace + "-" + o.Name
		}
	}
	switch {
	case s.ChartRef != nil && s.ChartRef.Kind == sourcev1.HelmChartKind:
		// A HelmChart names the chart as spec.chart.spec does.
		ns := s.ChartRef.Namespace
		if ns == "" {
			ns = o.Namespace
		}
		hc := c.helmCharts[ns+"/"+s.ChartRef.Name]
		if hc == nil {
			c.fail("spec.chartRef", "HelmChart %s/%s is not in the input: add it (its chart, version, sourceRef and valuesFiles become the App's)", ns, s.ChartRef.Name)
			break
		}
		hs := hc.Spec
		field := fmt.Sprintf("HelmChart %s/%s spec", ns, hc.Name)
		c.chartSource(field, chartSource{chart: hs.Chart, version: hs.Version, kind: hs.SourceRef.Kind, name: hs.SourceRef.Name, namespace: ns,
			valuesFiles: hs.ValuesFiles, verify: hs.Verify != nil, ignoreMissing: hs.IgnoreMissingValuesFiles, strategy: hs.ReconcileStrategy}, a, h)
		if hs.Suspend {
			c.warn("%s.suspend is not applied: tend fetches the chart when the App renders; suspend the HelmRelease instead", field)
		}
	case s.ChartRef != nil:
		// The OCIRepository's artifact is the chart; tend unpacks it with
		// the chart at the root.
		ref := s.ChartRef
		a.SourceRef = c.sourceRef("spec.chartRef", ref.Kind, ref.Name, ref.Namespace, sourcev1.OCIRepositoryKind, sourcev1.HelmChartKind)
	case s.Chart == nil:
		c.fail("spec.chart", "required")
	default:
		cs := s.Chart.Spec
		ref := cs.SourceRef
		c.chartSource("spec.chart.spec", chartSource{chart: cs.Chart, version: cs.Version, kind: ref.Kind, name: ref.Name, namespace: ref.Namespace,
			valuesFiles: cs.ValuesFiles, verify: cs.Verify != nil, ignoreMissing: cs.IgnoreMissingValuesFiles, strategy: cs.ReconcileStrategy}, a, h)
	}
	for _, v := range s.ValuesFrom {
		h.ValuesFrom = append(h.ValuesFrom, tendv1.ValuesReference{Kind: v.Kind, Name: v.Name, Key: v.ValuesKey, Optional: v.Optional, TargetPath: v.TargetPath})
	}
	a.Helm = h
	a.Kustomize = c.postRenderers(s.PostRenderers, s.CommonMetadata)
	a.Destination.Namespace = s.TargetNamespace
	a.Sync = tendv1.SyncPolicy{Prune: true, Interval: s.Interval}
	if d := s.DriftDetection; d != nil && d.Mode == helmv2.DriftDetectionEnabled {
		a.Sync.SelfHeal = true
	}
	a.Health.Timeout = duration(s.Timeout)
	a.Suspend = s.Suspend
	for _, d := range s.DependsOn {
		a.DependsOn = append(a.DependsOn, tendv1.NamespacedObjectReference{Name: d.Name, Namespace: d.Namespace})
	}
	if in := s.Install; in != nil {
		a.Destination.CreateNamespace = in.CreateNamespace
		if in.CRDs == helmv2.Skip || in.SkipCRDs {
			c.fail("spec.install.crds", "Skip is not supported: tend applies a chart's CRDs")
		}
		if in.Remediation != nil {
			c.warn("spec.install.remediation: tend retries a failed sync with backoff and keeps what was applied")
		}
		if in.Replace || in.DisableHooks || in.DisableOpenAPIValidation || in.DisableSchemaValidation || in.Strategy != nil {
			c.fail("spec.install", "replace, disableHooks, disableOpenAPIValidation, disableSchemaValidation and strategy are not supported")
		}
	}
	if up := s.Upgrade; up != nil {
		if up.Remediation != nil {
			c.warn("spec.upgrade.remediation: tend retries a failed sync with backoff; set spec.sync.autoRollback on the App to roll back")
		}
		if up.Force || up.DisableHooks || up.DisableOpenAPIValidation || up.DisableSchemaValidation || up.PreserveValues || up.Strategy != nil {
			c.fail("spec.upgrade", "force, disableHooks, disableOpenAPIValidation, disableSchemaValidation, preserveValues and strategy are not supported")
		}
	}
	if s.MaxHistory != nil {
		c.warn("spec.maxHistory: tend keeps its own sync history and no Helm release Secrets")
	}
	a.ServiceAccountName = s.ServiceAccountName
	c.unsupported("not supported by tend's Apps yet; remove it", map[string]bool{
		"spec.kubeConfig":       s.KubeConfig != nil,
		"spec.storageNamespace": s.StorageNamespace != "" && s.StorageNamespace != s.TargetNamespace,
		"spec.test":             s.Test != nil && s.Test.Enable,
		"spec.rollback":         s.Rollback != nil,
		"spec.uninstall":        s.Uninstall != nil,
		"spec.waitStrategy":     s.WaitStrategy != nil,
	})
	a.Health.Rules = c.healthRules(s.HealthCheckExprs)
	if d := s.DriftDetection; d != nil && len(d.Ignore) > 0 {
		c.fail("spec.driftDetection.ignore", "not converted yet; write the rules as the App's spec.ignoreDifferences")
	}
	c.addApp(app)
}

// healthRules maps Flux's healthCheckExprs to the App's health rules:
// current, inProgress and failed become healthy, progressing and
// degraded, the same CEL expressions, which see the object's top-level
// fields as Flux's do. tend tries failed, then current, then inProgress
// (Flux: inProgress first), which a warning says.
func (c *converter) healthRules(exprs []kustomize.CustomHealthCheck) []tendv1.HealthRule {
	var rules []tendv1.HealthRule
	seen := map[schema.GroupKind]bool{}
	for i, e := range exprs {
		field := fmt.Sprintf("spec.healthCheckExprs[%d]", i)
		gv, err := schema.ParseGroupVersion(e.APIVersion)
		switch {
		case err != nil || e.APIVersion == "":
			c.fail(field+".apiVersion", "%q is not an API version (group/version)", e.APIVersion)
			continue
		case e.Kind == "":
			c.fail(field+".kind", "required: tend assesses a kind with the expressions")
			continue
		case e.Current == "":
			c.fail(field+".current", "required")
			continue
		case seen[schema.GroupKind{Group: gv.Group, Kind: e.Kind}]:
			c.fail(field, "a second entry for %s %s; keep one per kind", e.APIVersion, e.Kind)
			continue
		}
		seen[schema.GroupKind{Group: gv.Group, Kind: e.Kind}] = true
		rules = append(rules, tendv1.HealthRule{Group: gv.Group, Kind: e.Kind, Healthy: e.Current, Progressing: e.InProgress, Degraded: e.Failed})
	}
	if len(rules) > 0 {
		c.warn("spec.healthCheckExprs: tend tries failed, then current, then inProgress (Flux tries inProgress first), and assesses every object of the App, as Flux does with wait: true")
	}
	return rules
}

// chartSource is a chart as a HelmRelease's spec.chart.spec or a
// HelmChart's spec names it.
type chartSource struct {
	chart, version, kind, name, namespace string
	valuesFiles                           []string
	verify, ignoreMissing                 bool
	strategy                              string
}

// chartSource maps a chart from a HelmRepository (the App's chart) or a
// GitRepository (a chart directory: the App's path) onto the App; field
// prefixes the fields errors name.
func (c *converter) chartSource(field string, cs chartSource, a *tendv1.AppSpec, h *tendv1.HelmSpec) {
	a.SourceRef = c.sourceRef(field+".sourceRef", cs.kind, cs.name, cs.namespace, sourcev1.HelmRepositoryKind, sourcev1.GitRepositoryKind)
	if cs.kind == sourcev1.GitRepositoryKind {
		// A chart directory in git: chart is its path.
		a.Path = strings.TrimPrefix(strings.TrimPrefix(cs.chart, "./"), "/")
		h.ValuesFiles = cs.valuesFiles
	} else {
		a.Chart = &tendv1.ChartSpec{Name: cs.chart, Version: cs.version}
		if len(cs.valuesFiles) > 0 {
			c.fail(field+".valuesFiles", "files of a chart from a repository are not read; move the values into spec.values")
		}
	}
	c.unsupported("not supported; remove it", map[string]bool{
		field + ".verify":                   cs.verify,
		field + ".ignoreMissingValuesFiles": cs.ignoreMissing,
		field + ".reconcileStrategy":        cs.strategy != "" && cs.strategy != "ChartVersion",
	})
}

func images(in []kustomize.Image) []tendv1.KustomizeImage {
	var out []tendv1.KustomizeImage
	for _, img := range in {
		out = append(out, tendv1.KustomizeImage{Name: img.Name, NewName: img.NewName, NewTag: img.NewTag, Digest: img.Digest})
	}
	return out
}

func patches(in []kustomize.Patch) []tendv1.KustomizePatch {
	var out []tendv1.KustomizePatch
	for _, p := range in {
		kp := tendv1.KustomizePatch{Patch: p.Patch}
		if t := p.Target; t != nil {
			kp.Target = &tendv1.PatchTarget{Group: t.Group, Version: t.Version, Kind: t.Kind, Name: t.Name,
				Namespace: t.Namespace, LabelSelector: t.LabelSelector, AnnotationSelector: t.AnnotationSelector}
		}
		out = append(out, kp)
	}
	return out
}
