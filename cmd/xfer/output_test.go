package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
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
