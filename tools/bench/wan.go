package main

// -wan: the same kinds of rows on emulated wide-area links. Prosody runs in
// a network namespace S, the sender (alice) in A, the receiver (bob) in B,
// each with a TUN device on 10.77.0.0/24 (S .1, A .2, B .3) that
// tools/bench/internal/wanlink feeds from this process: every packet
// crosses its source's and its destination's link, each with its one-way
// delay (half the link's round trip) and loss. S's link is perfect, so a
// client's round trip to the server is its link's, and A to B directly
// crosses both links (twice the round trip, the loss twice), as two
// machines behind their own access links do. User space, because this
// kernel has no netem qdisc.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"xfer/internal/ibb"
	"xfer/internal/session"
	"xfer/internal/testserver"
	"xfer/internal/units"
	"xfer/tools/bench/internal/wanlink"
)

// xfer's IBB (internal/ibb): blocks that fill Prosody's 8 KiB reads (about
// 5.9 KB for the bench's JIDs and a session id: ibb.Options.AlignRecords),
// a window that adapts up to 1 MiB in flight by default, and the fixed
// window of 16 chunks xfer had before (--ibb-window 16), a row of its own:
// the window bound of an IBB row is what it may have in flight per round
// trip.
const (
	ibbWindow      = 16
	ibbMaxInFlight = 1 << 20
)

var ibbBlock = ibb.FillBlockSize("bob@localhost/bench", session.NewID())

// nsPrefix names the bench's namespaces: nsPrefix + PID + "-S" and so on.
const nsPrefix = "xfer-bench-"

// wanConfig is -wan's set of links, one table section each.
type wanConfig struct {
	rtts    []time.Duration
	losses  []float64 // fractions
	rate    int64     // bytes/s per direction, 0: none
	seconds float64   // the time each transfer aims for
}

// wanLink is one setting of both clients' links.
type wanLink struct {
	rtt  time.Duration // each client's round trip to the server
	loss float64       // per link crossed, a fraction
	rate int64
}

func (l wanLink) String() string {
	s := fmt.Sprintf("RTT %v, loss %s %%", l.rtt, strconv.FormatFloat(100*l.loss, 'f', -1, 64))
	if l.rate > 0 {
		s += fmt.Sprintf(", %s/s", human(l.rate))
	}
	return s
}

func parseWAN(rtts, losses, rate string, seconds float64) (*wanConfig, error) {
	w := &wanConfig{seconds: seconds}
	if seconds <= 0 {
		return nil, errors.New("-wan-seconds must be positive")
	}
	for _, f := range strings.Split(rtts, ",") {
		f = strings.TrimSpace(f)
		if f == "0" {
			f = "0s"
		}
		d, err := time.ParseDuration(f)
		if err != nil || d < 0 || d > 2*time.Second {
			return nil, fmt.Errorf("-wan-rtt %q: want durations from 0 to 2s, e.g. 0,20ms,80ms", f)
		}
		w.rtts = append(w.rtts, d)
	}
	for _, f := range strings.Split(losses, ",") {
		p, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || p < 0 || p >= 50 {
			return nil, fmt.Errorf("-wan-loss %q: want percentages from 0 to 50, e.g. 0,0.5", f)
		}
		w.losses = append(w.losses, p/100)
	}
	if rate != "0" && rate != "" {
		n, err := units.ParseSize(rate)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-wan-rate %q: want bytes per second, e.g. 10MB, or 0", rate)
		}
		w.rate = n
	}
	return w, nil
}

// wanNet is the emulated network: Prosody's namespace S, the sender's A,
// the receiver's B.
type wanNet struct {
	net     *wanlink.Net
	s, a, b *wanlink.Node
}

func startWAN() (*wanNet, error) {
	wanlink.RemoveStale(nsPrefix)
	n, err := wanlink.New(nsPrefix+strconv.Itoa(os.Getpid()), "10.77.0", "S", "A", "B")
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "bench: emulated network: Prosody in %s (%s), sender in %s (%s), receiver in %s (%s)\n",
		n.Nodes[0].NS, n.Nodes[0].IP, n.Nodes[1].NS, n.Nodes[1].IP, n.Nodes[2].NS, n.Nodes[2].IP)
	return &wanNet{net: n, s: n.Node("S"), a: n.Node("A"), b: n.Node("B")}, nil
}

func (w *wanNet) close() {
	if err := w.net.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
	}
}

// server is the Prosody of the -wan rows: in S, on S's address, with
// HTTP File Upload.
func (w *wanNet) server() testserver.Options {
	return testserver.Options{Netns: w.s.NS, Host: w.s.IP.String(), HTTPUpload: true}
}

// use sets both clients' links to l and returns where the ends run.
func (w *wanNet) use(l wanLink) hosts {
	link := wanlink.Link{Delay: l.rtt / 2, Loss: l.loss, Rate: l.rate}
	w.a.SetLink(link)
	w.b.SetLink(link)
	return hosts{send: w.a, recv: w.b}
}

// stats returns the packets forwarded and lost (by the emulated loss or a
// full queue) so far.
func (w *wanNet) stats() (sent, lost uint64) {
	lost = w.net.Dropped.Load() + w.net.QueueDrops.Load()
	return w.net.Forwarded.Load() + lost, lost
}

// hosts says where a row's two ends run: in this process's namespace (the
// zero value: loopback) or in the -wan namespaces.
type hosts struct{ send, recv *wanlink.Node }

// command is exec.CommandContext, in the sender's or the receiver's
// namespace.
func (h hosts) command(ctx context.Context, recv bool, name string, args ...string) *exec.Cmd {
	nd := h.send
	if recv {
		nd = h.recv
	}
	if nd == nil {
		return exec.CommandContext(ctx, name, args...)
	}
	return nd.Command(ctx, name, args...)
}

// recvHost is the address a raw receiver listens on.
func (h hosts) recvHost() string {
	if h.recv == nil {
		return "127.0.0.1"
	}
	return h.recv.IP.String()
}

// Ways across the emulated network, for sizing the files.
const (
	wayDirect   = iota // A to B: both links, twice the round trip
	wayRelay           // A to S to B: two TCP connections of one link each
	wayIBB             // A to S to B, acknowledged back: a window per two round trips
	wayIBBFixed        // the same with the fixed window of 16 chunks
	wayUpload          // A to S, then S to B
)

// wanSize is the file size for a row on link l that takes about secs
// seconds by a rough model: a ceiling for this 2-core machine (the
// emulator, Prosody's Lua), the window bound for IBB, and a bound for TCP
// under loss of the Mathis form, MSS / RTT × C / √p, with C = 5 rather
// than Mathis's 1.22 (Linux's CUBIC with SACK did 4 to 13 times better
// than 1.22 here). Powers of two from 256 KiB to 64 MiB; HTTP upload at
// most the service's limit.
func wanSize(way int, l wanLink, secs float64) int64 {
	rtt := l.rtt.Seconds()
	est := map[int]float64{wayDirect: 60e6, wayRelay: 25e6, wayIBB: 4e6, wayIBBFixed: 4e6, wayUpload: 20e6}[way]
	hopRTT, hopLoss := rtt, l.loss
	if way == wayDirect {
		hopRTT, hopLoss = 2*rtt, 1-(1-l.loss)*(1-l.loss)
	}
	if way == wayIBB && rtt > 0 {
		est = min(est, ibbMaxInFlight/(2*rtt))
	}
	if way == wayIBBFixed && rtt > 0 {
		est = min(est, float64(ibbWindow*ibbBlock)/(2*rtt))
	}
	if hopLoss > 0 && hopRTT > 0 {
		est = min(est, 1448/hopRTT*5/math.Sqrt(hopLoss))
	}
	if l.rate > 0 {
		est = min(est, float64(l.rate))
	}
	want := int64(est * secs)
	size := int64(256 << 10)
	for size*2 <= want && size < 64<<20 {
		size *= 2
	}
	if way == wayUpload {
		size = min(size, testserver.UploadSizeLimit)
	}
	return size
}

// wanRows lists the -wan rows: for every link setting, raw TCP and a raw
// SOCKS5 relay next to xfer's ways over the same links.
func wanRows(cfg config, srv testserver.Options) []*row {
	var rows []*row
	for _, rtt := range cfg.wan.rtts {
		for _, loss := range cfg.wan.losses {
			l := &wanLink{rtt: rtt, loss: loss, rate: cfg.wan.rate}
			size := func(way int) int64 { return wanSize(way, *l, cfg.wan.seconds) }
			raw := &row{method: "raw TCP", settings: "sender to receiver directly, 64 KiB read/write", kind: kindTCP, size: size(wayDirect), link: l}
			relay := &row{method: "raw SOCKS5 relay", settings: "through proxy65, 64 KiB read/write", kind: kindRelay, server: srv, size: size(wayRelay), link: l}
			direct := &row{method: "xfer s5b", settings: "direct", base: raw, server: srv, size: raw.size, link: l,
				args: []string{"--method", "s5b"}, want: want{"s5b", "direct"}}
			proxy := &row{method: "xfer s5b", settings: "proxy65 (--no-direct)", base: relay, server: srv, size: relay.size, link: l,
				args: []string{"--method", "s5b", "--no-direct"}, want: want{"s5b", "proxy"}}
			// Jingle (what --method auto picks between xfer peers) over
			// the same ways, against the same yardsticks.
			jdirect := &row{method: "xfer jingle-s5b", settings: "direct", base: raw, server: srv, size: raw.size, link: l,
				args: []string{"--method", "jingle-s5b"}, want: want{"jingle-s5b", "direct"}}
			jproxy := &row{method: "xfer jingle-s5b", settings: "proxy65 (--no-direct)", base: relay, server: srv, size: relay.size, link: l,
				args: []string{"--method", "jingle-s5b", "--no-direct"}, want: want{"jingle-s5b", "proxy"}}
			bound, bound16 := 0.0, 0.0
			if rtt > 0 {
				bound = ibbMaxInFlight / (2 * rtt.Seconds())
				bound16 = float64(ibbWindow*ibbBlock) / (2 * rtt.Seconds())
			}
			ibb16 := &row{method: "xfer ibb", settings: "fixed window 16 (--ibb-window 16)", server: srv, size: size(wayIBBFixed), link: l, bound: bound16,
				args: []string{"--method", "ibb", "--ibb-window", "16"}, want: want{"ibb", ""}}
			ibb := &row{method: "xfer ibb", settings: "defaults", base: ibb16, server: srv, size: size(wayIBB), link: l, bound: bound,
				args: []string{"--method", "ibb"}, want: want{"ibb", ""}}
			jibb := &row{method: "xfer jingle-ibb", settings: "defaults", base: ibb, server: srv, size: ibb.size, link: l, bound: bound,
				args: []string{"--method", "jingle-ibb"}, want: want{"jingle-ibb", ""}}
			rows = append(rows, raw, relay, direct, proxy, jdirect, jproxy, ibb16, ibb, jibb)
			for _, v := range cfg.compare {
				rows = append(rows, ibbPair(v, ibb, jibb)...)
			}
			// Where Prosody's Nagle (on, as Debian ships it) costs IBB
			// its window: the same row against a Prosody with TCP_NODELAY.
			noNagle := srv
			noNagle.NoNagle, noNagle.HTTPUpload = true, false
			rows = append(rows, &row{method: "xfer ibb", settings: "defaults, Prosody TCP_NODELAY", base: ibb, server: noNagle,
				size: ibb.size, link: l, bound: bound, args: []string{"--method", "ibb"}, want: want{"ibb", ""}})
			// The fixed window against its bound without the server's
			// Nagle: what the Nagle costs it (no base: vs its bound).
			rows = append(rows, &row{method: "xfer ibb", settings: "fixed window 16, Prosody TCP_NODELAY", server: noNagle,
				size: ibb16.size, link: l, bound: bound16, args: ibb16.args, want: want{"ibb", ""}})
			rows = append(rows, &row{method: "xfer upload", settings: "HTTP File Upload (upload, link, download)", server: srv,
				size: size(wayUpload), link: l, args: []string{"--method", "upload"}, want: want{"upload", "upload.localhost"}})
		}
	}
	return filterRows(rows, cfg.filter)
}

// printWAN prints the -wan table: one section per link setting.
func printWAN(w io.Writer, cfg config, rows []*row) {
	fmt.Fprintf(w, "\nxfer bench -wan: %d run(s), median shown; %s\n", cfg.runs, machine())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RTT\tloss\tmethod\tsettings\tfile\tseconds\tMB/s\t2nd half MB/s\tspeed vs\tIBB bound MB/s\tto 1st byte s\tlogin to 1st byte ms\tsender CPU s\treceiver CPU s\tProsody CPU s\temulator CPU s\tpackets lost")
	for _, r := range rows {
		if len(r.results) == 0 {
			continue
		}
		m := median(r.results)
		ratio := "-"
		// Rows of one method (the adaptive window over the fixed one)
		// compare by MB/s although their files differ (sized to take
		// about as long).
		if r.base != nil && (r.base.size == r.size || strings.HasPrefix(r.method, r.base.method)) && len(r.base.results) > 0 {
			if b := rate(median(r.base.results)); b > 0 {
				ratio = ratioFmt(rate(m)/b) + " " + r.base.short()
			}
		}
		bound := "-"
		if r.bound > 0 {
			bound = fmt.Sprintf("%.2f", r.bound/1e6)
			if ratio == "-" {
				ratio = ratioFmt(rate(m)/r.bound) + " bound"
			}
		}
		lost := "-"
		if m.emuSent > 0 {
			lost = fmt.Sprintf("%.2f %%", 100*float64(m.emuLost)/float64(m.emuSent))
		}
		steady := "-"
		if v := medianOf(r.results, steadyOf); v > 0 {
			steady = fmt.Sprintf("%.2f", v/1e6)
		}
		fmt.Fprintf(tw, "%v\t%s %%\t%s\t%s\t%s\t%.3f\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%s\n",
			r.link.rtt, strconv.FormatFloat(100*r.link.loss, 'f', -1, 64), r.method, r.settings, human(r.size),
			m.seconds, rate(m)/1e6, steady, ratio, bound, secs3(medianOf(r.results, firstSecs)), millis(medianOf(r.results, loginSecs)),
			secs(m.sendCPU), secs(m.recvCPU), secs(m.serverCPU), m.emuCPU, lost)
	}
	tw.Flush()
	fmt.Fprintln(w, "RTT: each client's round trip to the server (sender and receiver on links of their own; directly, sender to receiver crosses both: twice the RTT). loss: per link crossed, each way. Emulated in user space (tools/bench/internal/wanlink: TUN devices in network namespaces, MTU 1500).")
	fmt.Fprintln(w, "seconds: as the sender sees it (xfer: its done event, bytestream negotiation to close; raw: connect to close, the SOCKS5 relay's with the target's connect before it); xfer upload: the sender's offer to the receiver's file in place (slot, PUT, link, GET). to 1st byte s: the send process's start (login included) to its first progress event. 2nd half MB/s: the receiver's, from its progress event at half the file to its last (xfer rows of a second or more): the rate once started, without negotiation, ramp and close.")
	fmt.Fprintf(w, "IBB bound: what may be in flight / round trip: %d KiB (the adaptive window's ceiling; the fixed window row: %d × %d B) / (2 × RTT): each chunk's acknowledgement comes back from the receiver through the server. speed vs: over the named row's MB/s, or over the IBB bound when the row has no base.\n", ibbMaxInFlight>>10, ibbWindow, ibbBlock)
	fmt.Fprintln(w, "packets lost: the emulator's drops over the packets it saw during the row. CPU s: user+system; emulator CPU s is the bench process's own (it forwards every packet). The machine is shared: compare the ratios within this run.")
}

// printCompare prints each -compare build's IBB rows next to this tree's:
// MB/s and the receiver's CPU seconds per MiB, and their ratios.
func printCompare(w io.Writer, rows []*row) {
	header := false
	var tw *tabwriter.Writer
	for _, r := range rows {
		t := r.twin
		if t == nil || len(r.results) == 0 || len(t.results) == 0 {
			continue
		}
		if !header {
			fmt.Fprintf(w, "\n-compare: IBB rows, this tree (%s) and each other build, same run, medians:\n", "bin/xfer")
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "link\tmethod\tbuild\tMB/s this tree\tMB/s build\tbuild / this\treceiver CPU s/MiB this tree\tbuild\tbuild / this")
			header = true
		}
		where := "loopback"
		if r.link != nil {
			where = r.link.String()
		}
		tr, rr := rate(median(t.results)), rate(median(r.results))
		tc, rc := medianOf(t.results, recvCPUPerMiB), medianOf(r.results, recvCPUPerMiB)
		cpuRatio := "-"
		if tc > 0 && rc > 0 {
			cpuRatio = ratioFmt(rc / tc)
		}
		name := strings.TrimPrefix(r.method, t.method+" ")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%.2f\t%s\t%.3f\t%.3f\t%s\n", where, t.method, name, tr/1e6, rr/1e6, ratioFmt(rr/tr), tc, rc, cpuRatio)
	}
	if header {
		tw.Flush()
		fmt.Fprintln(w, "build / this: above 1× the other build moves more MB/s; below 1× its receiver spends less CPU per MiB (its whole process, login included: cleanest on large files). One run's ratios swing on a shared machine (the same code against itself: 0.66–1.25×): -runs 5 (interleaved, every other run backwards) for medians.")
	}
}

// recvCPUPerMiB is the receiver's CPU seconds per MiB moved, or 0.
func recvCPUPerMiB(r result) float64 {
	if r.recvCPU < 0 || r.bytes <= 0 {
		return 0
	}
	return r.recvCPU / (float64(r.bytes) / (1 << 20))
}
