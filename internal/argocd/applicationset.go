package argocd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// ApplicationSet is an Argo CD ApplicationSet (argoproj.io/v1alpha1),
// spec only, with every field of Argo CD 3's spec.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=applicationsets,categories=argo
// +kubebuilder:subresource:status
type ApplicationSet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ApplicationSetSpec `json:"spec"`
	Status            Raw                `json:"status,omitempty"`
}

// ApplicationSetSpec is an ApplicationSet's spec.
type ApplicationSetSpec struct {
	GoTemplate                   bool                      `json:"goTemplate,omitempty"`
	GoTemplateOptions            []string                  `json:"goTemplateOptions,omitempty"`
	Generators                   []ApplicationSetGenerator `json:"generators"`
	Template                     ApplicationSetTemplate    `json:"template"`
	SyncPolicy                   *ApplicationSetSyncPolicy `json:"syncPolicy,omitempty"`
	Strategy                     Raw                       `json:"strategy,omitempty"`
	PreservedFields              Raw                       `json:"preservedFields,omitempty"`
	TemplatePatch                *string                   `json:"templatePatch,omitempty"`
	IgnoreApplicationDifferences Raw                       `json:"ignoreApplicationDifferences,omitempty"`
}

// ApplicationSetGenerator is one generator; tend reads list, git
// directories and files, clusters, matrix and merge.
type ApplicationSetGenerator struct {
	List                    *ListGenerator   `json:"list,omitempty"`
	Git                     *GitGenerator    `json:"git,omitempty"`
	Clusters                Raw              `json:"clusters,omitempty"`
	Matrix                  *MatrixGenerator `json:"matrix,omitempty"`
	Merge                   *MergeGenerator  `json:"merge,omitempty"`
	SCMProvider             Raw              `json:"scmProvider,omitempty"`
	ClusterDecisionResource Raw              `json:"clusterDecisionResource,omitempty"`
	PullRequest             Raw              `json:"pullRequest,omitempty"`
	Plugin                  Raw              `json:"plugin,omitempty"`
	Selector                Raw              `json:"selector,omitempty"`
}

// ApplicationSetNestedGenerator is a generator inside matrix or merge; a
// matrix or merge inside it is kept raw, as Argo CD's CRD does, and read
// as a NestedMatrixGenerator or NestedMergeGenerator when converted.
type ApplicationSetNestedGenerator struct {
	List                    *ListGenerator `json:"list,omitempty"`
	Git                     *GitGenerator  `json:"git,omitempty"`
	Clusters                Raw            `json:"clusters,omitempty"`
	Matrix                  Raw            `json:"matrix,omitempty"`
	Merge                   Raw            `json:"merge,omitempty"`
	SCMProvider             Raw            `json:"scmProvider,omitempty"`
	ClusterDecisionResource Raw            `json:"clusterDecisionResource,omitempty"`
	PullRequest             Raw            `json:"pullRequest,omitempty"`
	Plugin                  Raw            `json:"plugin,omitempty"`
	Selector                Raw            `json:"selector,omitempty"`
}

// MatrixGenerator combines the parameter sets of two generators.
type MatrixGenerator struct {
	Generators []ApplicationSetNestedGenerator `json:"generators"`
	Template   Raw                             `json:"template,omitempty"`
}

// MergeGenerator overrides the first generator's sets by merge keys.
type MergeGenerator struct {
	Generators []ApplicationSetNestedGenerator `json:"generators"`
	MergeKeys  []string                        `json:"mergeKeys"`
	Template   Raw                             `json:"template,omitempty"`
}

// NestedMatrixGenerator is a matrix inside a matrix or merge (Argo CD
// allows one such level); its generators cannot nest further.
type NestedMatrixGenerator struct {
	Generators []ApplicationSetNestedGenerator `json:"generators"`
	Template   Raw                             `json:"template,omitempty"`
}

// NestedMergeGenerator is a merge inside a matrix or merge.
type NestedMergeGenerator struct {
	Generators []ApplicationSetNestedGenerator `json:"generators"`
	MergeKeys  []string                        `json:"mergeKeys"`
	Template   Raw                             `json:"template,omitempty"`
}

// ClusterGenerator generates one Application per Argo CD cluster (cluster
// Secret, and the cluster Argo CD runs in without a selector). The
// ApplicationSet CRD keeps it raw (clusters); conversion reads it as this.
type ClusterGenerator struct {
	Selector metav1.LabelSelector `json:"selector,omitempty"`
	Template Raw                  `json:"template,omitempty"`
	Values   map[string]string    `json:"values,omitempty"`
	FlatList bool                 `json:"flatList,omitempty"`
}

// ListGenerator generates one Application per element.
type ListGenerator struct {
	Elements     []Raw  `json:"elements,omitempty"`
	ElementsYaml string `json:"elementsYaml,omitempty"`
	Template     Raw    `json:"template,omitempty"`
}

// GitGenerator generates from a repository's directories or files.
type GitGenerator struct {
	RepoURL             string                      `json:"repoURL"`
	Revision            string                      `json:"revision,omitempty"`
	Directories         []GitDirectoryGeneratorItem `json:"directories,omitempty"`
	Files               []GitFileGeneratorItem      `json:"files,omitempty"`
	RequeueAfterSeconds *int64                      `json:"requeueAfterSeconds,omitempty"`
	Template            Raw                         `json:"template,omitempty"`
	PathParamPrefix     string                      `json:"pathParamPrefix,omitempty"`
	Values              map[string]string           `json:"values,omitempty"`
}

// GitDirectoryGeneratorItem is a directory glob, included or excluded.
type GitDirectoryGeneratorItem struct {
	Path    string `json:"path"`
	Exclude bool   `json:"exclude,omitempty"`
}

// GitFileGeneratorItem is a file glob, included or excluded.
type GitFileGeneratorItem struct {
	Path    string `json:"path"`
	Exclude bool   `json:"exclude,omitempty"`
}

// ApplicationSetTemplate is the Application each parameter set makes.
type ApplicationSetTemplate struct {
	Metadata ApplicationSetTemplateMeta `json:"metadata"`
	Spec     ApplicationSpec            `json:"spec"`
}

// ApplicationSetTemplateMeta is the metadata of generated Applications.
type ApplicationSetTemplateMeta struct {
	Name        string            `json:"name,omitempty"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Finalizers  []string          `json:"finalizers,omitempty"`
}

// ApplicationSetSyncPolicy says what happens to generated Applications.
type ApplicationSetSyncPolicy struct {
	PreserveResourcesOnDeletion bool    `json:"preserveResourcesOnDeletion,omitempty"`
	ApplicationsSync            *string `json:"applicationsSync,omitempty"`
}

// ParseApplicationSet decodes one ApplicationSet from YAML or JSON;
// unknown fields are errors that name them.
func ParseApplicationSet(doc []byte) (*ApplicationSet, error) {
	var set ApplicationSet
	if err := yaml.UnmarshalStrict(doc, &set); err != nil {
		return nil, err
	}
	if set.APIVersion != Group+"/v1alpha1" || set.Kind != "ApplicationSet" {
		return nil, fmt.Errorf("%s %s is not an Argo CD ApplicationSet", set.APIVersion, set.Kind)
	}
	return &set, nil
}

// SetResult is what an ApplicationSet maps to.
type SetResult struct {
	AppSet *tendv1.AppSet
	// Sources are the template's Source and the directories generators'.
	Sources []*tendv1.Source
	// Clusters says that the AppSet has a clusters generator: it reads the
	// Clusters of its namespace, so each Argo CD cluster Secret there
	// should be a Cluster (ClusterFromSecret) for it to find.
	Clusters bool
	Warnings []string
}

// ClusterFromSecret is the Cluster an Argo CD cluster Secret maps onto:
// named after the Secret, reading it as it is (tend reads an Argo CD
// cluster Secret's server and config), with the Secret's labels and
// annotations, which a clusters generator selects by and gives as
// metadata.labels and metadata.annotations, as Argo CD does.
// kubectl's last-applied-configuration is left out: on a Secret it holds
// the Secret's data.
func ClusterFromSecret(sec *corev1.Secret, namespace string) *tendv1.Cluster {
	annotations := maps.Clone(sec.Annotations)
	delete(annotations, corev1.LastAppliedConfigAnnotation)
	if len(annotations) == 0 {
		annotations = nil
	}
	return &tendv1.Cluster{
		TypeMeta:   metav1.TypeMeta{APIVersion: tendv1.GroupVersion.String(), Kind: "Cluster"},
		ObjectMeta: metav1.ObjectMeta{Name: sec.Name, Namespace: namespace, Labels: maps.Clone(sec.Labels), Annotations: annotations},
		Spec:       tendv1.ClusterSpec{KubeconfigSecretRef: tendv1.SecretKeyReference{Name: sec.Name}},
	}
}

var (
	placeholder = regexp.MustCompile(`\{\{\s*([^}\s]*)\s*\}\}`)
	// pathSegment is a git generator's {{path[n]}}.
	pathSegment = regexp.MustCompile(`^path\[[0-9]+\]$`)
)

// ConvertApplicationSet maps set to a tend AppSet: list, git directories
// and files, clusters, matrix and merge generators (one nested level of
// matrix or merge, as Argo CD allows), and the template as an App
// template (converted as an Application is). A template destination
// taken from a clusters generator ({{server}} or a placeholder in name)
// becomes destination.clusterRef.name. Placeholders tend does not fill
// are refused.
func ConvertApplicationSet(set *ApplicationSet, opts Options) (*SetResult, error) {
	c := &converter{opts: opts}
	ns := opts.Namespace
	if ns == "" {
		ns = set.Namespace
	}
	spec := &set.Spec
	for i, o := range spec.GoTemplateOptions {
		if !strings.HasPrefix(o, "missingkey=") {
			c.fail(fmt.Sprintf("spec.goTemplateOptions[%d]", i), "%q: only missingkey= options are supported", o)
		}
	}
	c.unsupported("spec", "not supported; remove it", map[string]bool{
		"strategy":                     len(spec.Strategy.Raw) > 0,
		"preservedFields":              len(spec.PreservedFields.Raw) > 0,
		"templatePatch":                spec.TemplatePatch != nil,
		"ignoreApplicationDifferences": len(spec.IgnoreApplicationDifferences.Raw) > 0,
	})
	out := &tendv1.AppSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: tendv1.GroupVersion.String(), Kind: "AppSet"},
		ObjectMeta: metav1.ObjectMeta{Name: set.Name, Namespace: ns, Labels: set.Labels},
		Spec:       tendv1.AppSetSpec{GoTemplate: spec.GoTemplate, GoTemplateOptions: spec.GoTemplateOptions},
	}
	// Argo CD deletes the Applications a generator no longer makes unless
	// its policy is create-only or create-update.
	out.Spec.PruneApps = true
	if p := spec.SyncPolicy; p != nil {
		if p.ApplicationsSync != nil && *p.ApplicationsSync != "sync" && *p.ApplicationsSync != "create-delete" {
			out.Spec.PruneApps = false
		}
		if p.PreserveResourcesOnDeletion {
			c.fail("spec.syncPolicy.preserveResourcesOnDeletion", "not supported: a deleted App prunes its objects when its spec.sync.prune is set; unset prune in the template instead")
		}
	}
	res := &SetResult{AppSet: out}
	params := &setParams{}
	for i, g := range spec.Generators {
		field := fmt.Sprintf("spec.generators[%d]", i)
		nested := ApplicationSetNestedGenerator{List: g.List, Git: g.Git, Clusters: g.Clusters, SCMProvider: g.SCMProvider,
			ClusterDecisionResource: g.ClusterDecisionResource, PullRequest: g.PullRequest, Plugin: g.Plugin, Selector: g.Selector}
		switch {
		case g.Matrix != nil:
			c.onlyOne(field, nested, "matrix")
			if len(g.Matrix.Template.Raw) > 0 {
				c.fail(field+".matrix.template", "per-generator templates are not supported")
			}
			if len(g.Matrix.Generators) != 2 {
				c.fail(field+".matrix.generators", "a matrix combines exactly two generators")
			}
			m := &tendv1.MatrixGenerator{}
			for j, n := range g.Matrix.Generators {
				if gen := c.innerGenerator(n, fmt.Sprintf("%s.matrix.generators[%d]", field, j), ns, params, res); gen != nil {
					m.Generators = append(m.Generators, *gen)
				}
			}
			out.Spec.Generators = append(out.Spec.Generators, tendv1.Generator{Matrix: m})
		case g.Merge != nil:
			c.onlyOne(field, nested, "merge")
			if len(g.Merge.Template.Raw) > 0 {
				c.fail(field+".merge.template", "per-generator templates are not supported")
			}
			if len(g.Merge.MergeKeys) == 0 {
				c.fail(field+".merge.mergeKeys", "required: name the parameters that identify a set")
			}
			m := &tendv1.MergeGenerator{MergeKeys: g.Merge.MergeKeys}
			for j, n := range g.Merge.Generators {
				if gen := c.innerGenerator(n, fmt.Sprintf("%s.merge.generators[%d]", field, j), ns, params, res); gen != nil {
					m.Generators = append(m.Generators, *gen)
				}
			}
			out.Spec.Generators = append(out.Spec.Generators, tendv1.Generator{Merge: m})
		default:
			if gen := c.nestedGenerator(nested, field, ns, true, params, res); gen != nil {
				out.Spec.Generators = append(out.Spec.Generators, tendv1.Generator{Directories: gen.Directories, Files: gen.Files, List: gen.List, Clusters: gen.Clusters})
			}
		}
	}
	res.Clusters = params.clusters
	// A destination from a clusters generator's parameters names a
	// Cluster: tend's Apps reach a remote cluster by Cluster name.
	tplSpec := spec.Template.Spec
	clusterRef := c.templateDestination(&tplSpec.Destination, spec.GoTemplate, params)
	// The template converts as an Application does.
	tpl := &Application{
		TypeMeta: metav1.TypeMeta{APIVersion: Group + "/v1alpha1", Kind: "Application"},
		ObjectMeta: metav1.ObjectMeta{Name: spec.Template.Metadata.Name, Namespace: set.Namespace, Labels: spec.Template.Metadata.Labels,
			Finalizers: spec.Template.Metadata.Finalizers},
		Spec: tplSpec,
	}
	sub := &converter{app: tpl, opts: opts}
	app := sub.convert()
	for _, err := range sub.errs {
		c.errs = append(c.errs, fmt.Errorf("spec.template: %w", err))
	}
	c.warnings = append(c.warnings, sub.warnings...)
	if app.App != nil && app.Source != nil {
		out.Spec.Template = tendv1.AppTemplate{
			Metadata: tendv1.AppTemplateMeta{Name: spec.Template.Metadata.Name, Labels: spec.Template.Metadata.Labels, Annotations: spec.Template.Metadata.Annotations},
			Spec:     app.App.Spec,
		}
		if clusterRef != "" {
			out.Spec.Template.Spec.Destination.ClusterRef = &tendv1.LocalObjectReference{Name: clusterRef}
		}
		res.Sources = append(res.Sources, app.Source)
		res.Sources = append(res.Sources, app.OtherSources...)
		if b, _ := json.Marshal(app.Source.Spec); bytes.Contains(b, []byte("{{")) {
			c.fail("spec.template.spec.source", "repoURL and targetRevision cannot hold placeholders: tend names one Source for the template")
		}
	}
	// Every placeholder must be one tend fills; a files generator's keys
	// are only known when the files are read, and Go templates are
	// checked when they run (missingkey=error).
	raw, _ := json.Marshal(spec.Template)
	for _, m := range placeholder.FindAllStringSubmatch(string(raw), -1) {
		if spec.GoTemplate {
			break
		}
		if !params.files && !params.keys[m[1]] && !(params.keys["path"] && pathSegment.MatchString(m[1])) && !params.clusterKey(m[1]) {
			c.fail("spec.template", "placeholder {{%s}} is not filled by tend's generators here (%s)", m[1], strings.Join(slices.Sorted(maps.Keys(params.keys)), ", "))
		}
	}
	if len(c.errs) > 0 {
		return nil, fmt.Errorf("converting Argo CD ApplicationSet %s/%s: %w", set.Namespace, set.Name, errors.Join(c.errs...))
	}
	res.Warnings = c.warnings
	return res, nil
}

// setParams are the parameters the converted generators fill.
type setParams struct {
	keys map[string]bool
	// files is set when a files generator fills keys read from files.
	files bool
	// clusters is set when a clusters generator fills keys from the
	// Clusters' labels and annotations.
	clusters bool
}

// clusterKey says whether key is a cluster's label or annotation
// parameter, which only the Clusters tell.
func (p *setParams) clusterKey(key string) bool {
	return p.clusters && (strings.HasPrefix(key, "metadata.labels.") || strings.HasPrefix(key, "metadata.annotations."))
}

// appSetServerParam matches a template's destination.server that is a
// clusters generator's server parameter: {{server}} or {{ .server }}.
var appSetServerParam = regexp.MustCompile(`^\{\{\s*\.?server\s*\}\}$`)

// templateDestination takes a destination with placeholders out of d (so
// that the template converts as an Application would) and returns the
// Cluster name template for destination.clusterRef.name: a placeholder
// in name is kept as it is (tend's Cluster names are the cluster Secrets'
// names); server can only be a clusters generator's {{server}}, which
// becomes its {{name}}. It returns "" for a destination without
// placeholders.
func (c *converter) templateDestination(d *ApplicationDestination, goTemplate bool, params *setParams) string {
	const field = "spec.template.spec.destination"
	if !strings.Contains(d.Server, "{{") && !strings.Contains(d.Name, "{{") {
		return ""
	}
	defer func() { d.Server, d.Name = "", "" }()
	switch {
	case d.Server != "" && d.Name != "":
		c.fail(field, "set either server or name, not both")
	case d.Name != "":
		c.warn("%s.name %q becomes destination.clusterRef.name: it must give the name of a tend Cluster, which is the Argo CD cluster Secret's metadata.name (a clusters generator's {{name}} is that name), or in-cluster", field, d.Name)
		return d.Name
	case !appSetServerParam.MatchString(d.Server) || !params.clusters:
		c.fail(field+".server", "%q: tend's Apps name their cluster, so a placeholder here can only be a clusters generator's {{server}}; use destination.name with a placeholder for the cluster's name", d.Server)
	case goTemplate:
		return "{{ .name }}"
	default:
		return "{{name}}"
	}
	return ""
}

func (p *setParams) add(keys ...string) {
	if p.keys == nil {
		p.keys = map[string]bool{}
	}
	for _, k := range keys {
		p.keys[k] = true
	}
}

// onlyOne fails every generator field of g set beside the one named kind.
func (c *converter) onlyOne(field string, g ApplicationSetNestedGenerator, kind string) {
	if g.List != nil || g.Git != nil || len(g.Clusters.Raw) > 0 || len(g.SCMProvider.Raw) > 0 || len(g.ClusterDecisionResource.Raw) > 0 ||
		len(g.PullRequest.Raw) > 0 || len(g.Plugin.Raw) > 0 {
		c.fail(field, "set exactly one generator beside %s", kind)
	}
	if len(g.Selector.Raw) > 0 {
		c.fail(field+".selector", "not supported; remove it")
	}
}

// innerGenerator converts a generator inside a top-level matrix or merge:
// a leaf generator, or one more matrix or merge of leaf generators.
func (c *converter) innerGenerator(g ApplicationSetNestedGenerator, field, ns string, params *setParams, res *SetResult) *tendv1.NestedGenerator {
	switch {
	case len(g.Matrix.Raw) > 0 && len(g.Merge.Raw) > 0:
		c.fail(field, "set exactly one of matrix or merge")
	case len(g.Matrix.Raw) > 0:
		c.onlyOne(field, ApplicationSetNestedGenerator{List: g.List, Git: g.Git, Clusters: g.Clusters, SCMProvider: g.SCMProvider,
			ClusterDecisionResource: g.ClusterDecisionResource, PullRequest: g.PullRequest, Plugin: g.Plugin, Selector: g.Selector}, "matrix")
		var m NestedMatrixGenerator
		if err := yaml.UnmarshalStrict(g.Matrix.Raw, &m); err != nil {
			c.fail(field+".matrix", "%v", err)
			return nil
		}
		if len(m.Template.Raw) > 0 {
			c.fail(field+".matrix.template", "per-generator templates are not supported")
		}
		if len(m.Generators) != 2 {
			c.fail(field+".matrix.generators", "a matrix combines exactly two generators")
		}
		out := &tendv1.NestedMatrixGenerator{}
		for j, n := range m.Generators {
			if gen := c.nestedGenerator(n, fmt.Sprintf("%s.matrix.generators[%d]", field, j), ns, false, params, res); gen != nil {
				out.Generators = append(out.Generators, *gen)
			}
		}
		return &tendv1.NestedGenerator{Matrix: out}
	case len(g.Merge.Raw) > 0:
		c.onlyOne(field, ApplicationSetNestedGenerator{List: g.List, Git: g.Git, Clusters: g.Clusters, SCMProvider: g.SCMProvider,
			ClusterDecisionResource: g.ClusterDecisionResource, PullRequest: g.PullRequest, Plugin: g.Plugin, Selector: g.Selector}, "merge")
		var m NestedMergeGenerator
		if err := yaml.UnmarshalStrict(g.Merge.Raw, &m); err != nil {
			c.fail(field+".merge", "%v", err)
			return nil
		}
		if len(m.Template.Raw) > 0 {
			c.fail(field+".merge.template", "per-generator templates are not supported")
		}
		if len(m.MergeKeys) == 0 {
			c.fail(field+".merge.mergeKeys", "required: name the parameters that identify a set")
		}
		out := &tendv1.NestedMergeGenerator{MergeKeys: m.MergeKeys}
		for j, n := range m.Generators {
			if gen := c.nestedGenerator(n, fmt.Sprintf("%s.merge.generators[%d]", field, j), ns, false, params, res); gen != nil {
				out.Generators = append(out.Generators, *gen)
			}
		}
		return &tendv1.NestedGenerator{Merge: out}
	}
	gen := c.nestedGenerator(g, field, ns, false, params, res)
	if gen == nil {
		return nil
	}
	return &tendv1.NestedGenerator{Directories: gen.Directories, Files: gen.Files, List: gen.List, Clusters: gen.Clusters}
}

// nestedGenerator converts a list, git or clusters generator (top level,
// or inside matrix or merge); it adds the Sources it reads to res.
func (c *converter) nestedGenerator(g ApplicationSetNestedGenerator, field, ns string, top bool, params *setParams, res *SetResult) *tendv1.LeafGenerator {
	c.unsupported(field, "generator not supported (tend has list, git directories and files, clusters, matrix and merge)", map[string]bool{
		"scmProvider":             len(g.SCMProvider.Raw) > 0,
		"clusterDecisionResource": len(g.ClusterDecisionResource.Raw) > 0,
		"pullRequest":             len(g.PullRequest.Raw) > 0, "plugin": len(g.Plugin.Raw) > 0,
	})
	if !top {
		c.unsupported(field, "a matrix or merge nests one level only (as in Argo CD): this one is inside a matrix or merge that is itself nested", map[string]bool{
			"matrix": len(g.Matrix.Raw) > 0, "merge": len(g.Merge.Raw) > 0,
		})
	}
	if len(g.Selector.Raw) > 0 {
		c.fail(field+".selector", "not supported; remove it")
	}
	if g.Git != nil {
		if b, _ := json.Marshal(g.Git); bytes.Contains(b, []byte("{{")) {
			c.fail(field+".git", "placeholders in a generator (one generator reading another's parameters) are not supported")
		}
	}
	switch {
	case appSetKinds(g.List != nil, g.Git != nil, len(g.Clusters.Raw) > 0) > 1:
		c.fail(field, "set exactly one of list, git or clusters")
	case len(g.Clusters.Raw) > 0:
		if gen := c.clustersGenerator(g.Clusters, field+".clusters", params); gen != nil {
			return &tendv1.LeafGenerator{Clusters: gen}
		}
	case g.List != nil:
		return &tendv1.LeafGenerator{List: c.listGenerator(g.List, field+".list", top, params)}
	case g.Git != nil:
		dirs, files, src := c.gitGenerator(g.Git, field+".git", ns)
		if src == nil {
			return nil
		}
		res.Sources = append(res.Sources, src)
		if dirs != nil {
			params.add("path", "path.basename", "path.basenameNormalized", "name")
			return &tendv1.LeafGenerator{Directories: dirs}
		}
		params.files = true
		return &tendv1.LeafGenerator{Files: files}
	}
	return nil
}

func appSetKinds(set ...bool) int {
	n := 0
	for _, b := range set {
		if b {
			n++
		}
	}
	return n
}

// clustersGenerator converts a clusters generator: its selector and
// values; the Clusters are those of the AppSet's namespace (see
// ClusterFromSecret).
func (c *converter) clustersGenerator(raw Raw, field string, params *setParams) *tendv1.ClustersGenerator {
	var g ClusterGenerator
	if err := yaml.UnmarshalStrict(raw.Raw, &g); err != nil {
		c.fail(field, "%v", err)
		return nil
	}
	c.unsupported(field, "not supported; remove it", map[string]bool{
		"template": len(g.Template.Raw) > 0,
		"flatList": g.FlatList,
	})
	out := &tendv1.ClustersGenerator{Values: g.Values}
	if len(g.Selector.MatchLabels) > 0 || len(g.Selector.MatchExpressions) > 0 {
		sel := g.Selector
		if _, err := metav1.LabelSelectorAsSelector(&sel); err != nil {
			c.fail(field+".selector", "%v", err)
		}
		out.Selector = &sel
	}
	params.clusters = true
	params.add("name", "nameNormalized", "server")
	for k := range g.Values {
		params.add("values." + k)
	}
	return out
}

func (c *converter) listGenerator(l *ListGenerator, field string, top bool, params *setParams) *tendv1.ListGenerator {
	if l.ElementsYaml != "" {
		c.fail(field+".elementsYaml", "not supported: write the elements as a list")
	}
	if len(l.Template.Raw) > 0 {
		c.fail(field+".template", "per-generator templates are not supported")
	}
	out := &tendv1.ListGenerator{}
	for i, raw := range l.Elements {
		var el map[string]string
		if err := json.Unmarshal(raw.Raw, &el); err != nil {
			c.fail(fmt.Sprintf("%s.elements[%d]", field, i), "tend's list elements are maps of strings")
			continue
		}
		if top && el["name"] == "" {
			c.fail(fmt.Sprintf("%s.elements[%d]", field, i), "tend's list elements need a name (it names the App's parameter set)")
		}
		params.add(slices.Collect(maps.Keys(el))...)
		out.Elements = append(out.Elements, el)
	}
	return out
}

// gitGenerator converts a git generator: directories or files, and the
// Source it reads.
func (c *converter) gitGenerator(g *GitGenerator, field, ns string) (*tendv1.DirectoriesGenerator, *tendv1.FilesGenerator, *tendv1.Source) {
	c.unsupported(field, "not supported; remove it", map[string]bool{
		"template":        len(g.Template.Raw) > 0,
		"pathParamPrefix": g.PathParamPrefix != "",
		"values":          len(g.Values) > 0,
	})
	if (len(g.Directories) == 0) == (len(g.Files) == 0) {
		c.fail(field, "set exactly one of directories or files")
		return nil, nil, nil
	}
	ref := c.gitRef(g.RepoURL, g.Revision, field+".revision")
	src := newSource(ns)
	src.Name = sourceName(g.RepoURL, refString(ref))
	src.Spec.Git = &tendv1.GitSource{URL: g.RepoURL, Ref: ref}
	c.credentials(src, g.RepoURL)
	srcRef := tendv1.NamespacedObjectReference{Name: src.Name}
	if len(g.Files) > 0 {
		gen := &tendv1.FilesGenerator{SourceRef: srcRef}
		for _, f := range g.Files {
			if f.Exclude {
				gen.Exclude = append(gen.Exclude, f.Path)
			} else {
				gen.Include = append(gen.Include, f.Path)
			}
		}
		if len(gen.Include) == 0 {
			c.fail(field+".files", "every path is excluded: add one that is not")
		}
		return nil, gen, src
	}
	gen := &tendv1.DirectoriesGenerator{SourceRef: srcRef}
	for _, d := range g.Directories {
		if d.Exclude {
			gen.Exclude = append(gen.Exclude, d.Path)
		} else {
			gen.Include = append(gen.Include, d.Path)
		}
	}
	return gen, nil, src
}
