package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// Every example in --help and in the README names commands and flags that
// exist and passes the command's argument checks, so the docs cannot drift
// from the code. (The CLI scripts in testdata/script run them for real
// against the test server.)
func TestDocumentedExamplesParse(t *testing.T) {
	g := &globalOptions{stdin: os.Stdin, stdout: new(bytes.Buffer), stderr: new(bytes.Buffer)}
	root := newRootCmd(g)
	root.InitDefaultCompletionCmd()
	var visit func(c *cobra.Command)
	visit = func(c *cobra.Command) {
		if c.Runnable() && !c.Hidden && c.Name() != "help" && c.Name() != "completion" && c.Parent() != nil && c.Parent().Name() != "completion" {
			if strings.TrimSpace(c.Example) == "" {
				t.Errorf("%s --help has no example", c.CommandPath())
			}
		}
		for _, sub := range c.Commands() {
			visit(sub)
		}
	}
	visit(root)
	lines := documentedExamples(t)
	checked := 0
	for _, l := range lines {
		args, ok := exampleArgs(l)
		if !ok {
			continue
		}
		checked++
		root := newRootCmd(&globalOptions{stdin: os.Stdin, stdout: new(bytes.Buffer), stderr: new(bytes.Buffer)})
		root.InitDefaultCompletionCmd()
		cmd, rest, err := root.Find(args)
		if err != nil {
			t.Errorf("%q: %v", l, err)
			continue
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Errorf("%q: %v", l, err)
			continue
		}
		if cmd.Args != nil {
			if err := cmd.Args(cmd, cmd.Flags().Args()); err != nil {
				t.Errorf("%q: %v", l, err)
			}
		}
	}
	t.Logf("%d documented examples checked", checked)
	if checked < 10 {
		t.Fatalf("only %d examples found", checked)
	}
}

// exampleArgs turns an example line into xfer's arguments: environment
// assignments and the program name dropped, a trailing comment cut, simple
// shell quoting undone.
func exampleArgs(line string) ([]string, bool) {
	if i := strings.Index(line, " #"); i >= 0 {
		line = line[:i]
	}
	words := shellWords(strings.TrimSpace(line))
	for len(words) > 0 && strings.Contains(words[0], "=") && !strings.HasPrefix(words[0], "-") {
		words = words[1:]
	}
	if len(words) == 0 || (words[0] != "xfer" && words[0] != "bin/xfer") {
		return nil, false
	}
	for i, w := range words {
		if w == ">" || w == "|" || w == ">>" || w == "&&" {
			words = words[:i]
			break
		}
	}
	return words[1:], true
}

func shellWords(s string) []string {
	var out []string
	var cur strings.Builder
	var quote rune
	inWord := false
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}
