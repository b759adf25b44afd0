package controller

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

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
	// AppSetReasonCrossNamespaceRef: a generator reads a Source of another
	// namespace under --no-cross-namespace-refs.
	AppSetReasonCrossNamespaceRef = "CrossNamespaceRef"
)

// appSetParams is one parameter set: appSetPlaceholder name to value.
type appSetParams struct {
	// origin says where the set came from, for messages: `directory
	// apps/web` or `list element 0`.
	origin string
	values map[string]string
	// tree holds the same parameters nested, for Go templates
	// (spec.goTemplate): {{.path.basename}}, {{.cluster.name}}.
	tree map[string]any
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

// appSetGenerator reads Source checkouts for directories and files
// generators and Clusters for clusters generators.
type appSetGenerator struct {
	artifacts *artifact.Store
	// clusters lists the Clusters a clusters generator chooses from (those
	// of the AppSet's namespace); nil when it cannot list them.
	clusters func(namespace string) ([]appSetCluster, error)
	// goTemplate and options are the AppSet's spec.goTemplate and
	// spec.goTemplateOptions: a clusters generator's values are templates.
	goTemplate bool
	options    []string
	// noCrossNamespace refuses a Source in another namespace than the
	// AppSet's (--no-cross-namespace-refs).
	noCrossNamespace bool
}

// appSetNode is a generator of any level: a leaf (directories, files,
// list, clusters), or a matrix or merge of generators. n counts the kinds
// set, so that "exactly one" is checked at every level.
type appSetNode struct {
	leaf      v1alpha1.LeafGenerator
	children  []appSetNode
	mergeKeys []string
	isMatrix  bool
	isMerge   bool
	n         int
	// kinds names what this level allows, for messages.
	kinds string
}

const (
	appSetKindsAll  = "directories, files, list, clusters, matrix or merge"
	appSetKindsLeaf = "directories, files, list or clusters (a matrix or merge inside a matrix or merge takes no further matrix or merge)"
)

func appSetLeafNode(g v1alpha1.LeafGenerator) appSetNode {
	return appSetNode{leaf: g, n: appSetCount(g.Directories != nil, g.Files != nil, g.List != nil, g.Clusters != nil), kinds: appSetKindsLeaf}
}

func appSetNestedNode(g v1alpha1.NestedGenerator) appSetNode {
	n := appSetLeafNode(v1alpha1.LeafGenerator{Directories: g.Directories, Files: g.Files, List: g.List, Clusters: g.Clusters})
	n.kinds = appSetKindsAll
	n.n += appSetCount(g.Matrix != nil, g.Merge != nil)
	switch {
	case g.Matrix != nil:
		n.isMatrix = true
		for _, c := range g.Matrix.Generators {
			n.children = append(n.children, appSetLeafNode(c))
		}
	case g.Merge != nil:
		n.isMerge, n.mergeKeys = true, g.Merge.MergeKeys
		for _, c := range g.Merge.Generators {
			n.children = append(n.children, appSetLeafNode(c))
		}
	}
	return n
}

func appSetTopNode(g v1alpha1.Generator) appSetNode {
	n := appSetLeafNode(v1alpha1.LeafGenerator{Directories: g.Directories, Files: g.Files, List: g.List, Clusters: g.Clusters})
	n.kinds = appSetKindsAll
	n.n += appSetCount(g.Matrix != nil, g.Merge != nil)
	switch {
	case g.Matrix != nil:
		n.isMatrix = true
		for _, c := range g.Matrix.Generators {
			n.children = append(n.children, appSetNestedNode(c))
		}
	case g.Merge != nil:
		n.isMerge, n.mergeKeys = true, g.Merge.MergeKeys
		for _, c := range g.Merge.Generators {
			n.children = append(n.children, appSetNestedNode(c))
		}
	}
	return n
}

// walk calls fn for the leaf generator of n and of every generator below.
func (n appSetNode) walk(fn func(v1alpha1.LeafGenerator)) {
	fn(n.leaf)
	for _, c := range n.children {
		c.walk(fn)
	}
}

// params returns the parameter sets of every generator of set, in
// generator order. Errors are *appSetStalled, *appSetWaiting or
// transient (reading the checkout or listing Clusters failed).
func (g appSetGenerator) params(set *v1alpha1.AppSet) ([]appSetParams, error) {
	if len(set.Spec.Generators) == 0 {
		return nil, appSetStalledf(AppSetReasonInvalidGenerator, "spec.generators is empty: add a directories, files, list, clusters, matrix or merge generator")
	}
	g.goTemplate, g.options = set.Spec.GoTemplate, set.Spec.GoTemplateOptions
	var out []appSetParams
	for i, gen := range set.Spec.Generators {
		ps, err := g.node(set.Namespace, fmt.Sprintf("spec.generators[%d]", i), appSetTopNode(gen), true)
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	return out, nil
}

// node returns the sets of a generator at any level. A list element needs
// a name only at the top level (top): inside matrix or merge the other
// generator may give it.
func (g appSetGenerator) node(namespace, at string, n appSetNode, top bool) ([]appSetParams, error) {
	switch {
	case n.n != 1:
		return nil, appSetStalledf(AppSetReasonInvalidGenerator, "%s: set exactly one of %s", at, n.kinds)
	case n.isMatrix:
		return g.matrix(namespace, at+".matrix", n.children)
	case n.isMerge:
		return g.merge(namespace, at+".merge", n.mergeKeys, n.children)
	}
	switch gen := n.leaf; {
	case gen.Directories != nil:
		return g.directories(namespace, at+".directories", gen.Directories)
	case gen.Files != nil:
		return g.files(namespace, at+".files", gen.Files)
	case gen.Clusters != nil:
		return g.clusterParams(namespace, at+".clusters", gen.Clusters)
	default:
		return appSetListParams(at+".list", gen.List, top)
	}
}

func appSetCount(set ...bool) int {
	n := 0
	for _, b := range set {
		if b {
			n++
		}
	}
	return n
}

// matrix returns one set per pair of the two generators' sets, with the
// keys of both. A key both have with different values is an error: one
// would silently hide the other.
func (g appSetGenerator) matrix(namespace, at string, gens []appSetNode) ([]appSetParams, error) {
	if len(gens) != 2 {
		return nil, appSetStalledf(AppSetReasonInvalidGenerator, "%s.generators has %d generators: a matrix combines exactly two", at, len(gens))
	}
	a, err := g.node(namespace, at+".generators[0]", gens[0], false)
	if err != nil {
		return nil, err
	}
	b, err := g.node(namespace, at+".generators[1]", gens[1], false)
	if err != nil {
		return nil, err
	}
	out := make([]appSetParams, 0, len(a)*len(b))
	for _, x := range a {
		for _, y := range b {
			values := maps.Clone(x.values)
			for k, v := range y.values {
				if old, ok := values[k]; ok && old != v {
					return nil, appSetStalledf(AppSetReasonInvalidGenerator,
						"%s: both generators set %q (%s: %q, %s: %q); rename the key in one of them", at, k, x.origin, old, y.origin, v)
				}
				values[k] = v
			}
			tree := appSetMergeTree(maps.Clone(x.tree), y.tree)
			out = append(out, appSetParams{origin: x.origin + " × " + y.origin, values: values, tree: tree})
		}
	}
	return out, nil
}

// merge returns the first generator's sets, each overridden by the sets of
// later generators with equal merge keys, in generator order.
func (g appSetGenerator) merge(namespace, at string, mergeKeys []string, gens []appSetNode) ([]appSetParams, error) {
	if len(mergeKeys) == 0 {
		return nil, appSetStalledf(AppSetReasonInvalidGenerator, "%s.mergeKeys is empty: name the parameters that identify a set, e.g. name", at)
	}
	if len(gens) < 2 {
		return nil, appSetStalledf(AppSetReasonInvalidGenerator, "%s.generators has %d generator: a merge needs a base generator and at least one that overrides it", at, len(gens))
	}
	key := func(p appSetParams, where string) (string, error) {
		parts := make([]string, len(mergeKeys))
		for i, k := range mergeKeys {
			v, ok := p.values[k]
			if !ok {
				return "", appSetStalledf(AppSetReasonInvalidGenerator, "%s: %s has no merge key %q; every set of a merge needs all of %s", where, p, k, strings.Join(mergeKeys, ", "))
			}
			parts[i] = v
		}
		b, _ := json.Marshal(parts)
		return string(b), nil
	}
	var base []appSetParams
	index := map[string]int{}
	for gi, gen := range gens {
		where := fmt.Sprintf("%s.generators[%d]", at, gi)
		ps, err := g.node(namespace, where, gen, false)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			k, err := key(p, where)
			if err != nil {
				return nil, err
			}
			if gi == 0 {
				if _, dup := index[k]; dup {
					return nil, appSetStalledf(AppSetReasonInvalidGenerator, "%s: two sets have the same merge keys %s; the base generator must give each set once", where, k)
				}
				index[k] = len(base)
				base = append(base, appSetParams{origin: p.origin, values: maps.Clone(p.values), tree: maps.Clone(p.tree)})
				continue
			}
			j, ok := index[k]
			if !ok {
				continue
			}
			maps.Copy(base[j].values, p.values)
			base[j].tree = appSetMergeTree(base[j].tree, p.tree)
			base[j].origin += " + " + p.origin
		}
	}
	return base, nil
}

// appSetSources returns every Source the generators of set read.
func appSetSources(set *v1alpha1.AppSet) []types.NamespacedName {
	var out []types.NamespacedName
	for _, g := range set.Spec.Generators {
		appSetTopNode(g).walk(func(l v1alpha1.LeafGenerator) {
			if l.Directories != nil {
				out = append(out, appSetSourceRef(set.Namespace, l.Directories.SourceRef))
			}
			if l.Files != nil {
				out = append(out, appSetSourceRef(set.Namespace, l.Files.SourceRef))
			}
		})
	}
	return out
}

// appSetReadsClusters reports whether a generator of set, at any level,
// is a clusters generator: such an AppSet is generated again when a
// Cluster of its namespace changes.
func appSetReadsClusters(set *v1alpha1.AppSet) bool {
	found := false
	for _, g := range set.Spec.Generators {
		appSetTopNode(g).walk(func(l v1alpha1.LeafGenerator) { found = found || l.Clusters != nil })
	}
	return found
}

// sameNamespace refuses, under --no-cross-namespace-refs, a Source
// outside the AppSet's namespace.
func (g appSetGenerator) sameNamespace(at, namespace string, src types.NamespacedName) error {
	if g.noCrossNamespace && src.Namespace != namespace {
		return appSetStalledf(AppSetReasonCrossNamespaceRef, "%s.sourceRef names a Source in namespace %q: this controller runs with --no-cross-namespace-refs, so an AppSet reads only Sources of its own namespace (%s)", at, src.Namespace, namespace)
	}
	return nil
}

// appSetSourceRef returns the Source a generator reads, its namespace
// defaulting to the AppSet's.
func appSetSourceRef(namespace string, ref v1alpha1.NamespacedObjectReference) types.NamespacedName {
	src := types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}
	if src.Namespace == "" {
		src.Namespace = namespace
	}
	return src
}

// checkout opens the git checkout of src for a generator at `at`; release
// it when done reading.
func (g appSetGenerator) checkout(at string, src types.NamespacedName) (artifact.Artifact, func(), error) {
	var art artifact.Artifact
	release, ok := func() {}, false
	if g.artifacts != nil {
		art, release, ok = g.artifacts.Open(src)
	}
	if !ok {
		release()
		return art, nil, &appSetWaiting{reason: AppSetReasonArtifactNotReady,
			message: fmt.Sprintf("Source %s has no artifact yet; waiting for it to be fetched", src)}
	}
	if art.Dir == "" {
		release()
		return art, nil, appSetStalledf(AppSetReasonInvalidGenerator,
			"%s: Source %s has no checkout (is it a git Source?); this generator needs a git Source", at, src)
	}
	return art, release, nil
}

// directories returns one parameter set per directory of the Source's
// checkout that matches an include glob and no exclude glob.
func (g appSetGenerator) directories(namespace, at string, d *v1alpha1.DirectoriesGenerator) ([]appSetParams, error) {
	src := appSetSourceRef(namespace, d.SourceRef)
	if err := g.sameNamespace(at, namespace, src); err != nil {
		return nil, err
	}
	include, exclude, err := appSetGlobs(at, d.Include, d.Exclude, "apps/*")
	if err != nil {
		return nil, err
	}
	art, release, err := g.checkout(at, src)
	if err != nil {
		return nil, err
	}
	defer release() // held while the directories are listed: they are the artifact's
	dirs, err := appSetMatch(art.Dir, include, exclude, true)
	if err != nil {
		return nil, fmt.Errorf("list directories of Source %s at revision %s: %w", src, art.Revision, err)
	}
	out := make([]appSetParams, len(dirs))
	for j, p := range dirs {
		values := map[string]string{"name": path.Base(p)}
		pathTree := appSetPathParams(p, values)
		tree := map[string]any{"name": path.Base(p), "path": pathTree}
		out[j] = appSetParams{origin: "directory " + p, values: values, tree: tree}
	}
	return out, nil
}

// appSetPathParams sets the parameters of a directory as Argo CD's git
// generator does: path, path.basename, path.basenameNormalized and
// path[n], the n-th segment. It returns them as Go templates see them:
// .path.path, .path.basename, .path.basenameNormalized, .path.segments.
func appSetPathParams(dir string, values map[string]string) map[string]any {
	values["path"] = dir
	values["path.basename"] = path.Base(dir)
	values["path.basenameNormalized"] = appSetNormalize(path.Base(dir))
	segments := []any{}
	if dir != "." {
		for k, seg := range strings.Split(dir, "/") {
			values[fmt.Sprintf("path[%d]", k)] = seg
			segments = append(segments, seg)
		}
	}
	return map[string]any{"path": dir, "basename": path.Base(dir), "basenameNormalized": appSetNormalize(path.Base(dir)), "segments": segments}
}

// appSetMergeTree merges src into dst, nested objects key by key, and
// returns dst.
func appSetMergeTree(dst, src map[string]any) map[string]any {
	if dst == nil {
		dst = map[string]any{}
	}
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				dst[k] = appSetMergeTree(maps.Clone(dm), sm)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}

// appSetGlobs checks a generator's include and exclude globs.
func appSetGlobs(at string, include, exclude []string, example string) ([]string, []string, error) {
	if len(include) == 0 {
		return nil, nil, appSetStalledf(AppSetReasonInvalidGenerator, "%s.include is empty: add a glob such as %s", at, example)
	}
	inc, err := appSetPatterns(include)
	if err != nil {
		return nil, nil, appSetStalledf(AppSetReasonInvalidGenerator, "%s.include: %v", at, err)
	}
	exc, err := appSetPatterns(exclude)
	if err != nil {
		return nil, nil, appSetStalledf(AppSetReasonInvalidGenerator, "%s.exclude: %v", at, err)
	}
	return inc, exc, nil
}

// appSetMaxFile bounds a file a files generator reads: parameter files
// are small, and a large one is a mistake in the glob.
const appSetMaxFile = 1 << 20

// files returns the parameter sets of the JSON or YAML files of the
// Source's checkout matching an include glob and no exclude glob.
func (g appSetGenerator) files(namespace, at string, f *v1alpha1.FilesGenerator) ([]appSetParams, error) {
	src := appSetSourceRef(namespace, f.SourceRef)
	if err := g.sameNamespace(at, namespace, src); err != nil {
		return nil, err
	}
	include, exclude, err := appSetGlobs(at, f.Include, f.Exclude, "clusters/*/config.json")
	if err != nil {
		return nil, err
	}
	art, release, err := g.checkout(at, src)
	if err != nil {
		return nil, err
	}
	defer release()
	files, err := appSetMatch(art.Dir, include, exclude, false)
	if err != nil {
		return nil, fmt.Errorf("list files of Source %s at revision %s: %w", src, art.Revision, err)
	}
	var out []appSetParams
	for _, p := range files {
		docs, err := appSetReadFile(art.Dir, p)
		if err != nil {
			return nil, appSetStalledf(AppSetReasonInvalidGenerator, "%s: file %s of Source %s at revision %s: %v", at, p, src, art.Revision, err)
		}
		for j, doc := range docs {
			values := map[string]string{}
			appSetFlatten("", doc, values)
			pathTree := appSetPathParams(path.Dir(p), values)
			values["path.filename"] = path.Base(p)
			values["path.filenameNormalized"] = appSetNormalize(path.Base(p))
			pathTree["filename"], pathTree["filenameNormalized"] = path.Base(p), appSetNormalize(path.Base(p))
			tree := maps.Clone(doc)
			tree["path"] = pathTree
			origin := "file " + p
			if len(docs) > 1 {
				origin = fmt.Sprintf("file %s element %d", p, j)
			}
			out = append(out, appSetParams{origin: origin, values: values, tree: tree})
		}
	}
	return out, nil
}

// appSetReadFile decodes a files generator's file: an object, or a list
// of objects.
func appSetReadFile(root, rel string) ([]map[string]any, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	f, err := r.Open(filepath.FromSlash(rel))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, appSetMaxFile+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > appSetMaxFile {
		return nil, fmt.Errorf("larger than %d bytes; a files generator reads small parameter files", appSetMaxFile)
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("not JSON or YAML: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("not JSON or YAML: %v", err)
	}
	switch t := doc.(type) {
	case map[string]any:
		return []map[string]any{t}, nil
	case []any:
		out := make([]map[string]any, len(t))
		for i, e := range t {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("element %d is not an object; a list file holds one object per parameter set", i)
			}
			out[i] = m
		}
		return out, nil
	default:
		return nil, fmt.Errorf("holds neither an object nor a list of objects")
	}
}

// appSetFlatten adds the leaves of v to out, keys joined with dots and
// list indexes as keys (Argo CD's flat parameters): {"a": {"b": 1}}
// is a.b=1.
func appSetFlatten(prefix string, v any, out map[string]string) {
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			appSetFlatten(join(k), e, out)
		}
	case []any:
		for i, e := range t {
			appSetFlatten(join(strconv.Itoa(i)), e, out)
		}
	case nil:
		out[prefix] = ""
	case string:
		out[prefix] = t
	default:
		out[prefix] = fmt.Sprint(t)
	}
}

// appSetNormalize makes s a DNS-1123 name as Argo CD's
// path.filenameNormalized does: lower case, other characters as "-".
func appSetNormalize(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '.' {
			b[i] = '-'
		}
	}
	return strings.Trim(string(b), "-.")
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

// appSetMatch returns the slash-separated paths, relative to root and
// sorted, of the directories (dirs) or regular files matching an include
// glob and no exclude glob. Globs use path.Match per path segment, so apps/* matches the
// direct subdirectories of apps. Hidden directories (.git, .github) and
// symbolic links are never matched or entered. An exclude glob matching a
// directory also excludes everything below it.
func appSetMatch(root string, include, exclude []string, dirs bool) ([]string, error) {
	found := map[string]struct{}{}
	for _, inc := range include {
		if err := appSetWalkGlob(root, "", strings.Split(inc, "/"), dirs, found); err != nil {
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

// appSetWalkGlob adds to found the directories (dirs) or regular files
// below root/rel matching segs.
func appSetWalkGlob(root, rel string, segs []string, dirs bool, found map[string]struct{}) error {
	entries, err := os.ReadDir(filepath.Join(root, filepath.FromSlash(rel)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		last := len(segs) == 1
		want := e.IsDir()
		if last && !dirs {
			want = e.Type().IsRegular()
		}
		if !want || strings.HasPrefix(name, ".") {
			continue
		}
		if ok, _ := path.Match(segs[0], name); !ok {
			continue
		}
		p := path.Join(rel, name)
		if last {
			found[p] = struct{}{}
			continue
		}
		if err := appSetWalkGlob(root, p, segs[1:], dirs, found); err != nil {
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

// appSetListParams returns one parameter set per element of a list
// generator; at the top level (top) each element needs a name.
func appSetListParams(at string, l *v1alpha1.ListGenerator, top bool) ([]appSetParams, error) {
	out := make([]appSetParams, len(l.Elements))
	for j, el := range l.Elements {
		if top && el["name"] == "" {
			return nil, appSetStalledf(AppSetReasonInvalidGenerator, "%s.elements[%d] has no \"name\": give every element a name", at, j)
		}
		values := make(map[string]string, len(el))
		for k, v := range el {
			values[k] = v
		}
		tree := make(map[string]any, len(el))
		for k, v := range el {
			tree[k] = v
		}
		out[j] = appSetParams{origin: fmt.Sprintf("list element %d", j), values: values, tree: tree}
	}
	return out, nil
}
