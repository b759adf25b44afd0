package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// annotationExit1 on a command says when it exits 1; docs/cli.md shows it.
const annotationExit1 = "tend.dev/exit-1"

func (m *Main) docsCommand() *cobra.Command {
	docs := &cobra.Command{
		Use:    "docs",
		Short:  "Generate documentation",
		Hidden: true,
		Args:   cobra.NoArgs,
	}
	docs.AddCommand(&cobra.Command{
		Use:   "cli",
		Short: "Print docs/cli.md, the command reference, generated from the commands",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return writeCLIDocs(m.Stdout, cmd.Root())
		},
	})
	return docs
}

// writeCLIDocs writes the markdown reference of every visible command.
func writeCLIDocs(w io.Writer, root *cobra.Command) error {
	var b strings.Builder
	b.WriteString("# tend command reference\n\n")
	b.WriteString("<!-- Generated from the commands by `tend docs cli`; do not edit. Regenerate with\n     go run ./cmd/tend docs cli > docs/cli.md -->\n\n")
	b.WriteString(root.Long + "\n\n")
	b.WriteString("## Exit codes\n\n")
	b.WriteString("| code | meaning |\n|---|---|\n")
	fmt.Fprintf(&b, "| %d | success |\n", ExitOK)
	fmt.Fprintf(&b, "| %d | differences found (`tend diff`), a sync failed (`tend sync`), or something is not healthy (`tend status`, `tend sync`) |\n", ExitDiff)
	fmt.Fprintf(&b, "| %d | usage or input error (an unknown command, flag or App; a manifest that does not render), or the command could not run (the cluster cannot be reached) |\n\n", ExitUsage)
	b.WriteString("Unknown commands, flags and App names are answered with the closest match (\"App 'webb' not found; did you mean 'web'?\").\n")
	b.WriteString("Output is coloured only on a terminal, and never when `NO_COLOR` is set.\n\n")
	b.WriteString("## Commands\n\n")
	cmds := visible(root)
	for _, c := range cmds {
		fmt.Fprintf(&b, "- [`%s`](#%s): %s\n", c.CommandPath(), strings.ReplaceAll(c.CommandPath(), " ", "-"), c.Short)
	}
	for _, c := range cmds {
		writeCommandDoc(&b, c)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// visible returns the commands below c users see, depth first.
func visible(c *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	for _, sub := range c.Commands() {
		if sub.Hidden || sub.Name() == "help" || !sub.IsAvailableCommand() && !sub.HasAvailableSubCommands() {
			continue
		}
		if sub.Runnable() {
			out = append(out, sub)
		}
		out = append(out, visible(sub)...)
	}
	return out
}

func writeCommandDoc(b *strings.Builder, c *cobra.Command) {
	fmt.Fprintf(b, "\n## %s\n\n", c.CommandPath())
	fmt.Fprintf(b, "%s\n\n", c.Short)
	use := c.UseLine()
	fmt.Fprintf(b, "```\n%s\n```\n\n", use)
	if c.Long != "" {
		fmt.Fprintf(b, "%s\n\n", c.Long)
	}
	if c.Example != "" {
		fmt.Fprintf(b, "### Examples\n\n```\n%s\n```\n\n", strings.TrimRight(c.Example, "\n"))
	}
	flags := pflag.NewFlagSet(c.Name(), pflag.ContinueOnError)
	c.NonInheritedFlags().VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" && !f.Hidden {
			flags.AddFlag(f)
		}
	})
	if flags.HasFlags() {
		fmt.Fprintf(b, "### Flags\n\n```\n%s```\n\n", flags.FlagUsages())
	}
	if e := c.Annotations[annotationExit1]; e != "" {
		fmt.Fprintf(b, "Exit codes: %d success, %d %s, %d usage or input error.\n\n", ExitOK, ExitDiff, e, ExitUsage)
	}
	s := b.String()
	b.Reset()
	b.WriteString(strings.TrimRight(s, "\n") + "\n")
}
