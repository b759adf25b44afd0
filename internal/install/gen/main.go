// Command gen writes tend's install manifests to config/install and the
// Helm chart made from the same objects to charts/tend:
//
//	go run ./internal/install/gen
//
// Tests in internal/install fail when the files there are stale. With
// -stdout it prints one install for other options instead:
//
//	go run ./internal/install/gen -stdout -namespace gitops -version v0.3.0
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tend-gitops/tend/internal/install"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	var opts install.Options
	stdout := fs.Bool("stdout", false, "print one install with the options below instead of writing config/install and charts/tend")
	fs.StringVar(&opts.Namespace, "namespace", "", "namespace tend runs in (default "+install.DefaultNamespace+")")
	fs.StringVar(&opts.Image, "image", "", "controller image (default "+install.DefaultImageRepo+":<version>)")
	fs.StringVar(&opts.Version, "version", "", "version label and default image tag (default "+install.DefaultVersion+")")
	fs.IntVar(&opts.Replicas, "replicas", 0, fmt.Sprintf("controller replicas (default %d)", install.DefaultReplicas))
	fs.BoolVar(&opts.ClusterAdmin, "cluster-admin", false, "bind cluster-admin instead of least-privilege RBAC")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *stdout {
		b, err := install.Render(opts)
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(b)
		return err
	}
	if fs.NFlag() > 0 {
		return fmt.Errorf("config/install is rendered with the defaults; add -stdout to render other options")
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "config", "install")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range install.Files {
		b, err := install.Render(f.Options)
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name), b, 0o644); err != nil {
			return err
		}
	}
	return writeChart(filepath.Join(root, filepath.FromSlash(install.ChartDir)))
}

// writeChart replaces dir with the chart, so that a template the
// generator no longer makes goes away.
func writeChart(dir string) error {
	files, err := install.Chart()
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	for _, f := range files {
		path := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, f.Data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// moduleRoot is the nearest directory above the working directory with a
// go.mod, so that gen works from anywhere in the repository.
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s: run gen inside the tend repository", wd)
		}
	}
}
