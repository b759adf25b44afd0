// Command release builds tend's release archives and checksums.txt
// (internal/release): `make release` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/tend-gitops/tend/internal/release"
)

func main() {
	var (
		version   = flag.String("version", "", "version to stamp, e.g. v0.4.0 (required)")
		commit    = flag.String("commit", "", "commit to stamp (required)")
		out       = flag.String("out", "dist", "directory for the archives and checksums.txt")
		platforms = flag.String("platforms", "", "comma-separated os/arch list (default: every released platform)")
	)
	flag.Parse()
	if err := run(*version, *commit, *out, *platforms); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run(version, commit, out, platforms string) error {
	o := release.Options{Root: ".", Out: out, Version: version, Commit: commit, Log: os.Stderr}
	if platforms != "" {
		ps, err := release.ParsePlatforms(platforms)
		if err != nil {
			return err
		}
		o.Platforms = ps
	}
	// The archives' times are the commit's, so that a rebuild of one
	// commit gives the same bytes.
	t, err := release.CommitTime(commit)
	if err != nil {
		return err
	}
	o.Time = t
	arts, err := release.Build(context.Background(), o)
	if err != nil {
		return err
	}
	for _, a := range arts {
		fmt.Printf("%s  %s\n", a.SHA256, a.Path)
	}
	return nil
}
