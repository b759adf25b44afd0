package v1alpha1

import (
	"bufio"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// apiReference is the API reference the tests below keep in step with the
// types of this package.
const apiReference = "../../docs/api.md"

// TestAPIReferenceMentionsEveryField fails when a JSON field of any type
// reachable from a kind of this package is not mentioned in docs/api.md as
// `fieldName` (an inline code span outside fenced code blocks), so that
// adding a field without documenting it breaks the build.
func TestAPIReferenceMentionsEveryField(t *testing.T) {
	spans := codeSpans(t, apiReference)

	fields := map[string][]string{} // JSON name -> where it occurs
	for _, kind := range apiKinds(t) {
		collectJSONFields(kind, kind.Name(), nil, fields)
	}
	// Guard against a walker that silently finds nothing.
	if len(fields) < 50 {
		t.Fatalf("found only %d JSON field names in the API types; the walker is broken", len(fields))
	}

	var missing []string
	for name, paths := range fields {
		if !spans[name] {
			sort.Strings(paths)
			missing = append(missing, fmt.Sprintf("`%s` (%s)", name, strings.Join(paths, ", ")))
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%s does not mention these API fields as `name` (outside code blocks); document them:\n  %s",
			apiReference, strings.Join(missing, "\n  "))
	}
}

// TestAPIReferenceHasSectionPerKind fails when a kind of this package has no
// "## Kind" section in docs/api.md.
func TestAPIReferenceHasSectionPerKind(t *testing.T) {
	b, err := os.ReadFile(apiReference)
	if err != nil {
		t.Fatal(err)
	}
	headings := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if h, ok := strings.CutPrefix(strings.TrimRight(line, " \r"), "## "); ok {
			headings[h] = true
		}
	}
	for _, kind := range apiKinds(t) {
		if !headings[kind.Name()] {
			t.Errorf("%s has no section \"## %s\"", apiReference, kind.Name())
		}
	}
}

// apiKinds returns the kinds this package registers (not their lists),
// sorted by name. It insists on the four kinds tend is built around, so a
// broken scheme cannot make the tests pass vacuously.
func apiKinds(t *testing.T) []reflect.Type {
	t.Helper()
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	pkg := reflect.TypeOf(Source{}).PkgPath()
	var kinds []reflect.Type
	seen := map[string]bool{}
	for name, typ := range s.KnownTypes(GroupVersion) {
		if typ.PkgPath() != pkg || strings.HasSuffix(name, "List") {
			continue // metav1 option types, and list kinds
		}
		kinds = append(kinds, typ)
		seen[typ.Name()] = true
	}
	for _, want := range []string{"Source", "App", "AppSet", "Cluster"} {
		if !seen[want] {
			t.Fatalf("kind %s is not registered in the scheme", want)
		}
	}
	sort.Slice(kinds, func(i, j int) bool { return kinds[i].Name() < kinds[j].Name() })
	return kinds
}

var (
	typeMetaType   = reflect.TypeOf(metav1.TypeMeta{})
	objectMetaType = reflect.TypeOf(metav1.ObjectMeta{})
	listMetaType   = reflect.TypeOf(metav1.ListMeta{})
)

// collectJSONFields records the JSON name of every field of typ (a struct
// of this package) and of the package's structs it contains, with the path
// it was found at (e.g. App.spec.sync.windows[].timeZone). Types of other
// packages (metav1.Condition, metav1.Duration, apiextensionsv1.JSON) are
// leaves; embedded inline fields and object, list and type metadata are
// skipped.
func collectJSONFields(typ reflect.Type, path string, stack []reflect.Type, out map[string][]string) {
	for _, s := range stack {
		if s == typ {
			return // recursive type: already being walked
		}
	}
	stack = append(stack, typ)
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		ft := f.Type
		if ft == typeMetaType || ft == objectMetaType || ft == listMetaType {
			continue
		}
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		inline := strings.Contains(","+opts+",", ",inline,") || (f.Anonymous && name == "")
		fieldPath := path
		if !inline {
			if name == "" {
				name = f.Name
			}
			fieldPath = path + "." + name
			out[name] = appendOnce(out[name], fieldPath)
		}
		elem, suffix := elemType(ft)
		if elem.Kind() == reflect.Struct && elem.PkgPath() == typ.PkgPath() {
			collectJSONFields(elem, fieldPath+suffix, stack, out)
		}
	}
}

// elemType strips pointers, slices, arrays and maps down to the element
// type, returning the path suffix that marks the containers ("[]", "{}").
func elemType(t reflect.Type) (reflect.Type, string) {
	suffix := ""
	for {
		switch t.Kind() {
		case reflect.Pointer:
			t = t.Elem()
		case reflect.Slice, reflect.Array:
			t, suffix = t.Elem(), suffix+"[]"
		case reflect.Map:
			t, suffix = t.Elem(), suffix+"{}"
		default:
			return t, suffix
		}
	}
}

func appendOnce(list []string, s string) []string {
	for _, v := range list {
		if v == s {
			return list
		}
	}
	return append(list, s)
}

// codeSpanRE matches an inline code span delimited by single backticks.
var codeSpanRE = regexp.MustCompile("`([^`]+)`")

// codeSpans returns the contents of the inline code spans of a Markdown
// file, trimmed, leaving out fenced code blocks (a field that appears only
// in a YAML example is not documented).
func codeSpans(t *testing.T, file string) map[string]bool {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatalf("open the API reference: %v", err)
	}
	defer f.Close()
	spans := map[string]bool{}
	fence := "" // the open fence ("```" or "~~~"), or "" outside one
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " ")
		if len(line)-len(trimmed) <= 3 {
			for _, marker := range []string{"```", "~~~"} {
				if strings.HasPrefix(trimmed, marker) && (fence == "" || fence == marker) {
					if fence == "" {
						fence = marker
					} else {
						fence = ""
					}
					trimmed = ""
					break
				}
			}
			if trimmed == "" {
				continue
			}
		}
		if fence != "" {
			continue
		}
		for _, m := range codeSpanRE.FindAllStringSubmatch(line, -1) {
			spans[strings.TrimSpace(m[1])] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read the API reference: %v", err)
	}
	if len(spans) == 0 {
		t.Fatalf("%s has no code spans", file)
	}
	return spans
}
