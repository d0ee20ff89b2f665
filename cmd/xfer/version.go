package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func newVersionCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and the module versions it was built with",
		Example: `  xfer version
  xfer version --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info, ok := debug.ReadBuildInfo()
			deps := map[string]string{}
			goVersion := ""
			if ok {
				goVersion = info.GoVersion
				for _, d := range info.Deps {
					deps[d.Path] = d.Version
				}
			}
			if g.json {
				return g.emitJSON(map[string]any{"type": "version", "version": version, "go": goVersion, "modules": deps})
			}
			fmt.Fprintf(g.stdout, "xfer %s (%s)\n", version, goVersion)
			for _, p := range []string{"gosrc.io/xmpp", "github.com/spf13/cobra", "github.com/schollz/progressbar/v3"} {
				if v, ok := deps[p]; ok {
					fmt.Fprintf(g.stdout, "  %s %s\n", p, v)
				}
			}
			return nil
		},
	}
}
