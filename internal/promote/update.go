// Package promote writes freight into a checkout of a git repository: the
// edits a promotion commits (kustomize images, a YAML value such as a Helm
// values key, Flux's image policy markers). Each edit keeps the rest of
// the file as it was, comments and order included, and reports whether it
// changed anything.
package promote

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// inside resolves name (slash-separated, relative to dir) to a path in
// dir, refusing one that leaves it.
func inside(dir, name string) (string, error) {
	clean := path.Clean("/" + name)[1:]
	if clean == "" {
		clean = "."
	}
	if strings.HasPrefix(name, "/") || slices.Contains(strings.Split(name, "/"), "..") {
		return "", fmt.Errorf("path %q: name a path relative to the repository root, without \"..\"", name)
	}
	full := filepath.Join(dir, filepath.FromSlash(clean))
	if real, err := filepath.EvalSymlinks(full); err == nil {
		root, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return "", err
		}
		if rel, err := filepath.Rel(root, real); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return "", fmt.Errorf("path %q leads out of the repository (a symlink)", name)
		}
	}
	return full, nil
}

// ImageRef is img as an image reference: repository:tag, with @digest when
// withDigest.
func ImageRef(img tendv1.FreightImage, withDigest bool) string {
	ref := img.Repository + ":" + img.Tag
	if withDigest && img.Digest != "" {
		ref += "@" + img.Digest
	}
	return ref
}

// SetKustomizeImage sets img in the images of the kustomization in
// directory kdir (relative to dir), as `kustomize edit set image` does: the
// entry whose name (or newName) is img's repository gets newTag img.Tag,
// and digest img.Digest when withDigest (else its digest is removed); an
// entry is added when there is none.
func SetKustomizeImage(dir, kdir string, img tendv1.FreightImage, withDigest bool) (bool, error) {
	base, err := inside(dir, kdir)
	if err != nil {
		return false, err
	}
	var file string
	for _, n := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		if _, err := os.Stat(filepath.Join(base, n)); err == nil {
			file = filepath.Join(base, n)
			break
		}
	}
	if file == "" {
		return false, fmt.Errorf("%s has no kustomization.yaml", kdir)
	}
	return editYAML(file, func(doc *yaml.Node) error {
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			return fmt.Errorf("%s is not a YAML map", file)
		}
		images := mapValue(root, "images")
		if images == nil {
			images = &yaml.Node{Kind: yaml.SequenceNode}
			root.Content = append(root.Content, scalar("images"), images)
		}
		if images.Kind != yaml.SequenceNode {
			return fmt.Errorf("images in %s is not a list", file)
		}
		var entry *yaml.Node
		for _, e := range images.Content {
			if e.Kind != yaml.MappingNode {
				continue
			}
			name, newName := scalarOf(mapValue(e, "name")), scalarOf(mapValue(e, "newName"))
			if name == img.Repository || newName == img.Repository {
				entry = e
				break
			}
		}
		if entry == nil {
			entry = &yaml.Node{Kind: yaml.MappingNode}
			setMap(entry, "name", img.Repository)
			images.Content = append(images.Content, entry)
		}
		setMap(entry, "newTag", img.Tag)
		if withDigest && img.Digest != "" {
			setMap(entry, "digest", img.Digest)
		} else {
			deleteMap(entry, "digest")
		}
		return nil
	})
}

// SetValue sets the value at key (dots separate map keys: image.tag) in
// the YAML file name (relative to dir), creating the maps on the way. The
// value keeps the style (quotes) of the one it replaces.
func SetValue(dir, name, key, value string) (bool, error) {
	file, err := inside(dir, name)
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(file); err != nil {
		return false, fmt.Errorf("%s: %w", name, err)
	}
	keys := strings.Split(key, ".")
	if slices.Contains(keys, "") {
		return false, fmt.Errorf("key %q: name map keys separated by dots, e.g. image.tag", key)
	}
	return editYAML(file, func(doc *yaml.Node) error {
		node := doc.Content[0]
		for i, k := range keys {
			if node.Kind != yaml.MappingNode {
				return fmt.Errorf("%s: %s is not a map", name, strings.Join(keys[:i], "."))
			}
			if i == len(keys)-1 {
				setMap(node, k, value)
				return nil
			}
			next := mapValue(node, k)
			if next == nil {
				next = &yaml.Node{Kind: yaml.MappingNode}
				node.Content = append(node.Content, scalar(k), next)
			}
			node = next
		}
		return nil
	})
}

// marker is Flux's image policy setter comment on a line of YAML:
// `image: repo:tag # {"$imagepolicy": "ns:name"}`, with ":tag", ":name" or
// ":digest" after the policy for one part of the reference.
var marker = regexp.MustCompile(`^(\s*(?:-\s+)?(?:[^\s#:][^#]*?:\s+)?)("?)([^"\s#]*)("?)(\s*#\s*\{\s*"\$imagepolicy"\s*:\s*"([^"]+)"\s*\}.*)$`)

// SetMarkers rewrites the values marked with Flux's image policy comments
// in the YAML files under sub (relative to dir): policies maps a marker's
// policy ("namespace:name", as Flux's ImagePolicy) to the image it takes.
// A marked value takes the whole reference (repository:tag), or with the
// suffix :tag, :name or :digest that part. Markers of other policies are
// left alone. It returns how many values changed.
func SetMarkers(dir, sub string, policies map[string]tendv1.FreightImage) (int, error) {
	root, err := inside(dir, sub)
	if err != nil {
		return 0, err
	}
	changed := 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		if ext := filepath.Ext(p); ext != ".yaml" && ext != ".yml" {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		lines := bytes.Split(data, []byte("\n"))
		n := 0
		for i, line := range lines {
			m := marker.FindSubmatch(line)
			if m == nil {
				continue
			}
			policy, part := string(m[6]), ""
			img, ok := policies[policy]
			if !ok {
				if j := strings.LastIndexByte(policy, ':'); j > 0 && strings.Count(policy, ":") == 2 {
					policy, part = policy[:j], policy[j+1:]
					img, ok = policies[policy]
				}
			}
			if !ok {
				continue
			}
			var value string
			switch part {
			case "":
				value = ImageRef(img, false)
			case "tag":
				value = img.Tag
			case "name":
				value = img.Repository
			case "digest":
				value = img.Digest
			default:
				return fmt.Errorf("%s line %d: marker %q: want :tag, :name or :digest after the policy", rel(dir, p), i+1, m[6])
			}
			if string(m[3]) == value {
				continue
			}
			lines[i] = []byte(string(m[1]) + string(m[2]) + value + string(m[4]) + string(m[5]))
			n++
		}
		if n == 0 {
			return nil
		}
		changed += n
		return os.WriteFile(p, bytes.Join(lines, []byte("\n")), 0o644)
	})
	return changed, err
}

func rel(dir, p string) string {
	r, err := filepath.Rel(dir, p)
	if err != nil {
		return p
	}
	return filepath.ToSlash(r)
}

// editYAML decodes file, runs edit on its first document and writes it
// back when that changed its text.
func editYAML(file string, edit func(doc *yaml.Node) error) (bool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return false, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return false, fmt.Errorf("%s: %v", filepath.Base(file), err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	before, err := encode(&doc)
	if err != nil {
		return false, err
	}
	if err := edit(&doc); err != nil {
		return false, err
	}
	after, err := encode(&doc)
	if err != nil {
		return false, err
	}
	if bytes.Equal(before, after) {
		return false, nil
	}
	return true, os.WriteFile(file, after, 0o644)
}

func encode(doc *yaml.Node) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}

func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }

func scalarOf(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// setMap sets key to the string value, keeping the style of the value it
// replaces.
func setMap(m *yaml.Node, key, value string) {
	if v := mapValue(m, key); v != nil && v.Kind == yaml.ScalarNode {
		if v.Value != value {
			v.Value, v.Tag = value, "!!str"
		}
		return
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = scalar(value)
			return
		}
	}
	m.Content = append(m.Content, scalar(key), scalar(value))
}

func deleteMap(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}
