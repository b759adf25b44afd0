package render

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"

	"go.yaml.in/yaml/v3"
)

// KSOPS (viaduct.ai/v1 ksops) is the kustomize exec plugin Argo CD teams
// use to decrypt SOPS files in a kustomization. tend runs no plugins: it
// reads a KSOPS generator's configuration and does what KSOPS does, in
// process. Its files become resources of the kustomization and its
// secretFrom entries secretGenerators; both are read through files, which
// decrypts them in memory with the App's keys, as any SOPS file.

// ksopsAPIVersion and ksopsKind name a KSOPS generator.
const (
	ksopsAPIVersion = "viaduct.ai/v1"
	ksopsKind       = "ksops"
	// needsHashAnnotation asks kustomize to add a content hash to a
	// generated object's name; KSOPS's Secrets have none without it.
	needsHashAnnotation = "kustomize.config.k8s.io/needs-hash"
)

// ksopsGenerator is a KSOPS generator's configuration.
type ksopsGenerator struct {
	APIVersion string         `yaml:"apiVersion"`
	Kind       string         `yaml:"kind"`
	Metadata   map[string]any `yaml:"metadata"`
	// Files are SOPS-encrypted manifests, relative to the kustomization.
	Files      []string          `yaml:"files"`
	SecretFrom []ksopsSecretFrom `yaml:"secretFrom"`
}

// ksopsSecretFrom generates a Secret from SOPS-encrypted files.
type ksopsSecretFrom struct {
	Metadata struct {
		Name        string            `yaml:"name"`
		Namespace   string            `yaml:"namespace"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Type        string   `yaml:"type"`
	Files       []string `yaml:"files"`
	BinaryFiles []string `yaml:"binaryFiles"`
	Envs        []string `yaml:"envs"`
}

// ksops replaces the KSOPS generators among kustomization k's generators
// (k is at p, in directory kdir) with resources and secretGenerators that
// produce the same objects. It reports whether k changed. Other generators
// are left to kustomize.
func (kr *kustRewriter) ksops(p, kdir string, k map[string]any) (bool, error) {
	gens, ok := k["generators"].([]any)
	if !ok {
		return false, nil
	}
	var keep []any
	changed := false
	resources, _ := k["resources"].([]any)
	secretGens, _ := k["secretGenerator"].([]any)
	for i, g := range gens {
		name, ok := g.(string)
		local, err := clean(path.Join(kdir, name))
		if !ok || err != nil || !kr.f.exists(local) || kr.f.isDir(local) {
			keep = append(keep, g)
			continue
		}
		b, err := kr.f.ReadFile(local)
		if err != nil {
			return false, err
		}
		docs, err := ksopsDocs(b)
		if err != nil {
			return false, fmt.Errorf("%s: generators[%d] %s: %w", p, i, name, err)
		}
		if docs == nil {
			keep = append(keep, g)
			continue
		}
		changed = true
		for _, d := range docs {
			for j, f := range d.Files {
				if err := kr.checkReference(p, kdir, fmt.Sprintf("the KSOPS generator %s files[%d]", name, j), f); err != nil {
					return false, err
				}
				resources = append(resources, f)
			}
			for j, s := range d.SecretFrom {
				sg, err := s.secretGenerator()
				if err != nil {
					return false, fmt.Errorf("%s: the KSOPS generator %s: secretFrom[%d]: %w", p, name, j, err)
				}
				secretGens = append(secretGens, sg)
			}
		}
	}
	if !changed {
		return false, nil
	}
	if len(keep) == 0 {
		delete(k, "generators")
	} else {
		k["generators"] = keep
	}
	if len(resources) > 0 {
		k["resources"] = resources
	}
	if len(secretGens) > 0 {
		k["secretGenerator"] = secretGens
	}
	return true, nil
}

// ksopsDocs decodes a generator file: nil when it holds no KSOPS
// generator; an error when it mixes KSOPS with other generators or has a
// field KSOPS does not have.
func ksopsDocs(b []byte) ([]ksopsGenerator, error) {
	var out []ksopsGenerator
	others := 0
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var node yaml.Node
		if err := dec.Decode(&node); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, err
		}
		var head struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
		}
		if err := node.Decode(&head); err != nil {
			return nil, err
		}
		if head.APIVersion != ksopsAPIVersion || head.Kind != ksopsKind {
			others++
			continue
		}
		var g ksopsGenerator
		strict := yaml.NewDecoder(bytes.NewReader(mustYAML(&node)))
		strict.KnownFields(true)
		if err := strict.Decode(&g); err != nil {
			return nil, fmt.Errorf("KSOPS generator: %w", err)
		}
		out = append(out, g)
	}
	if out != nil && others > 0 {
		return nil, fmt.Errorf("holds KSOPS and other generators; put the KSOPS generator in a file of its own")
	}
	return out, nil
}

func mustYAML(n *yaml.Node) []byte {
	b, err := yaml.Marshal(n)
	if err != nil {
		return nil
	}
	return b
}

// secretGenerator is the kustomize secretGenerator entry of the Secret s
// generates: named as KSOPS names it (no hash suffix unless the
// needs-hash annotation asks for one).
func (s ksopsSecretFrom) secretGenerator() (map[string]any, error) {
	if s.Metadata.Name == "" {
		return nil, fmt.Errorf("metadata.name is required")
	}
	sg := map[string]any{"name": s.Metadata.Name}
	if s.Metadata.Namespace != "" {
		sg["namespace"] = s.Metadata.Namespace
	}
	if s.Type != "" {
		sg["type"] = s.Type
	}
	files := append(append([]string{}, s.Files...), s.BinaryFiles...)
	if len(files) > 0 {
		sg["files"] = files
	}
	if len(s.Envs) > 0 {
		sg["envs"] = s.Envs
	}
	opts := map[string]any{}
	annotations := map[string]any{}
	hash := false
	for k, v := range s.Metadata.Annotations {
		if k == needsHashAnnotation {
			hash = v == "true"
			continue
		}
		annotations[k] = v
	}
	opts["disableNameSuffixHash"] = !hash
	if len(annotations) > 0 {
		opts["annotations"] = annotations
	}
	if len(s.Metadata.Labels) > 0 {
		labels := map[string]any{}
		for k, v := range s.Metadata.Labels {
			labels[k] = v
		}
		opts["labels"] = labels
	}
	sg["options"] = opts
	return sg, nil
}
