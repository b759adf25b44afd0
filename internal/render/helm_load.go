package render

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	chartloader "helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/ignore"
)

const (
	// maxChartDirDepth bounds directory nesting in a chart (and so symlink
	// loops).
	maxChartDirDepth = 32
	// maxDependencyDepth bounds chains of dependencies resolved from
	// repositories or file:// paths.
	maxDependencyDepth = 10
)

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// loadChartDir loads the chart in artifact directory dir through f, so every
// file is recorded as read and SOPS-encrypted files (values) are decrypted.
// Like Helm's directory loader it honours the chart's .helmignore and loads
// subcharts vendored in charts/ (directories or .tgz archives).
func loadChartDir(f *files, dir string) (*chart.Chart, error) {
	rules := ignore.Empty()
	// exists records the probe: adding a .helmignore changes the render.
	if p := path.Join(dir, ignore.HelmIgnore); f.exists(p) {
		data, err := f.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if rules, err = ignore.Parse(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	rules.AddDefaults()

	w := chartWalk{f: f, root: dir, rules: rules, budget: archive.MaxDecompressedChartSize}
	if err := w.walk("", 0); err != nil {
		return nil, err
	}
	c, err := chartloader.LoadFiles(w.out)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// chartWalk collects the files of a chart directory.
type chartWalk struct {
	f      *files
	root   string
	rules  *ignore.Rules
	budget int64
	out    []*archive.BufferedFile
}

func (w *chartWalk) walk(rel string, depth int) error {
	if depth > maxChartDirDepth {
		return fmt.Errorf("%s: directories nest more than %d deep (a symlink loop?)", path.Join(w.root, rel), maxChartDirDepth)
	}
	entries, err := w.f.ReadDir(path.Join(w.root, rel))
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := path.Join(rel, e.Name())
		p := path.Join(w.root, name)
		fi, err := w.f.Stat(p) // follows symlinks, within the artifact
		if err != nil {
			return err // names p
		}
		if w.rules.Ignore(name, fi) {
			continue
		}
		if fi.IsDir() {
			if err := w.walk(name, depth+1); err != nil {
				return err
			}
			continue
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file; remove it or list it in .helmignore", p)
		}
		if fi.Size() > w.budget {
			return fmt.Errorf("chart at %s is larger than the limit of %d bytes", w.root, archive.MaxDecompressedChartSize)
		}
		data, err := w.f.ReadFile(p)
		if err != nil {
			return err // names p
		}
		w.budget -= int64(len(data))
		w.out = append(w.out, &archive.BufferedFile{
			Name:    name,
			ModTime: fi.ModTime(),
			Data:    bytes.TrimPrefix(data, utf8BOM),
		})
	}
	return nil
}

// resolveDependencies makes every dependency that c's Chart.yaml declares
// present, recursively: a subchart vendored in charts/ with a matching
// version is used as is; otherwise a file:// dependency is loaded from the
// artifact (relative to localDir, the chart's directory; "" when the chart
// did not come from the artifact), and an https:// or oci:// one is fetched
// through r.Charts at the version Chart.lock pins, or else at the highest
// version matching Chart.yaml's range. Conditions, tags, aliases and
// import-values are left to Helm's dependency processing at render time.
func (r *Renderer) resolveDependencies(ctx context.Context, f *files, c *chart.Chart, localDir string, depth int) error {
	if depth > maxDependencyDepth {
		return fmt.Errorf("dependencies nest more than %d deep", maxDependencyDepth)
	}
	for _, req := range c.Metadata.Dependencies {
		if req == nil || hasDependency(c, req) {
			continue
		}
		sub, subDir, err := r.loadDependency(ctx, f, c, req, localDir)
		if err != nil {
			return fmt.Errorf("dependency %q: %w", req.Name, err)
		}
		if sub.Name() != req.Name {
			return fmt.Errorf("dependency %q: %s holds chart %q", req.Name, redactURL(req.Repository), sub.Name())
		}
		if req.Version != "" && !chartutil.IsCompatibleRange(req.Version, sub.Metadata.Version) {
			return fmt.Errorf("dependency %q: got version %s, which does not match %q in Chart.yaml; update Chart.lock (helm dependency update)", req.Name, sub.Metadata.Version, req.Version)
		}
		if err := r.resolveDependencies(ctx, f, sub, subDir, depth+1); err != nil {
			return fmt.Errorf("dependency %q: %w", req.Name, err)
		}
		// A vendored copy with the wrong version would otherwise render as
		// an undeclared subchart next to the right one.
		kept := c.Dependencies()[:0:0]
		for _, d := range c.Dependencies() {
			if d.Name() != req.Name {
				kept = append(kept, d)
			}
		}
		c.SetDependencies(append(kept, sub)...)
	}
	for _, d := range c.Dependencies() {
		// Vendored subcharts may declare dependencies of their own; only
		// repository ones can be resolved (their directory is not known).
		if err := r.resolveDependencies(ctx, f, d, "", depth+1); err != nil {
			return fmt.Errorf("subchart %q: %w", d.Name(), err)
		}
	}
	return nil
}

// hasDependency reports whether c already has a subchart satisfying req.
func hasDependency(c *chart.Chart, req *chart.Dependency) bool {
	for _, d := range c.Dependencies() {
		if d.Name() != req.Name {
			continue
		}
		if req.Version == "" || chartutil.IsCompatibleRange(req.Version, d.Metadata.Version) {
			return true
		}
	}
	return false
}

// loadDependency loads the chart req names from its repository. It returns
// the chart and, for a file:// dependency, its directory in the artifact.
func (r *Renderer) loadDependency(ctx context.Context, f *files, c *chart.Chart, req *chart.Dependency, localDir string) (*chart.Chart, string, error) {
	repo := req.Repository
	switch {
	case strings.HasPrefix(repo, "file://"):
		if localDir == "" {
			return nil, "", fmt.Errorf("repository %s is a local path, which only works for charts in the source; vendor the dependency into charts/", repo)
		}
		dir := path.Join(localDir, strings.TrimPrefix(repo, "file://"))
		if _, err := clean(dir); err != nil {
			return nil, "", fmt.Errorf("repository %s: %w", repo, err)
		}
		if !f.exists(path.Join(dir, "Chart.yaml")) {
			return nil, "", fmt.Errorf("repository %s: no Chart.yaml in %s", repo, dir)
		}
		sub, err := loadChartDir(f, dir)
		if err != nil {
			return nil, "", fmt.Errorf("repository %s: %w", repo, err)
		}
		return sub, dir, nil
	case strings.HasPrefix(repo, "https://"), strings.HasPrefix(repo, "http://"), strings.HasPrefix(repo, "oci://"):
		version := req.Version
		if v := lockedVersion(c, req); v != "" {
			version = v
		}
		sub, _, err := r.fetchChart(ctx, repo, req.Name, version, nil)
		if err != nil {
			return nil, "", err
		}
		return sub, "", nil
	case repo == "":
		if hasName(c, req.Name) {
			return nil, "", fmt.Errorf("charts/ holds a version that does not match %q and Chart.yaml names no repository to fetch one from", req.Version)
		}
		return nil, "", errors.New("it is not in charts/ and Chart.yaml names no repository; vendor it (helm dependency build) or set its repository URL")
	default:
		return nil, "", fmt.Errorf("repository %q is not a URL (a name from `helm repo add`?); use the repository's https:// or oci:// URL in Chart.yaml", repo)
	}
}

func hasName(c *chart.Chart, name string) bool {
	for _, d := range c.Dependencies() {
		if d.Name() == name {
			return true
		}
	}
	return false
}

// lockedVersion returns the version Chart.lock pins for req, or "".
func lockedVersion(c *chart.Chart, req *chart.Dependency) string {
	if c.Lock == nil {
		return ""
	}
	for _, d := range c.Lock.Dependencies {
		if d != nil && d.Name == req.Name && d.Repository == req.Repository {
			return d.Version
		}
	}
	return ""
}
