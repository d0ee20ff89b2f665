package main

import (
	"bytes"
	"testing"
)

// Output that is not a terminal never gets colour codes.
func TestNoColourOffTerminal(t *testing.T) {
	var b bytes.Buffer
	p := newPalette(&b)
	if p.on || p.red("x") != "x" {
		t.Fatal("colour on a buffer")
	}
	t.Setenv("NO_COLOR", "1")
	if newPalette(nil).on {
		t.Fatal("colour with NO_COLOR")
	}
	if got := (palette{on: true}).red("x"); got != "\x1b[31mx\x1b[0m" {
		t.Fatalf("%q", got)
	}
}
