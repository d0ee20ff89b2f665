package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"xfer/internal/transfer"
)

// With --json a failed file gives one error event, with its exit code,
// whether the transfer reported it or only the command did; progress
// events say their direction.
func TestJSONEvents(t *testing.T) {
	var buf bytes.Buffer
	g := &globalOptions{json: true, stdout: &buf, stderr: io.Discard}
	out := newOutput(g, "receive")
	obs := out.observer()
	fail := fmt.Errorf("transfer: x.bin: %w", transfer.ErrIntegrity)
	obs.Event(transfer.Event{Type: "error", SID: "s1", Direction: "receive", File: "x.bin", Error: fail.Error(), Err: fail})
	out.failed("x.bin", fail)
	other := fmt.Errorf("transfer: y.bin: %w", transfer.ErrRefused)
	out.failed("y.bin", other) // reported by the command alone
	m := obs.Meter("z.bin", 1<<20, 0)
	m.Write(make([]byte, 100))

	var errs []map[string]any
	var progress []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		switch ev["type"] {
		case "error":
			errs = append(errs, ev)
		case "progress":
			progress = append(progress, ev)
		}
	}
	if len(errs) != 2 {
		t.Fatalf("%d error events, want one per failure: %v", len(errs), errs)
	}
	if errs[0]["exit_code"] != float64(ExitTransfer) || errs[0]["sid"] != "s1" || errs[1]["exit_code"] != float64(ExitRefused) {
		t.Fatalf("error events %v", errs)
	}
	if len(progress) != 1 || progress[0]["direction"] != "receive" {
		t.Fatalf("progress events %v", progress)
	}
}

// Every event type internal/transfer emits is in the README's JSON events
// table.
func TestEventsDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	table := string(readme)
	if i := strings.Index(table, "### JSON output"); i >= 0 {
		table = table[i:]
	}
	if i := strings.Index(table, "\n## "); i >= 0 {
		table = table[:i]
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(\\w+)` \\|").FindAllStringSubmatch(table, -1) {
		documented[m[1]] = true
	}
	files, err := filepath.Glob("../../internal/transfer/*.go")
	if err != nil {
		t.Fatal(err)
	}
	emitted := regexp.MustCompile(`\b\w+\.Type(?:, [\w.]+)* = "(\w+)"|\bEvent\{Type: +"(\w+)"`)
	seen := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range emitted.FindAllStringSubmatch(string(src), -1) {
			typ := m[1] + m[2]
			seen++
			if !documented[typ] {
				t.Errorf("%s emits a %q event the README's events table does not list", filepath.Base(f), typ)
			}
		}
	}
	if seen == 0 || !documented["throttled"] {
		t.Fatalf("found %d emitted events; documented %v", seen, documented)
	}
}

// A throttled event is a warning line on stderr, not with --quiet.
func TestThrottledLine(t *testing.T) {
	for _, quiet := range []bool{false, true} {
		var stderr bytes.Buffer
		g := &globalOptions{quiet: quiet, stdout: io.Discard, stderr: &stderr}
		out := newOutput(g, "send")
		out.observer().Event(transfer.Event{Type: "throttled", Direction: "send", File: "x.bin", Method: "ibb", Rate: 20_000, Error: transfer.ThrottledMessage(20_000)})
		want := "xfer: slow: x.bin: the server limits this account to ~20 kB/s; ask its admin for a proxy65 / upload\n"
		if quiet {
			want = ""
		}
		if stderr.String() != want {
			t.Errorf("quiet %v: stderr %q, want %q", quiet, stderr.String(), want)
		}
	}
}
