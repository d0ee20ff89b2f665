package main

import (
	"io"
	"os"

	"golang.org/x/term"
)

// palette colours messages on a terminal only, and never with NO_COLOR
// set (no-color.org) or on a dumb terminal.
type palette struct{ on bool }

func newPalette(w io.Writer) palette {
	f, ok := w.(*os.File)
	return palette{on: ok && term.IsTerminal(int(f.Fd())) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"}
}

func (p palette) paint(code, s string) string {
	if !p.on {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (p palette) red(s string) string    { return p.paint("31", s) }
func (p palette) yellow(s string) string { return p.paint("33", s) }
func (p palette) green(s string) string  { return p.paint("32", s) }
