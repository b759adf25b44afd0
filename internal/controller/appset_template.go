package controller

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/tend-gitops/tend/api/v1alpha1"
)

// This file fills an AppSet's template with a parameter set: {{key}}
// placeholders, or Go templates with spec.goTemplate.

// appSetPlaceholder matches {{key}} with optional spaces inside the braces.
var appSetPlaceholder = regexp.MustCompile(`\{\{\s*([^{}]*?)\s*\}\}`)

// appSetSubstituter replaces placeholders and remembers unknown ones; with
// goTemplate set it executes each string as a Go template over tree and
// remembers the first error.
type appSetSubstituter struct {
	values  map[string]string
	unknown map[string]struct{}

	goTemplate bool
	tree       map[string]any
	options    []string
	err        error
}

func (s *appSetSubstituter) replace(in string) string {
	if !strings.Contains(in, "{{") {
		return in
	}
	if s.goTemplate {
		return s.execute(in)
	}
	return appSetPlaceholder.ReplaceAllStringFunc(in, func(m string) string {
		key := appSetPlaceholder.FindStringSubmatch(m)[1]
		v, ok := s.values[key]
		if !ok {
			s.unknown["{{"+key+"}}"] = struct{}{}
			return m
		}
		return v
	})
}

// execute runs in as a Go template over s.tree.
func (s *appSetSubstituter) execute(in string) string {
	if s.err != nil {
		return in
	}
	tmpl, err := template.New("").Funcs(appSetFuncs).Option(s.options...).Parse(in)
	if err != nil {
		s.err = fmt.Errorf("template %q: %v", in, err)
		return in
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, s.tree); err != nil {
		s.err = fmt.Errorf("template %q: %v", in, err)
		return in
	}
	return b.String()
}

// appSetFuncs are the functions of Go templates: Sprig's, as Argo CD's
// ApplicationSets have them (without env, expandenv and getHostByName,
// which would read the controller's environment and DNS), and
// normalize, slugify, toYaml and fromYaml.
var appSetFuncs = func() template.FuncMap {
	f := sprig.TxtFuncMap()
	for _, name := range []string{"env", "expandenv", "getHostByName"} {
		delete(f, name)
	}
	f["normalize"] = appSetNormalize
	f["slugify"] = appSetSlugify
	f["toYaml"] = func(v any) (string, error) {
		b, err := yaml.Marshal(v)
		return strings.TrimSuffix(string(b), "\n"), err
	}
	f["fromYaml"] = func(s string) (map[string]any, error) {
		var m map[string]any
		return m, yaml.Unmarshal([]byte(s), &m)
	}
	return f
}()

var (
	slugInvalid = regexp.MustCompile(`[^a-z0-9-]+`)
	slugHyphens = regexp.MustCompile(`-+`)
)

// appSetSlugify is Argo CD's slugify: `slugify [maxSize [smartTruncate]]
// text` lowercases text, turns every run of other characters than letters,
// digits and hyphens into one hyphen, and cuts it to maxSize (default 50)
// characters: at the last hyphen that fits when smartTruncate (default
// true), else anywhere. Leading and trailing hyphens are removed.
func appSetSlugify(args ...any) (string, error) {
	maxSize, smart := 50, true
	if len(args) == 0 || len(args) > 3 {
		return "", fmt.Errorf("slugify takes [maxSize [smartTruncate]] text, got %d arguments", len(args))
	}
	text, ok := args[len(args)-1].(string)
	if !ok {
		return "", fmt.Errorf("slugify: the text to slugify is %T, not a string", args[len(args)-1])
	}
	if len(args) > 1 {
		n, ok := args[0].(int)
		if !ok || n <= 0 {
			return "", fmt.Errorf("slugify: maxSize %v is not a positive number", args[0])
		}
		maxSize = n
	}
	if len(args) > 2 {
		b, ok := args[1].(bool)
		if !ok {
			return "", fmt.Errorf("slugify: smartTruncate %v is not true or false", args[1])
		}
		smart = b
	}
	s := slugHyphens.ReplaceAllString(slugInvalid.ReplaceAllString(strings.ToLower(text), "-"), "-")
	s = strings.Trim(s, "-")
	if len(s) > maxSize {
		cut := s[:maxSize]
		if i := strings.LastIndex(cut, "-"); smart && i > 0 && s[maxSize] != '-' {
			cut = cut[:i]
		}
		s = strings.Trim(cut, "-")
	}
	return s, nil
}

// appSetTemplateOptions checks spec.goTemplateOptions.
func appSetTemplateOptions(opts []string) error {
	for _, o := range opts {
		switch o {
		case "missingkey=default", "missingkey=invalid", "missingkey=zero", "missingkey=error":
		default:
			return appSetStalledf(AppSetReasonInvalidTemplate, "spec.goTemplateOptions: %q is not an option; use missingkey=error (or missingkey=zero, missingkey=default)", o)
		}
	}
	return nil
}

// replaceAll replaces placeholders in every string value of a decoded
// JSON document.
func (s *appSetSubstituter) replaceAll(v any) any {
	switch t := v.(type) {
	case string:
		return s.replace(t)
	case map[string]any:
		for k, e := range t {
			t[k] = s.replaceAll(e)
		}
	case []any:
		for i, e := range t {
			t[i] = s.replaceAll(e)
		}
	}
	return v
}

func (s *appSetSubstituter) replaceMap(in map[string]string) map[string]string {
	if in == nil {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[s.replace(k)] = s.replace(v)
	}
	return out
}

// appSetRenderApp fills in set's template with p and returns the App to apply,
// without owner reference. Template errors are *appSetStalled.
func appSetRenderApp(set *v1alpha1.AppSet, p appSetParams) (*v1alpha1.App, error) {
	s := &appSetSubstituter{values: p.values, unknown: map[string]struct{}{},
		goTemplate: set.Spec.GoTemplate, tree: p.tree, options: set.Spec.GoTemplateOptions}
	if s.goTemplate {
		if err := appSetTemplateOptions(s.options); err != nil {
			return nil, err
		}
	}
	tmpl := set.Spec.Template
	app := &v1alpha1.App{
		TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "App"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        s.replace(tmpl.Metadata.Name),
			Namespace:   set.Namespace,
			Labels:      s.replaceMap(tmpl.Metadata.Labels),
			Annotations: s.replaceMap(tmpl.Metadata.Annotations),
		},
	}
	raw, err := json.Marshal(tmpl.Spec)
	if err != nil {
		return nil, fmt.Errorf("encode template spec: %w", err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("decode template spec: %w", err)
	}
	raw, err = json.Marshal(s.replaceAll(doc))
	if err != nil {
		return nil, fmt.Errorf("encode template spec: %w", err)
	}
	if s.err != nil {
		return nil, appSetStalledf(AppSetReasonInvalidTemplate, "%v; %s", s.err, p)
	}
	if len(s.unknown) > 0 {
		unknown := make([]string, 0, len(s.unknown))
		for u := range s.unknown {
			unknown = append(unknown, u)
		}
		sort.Strings(unknown)
		known := make([]string, 0, len(p.values))
		for k := range p.values {
			known = append(known, "{{"+k+"}}")
		}
		sort.Strings(known)
		return nil, appSetStalledf(AppSetReasonInvalidTemplate, "template uses unknown parameter %s; %s has %s",
			strings.Join(unknown, ", "), p.origin, strings.Join(known, ", "))
	}
	if err := json.Unmarshal(raw, &app.Spec); err != nil {
		return nil, appSetStalledf(AppSetReasonInvalidTemplate, "template spec for %s: %v", p, err)
	}
	if ref := app.Spec.Destination.ClusterRef; ref != nil && ref.Name == appSetInClusterName {
		// A clusters generator names the cluster tend runs in so, as
		// Project destinations do: it has no Cluster object.
		app.Spec.Destination.ClusterRef = nil
	}
	if app.Labels == nil {
		app.Labels = map[string]string{}
	}
	app.Labels[AppSetLabel] = set.Name
	if errs := validation.IsDNS1123Subdomain(app.Name); len(errs) > 0 {
		return nil, appSetStalledf(AppSetReasonInvalidTemplate, "generated App name %q (template %q, %s) is not a valid DNS-1123 name: %s",
			app.Name, tmpl.Metadata.Name, p, strings.Join(errs, "; "))
	}
	errs := metav1validation.ValidateLabels(app.Labels, field.NewPath("template", "metadata", "labels"))
	errs = append(errs, apivalidation.ValidateAnnotations(app.Annotations, field.NewPath("template", "metadata", "annotations"))...)
	if len(errs) > 0 {
		return nil, appSetStalledf(AppSetReasonInvalidTemplate, "generated App %q (%s): %v", app.Name, p, errs.ToAggregate())
	}
	return app, nil
}
