package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/tend-gitops/tend/api/v1alpha1"
	"github.com/tend-gitops/tend/internal/artifact"
)

// AppSetLabel is set on every App an AppSet generates; its value is the
// AppSet's name. Together with the controller owner reference it tells
// which Apps an AppSet manages.
const AppSetLabel = v1alpha1.LabelAppSet

// Reasons of AppSet conditions.
const (
	// AppSetReasonGenerated: every parameter set produced an up-to-date App.
	AppSetReasonGenerated = "AppsGenerated"
	// AppSetReasonArtifactNotReady: a directories generator's Source has
	// not been fetched yet; the AppSet waits for it.
	AppSetReasonArtifactNotReady = "ArtifactNotReady"
	// AppSetReasonInvalidGenerator: a generator cannot be used as written.
	AppSetReasonInvalidGenerator = "InvalidGenerator"
	// AppSetReasonInvalidTemplate: the template, filled in with a parameter
	// set, is not a valid App.
	AppSetReasonInvalidTemplate = "InvalidTemplate"
	// AppSetReasonDuplicateName: two parameter sets generate the same App.
	AppSetReasonDuplicateName = "DuplicateAppName"
	// AppSetReasonAppConflict: a generated App's name is taken by an App
	// this AppSet does not manage.
	AppSetReasonAppConflict = "AppConflict"
	// AppSetReasonFailed: talking to the apiserver failed; tend retries.
	AppSetReasonFailed = "ReconcileFailed"
)

// appSetParams is one parameter set: appSetPlaceholder name to value.
type appSetParams struct {
	// origin says where the set came from, for messages: `directory
	// apps/web` or `list element 0`.
	origin string
	values map[string]string
}

// String describes the set for messages, e.g.
// `directory apps/web {name=web, path=apps/web, path.basename=web}`.
func (p appSetParams) String() string {
	keys := make([]string, 0, len(p.values))
	for k := range p.values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	kv := make([]string, len(keys))
	for i, k := range keys {
		kv[i] = k + "=" + p.values[k]
	}
	return p.origin + " {" + strings.Join(kv, ", ") + "}"
}

// appSetStalled is a problem in the AppSet's spec (or in what it points
// at) that retrying cannot fix: the AppSet reports Stalled until the spec
// or the Source changes.
type appSetStalled struct {
	reason, message string
}

func (e *appSetStalled) Error() string { return e.message }

func appSetStalledf(reason, format string, args ...any) error {
	return &appSetStalled{reason: reason, message: fmt.Sprintf(format, args...)}
}

// appSetWaiting means the AppSet cannot be generated yet but will be
// without a spec change: a Source has no artifact yet.
type appSetWaiting struct {
	reason, message string
}

func (e *appSetWaiting) Error() string { return e.message }

// appSetGenerator reads Source checkouts for directories generators.
type appSetGenerator struct {
	artifacts *artifact.Store
}

// params returns the parameter sets of every generator of set, in
// generator order. Errors are *appSetStalled, *appSetWaiting or
// transient (reading the checkout failed).
func (g appSetGenerator) params(set *v1alpha1.AppSet) ([]appSetParams, error) {
	if len(set.Spec.Generators) == 0 {
		return nil, appSetStalledf(AppSetReasonInvalidGenerator, "spec.generators is empty: add a directories or list generator")
	}
	var out []appSetParams
	for i, gen := range set.Spec.Generators {
		var (
			ps  []appSetParams
			err error
		)
		switch {
		case gen.Directories != nil && gen.List != nil, gen.Directories == nil && gen.List == nil:
			return nil, appSetStalledf(AppSetReasonInvalidGenerator, "spec.generators[%d]: set exactly one of directories or list", i)
		case gen.Directories != nil:
			ps, err = g.directories(set.Namespace, i, gen.Directories)
		default:
			ps, err = appSetListParams(i, gen.List)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	return out, nil
}

// appSetSourceOf returns the Source a directories generator reads, its
// namespace defaulting to the AppSet's.
func appSetSourceOf(namespace string, d *v1alpha1.DirectoriesGenerator) types.NamespacedName {
	src := types.NamespacedName{Namespace: d.SourceRef.Namespace, Name: d.SourceRef.Name}
	if src.Namespace == "" {
		src.Namespace = namespace
	}
	return src
}

// directories returns one parameter set per directory of the Source's
// checkout that matches an include glob and no exclude glob.
func (g appSetGenerator) directories(namespace string, i int, d *v1alpha1.DirectoriesGenerator) ([]appSetParams, error) {
	src := appSetSourceOf(namespace, d)
	if len(d.Include) == 0 {
		return nil, appSetStalledf(AppSetReasonInvalidGenerator, "spec.generators[%d].directories.include is empty: add a glob such as apps/*", i)
	}
	include, err := appSetPatterns(d.Include)
	if err != nil {
		return nil, appSetStalledf(AppSetReasonInvalidGenerator, "spec.generators[%d].directories.include: %v", i, err)
	}
	exclude, err := appSetPatterns(d.Exclude)
	if err != nil {
		return nil, appSetStalledf(AppSetReasonInvalidGenerator, "spec.generators[%d].directories.exclude: %v", i, err)
	}
	var art artifact.Artifact
	release, ok := func() {}, false
	if g.artifacts != nil {
		// Held while the directories are listed: they are the artifact's.
		art, release, ok = g.artifacts.Open(src)
	}
	defer release()
	if !ok {
		return nil, &appSetWaiting{reason: AppSetReasonArtifactNotReady,
			message: fmt.Sprintf("Source %s has no artifact yet; waiting for it to be fetched", src)}
	}
	if art.Dir == "" {
		return nil, appSetStalledf(AppSetReasonInvalidGenerator,
			"spec.generators[%d].directories: Source %s has no checkout (is it a git Source?); the directories generator needs a git Source", i, src)
	}
	dirs, err := appSetMatchDirs(art.Dir, include, exclude)
	if err != nil {
		return nil, fmt.Errorf("list directories of Source %s at revision %s: %w", src, art.Revision, err)
	}
	out := make([]appSetParams, len(dirs))
	for j, p := range dirs {
		base := path.Base(p)
		out[j] = appSetParams{
			origin: "directory " + p,
			values: map[string]string{"path": p, "path.basename": base, "name": base},
		}
	}
	return out, nil
}

// appSetPatterns cleans globs ("./apps/*/" is "apps/*") and checks their
// syntax.
func appSetPatterns(globs []string) ([]string, error) {
	out := make([]string, 0, len(globs))
	for _, g := range globs {
		c := strings.Trim(path.Clean("/"+g), "/")
		if c == "" {
			return nil, fmt.Errorf("glob %q matches the repository root; name directories below it, e.g. apps/*", g)
		}
		if _, err := path.Match(c, ""); err != nil {
			return nil, fmt.Errorf("glob %q: %w", g, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// appSetMatchDirs returns the slash-separated paths, relative to root and
// sorted, of the directories matching an include glob and no exclude
// glob. Globs use path.Match per path segment, so apps/* matches the
// direct subdirectories of apps. Hidden directories (.git, .github) and
// symbolic links are never matched or entered. An exclude glob matching a
// directory also excludes everything below it.
func appSetMatchDirs(root string, include, exclude []string) ([]string, error) {
	found := map[string]struct{}{}
	for _, inc := range include {
		if err := appSetWalkGlob(root, "", strings.Split(inc, "/"), found); err != nil {
			return nil, err
		}
	}
	out := make([]string, 0, len(found))
	for p := range found {
		if !appSetExcluded(p, exclude) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out, nil
}

// appSetWalkGlob adds to found the directories below root/rel matching segs.
func appSetWalkGlob(root, rel string, segs []string, found map[string]struct{}) error {
	entries, err := os.ReadDir(filepath.Join(root, filepath.FromSlash(rel)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || strings.HasPrefix(name, ".") {
			continue
		}
		if ok, _ := path.Match(segs[0], name); !ok {
			continue
		}
		p := path.Join(rel, name)
		if len(segs) == 1 {
			found[p] = struct{}{}
			continue
		}
		if err := appSetWalkGlob(root, p, segs[1:], found); err != nil {
			return err
		}
	}
	return nil
}

// appSetExcluded reports whether p or one of its parents matches a glob.
func appSetExcluded(p string, exclude []string) bool {
	for _, ex := range exclude {
		for q := p; q != "." && q != ""; q = path.Dir(q) {
			if ok, _ := path.Match(ex, q); ok {
				return true
			}
		}
	}
	return false
}

// appSetListParams returns one parameter set per element of a list generator.
func appSetListParams(i int, l *v1alpha1.ListGenerator) ([]appSetParams, error) {
	out := make([]appSetParams, len(l.Elements))
	for j, el := range l.Elements {
		if el["name"] == "" {
			return nil, appSetStalledf(AppSetReasonInvalidGenerator, "spec.generators[%d].list.elements[%d] has no \"name\": give every element a name", i, j)
		}
		values := make(map[string]string, len(el))
		for k, v := range el {
			values[k] = v
		}
		out[j] = appSetParams{origin: fmt.Sprintf("list element %d", j), values: values}
	}
	return out, nil
}

// appSetPlaceholder matches {{key}} with optional spaces inside the braces.
var appSetPlaceholder = regexp.MustCompile(`\{\{\s*([^{}]*?)\s*\}\}`)

// appSetSubstituter replaces placeholders and remembers unknown ones.
type appSetSubstituter struct {
	values  map[string]string
	unknown map[string]struct{}
}

func (s *appSetSubstituter) replace(in string) string {
	if !strings.Contains(in, "{{") {
		return in
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
	s := &appSetSubstituter{values: p.values, unknown: map[string]struct{}{}}
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
