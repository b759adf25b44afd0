package cli

import (
	"github.com/spf13/cobra"
)

func (m *Main) completionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script",
		Long: `Print the completion script for bash, zsh or fish. It completes commands,
flags, and App names from the cluster.`,
		Example: `  # bash (needs the bash-completion package)
  tend completion bash > /etc/bash_completion.d/tend
  # zsh
  tend completion zsh > "${fpath[1]}/_tend"
  # fish
  tend completion fish > ~/.config/fish/completions/tend.fish`,
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		ValidArgs: []string{"bash", "zsh", "fish"},
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(m.Stdout, true)
			case "zsh":
				return root.GenZshCompletion(m.Stdout)
			default:
				return root.GenFishCompletion(m.Stdout, true)
			}
		},
	}
}
