// Command encrypt does what `sops --encrypt --in-place FILE...` does for
// this example, without the sops CLI: it encrypts each file in place for
// the age recipients of the first creation rule in .sops.yaml whose
// path_regex matches it. With -d it prints one file decrypted, as
// `sops --decrypt FILE` does, with the age key file in $SOPS_AGE_KEY_FILE.
//
//	go run ./examples/flux-style-sops/hack/encrypt apps/x/secret.sops.yaml
//	SOPS_AGE_KEY_FILE=examples/flux-style-sops/demo.agekey \
//	  go run ./examples/flux-style-sops/hack/encrypt -d apps/x/secret.sops.yaml
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tend-gitops/tend/examples/flux-style-sops/hack/sopsfile"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "encrypt:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("encrypt", flag.ContinueOnError)
	decrypt := fs.Bool("d", false, "print FILE decrypted with the age key file in $SOPS_AGE_KEY_FILE")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("usage: encrypt FILE... (encrypts in place) | encrypt -d FILE")
	}
	if *decrypt {
		keys, err := os.ReadFile(os.Getenv("SOPS_AGE_KEY_FILE"))
		if err != nil {
			return fmt.Errorf("read the age key file named by SOPS_AGE_KEY_FILE: %w", err)
		}
		enc, err := os.ReadFile(fs.Arg(0))
		if err != nil {
			return err
		}
		plain, err := sopsfile.Decrypt(fs.Arg(0), enc, keys)
		if err != nil {
			return err
		}
		_, err = out.Write(plain)
		return err
	}
	for _, path := range fs.Args() {
		plain, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		enc, err := sopsfile.Encrypt(path, plain)
		if err != nil {
			return err
		}
		if err := os.WriteFile(path, enc, 0o644); err != nil {
			return err
		}
	}
	return nil
}
