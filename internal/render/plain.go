package render

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// renderPlain renders a directory of YAML and JSON manifests: files ending
// in .yaml, .yml or .json (subdirectories too with opts.Recursive), in path
// order. Hidden files and directories are skipped, and so are files and
// documents that are not manifests (no apiVersion and no kind: values
// files, tool configuration). See docs/rendering.md.
func (r *Renderer) renderPlain(f *files, dir string, opts Options) ([]*unstructured.Unstructured, error) {
	paths, err := manifestFiles(f, dir, opts.Recursive)
	if err != nil {
		return nil, err
	}
	if paths, err = filterFiles(paths, dir, opts.Include, opts.Exclude); err != nil {
		return nil, err
	}
	var objs []*unstructured.Unstructured
	for _, p := range paths {
		b, err := f.ReadFile(p)
		if err != nil {
			return nil, err // names p: an fs.PathError, or a decryption error
		}
		got, err := decodeManifests(p, b)
		if err != nil {
			return nil, err
		}
		for _, o := range got {
			f.setOrigin(o, p)
		}
		objs = append(objs, got...)
	}
	return objs, nil
}

// manifestFiles lists the manifest files in dir, sorted by path.
func manifestFiles(f *files, dir string, recursive bool) ([]string, error) {
	var out []string
	var walk func(dir string) error
	walk = func(dir string) error {
		entries, err := f.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("list %s: %w", dir, err)
		}
		for _, e := range entries {
			name := e.Name()
			if strings.HasPrefix(name, ".") {
				continue
			}
			p := path.Join(dir, name)
			if e.IsDir() {
				if recursive {
					if err := walk(p); err != nil {
						return err
					}
				}
				continue
			}
			if isManifestFile(name) {
				out = append(out, p)
			}
		}
		return nil
	}
	if err := walk(dir); err != nil {
		return nil, err
	}
	sort.Strings(out)
	return out, nil
}

func isManifestFile(name string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// filterFiles keeps the paths (below dir) whose path relative to dir
// matches an include glob (all when there is none) and no exclude glob.
func filterFiles(paths []string, dir string, include, exclude []string) ([]string, error) {
	if len(include) == 0 && len(exclude) == 0 {
		return paths, nil
	}
	compile := func(field string, globs []string) ([]*regexp.Regexp, error) {
		out := make([]*regexp.Regexp, len(globs))
		for i, g := range globs {
			re, err := FileGlob(g)
			if err != nil {
				return nil, fmt.Errorf("spec.%s[%d] %q: %w", field, i, g, err)
			}
			out[i] = re
		}
		return out, nil
	}
	inc, err := compile("include", include)
	if err != nil {
		return nil, err
	}
	exc, err := compile("exclude", exclude)
	if err != nil {
		return nil, err
	}
	matches := func(res []*regexp.Regexp, rel string) bool {
		for _, re := range res {
			if re.MatchString(rel) {
				return true
			}
		}
		return false
	}
	var out []string
	for _, p := range paths {
		rel := strings.TrimPrefix(p, dir+"/")
		if dir == "." {
			rel = p
		}
		if (len(inc) == 0 || matches(inc, rel)) && !matches(exc, rel) {
			out = append(out, p)
		}
	}
	return out, nil
}

// FileGlob compiles a glob over slash-separated relative paths, as Argo
// CD's directory include and exclude read them: * matches any characters,
// / included; ? one character; [abc] and [a-z] a class ([!a] or [^a]
// negated); {a,b} either alternative (nested allowed); \ quotes the next
// character. The glob matches the whole path.
func FileGlob(glob string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	depth := 0
	for i := 0; i < len(glob); i++ {
		c := glob[i]
		switch c {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		case '{':
			depth++
			b.WriteString("(?:")
		case '}':
			if depth == 0 {
				return nil, fmt.Errorf("unmatched }")
			}
			depth--
			b.WriteString(")")
		case ',':
			if depth > 0 {
				b.WriteString("|")
			} else {
				b.WriteString(",")
			}
		case '[':
			end := strings.IndexByte(glob[i+1:], ']')
			if end < 0 {
				return nil, fmt.Errorf("unmatched [")
			}
			class := glob[i+1 : i+1+end]
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			b.WriteString("[" + strings.ReplaceAll(class, `\`, `\\`) + "]")
			i += end + 1
		case '\\':
			if i+1 == len(glob) {
				return nil, fmt.Errorf("trailing \\")
			}
			i++
			b.WriteString(regexp.QuoteMeta(glob[i : i+1]))
		default:
			b.WriteString(regexp.QuoteMeta(glob[i : i+1])) // a byte: string(c) would re-encode it as a rune
		}
	}
	if depth > 0 {
		return nil, fmt.Errorf("unmatched {")
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}
