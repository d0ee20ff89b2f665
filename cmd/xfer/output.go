package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"xfer/internal/hook"
	"xfer/internal/transfer"
	"xfer/internal/units"
)

// output turns transfer events into what the user sees: a progress bar per
// file on a terminal's stderr, one summary line per file on stdout, or one
// JSON object per event with --json.
type output struct {
	g         *globalOptions
	direction string // "send" or "receive", for progress events
	mu        sync.Mutex
	terminal  bool
	bars      bool
	reported  map[string]bool // errors already printed as JSON events
}

func newOutput(g *globalOptions, direction string) *output {
	f, ok := g.stderr.(*os.File)
	terminal := ok && term.IsTerminal(int(f.Fd()))
	return &output{g: g, direction: direction, terminal: terminal, bars: terminal && !g.quiet && os.Getenv("TERM") != "dumb", reported: map[string]bool{}}
}

// noBars turns progress bars off (several files at once).
func (o *output) noBars() { o.bars = false }

func (o *output) observer() *transfer.Observer {
	obs := &transfer.Observer{Event: o.event}
	switch {
	case o.g.json:
		obs.Meter = o.jsonMeter
	default:
		obs.Meter = func(name string, size, offset int64) transfer.Meter {
			if !o.bars {
				return nopMeter{}
			}
			return o.barMeter(name, size, offset)
		}
	}
	return obs
}

func (o *output) event(e transfer.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if e.Type == "disconnected" {
		// A service's log must show every loss, whatever the mode.
		fmt.Fprintf(o.g.stderr, "%s %s; logging in again in %.1fs\n", o.g.colour.yellow("xfer: connection lost:"), e.Error, e.Seconds)
	}
	if o.g.json {
		if e.Type == "error" && e.Err != nil {
			// The one error event of a file: with its exit code, and
			// failed does not print it again.
			e.ExitCode = int(exitCodeFor(e.Err))
			o.reported[e.Err.Error()] = true
		}
		_ = o.g.emitJSON(e)
		return
	}
	switch e.Type {
	case "refused":
		fmt.Fprintf(o.g.stderr, "%s %q from %s: %s\n", o.g.colour.yellow("xfer: refused"), e.File, e.Peer, e.Error)
	case "accepted":
		if e.Offset > 0 && !o.g.quiet {
			fmt.Fprintf(o.g.stderr, "xfer: %s: resumed at %d bytes (%s of %s already there)\n", e.File, e.Offset, units.Human(e.Offset), units.Human(e.Size))
		}
	case "reconnected":
		if !o.g.quiet {
			fmt.Fprintf(o.g.stderr, "xfer: reconnected as %s\n", e.Peer)
		}
	case "fallback":
		if !o.g.quiet {
			fmt.Fprintf(o.g.stderr, "xfer: %s: %s\n", e.File, e.Error)
		}
	case "throttled":
		if !o.g.quiet {
			fmt.Fprintf(o.g.stderr, "%s %s: %s\n", o.g.colour.yellow("xfer: slow:"), e.File, e.Error)
		}
	case "offer":
		if e.Direction == "send" && o.g.verbose && generation[e.Method] != "" {
			// Which generation auto chose, for a user wondering why.
			fmt.Fprintf(o.g.stderr, "xfer: offering %q to %s with %s\n", e.File, e.Peer, generation[e.Method])
		} else if e.Direction == "receive" && !o.g.quiet && e.Method == "oob" {
			fmt.Fprintf(o.g.stderr, "xfer: %s offers %s\n", e.Peer, e.URL)
		} else if e.Direction == "receive" && !o.g.quiet {
			fmt.Fprintf(o.g.stderr, "xfer: %s offers %q (%s)\n", e.Peer, e.File, units.Human(e.Size))
		}
	}
}

// generation names the protocol of an offer event's method.
var generation = map[string]string{"jingle": "Jingle file transfer (XEP-0234)", "si": "SI file transfer (XEP-0096)"}

func (o *output) info(format string, args ...any) {
	if !o.g.quiet && !o.g.json {
		fmt.Fprintf(o.g.stderr, "xfer: "+format+"\n", args...)
	}
}

func (o *output) sent(r *transfer.Result) {
	if o.g.json {
		return // the done event said it
	}
	fmt.Fprintf(o.g.stdout, "sent\t%s\t%s\t%s\t%s\tto %s\n", r.Name, units.Human(r.Size), rateOf(r.Size-r.Offset, r.Elapsed), method(r), r.Peer)
}

func (o *output) received(r *transfer.Result) {
	if o.g.json {
		return
	}
	note := ""
	if r.Renamed {
		note = " (renamed: the name was taken)"
	}
	fmt.Fprintf(o.g.stdout, "received\t%s\t%s\t%s\t%s\t%s%s\n", r.Name, units.Human(r.Size), rateOf(r.Size-r.Offset, r.Elapsed), method(r), r.Path, note)
}

// method names the bytestream for the summary: "ibb", "s5b direct",
// "s5b proxy JID".
func method(r *transfer.Result) string {
	if r.Via != "" {
		return r.Method + " " + r.Via
	}
	return r.Method
}

func (o *output) failed(name string, err error) {
	if o.g.json {
		o.mu.Lock()
		if !o.reported[err.Error()] {
			_ = o.g.emitJSON(map[string]any{"type": "error", "file": name, "error": err.Error(), "exit_code": int(exitCodeFor(err)), "time": time.Now()})
		}
		o.mu.Unlock()
	}
	// Errors go to stderr in every mode: scripts read stdout, people and
	// logs read stderr.
	fmt.Fprintf(o.g.stderr, "%s %s: %v\n", o.g.colour.red("xfer: error:"), name, err)
}

func rateOf(n int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return units.Human(int64(float64(n)/d.Seconds())) + "/s"
}

func (o *output) barMeter(name string, size, offset int64) transfer.Meter {
	bar := progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(o.g.stderr),
		progressbar.OptionSetDescription(name),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(o.g.stderr) }),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionFullWidth(),
	)
	if offset > 0 {
		_ = bar.Set64(offset)
	}
	return barMeter{bar}
}

type barMeter struct{ bar *progressbar.ProgressBar }

func (b barMeter) Write(p []byte) (int, error) { return b.bar.Write(p) }
func (b barMeter) Finish()                     { _ = b.bar.Close() }

// jsonMeter emits progress events at most four times a second.
func (o *output) jsonMeter(name string, size, offset int64) transfer.Meter {
	return &jsonMeter{o: o, name: name, size: size, done: offset}
}

type jsonMeter struct {
	o    *output
	name string
	size int64
	done int64
	last time.Time
}

func (m *jsonMeter) Write(p []byte) (int, error) {
	m.done += int64(len(p))
	if time.Since(m.last) >= 250*time.Millisecond {
		m.last = time.Now()
		m.o.event(transfer.Event{Type: "progress", Direction: m.o.direction, File: m.name, Size: m.size, Bytes: m.done, Time: m.last})
	}
	return len(p), nil
}

func (m *jsonMeter) Finish() {}

type nopMeter struct{}

func (nopMeter) Write(p []byte) (int, error) { return len(p), nil }
func (nopMeter) Finish()                     {}

// hookRan runs the --exec command for a received file and reports its
// exit status; the command's own output goes to stderr.
func (o *output) hookRan(r *transfer.Result, command string, timeout time.Duration, ctx context.Context) {
	code, err := hook.Run(ctx, command, hook.File{Path: r.Path, Name: r.Name, From: r.Peer, Size: r.Size, MD5: r.Hash, Via: method(r)}, timeout, o.g.stderr)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.g.json {
		ev := map[string]any{"type": "exec", "path": r.Path, "exit_code": code, "time": time.Now()}
		if err != nil {
			ev["error"] = err.Error()
		}
		_ = o.g.emitJSON(ev)
		return
	}
	switch {
	case err != nil:
		fmt.Fprintf(o.g.stderr, "xfer: --exec for %s: %v\n", r.Path, err)
	case code != 0:
		fmt.Fprintf(o.g.stderr, "xfer: --exec for %s exited with status %d\n", r.Path, code)
	}
}
