package argocd

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"helm.sh/helm/v4/pkg/strvals"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/render"
)

// InCluster is the server URL Argo CD names the cluster it runs in by.
const InCluster = "https://kubernetes.default.svc"

// RefKind says what a git targetRevision names.
type RefKind int

// What a git targetRevision names.
const (
	RefBranch RefKind = iota
	RefTag
)

// ResourcesFinalizer is the finalizer under which deleting an Application
// deletes its objects (with a "/foreground" or "/background" suffix too).
const ResourcesFinalizer = "resources-finalizer.argocd.argoproj.io"

// HasResourcesFinalizer says whether finalizers hold ResourcesFinalizer.
func HasResourcesFinalizer(finalizers []string) bool {
	for _, f := range finalizers {
		if f == ResourcesFinalizer || strings.HasPrefix(f, ResourcesFinalizer+"/") {
			return true
		}
	}
	return false
}

// Options configure Convert.
type Options struct {
	// Namespace of the App and its Source; "" keeps the Application's.
	Namespace string
	// Cluster names the tend Cluster (in Namespace) for a destination that
	// is not the cluster tend runs in, from the destination's server URL
	// or name. Nil accepts only the in-cluster destination.
	Cluster func(server, name string) (string, error)
	// Credentials names the Secret (in Namespace) holding the credentials
	// for a repository URL, "" for none: Argo CD's repository Secrets hold
	// the keys tend reads ("username", "password", "sshPrivateKey"), so
	// the Source names them as they are.
	Credentials func(repoURL string) string
	// RefKind tells whether a git targetRevision is a branch or a tag, as
	// Argo CD resolves it against the repository. Nil guesses: a name that
	// looks like a version (v1.2.3, 1.2) is a tag, any other a branch.
	RefKind func(repoURL, revision string) (RefKind, error)
	// DecryptionSecret names the Secret (in Namespace) with the SOPS keys
	// the Apps decrypt KSOPS generators and SOPS files with (Argo CD
	// gives them to its repo-server); "" for none.
	DecryptionSecret string
}

// Result is what one Application maps to.
type Result struct {
	// App renders from Source.
	App *tendv1.App
	// Source is named after its URL and revision, so Applications of one
	// repository and revision share it.
	Source *tendv1.Source
	// OtherSources are the Sources of a multi-source Application's other
	// sources: those the App renders besides Source (its spec.sources),
	// and the git Sources of `ref` sources, whose files the App reads as
	// Helm values (spec.helm.valuesFrom kind Source).
	OtherSources []*tendv1.Source
	// SourceNames, for a multi-source Application, name the tend Source
	// of each spec.sources entry that only serves files (a `ref` source),
	// in order; "" is a source the App renders, whose revision is the
	// next of the App's revisions (appspec.JoinRevisions).
	SourceNames []string
	// Warnings say where tend behaves differently from Argo CD in a way
	// that does not change what is applied.
	Warnings []string
}

// Convert maps app to a tend App and Source. Every field tend cannot
// honour is reported, each naming its path in the Application, joined into
// one error.
func Convert(app *Application, opts Options) (*Result, error) {
	c := &converter{app: app, opts: opts}
	res := c.convert()
	if len(c.errs) > 0 {
		return nil, fmt.Errorf("converting Argo CD Application %s/%s: %w", app.Namespace, app.Name, errors.Join(c.errs...))
	}
	res.Warnings = c.warnings
	return res, nil
}

type converter struct {
	app      *Application
	opts     Options
	errs     []error
	warnings []string
	// refs are a multi-source Application's `ref` sources by name, with
	// the Source each maps to.
	refs map[string]*tendv1.Source
}

// fail records that field cannot be honoured; what says why or what to do.
func (c *converter) fail(field, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

// unsupported fails each set field (below prefix), in the order of their
// names.
func (c *converter) unsupported(prefix, why string, fields map[string]bool) {
	for _, f := range slices.Sorted(maps.Keys(fields)) {
		if fields[f] {
			c.fail(prefix+"."+f, "%s", why)
		}
	}
}

func (c *converter) warn(format string, args ...any) {
	c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
}

func (c *converter) convert() *Result {
	spec := &c.app.Spec
	ns := c.opts.Namespace
	if ns == "" {
		ns = c.app.Namespace
	}
	src, field := spec.Source, "spec.source"
	var more []int // more rendering sources, by index in spec.sources
	switch {
	case src != nil && len(spec.Sources) > 0:
		c.fail("spec.sources", "set either spec.source or spec.sources, not both")
	case src == nil && len(spec.Sources) > 0:
		if src, field, more = c.sources(spec.Sources, ns); src == nil {
			return &Result{}
		}
	case src == nil:
		c.fail("spec.source", "required")
		return &Result{}
	}
	if len(spec.SourceHydrator.Raw) > 0 {
		c.fail("spec.sourceHydrator", "not supported: render the manifests into git and point spec.source at them")
	}
	if spec.RevisionHistoryLimit != nil {
		c.warn("spec.revisionHistoryLimit: tend keeps its own sync history (status.history)")
	}

	out := &tendv1.App{
		TypeMeta:   metav1.TypeMeta{APIVersion: tendv1.GroupVersion.String(), Kind: "App"},
		ObjectMeta: metav1.ObjectMeta{Name: c.app.Name, Namespace: ns, Labels: c.app.Labels},
	}
	// Argo CD deletes an Application's objects with it only under its
	// resources finalizer; without it they stay.
	out.Spec.DeletionPolicy = tendv1.DeletionOrphan
	if HasResourcesFinalizer(c.app.Finalizers) {
		out.Spec.DeletionPolicy = tendv1.DeletionDelete
	}
	// The AppProject maps to a Project of its name in the same namespace
	// (ConvertProject). "default" is the project Argo CD installs allowing
	// everything: its Applications name none.
	if spec.Project != "default" {
		out.Spec.Project = spec.Project
	}
	source := c.source(src, field, ns, &out.Spec)
	out.Spec.SourceRef = tendv1.NamespacedObjectReference{Name: source.Name}
	// The other rendering sources render into the same App (its
	// spec.sources), so their objects are one set as in Argo CD: synced
	// together, in one inventory.
	var others []*tendv1.Source
	for _, i := range more {
		var as tendv1.AppSpec
		s := c.source(&spec.Sources[i], fmt.Sprintf("spec.sources[%d]", i), ns, &as)
		out.Spec.Sources = append(out.Spec.Sources, tendv1.AppSource{
			SourceRef: tendv1.NamespacedObjectReference{Name: s.Name},
			Path:      as.Path, Recursive: as.Recursive, Include: as.Include, Exclude: as.Exclude,
			Chart: as.Chart, Helm: as.Helm, Kustomize: as.Kustomize,
		})
		others = append(others, s)
	}
	c.destination(&out.Spec.Destination)
	c.syncPolicy(spec.SyncPolicy, &out.Spec)
	for i, d := range spec.IgnoreDifferences {
		if d.Kind == "" {
			c.fail(fmt.Sprintf("spec.ignoreDifferences[%d].kind", i), "required")
		}
		out.Spec.IgnoreDifferences = append(out.Spec.IgnoreDifferences, tendv1.IgnoreDifference{
			Group: d.Group, Kind: d.Kind, Name: d.Name, Namespace: d.Namespace,
			JSONPointers: d.JSONPointers, JQPathExpressions: d.JQPathExpressions, Managers: d.ManagedFieldsManagers,
		})
	}
	if c.opts.DecryptionSecret != "" {
		// KSOPS generators and SOPS files decrypt with the keys Argo CD
		// gives its repo-server.
		out.Spec.Decryption = &tendv1.Decryption{SecretRef: tendv1.LocalObjectReference{Name: c.opts.DecryptionSecret}}
	}
	res := &Result{App: out, Source: source}
	for i := range spec.Sources {
		name := ""
		if s := &spec.Sources[i]; !renders(s) {
			if r := c.refs[s.Ref]; r != nil {
				name = r.Name
			}
		}
		res.SourceNames = append(res.SourceNames, name)
	}
	for _, name := range slices.Sorted(maps.Keys(c.refs)) {
		others = append(others, c.refs[name])
	}
	for _, o := range others {
		if o.Name != source.Name && !slices.ContainsFunc(res.OtherSources, func(s *tendv1.Source) bool { return s.Name == o.Name }) {
			res.OtherSources = append(res.OtherSources, o)
		}
	}
	return res
}

// renders says whether Argo CD renders a source of a multi-source
// Application: any but a ref source without a path or chart.
func renders(s *ApplicationSource) bool { return s.Ref == "" || s.Path != "" || s.Chart != "" }

// sources reads a multi-source Application: the sources that render (a
// chart, or a path of a git repository) and `ref` sources that serve their
// files to the others' `$ref/...` value files. It returns the first
// rendering source and its field path, which the App's own fields take,
// and the indexes of the others, which become the App's spec.sources; nil
// when none renders.
func (c *converter) sources(list []ApplicationSource, ns string) (*ApplicationSource, string, []int) {
	var (
		render []int
		refs   = map[string]*tendv1.Source{}
	)
	for i := range list {
		s := &list[i]
		field := fmt.Sprintf("spec.sources[%d]", i)
		if renders(s) {
			render = append(render, i)
		}
		if s.Ref == "" {
			continue
		}
		switch {
		case refs[s.Ref] != nil:
			c.fail(field+".ref", "%q names another source too; ref names must be unique", s.Ref)
			continue
		case s.Chart != "":
			c.fail(field+".ref", "a ref source serves files of a git repository; %q is a chart", s.Chart)
			continue
		case s.RepoURL == "":
			c.fail(field+".repoURL", "required")
			continue
		}
		src := newSource(ns)
		ref := c.gitRef(s.RepoURL, s.TargetRevision, field+".targetRevision")
		src.Spec.Git = &tendv1.GitSource{URL: s.RepoURL, Ref: ref}
		src.Name = sourceName(s.RepoURL, refString(ref))
		c.credentials(src, s.RepoURL)
		refs[s.Ref] = src
	}
	c.refs = refs
	if len(render) == 0 {
		c.fail("spec.sources", "no source renders anything: every source is a ref source without a path or chart")
		return nil, "", nil
	}
	return &list[render[0]], fmt.Sprintf("spec.sources[%d]", render[0]), render[1:]
}

// source maps an ApplicationSource to a Source and the App's path, chart,
// Helm and kustomize options.
func (c *converter) source(s *ApplicationSource, field, ns string, spec *tendv1.AppSpec) *tendv1.Source {
	if s.RepoURL == "" {
		c.fail(field+".repoURL", "required")
	}
	if len(s.Plugin.Raw) > 0 {
		c.fail(field+".plugin", "config management plugins are not supported: render in CI and commit the output, or use Helm or kustomize")
	}
	out := newSource(ns)
	rev := s.TargetRevision
	if s.Chart != "" {
		// A chart from a Helm repository or OCI registry: targetRevision
		// is the chart version (or range).
		url := s.RepoURL
		switch {
		case strings.HasPrefix(url, "oci://"):
			out.Spec.OCI = &tendv1.OCIRepositorySource{URL: url}
		case !strings.Contains(url, "://"):
			// Argo CD names OCI chart registries without a scheme.
			url = "oci://" + url
			out.Spec.OCI = &tendv1.OCIRepositorySource{URL: url}
		default:
			out.Spec.Helm = &tendv1.HelmRepositorySource{URL: url}
		}
		out.Name = sourceName(url, "")
		spec.Chart = &tendv1.ChartSpec{Name: s.Chart, Version: rev}
		if s.Path != "" {
			c.fail(field+".path", "a chart source has no path; remove it or name a git repository in repoURL")
		}
		if s.Directory != nil {
			c.fail(field+".directory", "a chart source has no directory options")
		}
		if s.Kustomize != nil {
			c.fail(field+".kustomize", "a chart source has no kustomize options")
		}
	} else {
		ref := c.gitRef(s.RepoURL, rev, field+".targetRevision")
		out.Spec.Git = &tendv1.GitSource{URL: s.RepoURL, Ref: ref}
		out.Name = sourceName(s.RepoURL, refString(ref))
		spec.Path = s.Path
		if spec.Path == "." {
			spec.Path = ""
		}
		c.directory(s.Directory, field+".directory", spec)
		c.kustomize(s.Kustomize, field+".kustomize", spec)
	}
	c.helm(s.Helm, field+".helm", s.Chart != "", spec)
	c.credentials(out, s.RepoURL)
	return out
}

func newSource(ns string) *tendv1.Source {
	return &tendv1.Source{
		TypeMeta:   metav1.TypeMeta{APIVersion: tendv1.GroupVersion.String(), Kind: "Source"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns},
	}
}

// credentials names on src the Secret Options.Credentials gives for
// repoURL, if any.
func (c *converter) credentials(src *tendv1.Source, repoURL string) {
	if c.opts.Credentials == nil {
		return
	}
	name := c.opts.Credentials(repoURL)
	if name == "" {
		return
	}
	ref := &tendv1.LocalObjectReference{Name: name}
	switch {
	case src.Spec.Git != nil:
		src.Spec.Git.SecretRef = ref
	case src.Spec.Helm != nil:
		src.Spec.Helm.SecretRef = ref
	case src.Spec.OCI != nil:
		src.Spec.OCI.SecretRef = ref
	}
}

var (
	commitPattern  = regexp.MustCompile(`^[0-9a-f]{40}$`)
	versionPattern = regexp.MustCompile(`^v?[0-9]+(\.[0-9]+)+([-+].*)?$`)
	// A version range: an operator or wildcard git forbids in ref names
	// (* ^ ~ space), a comparison or list, or an x wildcard after numbers.
	semverRange = regexp.MustCompile(`[*^~<>=|, ]|^v?[0-9]+(\.[0-9]+)*\.[xX]$`)
)

// gitRef maps a git targetRevision as Argo CD resolves it: empty or HEAD
// is the default branch, a full commit hash a commit, a version constraint
// the highest matching tag, any other name a branch or tag.
func (c *converter) gitRef(repoURL, rev, field string) tendv1.GitRef {
	switch {
	case rev == "" || rev == "HEAD":
		return tendv1.GitRef{}
	case commitPattern.MatchString(rev):
		return tendv1.GitRef{Commit: rev}
	case semverRange.MatchString(rev) && !strings.ContainsAny(rev, "/"):
		return tendv1.GitRef{SemVer: rev}
	}
	kind := RefBranch
	if c.opts.RefKind != nil {
		k, err := c.opts.RefKind(repoURL, rev)
		if err != nil {
			c.fail(field, "%v", err)
			return tendv1.GitRef{}
		}
		kind = k
	} else if versionPattern.MatchString(rev) {
		kind = RefTag
	}
	if kind == RefTag {
		return tendv1.GitRef{Tag: rev}
	}
	return tendv1.GitRef{Branch: rev}
}

func refString(r tendv1.GitRef) string {
	switch {
	case r.Commit != "":
		return "commit:" + r.Commit
	case r.SemVer != "":
		return "semver:" + r.SemVer
	case r.Tag != "":
		return "tag:" + r.Tag
	case r.Branch != "":
		return "branch:" + r.Branch
	}
	return ""
}

var nameUnsafe = regexp.MustCompile(`[^a-z0-9]+`)

// sourceName names the Source for url at ref: the repository's last path
// element, readable, and a hash of both, so equal inputs share a Source
// and different ones never collide.
func sourceName(url, ref string) string {
	base := strings.TrimSuffix(strings.TrimRight(url, "/"), ".git")
	if i := strings.LastIndexAny(base, "/:"); i >= 0 {
		base = base[i+1:]
	}
	base = strings.Trim(nameUnsafe.ReplaceAllString(strings.ToLower(base), "-"), "-")
	if len(base) > 40 {
		base = strings.Trim(base[:40], "-")
	}
	if base == "" {
		base = "repo"
	}
	sum := sha256.Sum256([]byte(url + "\x00" + ref))
	return "argocd-" + base + "-" + hex.EncodeToString(sum[:4])
}

func (c *converter) directory(d *ApplicationSourceDirectory, field string, spec *tendv1.AppSpec) {
	if d == nil {
		return
	}
	spec.Recursive = d.Recurse
	for f, glob := range map[string]string{"include": d.Include, "exclude": d.Exclude} {
		if glob == "" {
			continue
		}
		if _, err := render.FileGlob(glob); err != nil {
			c.fail(field+"."+f, "glob %q: %v", glob, err)
			continue
		}
		if f == "include" {
			spec.Include = []string{glob}
		} else {
			spec.Exclude = []string{glob}
		}
	}
	if len(d.Jsonnet.Raw) > 0 && string(d.Jsonnet.Raw) != "{}" {
		c.fail(field+".jsonnet", "Jsonnet is not supported: render it in CI and commit the output")
	}
}

func (c *converter) kustomize(k *ApplicationSourceKustomize, field string, spec *tendv1.AppSpec) {
	if k == nil {
		return
	}
	c.unsupported(field, "not supported by tend's kustomize options; remove it, or move the setting into kustomization.yaml", map[string]bool{
		"version":                   k.Version != "",
		"forceCommonLabels":         k.ForceCommonLabels,
		"forceCommonAnnotations":    k.ForceCommonAnnotations,
		"commonAnnotationsEnvsubst": k.CommonAnnotationsEnvsubst,
		"labelWithoutSelector":      k.LabelWithoutSelector,
		"labelIncludeTemplates":     k.LabelIncludeTemplates,
		"kubeVersion":               k.KubeVersion != "",
		"apiVersions":               len(k.APIVersions) > 0,
		"ignoreMissingComponents":   k.IgnoreMissingComponents,
	})
	ks := &tendv1.KustomizeSpec{
		NamePrefix: k.NamePrefix, NameSuffix: k.NameSuffix, Namespace: k.Namespace,
		CommonLabels: k.CommonLabels, CommonAnnotations: k.CommonAnnotations, Components: k.Components,
	}
	for i, s := range k.Images {
		img, err := parseImage(s)
		if err != nil {
			c.fail(fmt.Sprintf("%s.images[%d]", field, i), "%v", err)
			continue
		}
		ks.Images = append(ks.Images, img)
	}
	for i, r := range k.Replicas {
		n, err := strconv.ParseInt(r.Count.String(), 10, 64)
		if err != nil || n < 0 {
			c.fail(fmt.Sprintf("%s.replicas[%d].count", field, i), "%q is not a replica count", r.Count.String())
			continue
		}
		ks.Replicas = append(ks.Replicas, tendv1.KustomizeReplica{Name: r.Name, Count: n})
	}
	for i, p := range k.Patches {
		if len(p.Options) > 0 {
			c.fail(fmt.Sprintf("%s.patches[%d].options", field, i), "patch options are not supported")
		}
		tp := tendv1.KustomizePatch{Patch: p.Patch, Path: p.Path}
		if t := p.Target; t != nil {
			tp.Target = &tendv1.PatchTarget{Group: t.Group, Version: t.Version, Kind: t.Kind, Name: t.Name,
				Namespace: t.Namespace, LabelSelector: t.LabelSelector, AnnotationSelector: t.AnnotationSelector}
		}
		ks.Patches = append(ks.Patches, tp)
	}
	spec.Kustomize = ks
}

// parseImage reads an Argo CD kustomize image override, as `kustomize edit
// set image` does: "name=newName:tag", "name=newName@digest",
// "name:tag", "name@digest" or "name=newName".
func parseImage(s string) (tendv1.KustomizeImage, error) {
	var img tendv1.KustomizeImage
	name, ref, renamed := strings.Cut(s, "=")
	if !renamed {
		ref = s
	}
	if d := strings.Index(ref, "@"); d >= 0 {
		ref, img.Digest = ref[:d], ref[d+1:]
	} else if t := strings.LastIndex(ref, ":"); t > strings.LastIndex(ref, "/") {
		ref, img.NewTag = ref[:t], ref[t+1:]
	}
	if renamed {
		img.Name, img.NewName = name, ref
	} else {
		img.Name = ref
	}
	if img.Name == "" || (renamed && img.NewName == "" && img.NewTag == "" && img.Digest == "") {
		return img, fmt.Errorf("image override %q: want name=newName:tag, name:tag or name@digest", s)
	}
	return img, nil
}

func (c *converter) helm(h *ApplicationSourceHelm, field string, chart bool, spec *tendv1.AppSpec) {
	if h == nil {
		return
	}
	// ignoreMissingValueFiles holds for files of ref sources (optional
	// valuesFrom entries), not for the App's own valuesFiles.
	ownFiles := slices.ContainsFunc(h.ValueFiles, func(f string) bool { return !strings.HasPrefix(f, "$") })
	c.unsupported(field, "not supported by tend's Helm options; remove it", map[string]bool{
		"fileParameters":          len(h.FileParameters) > 0,
		"passCredentials":         h.PassCredentials,
		"ignoreMissingValueFiles": h.IgnoreMissingValueFiles && ownFiles,
		"skipCrds":                h.SkipCrds,
		"skipTests":               h.SkipTests,
		"skipSchemaValidation":    h.SkipSchemaValidation,
		"namespace":               h.Namespace != "",
		"kubeVersion":             h.KubeVersion != "",
		"apiVersions":             len(h.APIVersions) > 0,
	})
	if h.Version != "" && h.Version != "v3" {
		c.fail(field+".version", "only Helm 3 charts are rendered (version %q)", h.Version)
	}
	hs := &tendv1.HelmSpec{ReleaseName: h.ReleaseName}
	refFile := false
	for i, f := range h.ValueFiles {
		if strings.HasPrefix(f, "$") {
			name, file, _ := strings.Cut(f[1:], "/")
			src := c.refs[name]
			switch {
			case src == nil:
				c.fail(fmt.Sprintf("%s.valueFiles[%d]", field, i), "%q: no source of spec.sources has ref %q", f, name)
			case file == "" || strings.HasPrefix(file, "/") || slices.Contains(strings.Split(file, "/"), ".."):
				c.fail(fmt.Sprintf("%s.valueFiles[%d]", field, i), "%q: name a file inside the %s repository after $%s/", f, name, name)
			default:
				hs.ValuesFrom = append(hs.ValuesFrom, tendv1.ValuesReference{Kind: "Source", Name: src.Name, Key: file, Optional: h.IgnoreMissingValueFiles})
				refFile = true
			}
			continue
		}
		if refFile {
			c.warn("%s.valueFiles[%d] %q: tend merges the App's own values files before those of ref sources, whatever their order", field, i, f)
		}
		if chart {
			c.fail(fmt.Sprintf("%s.valueFiles[%d]", field, i), "a chart from a chart repository has no files of its own to read %q from; move the values into helm.valuesObject", f)
			continue
		}
		hs.ValuesFiles = append(hs.ValuesFiles, f)
	}
	vals, err := helmValues(h)
	if err != nil {
		c.fail(field, "%v", err)
	}
	if len(vals) > 0 {
		raw, err := json.Marshal(vals)
		if err != nil {
			c.fail(field, "values: %v", err)
		}
		hs.Values = &apiextensionsv1.JSON{Raw: raw}
	}
	spec.Helm = hs
}

// helmValues merges an Application's inline values as Argo CD passes them
// to Helm: values (or valuesObject, which wins), then parameters as
// --set and --set-string.
func helmValues(h *ApplicationSourceHelm) (map[string]any, error) {
	vals := map[string]any{}
	switch {
	case len(h.ValuesObject.Raw) > 0 && string(h.ValuesObject.Raw) != "null":
		if err := json.Unmarshal(h.ValuesObject.Raw, &vals); err != nil {
			return nil, fmt.Errorf("valuesObject is not a map of values: %w", err)
		}
	case strings.TrimSpace(h.Values) != "":
		if err := yaml.Unmarshal([]byte(h.Values), &vals); err != nil {
			return nil, fmt.Errorf("values is not a YAML map of values: %w", err)
		}
	}
	for i, p := range h.Parameters {
		if p.Name == "" {
			return nil, fmt.Errorf("parameters[%d].name: required", i)
		}
		set := p.Name + "=" + escapeCommas(p.Value)
		parse := strvals.ParseInto
		if p.ForceString {
			parse = strvals.ParseIntoString
		}
		if err := parse(set, vals); err != nil {
			return nil, fmt.Errorf("parameters[%d] (%s): %w", i, p.Name, err)
		}
	}
	return vals, nil
}

// escapeCommas escapes the commas of a --set value that are not escaped
// already, as Argo CD does: a parameter is one value, never a list of
// assignments.
func escapeCommas(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			b.WriteByte(v[i])
			b.WriteByte(v[i+1])
			i++
			continue
		}
		if v[i] == ',' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

func (c *converter) destination(d *tendv1.Destination) {
	dst := c.app.Spec.Destination
	d.Namespace = dst.Namespace
	switch {
	case dst.Server != "" && dst.Name != "":
		c.fail("spec.destination", "set either server or name, not both")
	case dst.Server == InCluster || dst.Name == "in-cluster" || (dst.Server == "" && dst.Name == ""):
	case c.opts.Cluster == nil:
		c.fail("spec.destination", "cluster %s: only the in-cluster destination (%s) can be converted without the cluster's Argo CD Secret", orName(dst.Server, dst.Name), InCluster)
	default:
		name, err := c.opts.Cluster(dst.Server, dst.Name)
		if err != nil {
			c.fail("spec.destination", "%v", err)
			return
		}
		d.ClusterRef = &tendv1.LocalObjectReference{Name: name}
	}
}

func orName(server, name string) string {
	if server != "" {
		return server
	}
	return name
}

// syncOptionsHeld are Argo CD sync options whose behaviour tend has anyway.
var syncOptionsHeld = map[string]string{
	"ServerSideApply=true":           "",
	"RespectIgnoreDifferences=true":  "",
	"ApplyOutOfSyncOnly=true":        "",
	"FailOnSharedResource=true":      "",
	"CreateNamespace=false":          "",
	"PruneLast=true":                 "",
	"PruneLast=false":                "tend prunes after every wave is applied and healthy",
	"Validate=true":                  "",
	"ServerSideApply=false":          "tend always applies server-side",
	"RespectIgnoreDifferences=false": "tend never applies ignored fields",
	"ApplyOutOfSyncOnly=false":       "tend applies only objects that differ",
}

func (c *converter) syncPolicy(p *SyncPolicy, spec *tendv1.AppSpec) {
	spec.Sync.Manual = true
	if p == nil {
		return
	}
	if a := p.Automated; a != nil && (a.Enabled == nil || *a.Enabled) {
		spec.Sync.Manual = false
		spec.Sync.Prune, spec.Sync.SelfHeal, spec.Sync.AllowEmpty = a.Prune, a.SelfHeal, a.AllowEmpty
	}
	for i, o := range p.SyncOptions {
		field := fmt.Sprintf("spec.syncPolicy.syncOptions[%d]", i)
		if o == "CreateNamespace=true" {
			spec.Destination.CreateNamespace = true
			continue
		}
		if note, ok := syncOptionsHeld[o]; ok {
			if note != "" {
				c.warn("%s %q: %s", field, o, note)
			}
			continue
		}
		c.fail(field, "sync option %q is not supported", o)
	}
	if m := p.ManagedNamespaceMetadata; m != nil && (len(m.Labels) > 0 || len(m.Annotations) > 0) {
		if spec.Destination.CreateNamespace {
			spec.Destination.NamespaceMetadata = &tendv1.NamespaceMetadata{Labels: m.Labels, Annotations: m.Annotations}
		} else {
			c.warn("spec.syncPolicy.managedNamespaceMetadata has no effect without the sync option CreateNamespace=true (as in Argo CD); it is left out")
		}
	}
	if r := p.Retry; r != nil {
		c.retry(r, spec)
	}
}

func (c *converter) retry(r *RetryStrategy, spec *tendv1.AppSpec) {
	const field = "spec.syncPolicy.retry"
	rp := &tendv1.RetryPolicy{}
	switch {
	case r.Limit < 0:
		// Argo CD retries forever; so does a tend limit of 0.
	case r.Limit == 0:
		c.fail(field+".limit", "0 (no retries) cannot be expressed: tend retries failed syncs with backoff; set a limit of 1 or more")
	default:
		rp.Limit = int32(min(r.Limit, 1<<31-1))
	}
	if r.Refresh {
		c.warn("%s.refresh: tend always syncs the newest revision when it retries", field)
	}
	if b := r.Backoff; b != nil {
		var err error
		if rp.Backoff.Duration, err = argoDuration(b.Duration); err != nil {
			c.fail(field+".backoff.duration", "%v", err)
		}
		if rp.MaxBackoff.Duration, err = argoDuration(b.MaxDuration); err != nil {
			c.fail(field+".backoff.maxDuration", "%v", err)
		}
		if b.Factor != nil && *b.Factor != 2 {
			c.fail(field+".backoff.factor", "tend doubles the delay each time; a factor of %d is not supported", *b.Factor)
		}
	}
	spec.Sync.Retry = rp
}

// argoDuration reads a duration as Argo CD does: a Go duration or a
// number of seconds; "" is zero (tend's default).
func argoDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (e.g. 5s, 3m)", s)
	}
	return d, nil
}
