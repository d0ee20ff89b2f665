package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// globalOptions are the flags every command shares.
type globalOptions struct {
	account  accountOptions
	resolved *settings // the merged settings, once loaded
	json     bool
	quiet    bool
	verbose  bool

	stdin          io.Reader
	stdout, stderr io.Writer
	colour         palette // for stderr
}

func (g *globalOptions) logf(format string, args ...any) {
	if g.verbose {
		fmt.Fprintf(g.stderr, "xfer: "+format+"\n", args...)
	}
}

// emitJSON prints one JSON document on stdout.
func (g *globalOptions) emitJSON(v any) error {
	enc := json.NewEncoder(g.stdout)
	return enc.Encode(v)
}

func newRootCmd(g *globalOptions) *cobra.Command {
	root := &cobra.Command{
		Use:   "xfer",
		Short: "Send and receive files over XMPP",
		Long: `xfer sends and receives files over XMPP from a terminal or a script.

It negotiates each transfer with Stream Initiation (XEP-0095, XEP-0096) and
moves the bytes over SOCKS5 bytestreams (XEP-0065, direct or through the
server's proxy) or, as a last resort, in-band bytestreams (XEP-0047).

The account comes from --jid (or XFER_JID), or from an account of the
configuration file ($XDG_CONFIG_HOME/xfer/config.toml, or --config FILE)
chosen with --account NAME (or XFER_ACCOUNT) or its default_account. Flags
win over environment variables, which win over the file. The password
comes from --password-file, --password-cmd, XFER_PASSWORD, the file's
password_file, password_cmd or password, or a prompt when stdin is a
terminal. "xfer config show" prints what applies and where it came from.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(g.stdin)
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	g.account.register(pf)
	pf.BoolVar(&g.json, "json", false, "machine-readable output: JSON on stdout")
	pf.BoolVarP(&g.quiet, "quiet", "q", false, "no progress bar or informational messages")
	pf.BoolVarP(&g.verbose, "verbose", "v", false, "log what happens to stderr")

	root.AddCommand(newProbeProxyCmd(g), newVersionCmd(g), newSendCmd(g), newReceiveCmd(g),
		newConfigCmd(g), newGenManCmd())
	registerCompletions(root, g)
	return root
}

// Main runs xfer with args and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) ExitCode {
	g := &globalOptions{stdin: stdin, stdout: stdout, stderr: stderr, colour: newPalette(stderr)}
	root := newRootCmd(g)
	root.SetArgs(args)

	// The first Ctrl-C cancels cleanly; a second one exits at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		if _, ok := <-sigs; !ok {
			return
		}
		fmt.Fprintln(stderr, "xfer: interrupted, cleaning up (Ctrl-C again to quit at once)")
		cancel()
		if _, ok := <-sigs; ok {
			os.Exit(int(ExitInterrupted))
		}
	}()

	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := exitCodeFor(err)
	var silent silentError
	if !errors.As(err, &silent) {
		if g.json {
			_ = g.emitJSON(map[string]any{"type": "error", "error": err.Error(), "exit_code": int(code)})
		}
		fmt.Fprintf(stderr, "%s %v\n", g.colour.red("xfer: error:"), err)
	}
	return code
}

// silentError carries an exit code for an outcome already reported.
type silentError struct{ error }

func (e silentError) Unwrap() error { return e.error }
