package argocd

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

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

// ApplicationSetGenerator is one generator; tend reads list and git
// directories.
type ApplicationSetGenerator struct {
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
	Files               Raw                         `json:"files,omitempty"`
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
	Sources  []*tendv1.Source
	Warnings []string
}

var placeholder = regexp.MustCompile(`\{\{\s*([^}\s]*)\s*\}\}`)

// ConvertApplicationSet maps set to a tend AppSet: list and git
// directories generators, and the template as an App template (converted
// as an Application is). Placeholders tend does not fill are refused.
func ConvertApplicationSet(set *ApplicationSet, opts Options) (*SetResult, error) {
	c := &converter{opts: opts}
	ns := opts.Namespace
	if ns == "" {
		ns = set.Namespace
	}
	spec := &set.Spec
	if spec.GoTemplate {
		c.fail("spec.goTemplate", "Go templates are not supported: write placeholders as {{path}}, {{path.basename}} or a list element's {{key}}")
	}
	c.unsupported("spec", "not supported; remove it", map[string]bool{
		"goTemplateOptions":            len(spec.GoTemplateOptions) > 0,
		"strategy":                     len(spec.Strategy.Raw) > 0,
		"preservedFields":              len(spec.PreservedFields.Raw) > 0,
		"templatePatch":                spec.TemplatePatch != nil,
		"ignoreApplicationDifferences": len(spec.IgnoreApplicationDifferences.Raw) > 0,
	})
	out := &tendv1.AppSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: tendv1.GroupVersion.String(), Kind: "AppSet"},
		ObjectMeta: metav1.ObjectMeta{Name: set.Name, Namespace: ns, Labels: set.Labels},
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
	params := map[string]bool{}
	for i, g := range spec.Generators {
		field := fmt.Sprintf("spec.generators[%d]", i)
		c.unsupported(field, "generator not supported (tend has list and git directories)", map[string]bool{
			"clusters": len(g.Clusters.Raw) > 0, "matrix": len(g.Matrix.Raw) > 0, "merge": len(g.Merge.Raw) > 0,
			"scmProvider": len(g.SCMProvider.Raw) > 0, "clusterDecisionResource": len(g.ClusterDecisionResource.Raw) > 0,
			"pullRequest": len(g.PullRequest.Raw) > 0, "plugin": len(g.Plugin.Raw) > 0,
		})
		if len(g.Selector.Raw) > 0 {
			c.fail(field+".selector", "not supported; remove it")
		}
		switch {
		case g.List != nil:
			out.Spec.Generators = append(out.Spec.Generators, tendv1.Generator{List: c.listGenerator(g.List, field+".list", params)})
		case g.Git != nil:
			gen, src := c.gitGenerator(g.Git, field+".git", ns)
			if gen != nil {
				out.Spec.Generators = append(out.Spec.Generators, tendv1.Generator{Directories: gen})
				res.Sources = append(res.Sources, src)
				params["path"], params["path.basename"], params["name"] = true, true, true
			}
		}
	}
	// The template converts as an Application does.
	tpl := &Application{
		TypeMeta:   metav1.TypeMeta{APIVersion: Group + "/v1alpha1", Kind: "Application"},
		ObjectMeta: metav1.ObjectMeta{Name: spec.Template.Metadata.Name, Namespace: set.Namespace, Labels: spec.Template.Metadata.Labels,
			Finalizers: spec.Template.Metadata.Finalizers},
		Spec: spec.Template.Spec,
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
		res.Sources = append(res.Sources, app.Source)
		if b, _ := json.Marshal(app.Source.Spec); placeholder.Match(b) {
			c.fail("spec.template.spec.source", "repoURL and targetRevision cannot hold placeholders: tend names one Source for the template")
		}
	}
	// Every placeholder must be one tend fills.
	raw, _ := json.Marshal(spec.Template)
	for _, m := range placeholder.FindAllStringSubmatch(string(raw), -1) {
		if !params[m[1]] {
			c.fail("spec.template", "placeholder {{%s}} is not filled by tend's generators here (%s)", m[1], strings.Join(slices.Sorted(maps.Keys(params)), ", "))
		}
	}
	if len(c.errs) > 0 {
		return nil, fmt.Errorf("converting Argo CD ApplicationSet %s/%s: %w", set.Namespace, set.Name, errors.Join(c.errs...))
	}
	res.Warnings = c.warnings
	return res, nil
}

func (c *converter) listGenerator(l *ListGenerator, field string, params map[string]bool) *tendv1.ListGenerator {
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
		if el["name"] == "" {
			c.fail(fmt.Sprintf("%s.elements[%d]", field, i), "tend's list elements need a name (it names the App's parameter set)")
		}
		for k := range el {
			params[k] = true
		}
		out.Elements = append(out.Elements, el)
	}
	return out
}

func (c *converter) gitGenerator(g *GitGenerator, field, ns string) (*tendv1.DirectoriesGenerator, *tendv1.Source) {
	if len(g.Files.Raw) > 0 {
		c.fail(field+".files", "the files generator is not supported; use directories")
	}
	c.unsupported(field, "not supported; remove it", map[string]bool{
		"template":        len(g.Template.Raw) > 0,
		"pathParamPrefix": g.PathParamPrefix != "",
		"values":          len(g.Values) > 0,
	})
	if len(g.Directories) == 0 {
		c.fail(field+".directories", "required (the files generator is not supported)")
		return nil, nil
	}
	ref := c.gitRef(g.RepoURL, g.Revision, field+".revision")
	src := newSource(ns)
	src.Name = sourceName(g.RepoURL, refString(ref))
	src.Spec.Git = &tendv1.GitSource{URL: g.RepoURL, Ref: ref}
	c.credentials(src, g.RepoURL)
	gen := &tendv1.DirectoriesGenerator{SourceRef: tendv1.NamespacedObjectReference{Name: src.Name}}
	for _, d := range g.Directories {
		if d.Exclude {
			gen.Exclude = append(gen.Exclude, d.Path)
		} else {
			gen.Include = append(gen.Include, d.Path)
		}
	}
	return gen, src
}
