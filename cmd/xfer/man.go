package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newGenManCmd is the hidden command behind "make man": one man page per
// command, generated from the command tree, so they cannot drift from
// --help.
func newGenManCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "gen-man DIR",
		Short:  "Write the man pages into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true // no date stamp: the same tree gives the same pages
			header := &doc.GenManHeader{Title: "XFER", Section: "1", Source: "xfer " + version, Manual: "xfer manual"}
			if err := doc.GenManTree(root, header, dir); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "man pages written to %s\n", dir)
			return nil
		},
	}
}

// registerCompletions adds shell completion for the values of the global
// flags: account names from the configuration file, TOML and PEM files.
// The "completion" command itself is cobra's.
func registerCompletions(root *cobra.Command, g *globalOptions) {
	_ = root.RegisterFlagCompletionFunc("account", func(_ *cobra.Command, _ []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		st, err := g.settings()
		if err != nil {
			// The account itself may be what is wrong: complete from the file alone.
			acct := g.account
			acct.flags = nil
			if st, err = resolveSettings(&acct, func(string) string { return "" }); err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
		}
		var names []cobra.Completion
		for _, n := range st.file.Names() {
			if strings.HasPrefix(n, prefix) {
				names = append(names, n)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	})
	_ = root.MarkPersistentFlagFilename("config", "toml")
	_ = root.MarkPersistentFlagFilename("tls-ca", "pem", "crt")
	_ = root.MarkPersistentFlagFilename("password-file")
}
