// Command image builds tend's container image (internal/image) as an OCI
// layout and, with -push, uploads it: `make image` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"

	"github.com/tend-gitops/tend/internal/image"
	"github.com/tend-gitops/tend/internal/release"
)

func main() {
	var (
		version   = flag.String("version", "", "version to stamp and label, e.g. v0.4.0 (required)")
		commit    = flag.String("commit", "", "commit to stamp and label (required)")
		out       = flag.String("out", "dist", "directory for the OCI layout (<out>/image) and the SBOMs (<out>/sbom)")
		push      = flag.String("push", "", "also push the image index to this reference, e.g. ghcr.io/you/tend:v0.4.0")
		platforms = flag.String("platforms", "", "comma-separated linux/arch list (default linux/amd64,linux/arm64)")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *version, *commit, *out, *push, *platforms); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, version, commit, out, push, platforms string) error {
	o := image.Options{Root: ".", Version: version, Commit: commit, Log: os.Stderr}
	if platforms != "" {
		ps, err := release.ParsePlatforms(platforms)
		if err != nil {
			return err
		}
		o.Platforms = ps
	}
	// File and creation times are the commit's, so that a rebuild of one
	// commit gives the same digest.
	t, err := release.CommitTime(commit)
	if err != nil {
		return err
	}
	o.Time = t
	res, err := image.Build(ctx, o)
	if err != nil {
		return err
	}
	if err := res.WriteLayout(filepath.Join(out, "image"), filepath.Join(out, "sbom"), version); err != nil {
		return err
	}
	digest, err := res.Index.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s  %s (OCI layout)\n", digest, filepath.Join(out, "image"))
	for _, pi := range res.Images {
		d, err := pi.Image.Digest()
		if err != nil {
			return err
		}
		fmt.Printf("%s  %s, %d Debian packages, SBOM %s\n", d, pi.Platform, len(pi.Packages), filepath.Join(out, "sbom", image.SBOMName(version, pi.Platform)))
	}
	if push != "" {
		d, err := res.Push(ctx, push)
		if err != nil {
			return err
		}
		fmt.Printf("pushed %s@%s\n", push, d)
	}
	return nil
}
