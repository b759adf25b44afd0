package render

import (
	"fmt"
	"path"
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
