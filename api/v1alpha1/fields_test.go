package v1alpha1

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// Paths the field-to-test check reads, relative to this package.
const (
	// fieldTestsFile maps every CRD field to the tests of its behaviour.
	fieldTestsFile = "testdata/field-tests.yaml"
	// crdDir holds the CRDs controller-gen generates from this package.
	crdDir = "../../config/crd"
	// repoRoot is the module root; test names are qualified by the
	// directory of their package under it.
	repoRoot = "../.."
	// mappingName is how messages name fieldTestsFile.
	mappingName = "api/v1alpha1/" + fieldTestsFile
)

// fieldTests is testdata/field-tests.yaml. Keys are field keys as
// schemaFields returns them: "Kind path", e.g.
// "App spec.ignoreDifferences[].managers".
type fieldTests struct {
	// Fields maps a field to the behaviour tests that depend on it, each
	// "dir.TestName": dir is the package directory under the module root
	// (internal/controller, examples/homelab).
	Fields map[string][]string `json:"fields"`
	// Unmapped lists fields with no behaviour test, each with a note saying
	// whether the code reads the field at all ("unread: ...") or only no
	// test covers it ("untested: ...").
	Unmapped map[string]string `json:"unmapped"`
	// Pending is the allow-list: a field here, with the reason, may be
	// unmapped or mapped to tests that do not exist yet.
	Pending map[string]string `json:"pending"`
}

// TestEveryCRDFieldHasABehaviourTest fails when a field of a generated CRD
// (config/crd) has no behaviour test named in testdata/field-tests.yaml,
// when that file names a field the CRDs no longer have, or names a test
// function that does not exist. Only fields under pending: (with a reason)
// are let through, so a field cannot ship without behaviour unnoticed.
func TestEveryCRDFieldHasABehaviourTest(t *testing.T) {
	fields := schemaFields(t, crdDir)
	ft := readFieldTests(t, fieldTestsFile)
	if errs := checkFieldTests(fields, ft, newTestIndex(repoRoot)); len(errs) > 0 {
		t.Errorf("%d problem(s) with the field-to-test mapping:\n  %s", len(errs), strings.Join(errs, "\n  "))
	}
	for _, key := range mapKeys(ft.Pending) {
		t.Logf("pending: %s: %s", key, ft.Pending[key])
	}
}

// checkFieldTests returns what is wrong with ft for the CRD fields given
// (keys as schemaFields returns them), one message per problem.
func checkFieldTests(fields map[string]bool, ft fieldTests, tests *testIndex) []string {
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }

	// Every key the file uses must be a field of the CRDs.
	for _, section := range []struct {
		name string
		keys []string
	}{
		{"fields", mapKeys(ft.Fields)},
		{"unmapped", mapKeys(ft.Unmapped)},
		{"pending", mapKeys(ft.Pending)},
	} {
		for _, key := range section.keys {
			if !fields[key] {
				fail("%s: %s: names %q, which no CRD in %s has (removed or renamed?); delete the entry or fix its path",
					mappingName, section.name, key, "config/crd")
			}
		}
	}

	for _, key := range mapKeys(fields) {
		mapped, isMapped := ft.Fields[key]
		note, isUnmapped := ft.Unmapped[key]
		reason, isPending := ft.Pending[key]
		if isPending && strings.TrimSpace(reason) == "" {
			fail("%s: pending: %q has no reason; say why it is let through", mappingName, key)
		}
		switch {
		case isMapped && isUnmapped:
			fail("%s: %q is under both fields: and unmapped:; keep one", mappingName, key)
			continue
		case !isMapped && !isUnmapped:
			fail("CRD field %q has no entry in %s. Add it under fields: with the behaviour test(s) that depend on it, "+
				"as %q: [dir.TestName] (e.g. internal/controller.TestAppFollowsGitSource); if no test exercises it yet, write one, "+
				"or list it under unmapped: (unread or untested) and under pending: with a reason",
				key, mappingName, key)
			continue
		case isUnmapped:
			if !strings.HasPrefix(note, "unread: ") && !strings.HasPrefix(note, "untested: ") {
				fail("%s: unmapped: %q: the note must start with \"unread: \" or \"untested: \", got %q", mappingName, key, note)
			}
			if !isPending {
				fail("CRD field %q has no behaviour test (%s says %q): write a test that depends on it and map it under fields:, "+
					"or remove the field from the API", key, mappingName, note)
			}
			continue
		}
		if len(mapped) == 0 {
			fail("%s: fields: %q names no test; name at least one as dir.TestName", mappingName, key)
			continue
		}
		missing := 0
		for _, name := range mapped {
			if err := tests.check(name); err != nil {
				missing++
				if !isPending {
					fail("%s: %q is mapped to %s: %v", mappingName, key, name, err)
				}
			}
		}
		if isPending && missing == 0 {
			fail("%s: %q is under pending: (%s) but every test it is mapped to exists; remove it from pending:",
				mappingName, key, reason)
		}
	}
	return errs
}

// TestCheckFieldTestsFails shows the check above fails, with a message
// naming the field and what to do, for each kind of gap.
func TestCheckFieldTestsFails(t *testing.T) {
	const (
		real    = "api/v1alpha1.TestCheckFieldTestsFails"
		missing = "internal/controller.TestNoSuchBehaviour"
	)
	fields := map[string]bool{"App spec.a": true, "App spec.b": true}
	for _, tc := range []struct {
		name string
		ft   fieldTests
		want []string // substrings of the one message expected; nil: none
	}{
		{"all mapped", fieldTests{Fields: map[string][]string{"App spec.a": {real}, "App spec.b": {real}}}, nil},
		{"new field without entry", fieldTests{Fields: map[string][]string{"App spec.a": {real}}},
			[]string{`CRD field "App spec.b" has no entry`, "Add it under fields:"}},
		{"entry for a removed field", fieldTests{Fields: map[string][]string{"App spec.a": {real}, "App spec.b": {real}, "App spec.gone": {real}}},
			[]string{`"App spec.gone"`, "which no CRD", "delete the entry"}},
		{"test that does not exist", fieldTests{Fields: map[string][]string{"App spec.a": {real}, "App spec.b": {real, missing}}},
			[]string{`"App spec.b" is mapped to ` + missing, "no func TestNoSuchBehaviour"}},
		{"pending lets a missing test through", fieldTests{
			Fields:  map[string][]string{"App spec.a": {real}, "App spec.b": {missing}},
			Pending: map[string]string{"App spec.b": "test being written"}}, nil},
		{"pending without a reason", fieldTests{
			Fields:  map[string][]string{"App spec.a": {real}, "App spec.b": {missing}},
			Pending: map[string]string{"App spec.b": " "}}, []string{`pending: "App spec.b" has no reason`}},
		{"stale pending", fieldTests{
			Fields:  map[string][]string{"App spec.a": {real}, "App spec.b": {real}},
			Pending: map[string]string{"App spec.b": "test being written"}}, []string{`"App spec.b" is under pending:`, "remove it from pending:"}},
		{"unmapped and not pending", fieldTests{
			Fields:   map[string][]string{"App spec.a": {real}},
			Unmapped: map[string]string{"App spec.b": "unread: nothing reads it"}},
			[]string{`CRD field "App spec.b" has no behaviour test`, "unread: nothing reads it"}},
		{"unmapped and pending", fieldTests{
			Fields:   map[string][]string{"App spec.a": {real}},
			Unmapped: map[string]string{"App spec.b": "untested: no test sets it"},
			Pending:  map[string]string{"App spec.b": "gap"}}, nil},
		{"unmapped note of no kind", fieldTests{
			Fields:   map[string][]string{"App spec.a": {real}},
			Unmapped: map[string]string{"App spec.b": "todo"},
			Pending:  map[string]string{"App spec.b": "gap"}}, []string{`must start with "unread: " or "untested: "`}},
		{"mapped and unmapped", fieldTests{
			Fields:   map[string][]string{"App spec.a": {real}, "App spec.b": {real}},
			Unmapped: map[string]string{"App spec.b": "untested: x"}}, []string{"under both fields: and unmapped:"}},
		{"no test named", fieldTests{Fields: map[string][]string{"App spec.a": {real}, "App spec.b": {}}},
			[]string{`"App spec.b" names no test`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := checkFieldTests(fields, tc.ft, newTestIndex(repoRoot))
			if tc.want == nil {
				if len(errs) > 0 {
					t.Errorf("want no problem, got:\n  %s", strings.Join(errs, "\n  "))
				}
				return
			}
			if len(errs) != 1 {
				t.Fatalf("want one problem, got %d:\n  %s", len(errs), strings.Join(errs, "\n  "))
			}
			for _, w := range tc.want {
				if !strings.Contains(errs[0], w) {
					t.Errorf("message %q lacks %q", errs[0], w)
				}
			}
		})
	}
}

// TestSchemaFieldsWalker guards the walker the test above relies on: it
// must find nested, array and status fields in every kind, and keep the
// "Kind path" form the mapping file uses.
func TestSchemaFieldsWalker(t *testing.T) {
	fields := schemaFields(t, crdDir)
	for _, want := range []string{
		"Source spec.git.ref.semver",
		"Source status.artifact.revision",
		"App spec.ignoreDifferences[].jsonPointers",
		"App spec.sync.windows[].timeZone",
		"App status.history[].id",
		"App status.conditions",
		"AppSet spec.generators[].directories.include",
		"AppSet spec.template.spec",
		"Cluster spec.kubeconfigSecretRef.key",
		"Notifier spec.appSelector.matchExpressions[].operator",
	} {
		if !fields[want] {
			t.Errorf("the walker did not find %q", want)
		}
	}
	for _, notWant := range []string{
		"App status.conditions[].reason", // metav1.Condition is one field
		"AppSet spec.template.spec.path", // the App's own fields cover it
		"App apiVersion", "App metadata", // object metadata is not ours
		"App spec", "Notifier status", // the roots themselves
	} {
		if fields[notWant] {
			t.Errorf("the walker found %q, which it should not list", notWant)
		}
	}
	if len(fields) < 150 {
		t.Errorf("the walker found only %d fields in %s; it is broken", len(fields), crdDir)
	}
}

// TestTestIndex guards the test-name check: an existing test is found, a
// missing one, a helper that is no test, and a malformed name are not.
func TestTestIndex(t *testing.T) {
	idx := newTestIndex(repoRoot)
	if err := idx.check("api/v1alpha1.TestEveryCRDFieldHasABehaviourTest"); err != nil {
		t.Errorf("existing test: %v", err)
	}
	for _, bad := range []string{
		"api/v1alpha1.TestNoSuchTestExists",
		"api/v1alpha1.schemaFields",       // a function, not a test
		"api/v1alpha1.TestTestIndexx",     // near miss
		"internal/nosuchpkg.TestAnything", // no such directory
		"TestEveryCRDFieldHasABehaviourTest",
		"api/v1alpha1.",
	} {
		if err := idx.check(bad); err == nil {
			t.Errorf("check(%q) found a test; it should not", bad)
		}
	}
}

// readFieldTests decodes the mapping file strictly: an unknown section or
// a key given twice is an error, not a silently ignored entry.
func readFieldTests(t *testing.T, file string) fieldTests {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read the field-to-test mapping: %v", err)
	}
	var ft fieldTests
	if err := yaml.UnmarshalStrict(b, &ft); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(ft.Fields) == 0 {
		t.Fatalf("%s maps no field; the file is broken", file)
	}
	return ft
}

// schemaFields returns every field of the spec and status of each CRD in
// dir, as "Kind path" (e.g. "App spec.sync.windows[].timeZone"): nested
// objects and their fields, array items marked "[]", map values "{}". Two
// subtrees are one field each: a list of metav1.Condition (apimachinery's
// type, set with meta.SetStatusCondition), and an AppSet's
// spec.template.spec, which is checked to be the App's spec, so the App's
// fields cover it.
func schemaFields(t *testing.T, dir string) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crds := map[string]*apiextensionsv1.CustomResourceDefinition{}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(b, &crd); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if crd.Kind != "CustomResourceDefinition" {
			continue
		}
		crds[crd.Spec.Names.Kind] = &crd
	}
	for _, want := range []string{"Source", "App", "AppSet", "Cluster", "Notifier", "Project"} {
		if crds[want] == nil {
			t.Fatalf("%s has no CRD of kind %s", dir, want)
		}
	}

	fields := map[string]bool{}
	for kind, crd := range crds {
		if len(crd.Spec.Versions) == 0 {
			t.Fatalf("CRD %s has no versions", crd.Name)
		}
		for _, v := range crd.Spec.Versions {
			if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
				t.Fatalf("CRD %s version %s has no openAPIV3Schema", crd.Name, v.Name)
			}
			root := v.Schema.OpenAPIV3Schema
			for _, top := range []string{"spec", "status"} {
				s, ok := root.Properties[top]
				if !ok && top == "status" && (v.Subresources == nil || v.Subresources.Status == nil) {
					continue // a kind tend writes no status for (Project)
				}
				if !ok {
					t.Fatalf("CRD %s version %s has no %s", crd.Name, v.Name, top)
				}
				walkChildren(kind, top, &s, fields)
			}
		}
	}

	// An AppSet's template spec is copied into each generated App as a
	// whole, so it is one field as long as its schema is the App's spec.
	appSpec := crds["App"].Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	tmpl := crds["AppSet"].Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].
		Properties["template"].Properties["spec"]
	if !reflect.DeepEqual(withoutDescriptions(appSpec), withoutDescriptions(tmpl)) {
		t.Fatalf("AppSet spec.template.spec is no longer the schema of App spec; " +
			"the field walker treats it as one field covered by the App's fields: walk it field by field instead")
	}
	return fields
}

// walkSchema records path, the field s, and every field below it under
// kind.
func walkSchema(kind, path string, s *apiextensionsv1.JSONSchemaProps, out map[string]bool) {
	out[kind+" "+path] = true
	if (kind == "AppSet" && path == "spec.template.spec") || isConditionList(s) {
		return
	}
	walkChildren(kind, path, s, out)
}

// walkChildren records the fields below s: its properties, and those of
// its array items ("[]") and map values ("{}"), which are no fields of
// their own.
func walkChildren(kind, path string, s *apiextensionsv1.JSONSchemaProps, out map[string]bool) {
	for name, p := range s.Properties {
		walkSchema(kind, path+"."+name, &p, out)
	}
	if s.Items != nil && s.Items.Schema != nil {
		walkChildren(kind, path+"[]", s.Items.Schema, out)
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
		walkChildren(kind, path+"{}", s.AdditionalProperties.Schema, out)
	}
}

// isConditionList reports whether s is a list of metav1.Condition.
func isConditionList(s *apiextensionsv1.JSONSchemaProps) bool {
	if s.Type != "array" || s.Items == nil || s.Items.Schema == nil {
		return false
	}
	got := mapKeys(s.Items.Schema.Properties)
	want := []string{"lastTransitionTime", "message", "observedGeneration", "reason", "status", "type"}
	return reflect.DeepEqual(got, want)
}

// withoutDescriptions returns s with every description cleared, to compare
// two schemas by shape.
func withoutDescriptions(s apiextensionsv1.JSONSchemaProps) apiextensionsv1.JSONSchemaProps {
	s.Description = ""
	if s.Properties != nil {
		props := make(map[string]apiextensionsv1.JSONSchemaProps, len(s.Properties))
		for k, v := range s.Properties {
			props[k] = withoutDescriptions(v)
		}
		s.Properties = props
	}
	if s.Items != nil && s.Items.Schema != nil {
		items := withoutDescriptions(*s.Items.Schema)
		s.Items = &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &items}
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
		ap := withoutDescriptions(*s.AdditionalProperties.Schema)
		s.AdditionalProperties = &apiextensionsv1.JSONSchemaPropsOrBool{Allows: s.AdditionalProperties.Allows, Schema: &ap}
	}
	return s
}

// testIndex answers whether a test function exists, parsing each package
// directory's *_test.go files once.
type testIndex struct {
	root  string
	tests map[string]map[string]bool // dir -> test function names
	errs  map[string]error
}

func newTestIndex(root string) *testIndex {
	return &testIndex{root: root, tests: map[string]map[string]bool{}, errs: map[string]error{}}
}

// testNameRE is "dir.TestName", dir a slash-separated path under the
// module root.
var testNameRE = regexp.MustCompile(`^([a-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*)\.(Test[A-Za-z0-9_]*)$`)

// check returns nil when name, "dir.TestName", is a func TestName(t
// *testing.T) in a *_test.go file of dir.
func (x *testIndex) check(name string) error {
	m := testNameRE.FindStringSubmatch(name)
	if m == nil {
		return fmt.Errorf("%q is not of the form dir.TestName (e.g. internal/controller.TestAppSync)", name)
	}
	dir, fn := m[1], m[2]
	if _, ok := x.tests[dir]; !ok {
		x.tests[dir], x.errs[dir] = parseTestFuncs(filepath.Join(x.root, filepath.FromSlash(dir)))
	}
	if err := x.errs[dir]; err != nil {
		return err
	}
	if !x.tests[dir][fn] {
		return fmt.Errorf("no func %s(t *testing.T) in %s/*_test.go; write the test or fix the name", fn, dir)
	}
	return nil
}

// parseTestFuncs returns the names of the top-level functions of the
// *_test.go files in dir that have the signature func(t *testing.T).
func parseTestFuncs(dir string) (map[string]bool, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no *_test.go files in %s", dir)
	}
	names := map[string]bool{}
	fset := token.NewFileSet()
	for _, file := range files {
		f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		testing := "testing" // the name the file imports "testing" under
		for _, imp := range f.Imports {
			if imp.Path.Value == `"testing"` && imp.Name != nil {
				testing = imp.Name.Name
			}
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Recv != nil || !strings.HasPrefix(fd.Name.Name, "Test") {
				continue
			}
			if isTestingT(fd.Type, testing) {
				names[fd.Name.Name] = true
			}
		}
	}
	return names, nil
}

// isTestingT reports whether ft is func(*testing.T) with no results.
func isTestingT(ft *ast.FuncType, testingPkg string) bool {
	if ft.Results != nil && len(ft.Results.List) > 0 {
		return false
	}
	if ft.Params == nil || len(ft.Params.List) != 1 || len(ft.Params.List[0].Names) > 1 {
		return false
	}
	star, ok := ft.Params.List[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == testingPkg && sel.Sel.Name == "T"
}

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
