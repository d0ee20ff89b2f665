package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/spf13/cobra"

	"xfer/internal/testserver"
)

// Every example of the README and of --help runs for real against a
// private Prosody: each line becomes a script in which example.org is the
// test server, alice and bob are two accounts of the script's own, and the
// other side of a transfer (a receiver for a send example, a sender for a
// receive example) runs beside it.
func TestDocumentedExamplesRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and runs every example")
	}
	lines := documentedExamples(t)
	s, err := testserver.Start(testserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	dir := t.TempDir()
	for i, line := range lines {
		a, b := fmt.Sprintf("exa%d", i), fmt.Sprintf("exb%d", i)
		for _, u := range []string{a, b} {
			if err := s.Register(u, u+"-pw"); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Befriend(a, b); err != nil {
			t.Fatal(err)
		}
		script, ok := exampleScript(line, a, b)
		if !ok {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("example%02d.txtar", i)), []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testscript.Run(t, testscript.Params{
		Dir: dir,
		Setup: func(env *testscript.Env) error {
			env.Setenv("XFER_SERVER", s.Addr)
			env.Setenv("CA", s.CAFile)
			env.Setenv("HOME", env.WorkDir)
			return nil
		},
	})
}

// documentedExamples returns the xfer command lines among the examples of
// --help and the code blocks of the README.
func documentedExamples(t *testing.T) []string {
	root := newRootCmd(&globalOptions{stdin: os.Stdin, stdout: new(bytes.Buffer), stderr: new(bytes.Buffer)})
	var lines []string
	var visit func(c *cobra.Command)
	visit = func(c *cobra.Command) {
		lines = append(lines, strings.Split(c.Example, "\n")...)
		for _, sub := range c.Commands() {
			visit(sub)
		}
	}
	visit(root)
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	in := false
	for _, l := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(l, "```") {
			in = !in
		} else if in {
			lines = append(lines, l)
		}
	}
	var out []string
	for _, l := range lines {
		if _, ok := exampleArgs(l); ok {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

// exampleScript turns one example line into a testscript, with a and b
// standing for alice and bob.
func exampleScript(line, a, b string) (string, bool) {
	line = strings.NewReplacer("/srv/inbox", "srv/inbox", "/tmp/x.txt", "x.txt", "~/", "$HOME/",
		"alice@example.org", a+"@localhost", "bob@example.org", b+"@localhost", "alice@localhost", a+"@localhost",
		"example.org", "localhost", "127.0.0.1:5222", "$XFER_SERVER", "server.pem", "$CA").Replace(line)
	args, ok := exampleArgs(line)
	if !ok || len(args) == 0 {
		return "", false
	}
	var files []string
	var expanded []string
	for _, w := range args {
		if w == "*.jpg" {
			expanded = append(expanded, "a.jpg", "b.jpg")
			continue
		}
		expanded = append(expanded, w)
	}
	args = expanded
	var sb strings.Builder
	pw := func(u string) string { return u + "-pw" }
	connects := map[string]bool{"send": true, "receive": true, "probe-proxy": true}
	cmdName := ""
	for _, w := range args {
		if !strings.HasPrefix(w, "-") {
			cmdName = w
			break
		}
	}
	if connects[cmdName] && !contains(args, "--tls-ca") {
		args = append(args, "--tls-ca", "$CA")
	}
	fmt.Fprintf(&sb, "# %s\n", line)
	switch cmdName {
	case "send":
		pos := positional(args[:len(args)-2]) // without the --tls-ca added above
		to := pos[len(pos)-1]
		files = pos[1 : len(pos)-1]
		recipient, sender := b, a
		if strings.HasPrefix(to, a+"@") {
			recipient, sender = a, b
		}
		full := to
		if !strings.Contains(to, "/") {
			full = to + "/ex-recv"
		}
		fmt.Fprintf(&sb, "mkdir in\nenv XFER_JID=%s XFER_PASSWORD=%s\n", full, pw(recipient))
		fmt.Fprintf(&sb, "exec xfer receive --dir in --accept-all --count %d --tls-ca $CA &recv&\n", len(files))
		fmt.Fprintf(&sb, "env XFER_JID=%s@localhost/ex-send XFER_PASSWORD=%s\n", sender, pw(sender))
		fmt.Fprintf(&sb, "exec xfer %s --wait-online 20s\n", quoteArgs(args))
		if contains(args, "--json") {
			sb.WriteString("stdout '\"type\":\"done\"'\n")
		} else {
			sb.WriteString("stdout '^sent\\t'\n")
		}
		sb.WriteString("wait recv\nstdout '^received\\t'\n")
	case "receive":
		me, other := b, a
		if i := index(args, "--from"); i >= 0 && strings.HasPrefix(args[i+1], b+"@") {
			me, other = a, b
		}
		if i := index(args, "--dir"); i >= 0 && args[i+1] != "." {
			fmt.Fprintf(&sb, "mkdir %s\n", args[i+1])
		}
		fmt.Fprintf(&sb, "env XFER_JID=%s@localhost/ex-recv XFER_PASSWORD=%s\n", me, pw(me))
		if contains(args, "--list-partial") || contains(args, "--remove-partial") {
			fmt.Fprintf(&sb, "exec xfer %s\n", quoteArgs(args))
			break
		}
		fmt.Fprintf(&sb, "exec xfer %s &recv&\n", quoteArgs(args))
		fmt.Fprintf(&sb, "env XFER_JID=%s@localhost/ex-send XFER_PASSWORD=%s\n", other, pw(other))
		fmt.Fprintf(&sb, "exec xfer send --tls-ca $CA --wait-online 20s payload.txt %s@localhost/ex-recv\n", me)
		sb.WriteString("stdout '^sent\\t'\n")
		if !contains(args, "--once") {
			// It runs until interrupted: the first Ctrl-C ends it cleanly.
			sb.WriteString("kill -INT recv\nwait recv\n")
		} else if contains(args, "--json") {
			sb.WriteString("wait recv\nstdout '\"type\":\"done\"'\n")
		} else {
			sb.WriteString("wait recv\nstdout '^received\\t'\n")
		}
		files = append(files, "payload.txt")
	case "probe-proxy":
		fmt.Fprintf(&sb, "env XFER_JID=%s@localhost/ex XFER_PASSWORD=%s\nchmod 600 .xmpp-pw\n", a, pw(a))
		fmt.Fprintf(&sb, "exec xfer %s\nstdout 'proxy.localhost'\n", quoteArgs(args))
		fmt.Fprintf(&sb, "-- .xmpp-pw --\n%s\n", pw(a))
	default:
		fmt.Fprintf(&sb, "exec xfer %s\n", quoteArgs(args))
		sb.WriteString("-- .config/xfer/config.toml --\ndefault_account = \"alice\"\n[accounts.alice]\njid = \"" + a + "@localhost\"\n[accounts.work]\njid = \"" + b + "@localhost\"\n")
		sb.WriteString("-- test.toml --\n[accounts.test]\njid = \"" + a + "@localhost\"\n")
	}
	for _, f := range files {
		fmt.Fprintf(&sb, "-- %s --\nexample content of %s\n", f, f)
	}
	return sb.String(), true
}

func contains(args []string, s string) bool { return index(args, s) >= 0 }

func index(args []string, s string) int {
	for i, a := range args {
		if a == s {
			return i
		}
	}
	return -1
}

// quoteArgs writes args for testscript: single quotes where a word has
// spaces or shell characters, leaving $VAR words to be expanded.
func quoteArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " \"'>|&;") {
			out[i] = "'" + strings.ReplaceAll(a, "'", "''") + "'"
		} else {
			out[i] = a
		}
	}
	return strings.Join(out, " ")
}

// positional returns the words that are not flags or flag values.
func positional(args []string) []string {
	valued := map[string]bool{"--desc": true, "--name": true, "--method": true, "--proxy": true, "--dir": true, "--from": true, "--jid": true, "--server": true, "--tls-ca": true}
	var out []string
	for i := 0; i < len(args); i++ {
		switch {
		case valued[args[i]]:
			i++
		case strings.HasPrefix(args[i], "-"):
		default:
			out = append(out, args[i])
		}
	}
	return out
}
