// Command bench measures xfer's throughput through a private Prosody next
// to raw copies of the same file that do the same work without XMPP, all in
// the same run, with the peak memory (max RSS) and CPU time of both sides
// and of the server. `make bench` builds bin/xfer and runs it.
//
// It starts a private Prosody (internal/testserver) with the accounts alice
// and bob, who have each other in their rosters, creates random files and,
// -runs times, interleaving the rows so that all of them see the same
// machine load (every other run goes through them backwards, so that
// neither row of a pair always goes first), measures:
//
//   - raw TCP: two child processes of this program (re-executed with
//     XFER_BENCH_ROLE set) copy the -ibb-size file over a 127.0.0.1
//     connection with a plain 64 KiB read/write loop (no sendfile/splice, no
//     TLS, no hashing): the yardstick of the IBB rows;
//   - raw TCP + MD5: the same with the -size file, MD5 on both ends and the
//     received bytes written to a file, which is the work xfer's S5B path
//     does. "hash first": the sender hashes the whole file before it
//     connects, as xfer does (XEP-0096 puts the hash in the offer), so the
//     transfer itself only reads and sends; "hash while sending": the
//     sender hashes as it sends. The receiver always hashes and writes as
//     it receives;
//   - raw SOCKS5 relay: the same two ends (hash first, and hash while
//     sending), connected through the server's proxy65 with
//     xfer/internal/s5b: the target end connects and handshakes, the
//     requester end (logged in as alice) connects, activates the stream
//     with its own full JID as the target (Prosody allows it, as
//     `xfer probe-proxy` does) and sends;
//   - xfer: `bin/xfer receive --once` as bob and `bin/xfer send` as alice,
//     both with --json, each generation of file transfer with a method of
//     its own (--method auto would pick Jingle against xfer receive): SI
//     (XEP-0096) over IBB (--method ibb, -ibb-size file) and over S5B
//     directly and through the proxy (--method s5b, --no-direct; -size
//     file), each followed by its Jingle (XEP-0234) counterpart with the
//     same file (--method jingle-ibb, jingle-s5b), which is compared with
//     it. The throughput is the sender's "done" event (bytestream
//     negotiation to the close, after the offer was accepted; Jingle's
//     sender also waits for the receiver's session-terminate); "saved" is
//     the same span for both, from the sender's "accepted" event to the
//     receiver's "done" (file verified, synced and in place). The wall time
//     of the send process (login, MD5 and SHA-256 of the file, finding bob,
//     offer, transfer) and its time to the first byte are shown next to it.
//
// Both done events must name the row's method ("s5b", "ibb", "jingle-s5b",
// "jingle-ibb") and, for SOCKS5, its way ("direct" or "proxy JID"); the
// receiver's must carry the source's MD5 (SI) or "sha-256:" digest
// (Jingle); and every received file's MD5 is checked against the source.
// Anything else fails the benchmark. With -rss-check, S5B (SI and Jingle)
// is also measured once with a -rss-size (1 GiB) file, for the peak RSS
// target.
//
// Unless -quick is given, xfer's IBB is also measured with a few settings
// (window, block size), against a second Prosody with TCP_NODELAY
// (testserver.Options.NoNagle) and against a third without TLS
// (Options.Plaintext, xfer --no-tls), one row each, and S5B direct (SI and
// Jingle) against the one with TCP_NODELAY: they show where the time goes.
//
// -compare REV builds cmd/xfer at git revision REV (git archive into the
// bench's temporary directory, go build; nothing is added to the
// repository) and measures the IBB rows (SI and Jingle), and the S5B rows,
// with both builds in the same run, each right after this tree's; the
// summary gives both builds' MB/s and receiver CPU seconds per MiB and
// their ratios. -compare NAME=PATH does the same with a binary at hand.
//
// -wan (`make bench-wan`, as root) measures on emulated wide-area links
// instead (wan.go): Prosody (testserver.Options.Netns and Host), the sender
// and the receiver each in a network namespace of its own, the links
// emulated in user space by tools/bench/internal/wanlink (this kernel has
// no netem), for every -wan-rtt and -wan-loss: raw TCP sender to receiver
// and a raw SOCKS5 relay through proxy65 next to xfer's S5B direct and
// through the proxy, SI and Jingle IBB (with their window bound), and
// HTTP upload, files sized to take about -wan-seconds each. Everything it
// creates is removed at the end, on an error or Ctrl-C too.
//
// Machines are shared and noisy: compare the ratios of one run, never the
// absolute numbers of two. Peak RSS comes from wait4's ru_maxrss (KiB on
// Linux) for our children and from VmHWM in /proc for Prosody (its
// high-water mark since it started, so it only grows from row to row).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"xfer/internal/s5b"
	"xfer/internal/session"
	"xfer/internal/testserver"
	"xfer/internal/units"
	"xfer/tools/bench/internal/wanlink"
)

// roleEnv selects a child role when this program re-executes itself.
const roleEnv = "XFER_BENCH_ROLE"

// Environment of the child roles.
const (
	fileEnv  = "XFER_BENCH_FILE"  // the file to send, or to write
	addrEnv  = "XFER_BENCH_ADDR"  // tcp-send: the receiver; relay-*: the proxy's SOCKS5 address
	hashEnv  = "XFER_BENCH_HASH"  // "", "first" or "while" (sender); non-empty: the receiver hashes
	dstEnv   = "XFER_BENCH_DST"   // relay-recv: the SOCKS5 destination (s5b.DstAddr)
	proxyEnv = "XFER_BENCH_PROXY" // relay-send: the proxy's JID
	caEnv    = "XFER_BENCH_CA"    // relay-send: the server's certificate
	hostEnv  = "XFER_BENCH_HOST"  // tcp-recv: the address to listen on (default 127.0.0.1)
)

func main() {
	switch role := os.Getenv(roleEnv); role {
	case "":
	case "tcp-recv", "tcp-send", "relay-recv", "relay-send":
		if err := child(role); err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		return
	default:
		fmt.Fprintf(os.Stderr, "bench: unknown %s=%q\n", roleEnv, role)
		os.Exit(2)
	}

	sizeFlag := flag.String("size", "256MiB", "size of the file of the S5B and raw+MD5 rows (e.g. 256MiB, 512KiB, 1GB)")
	ibbSizeFlag := flag.String("ibb-size", "32MiB", "size of the file of the IBB and plain raw TCP rows (IBB moves 2 to 8 MB/s)")
	rssCheck := flag.Bool("rss-check", false, "also send a -rss-size file with S5B, once, for the peak RSS target")
	rssSizeFlag := flag.String("rss-size", "1GiB", "size of the -rss-check file")
	runs := flag.Int("runs", 1, "measure every row this many times (interleaved); the median is shown")
	xferBin := flag.String("xfer", "bin/xfer", "the xfer binary to measure")
	quick := flag.Bool("quick", false, "no IBB variants: raw rows, xfer IBB and S5B (SI and Jingle) with default settings")
	only := flag.String("rows", "", "only the rows whose \"method, settings\" matches this regular expression (and their baselines)")
	timeout := flag.Duration("timeout", 10*time.Minute, "limit for one transfer")
	var compare []variant
	flag.Func("compare", "`REV or NAME=PATH`: also measure the IBB and S5B rows (with -wan: the IBB rows on every link) with another xfer: built from git revision REV, or the binary at PATH; prints both builds' MB/s and receiver CPU per MiB side by side (repeatable)", func(v string) error {
		name, path, ok := strings.Cut(v, "=")
		if !ok {
			if v == "" || strings.HasPrefix(v, "-") {
				return errors.New("want a git revision or NAME=PATH")
			}
			compare = append(compare, variant{rev: v})
			return nil
		}
		if name == "" || path == "" {
			return errors.New("want NAME=PATH")
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return err
		}
		compare = append(compare, variant{name: name, path: abs})
		return nil
	})
	wan := flag.Bool("wan", false, "measure on emulated WAN links instead of loopback: Prosody, sender and receiver in network namespaces of their own, each client's link with every -wan-rtt and -wan-loss (needs root)")
	wanRTT := flag.String("wan-rtt", "0,20ms,80ms", "-wan: the round trips of each client's link to the server, comma-separated (sender to receiver directly crosses both links: twice as long)")
	wanLoss := flag.String("wan-loss", "0,0.5", "-wan: the packet loss of each link crossed, in percent, comma-separated")
	wanRate := flag.String("wan-rate", "0", "-wan: limit each link to this many bytes per second per direction (e.g. 10MB; 0: no limit)")
	wanSecs := flag.Float64("wan-seconds", 5, "-wan: aim for this many seconds per transfer: each row's file is sized from the link's expected throughput")
	flag.Parse()
	sizes := map[string]int64{}
	for name, v := range map[string]string{"size": *sizeFlag, "ibb-size": *ibbSizeFlag, "rss-size": *rssSizeFlag} {
		n, err := units.ParseSize(v)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bench: -%s %q: not a positive size\n", name, v)
			os.Exit(2)
		}
		sizes[name] = n
	}
	if *runs < 1 {
		fmt.Fprintln(os.Stderr, "bench: -runs must be at least 1")
		os.Exit(2)
	}
	var filter *regexp.Regexp
	if *only != "" {
		var err error
		if filter, err = regexp.Compile(*only); err != nil {
			fmt.Fprintf(os.Stderr, "bench: -rows: %v\n", err)
			os.Exit(2)
		}
	}
	cfg := config{
		size: sizes["size"], ibbSize: sizes["ibb-size"], rssSize: sizes["rss-size"], rssCheck: *rssCheck,
		runs: *runs, xfer: *xferBin, quick: *quick, filter: filter, timeout: *timeout, compare: compare,
	}
	if *wan {
		w, err := parseWAN(*wanRTT, *wanLoss, *wanRate, *wanSecs)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(2)
		}
		cfg.wan = w
		if err := wanlink.Available(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: -wan skipped: it needs root (network namespaces, TUN devices): %v\n", err)
			return
		}
		timeoutSet := false
		flag.Visit(func(f *flag.Flag) { timeoutSet = timeoutSet || f.Name == "timeout" })
		if !timeoutSet {
			cfg.timeout = 3 * time.Minute // the rows aim for seconds: a stall fails soon
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg)
	interrupted := ctx.Err() != nil // before stop, which cancels ctx
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		if interrupted {
			os.Exit(130)
		}
		os.Exit(1)
	}
}

type config struct {
	size, ibbSize, rssSize int64
	rssCheck               bool
	runs                   int
	xfer                   string
	quick                  bool
	filter                 *regexp.Regexp
	timeout                time.Duration
	compare                []variant
	wan                    *wanConfig // -wan; nil: loopback
}

// variant is another xfer binary to measure (-compare): the binary at path,
// or one built from the git revision rev (name and path set once built).
type variant struct{ name, path, rev string }

// Kinds of rows.
const (
	kindXfer  = iota
	kindTCP   // raw TCP between two children
	kindRelay // raw SOCKS5 relay through the proxy between two children
)

// row is one line of the table: a way of moving a file.
type row struct {
	method   string
	settings string
	kind     int
	hash     string             // raw rows: "", "first" or "while"
	size     int64              // the file's size
	once     bool               // measured in the first run only
	base     *row               // the row whose throughput this one is compared with
	server   testserver.Options // the Prosody to go through
	args     []string           // `xfer send` flags
	bin      string             // -compare: this xfer binary instead of -xfer
	want     want               // xfer rows: what both done events must say
	twin     *row               // -compare: the same row with this tree's build
	link     *wanLink           // -wan: the links the row runs over; nil: loopback
	bound    float64            // -wan IBB rows: window × block / round trip, bytes/s
	results  []result
}

// want is what an xfer row claims to measure: the "method" of both done
// events ("s5b" and "ibb" are SI, "jingle-s5b" and "jingle-ibb" Jingle) and,
// for SOCKS5, how the bytes went ("direct", or "proxy" for "proxy JID").
// A row whose transfer used anything else fails the benchmark.
type want struct{ method, via string }

func (w want) jingle() bool { return strings.HasPrefix(w.method, "jingle-") }

func (r *row) name() string { return r.method + ", " + r.settings }

// result is one measurement of a row.
type result struct {
	bytes       int64
	seconds     float64 // the transfer itself, as the sender sees it
	recvSeconds float64 // raw rows: the receiver's first to last byte
	wall        float64 // the sending process, start to exit
	sendCPU     float64
	recvCPU     float64
	serverCPU   float64 // -1: not measured
	sendRSS     int64   // KiB
	recvRSS     int64   // KiB
	serverHWMKB int64   // KiB, -1: not measured
	// xfer rows, from the --json events' times (0: not known):
	saved     float64 // the sender's "accepted" to the receiver's "done" (verified, synced, in place)
	firstByte float64 // the send process's start to its first byte (login, hashes, finding bob, offer, accept, bytestream)
	offered   float64 // the send process's start to its "offer" event (login, hashes, finding bob; Jingle: also its candidates)
	accepted  float64 // the send process's start to its "accepted" event
	loginByte float64 // the sender's "online" event (logged in) to its first byte: disco, offer, accept, bytestream
	steady    float64 // bytes per second over the second half of the file, from the receiver's progress events
	// -wan: packets the emulator forwarded and dropped during the row.
	emuSent, emuLost uint64
	emuCPU           float64 // this process's CPU seconds: the emulator's, mostly
}

// phases prints where an xfer row's time to the first byte went.
func (r result) phases() string {
	return fmt.Sprintf("start to offer %.3f s, to accepted %.3f s, to first byte %.3f s", r.offered, r.accepted, r.firstByte)
}

// The servers besides the default one (Nagle on, TLS required).
var (
	noNagle = testserver.Options{NoNagle: true}
	noTLS   = testserver.Options{Plaintext: true}
)

// server is a running Prosody with alice and bob.
type server struct {
	srv *testserver.Server
	pid int // 0 if not found
	pw  map[string]string
}

// payload is a test file.
type payload struct {
	path, sum string // sum: MD5, hex
	sha256    string // hex
}

func run(ctx context.Context, cfg config) error {
	xfer, err := filepath.Abs(cfg.xfer)
	if err != nil {
		return err
	}
	if _, err := os.Stat(xfer); err != nil {
		return fmt.Errorf("%s missing: run 'make bench', which builds it first", xfer)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "xfer-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := buildVariants(ctx, cfg.compare, dir); err != nil {
		return err
	}

	var (
		rows []*row
		wn   *wanNet
	)
	if cfg.wan != nil {
		if wn, err = startWAN(); err != nil {
			return err
		}
		defer wn.close()
		rows = wanRows(cfg, wn.server())
	} else {
		rows = tableRows(cfg)
	}
	files := map[int64]payload{}
	for _, r := range rows {
		if _, ok := files[r.size]; ok {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: creating a %s random file\n", human(r.size))
		p := filepath.Join(dir, fmt.Sprintf("payload-%d.bin", r.size))
		sum, sha, err := makeFile(p, r.size)
		if err != nil {
			return err
		}
		files[r.size] = payload{p, sum, sha}
	}

	servers := map[testserver.Options]*server{}
	defer func() {
		for _, s := range servers {
			s.srv.Stop()
		}
	}()
	for _, r := range rows {
		if r.kind == kindTCP || servers[r.server] != nil {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: starting a private Prosody %+v\n", r.server)
		s, err := startServer(r.server)
		if s != nil {
			servers[r.server] = s
		}
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}

	for i := range cfg.runs {
		// Every other run goes backwards, so that neither row of a pair
		// (SI and Jingle, say) always runs first.
		order := slices.Clone(rows)
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, r := range order {
			if r.once && i > 0 {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			where := ""
			var h hosts
			if r.link != nil {
				where = ", " + r.link.String()
				h = wn.use(*r.link)
			}
			fmt.Fprintf(os.Stderr, "bench: run %d/%d: %s (%s%s)\n", i+1, cfg.runs, r.name(), human(r.size), where)
			tctx, cancel := context.WithTimeout(ctx, cfg.timeout)
			var res result
			f := files[r.size]
			var sent0, lost0 uint64
			cpu0 := selfCPU()
			if wn != nil {
				sent0, lost0 = wn.stats()
			}
			switch r.kind {
			case kindTCP:
				res, err = rawTCP(tctx, h, self, dir, f, r.size, r.hash)
			case kindRelay:
				res, err = rawRelay(tctx, h, self, servers[r.server], dir, f, r.size, r.hash)
			default:
				bin := xfer
				if r.bin != "" {
					bin = r.bin
				}
				res, err = viaXfer(tctx, h, bin, servers[r.server], dir, f, r.size, r.args, r.want)
			}
			if wn != nil {
				sent1, lost1 := wn.stats()
				res.emuSent, res.emuLost = sent1-sent0, lost1-lost0
				res.emuCPU = selfCPU() - cpu0
			}
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("%s: %w", r.name(), err)
			}
			recvSecs := ""
			if res.recvSeconds > 0 {
				recvSecs = fmt.Sprintf(" (receiver: first to last byte %.3f s)", res.recvSeconds)
			}
			if res.saved > 0 {
				recvSecs += fmt.Sprintf(" (accepted to saved %.3f s; %s)", res.saved, res.phases())
			}
			fmt.Fprintf(os.Stderr, "bench:   %.3f s, %.1f MB/s, send wall %.2f s%s\n", res.seconds, rate(res)/1e6, res.wall, recvSecs)
			r.results = append(r.results, res)
		}
	}
	if cfg.wan != nil {
		printWAN(os.Stdout, cfg, rows)
	} else {
		printTable(os.Stdout, cfg, rows)
	}
	printCompare(os.Stdout, rows)
	return nil
}

// ibbPair returns SI and Jingle IBB rows like si and jingle but with the
// -compare build v, each the twin of its counterpart; the Jingle row is
// compared with v's SI row ("speed vs"), the SI row with si's base.
func ibbPair(v variant, si, jingle *row) []*row {
	vsi, vj := *si, *jingle
	vsi.method += " [" + v.name + "]"
	vj.method += " [" + v.name + "]"
	vsi.bin, vj.bin = v.path, v.path
	vsi.twin, vj.twin = si, jingle
	vj.base = &vsi
	vsi.results, vj.results = nil, nil
	return []*row{&vsi, &vj}
}

// tableRows lists the rows to measure, in the order of the table.
func tableRows(cfg config) []*row {
	raw := &row{method: "raw TCP", settings: "loopback, 64 KiB read/write", kind: kindTCP, size: cfg.ibbSize}
	first := &row{method: "raw TCP + MD5", settings: "hash first, then send; receiver hashes + writes", kind: kindTCP, hash: "first", size: cfg.size}
	while := &row{method: "raw TCP + MD5", settings: "hash while sending; receiver hashes + writes", kind: kindTCP, hash: "while", size: cfg.size}
	relayFirst := &row{method: "raw SOCKS5 relay", settings: "proxy65, hash first; receiver hashes + writes", kind: kindRelay, hash: "first", size: cfg.size}
	relayWhile := &row{method: "raw SOCKS5 relay", settings: "proxy65, hash while sending; receiver hashes + writes", kind: kindRelay, hash: "while", size: cfg.size}
	ibb := func(settings string, srv testserver.Options, args ...string) *row {
		return &row{method: "xfer ibb", settings: settings, base: raw, server: srv, size: cfg.ibbSize,
			args: append([]string{"--method", "ibb"}, args...), want: want{"ibb", ""}}
	}
	// SI (XEP-0096) over one bytestream each, so that --method auto, which
	// picks Jingle against xfer receive, changes nothing here; each Jingle
	// row (XEP-0234) follows its SI counterpart, with the same file, and is
	// compared with it.
	s5bPair := func(name, bin, settings string, size int64, once bool, extra ...string) []*row {
		base, via := first, "direct"
		if slices.Contains(extra, "--no-direct") {
			base, via = relayFirst, "proxy"
		}
		si := &row{method: "xfer s5b" + name, settings: settings, base: base, size: size, once: once, bin: bin,
			args: append([]string{"--method", "s5b"}, extra...), want: want{"s5b", via}}
		jingle := &row{method: "xfer jingle-s5b" + name, settings: settings, base: si, size: size, once: once, bin: bin,
			args: append([]string{"--method", "jingle-s5b"}, extra...), want: want{"jingle-s5b", via}}
		return []*row{si, jingle}
	}
	ibbSI := ibb("defaults", testserver.Options{})
	rows := []*row{raw, first, while, relayFirst, relayWhile}
	rows = append(rows, s5bPair("", "", "direct (defaults)", cfg.size, false)...)
	rows = append(rows, s5bPair("", "", "proxy65 (--no-direct)", cfg.size, false, "--no-direct")...)
	// Latency: a file small enough that hashing it (SI's offer carries its
	// MD5, Jingle's its SHA-256) costs nothing, for login to first byte.
	rows = append(rows, s5bPair("", "", "direct, 1 MiB file (latency)", 1<<20, false)...)
	jingleIBB := &row{method: "xfer jingle-ibb", settings: "defaults", base: ibbSI, size: cfg.ibbSize,
		args: []string{"--method", "jingle-ibb"}, want: want{"jingle-ibb", ""}}
	rows = append(rows, ibbSI, jingleIBB)
	// -compare's IBB rows right after this tree's, so that both see the
	// same load.
	for _, v := range cfg.compare {
		rows = append(rows, ibbPair(v, ibbSI, jingleIBB)...)
	}
	while.base, relayWhile.base = first, relayFirst
	for _, v := range cfg.compare {
		rows = append(rows, s5bPair(" ["+v.name+"]", v.path, "direct (defaults)", cfg.size, false)...)
		rows = append(rows, s5bPair(" ["+v.name+"]", v.path, "proxy65 (--no-direct)", cfg.size, false, "--no-direct")...)
	}
	if cfg.rssCheck {
		rows = append(rows, s5bPair("", "", "direct, -rss-size file", cfg.rssSize, true)...)
		rows = append(rows, s5bPair("", "", "proxy65, -rss-size file", cfg.rssSize, true, "--no-direct")...)
	}
	if !cfg.quick {
		rows = append(rows,
			ibb("--ibb-window 16 (fixed, the old default)", testserver.Options{}, "--ibb-window", "16"),
			ibb("--ibb-window 64", testserver.Options{}, "--ibb-window", "64"),
			ibb("--ibb-block-size 8192", testserver.Options{}, "--ibb-block-size", "8192"),
			ibb("--ibb-block-size 65535", testserver.Options{}, "--ibb-block-size", "65535"),
			ibb("defaults, Prosody TCP_NODELAY", noNagle),
			ibb("--ibb-block-size 65535, Prosody TCP_NODELAY", noNagle, "--ibb-block-size", "65535"),
			ibb("defaults, no TLS", noTLS),
			ibb("--ibb-block-size 65535, no TLS", noTLS, "--ibb-block-size", "65535"),
		)
		// Jingle's handshakes (session-accept after the initiate's result,
		// the candidate reports) are back-to-back small stanzas, which
		// Prosody's Nagle holds for the client's delayed ACK; SI's accept
		// is one stanza.
		nd := s5bPair("", "", "direct, Prosody TCP_NODELAY", cfg.size, false)
		for _, r := range nd {
			r.server = noNagle
		}
		rows = append(rows, nd...)
	}
	return filterRows(rows, cfg.filter)
}

// filterRows keeps the rows whose name matches filter (all if nil), and
// their baselines; a -compare row goes with its twin: it is kept when its
// own name or its twin's matches, and keeps its twin.
func filterRows(rows []*row, filter *regexp.Regexp) []*row {
	if filter == nil {
		return rows
	}
	keep := map[*row]bool{}
	for _, r := range rows {
		if !filter.MatchString(r.name()) && (r.twin == nil || !filter.MatchString(r.twin.name())) {
			continue
		}
		for _, t := range []*row{r, r.twin} {
			for b := t; b != nil; b = b.base {
				keep[b] = true
			}
		}
	}
	return slices.DeleteFunc(rows, func(r *row) bool { return !keep[r] })
}

func startServer(opts testserver.Options) (*server, error) {
	srv, err := testserver.Start(opts)
	if err != nil {
		return nil, err
	}
	s := &server{srv: srv, pw: map[string]string{}}
	for _, u := range []string{"alice", "bob"} {
		s.pw[u] = u + "-" + randomHex(8)
		if err := srv.Register(u, s.pw[u]); err != nil {
			return s, err
		}
	}
	if err := srv.Befriend("alice", "bob"); err != nil {
		return s, err
	}
	s.pid = findProsody(srv.ConfigFile())
	return s, nil
}

// childReport is what a raw child prints when done.
type childReport struct {
	Bytes int64 `json:"bytes"`
	// Seconds: for the sender, from connecting to the streamhost to its
	// close, which is what xfer's done event measures; for the receiver,
	// from the first byte to the last one written.
	Seconds float64 `json:"seconds"`
	MD5     string  `json:"md5,omitempty"`
}

// rawTCP copies f over a loopback TCP connection between two child
// processes of this program and checks what arrived.
func rawTCP(ctx context.Context, h hosts, self, dir string, f payload, size int64, hashMode string) (result, error) {
	out := filepath.Join(dir, "raw-received.bin")
	defer os.Remove(out)
	recv := h.command(ctx, true, self)
	recv.Env = append(os.Environ(), roleEnv+"=tcp-recv", fileEnv+"="+out, hashEnv+"="+hashMode, hostEnv+"="+h.recvHost())
	recv.Stderr = os.Stderr
	stdout, err := recv.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	if err := recv.Start(); err != nil {
		return result{}, err
	}
	defer recv.Process.Kill() // no-op once it has been waited for
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		recv.Wait()
		return result{}, errors.New("raw receiver did not report its address")
	}
	addr := strings.TrimSpace(lines.Text())

	send := h.command(ctx, false, self)
	send.Env = append(os.Environ(), roleEnv+"=tcp-send", fileEnv+"="+f.path, addrEnv+"="+addr, hashEnv+"="+hashMode)
	send.Stderr = os.Stderr
	var sendOut bytes.Buffer
	send.Stdout = &sendOut
	start := time.Now()
	if err := send.Run(); err != nil {
		return result{}, fmt.Errorf("raw sender: %w", err)
	}
	wall := time.Since(start).Seconds()
	res, err := rawResult(recv, lines, out, f, size, hashMode)
	if err != nil {
		return result{}, err
	}
	if err := senderSeconds(&res, sendOut.Bytes()); err != nil {
		return result{}, err
	}
	res.sendRSS, res.sendCPU = usage(send.ProcessState)
	res.wall = wall
	return res, nil
}

// rawRelay copies f through the server's proxy65 between two child
// processes of this program and checks what arrived.
func rawRelay(ctx context.Context, h hosts, self string, s *server, dir string, f payload, size int64, hashMode string) (result, error) {
	if s.srv.ProxyAddr == "" {
		return result{}, errors.New("the server has no proxy65")
	}
	out := filepath.Join(dir, "relay-received.bin")
	defer os.Remove(out)
	cpu0 := procCPU(s.pid)

	// The requester logs in first: the destination address hashes its
	// full JID, which the server binds.
	send := h.command(ctx, false, self)
	send.Env = append(os.Environ(), roleEnv+"=relay-send", fileEnv+"="+f.path, hashEnv+"="+hashMode,
		addrEnv+"="+s.srv.ProxyAddr, proxyEnv+"="+s.srv.ProxyJID, caEnv+"="+s.srv.CAFile,
		"XFER_JID=alice@localhost/bench-relay", "XFER_PASSWORD="+s.pw["alice"], "XFER_SERVER="+s.srv.Addr)
	send.Stderr = os.Stderr
	sendIn, err := send.StdinPipe()
	if err != nil {
		return result{}, err
	}
	sendOut, err := send.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	if err := send.Start(); err != nil {
		return result{}, err
	}
	defer send.Process.Kill()
	sendLines := bufio.NewScanner(sendOut)
	if !sendLines.Scan() {
		send.Wait()
		return result{}, errors.New("relay sender did not report its destination address")
	}
	dst := strings.TrimSpace(sendLines.Text())

	// The target connects first: proxy65 pairs the first connection for
	// an address with the target, the second with the requester.
	recv := h.command(ctx, true, self)
	recv.Env = append(os.Environ(), roleEnv+"=relay-recv", fileEnv+"="+out, hashEnv+"="+hashMode,
		addrEnv+"="+s.srv.ProxyAddr, dstEnv+"="+dst)
	recv.Stderr = os.Stderr
	stdout, err := recv.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	if err := recv.Start(); err != nil {
		return result{}, err
	}
	defer recv.Process.Kill()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		recv.Wait()
		return result{}, errors.New("relay receiver did not connect to the proxy")
	}
	// A relay needs both ends connected, one after the other, as XEP-0065
	// has it: the row's seconds count the target's connect too, as xfer's
	// count its target's.
	var targetConnect float64
	if _, err := fmt.Sscanf(lines.Text(), "ready %g", &targetConnect); err != nil {
		return result{}, fmt.Errorf("relay receiver: %q: %w", lines.Text(), err)
	}
	if _, err := io.WriteString(sendIn, "go\n"); err != nil {
		return result{}, err
	}
	sendIn.Close()
	var sendRep []byte
	for sendLines.Scan() {
		sendRep = append(sendRep, sendLines.Bytes()...)
	}
	if err := send.Wait(); err != nil {
		return result{}, fmt.Errorf("relay sender: %w", err)
	}
	wall := time.Since(start).Seconds()
	res, err := rawResult(recv, lines, out, f, size, hashMode)
	if err != nil {
		return result{}, err
	}
	if err := senderSeconds(&res, sendRep); err != nil {
		return result{}, err
	}
	res.seconds += targetConnect
	res.sendRSS, res.sendCPU = usage(send.ProcessState)
	res.wall = wall
	if cpu1 := procCPU(s.pid); cpu0 >= 0 && cpu1 >= 0 {
		res.serverCPU = cpu1 - cpu0
	}
	res.serverHWMKB = procHWM(s.pid)
	return res, nil
}

// rawResult reads a raw receiver's report, waits for it and checks its file.
func rawResult(recv *exec.Cmd, lines *bufio.Scanner, out string, f payload, size int64, hashMode string) (result, error) {
	var rep childReport
	if !lines.Scan() {
		recv.Wait()
		return result{}, errors.New("raw receiver did not report")
	}
	if err := json.Unmarshal(lines.Bytes(), &rep); err != nil {
		return result{}, fmt.Errorf("raw receiver: %w", err)
	}
	if err := recv.Wait(); err != nil {
		return result{}, fmt.Errorf("raw receiver: %w", err)
	}
	if hashMode != "" && rep.MD5 != f.sum {
		return result{}, fmt.Errorf("raw receiver computed MD5 %s, want %s", rep.MD5, f.sum)
	}
	if err := verify(out, f.sum, size); err != nil {
		return result{}, err
	}
	res := result{bytes: rep.Bytes, recvSeconds: rep.Seconds, serverCPU: -1, serverHWMKB: -1}
	res.recvRSS, res.recvCPU = usage(recv.ProcessState)
	return res, nil
}

// senderSeconds takes the transfer time from a raw sender's report.
func senderSeconds(res *result, out []byte) error {
	var rep childReport
	if err := json.Unmarshal(bytes.TrimSpace(out), &rep); err != nil {
		return fmt.Errorf("raw sender's report %q: %w", out, err)
	}
	if rep.Bytes != res.bytes {
		return fmt.Errorf("raw sender sent %d bytes, the receiver got %d", rep.Bytes, res.bytes)
	}
	res.seconds = rep.Seconds
	return nil
}

// child runs one side of a raw copy.
func child(role string) error {
	file, hashMode := os.Getenv(fileEnv), os.Getenv(hashEnv)
	switch role {
	case "tcp-recv":
		host := os.Getenv(hostEnv)
		if host == "" {
			host = "127.0.0.1"
		}
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return err
		}
		fmt.Println(l.Addr().String())
		c, err := l.Accept()
		if err != nil {
			return err
		}
		l.Close()
		return receive(c, file, hashMode != "")
	case "relay-recv":
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var d net.Dialer
		start := time.Now()
		c, err := d.DialContext(ctx, "tcp", os.Getenv(addrEnv))
		if err != nil {
			return err
		}
		if err := s5b.ClientHandshake(ctx, c, os.Getenv(dstEnv)); err != nil {
			return err
		}
		fmt.Println("ready", time.Since(start).Seconds()) // the target's connect, for the row's seconds
		return receive(c, file, hashMode != "")
	case "tcp-send":
		f, err := openHashed(file, hashMode)
		if err != nil {
			return err
		}
		defer f.Close()
		start := time.Now()
		c, err := net.Dial("tcp", os.Getenv(addrEnv))
		if err != nil {
			return err
		}
		n, err := f.send(c)
		if err != nil {
			return err
		}
		if err := c.Close(); err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(childReport{Bytes: n, Seconds: time.Since(start).Seconds()})
	case "relay-send":
		return relaySend(file, hashMode)
	}
	return fmt.Errorf("unknown role %q", role)
}

// receive copies c into file, hashing what arrives when asked, and prints
// a childReport.
func receive(c net.Conn, file string, hashing bool) error {
	defer c.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	h := md5.New()
	var w io.Writer = f
	if hashing {
		w = io.MultiWriter(f, h)
	}
	// Plain read/write loops on both sides: no sendfile or splice, as an
	// application copying through user space does.
	in := &firstByte{r: c}
	n, err := io.CopyBuffer(onlyWriter{w}, in, make([]byte, 64<<10))
	if err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	rep := childReport{Bytes: n, Seconds: time.Since(in.t).Seconds()}
	if hashing {
		rep.MD5 = hex.EncodeToString(h.Sum(nil))
	}
	return json.NewEncoder(os.Stdout).Encode(rep)
}

// firstByte notes when the first byte arrived.
type firstByte struct {
	r io.Reader
	t time.Time
}

func (f *firstByte) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 && f.t.IsZero() {
		f.t = time.Now()
	}
	return n, err
}

// hashedFile is a raw sender's file: hashed whole before sending
// ("first"), or as it is sent ("while"), or not at all ("").
type hashedFile struct {
	*os.File
	mode string
	h    hash.Hash
}

func openHashed(path, mode string) (*hashedFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	hf := &hashedFile{File: f, mode: mode, h: md5.New()}
	if mode == "first" {
		if _, err := io.CopyBuffer(hf.h, onlyReader{f}, make([]byte, 64<<10)); err != nil {
			f.Close()
			return nil, err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
	}
	return hf, nil
}

func (f *hashedFile) send(c net.Conn) (int64, error) {
	var r io.Reader = f.File
	if f.mode == "while" {
		r = io.TeeReader(f.File, f.h)
	}
	return io.CopyBuffer(onlyWriter{c}, onlyReader{r}, make([]byte, 64<<10))
}

// relaySend is the requester's end of the raw relay: it logs in as
// XFER_JID, prints the destination address, waits for a line on stdin (the
// target has connected), connects to the proxy, activates the stream to its
// own full JID and sends.
func relaySend(file, hashMode string) error {
	f, err := openHashed(file, hashMode)
	if err != nil {
		return err
	}
	defer f.Close()
	pem, err := os.ReadFile(os.Getenv(caEnv))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s, err := session.Dial(ctx, session.Config{
		JID: os.Getenv("XFER_JID"), Password: os.Getenv("XFER_PASSWORD"), Server: os.Getenv("XFER_SERVER"),
		RootCAs: pool, Timeout: 10 * time.Second,
	})
	if err != nil {
		return err
	}
	defer s.Close()
	sid, me, proxy := session.NewID(), s.JID(), os.Getenv(proxyEnv)
	dst := s5b.DstAddr(sid, me, me)
	fmt.Println(dst)
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return fmt.Errorf("waiting for the target: %w", err)
	}
	host, port, err := net.SplitHostPort(os.Getenv(addrEnv))
	if err != nil {
		return err
	}
	p, _ := strconv.Atoi(port)
	start := time.Now()
	c, err := s5b.Dial(ctx, s5b.Streamhost{JID: proxy, Host: host, Port: p}, dst, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	actx, acancel := context.WithTimeout(ctx, 10*time.Second)
	err = s5b.Activate(actx, s, proxy, sid, me)
	acancel()
	if err != nil {
		return err
	}
	n, err := f.send(c)
	if err != nil {
		return err
	}
	// Half-close and wait for the proxy to close after the target did, so
	// that nothing is cut off in the relay.
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	rep := childReport{Bytes: n, Seconds: time.Since(start).Seconds()}
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := io.Copy(io.Discard, c); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(rep)
}

// onlyReader and onlyWriter hide ReaderFrom/WriterTo so that io.CopyBuffer
// really copies through the buffer.
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }

// event is the part of xfer's --json events the benchmark reads.
type event struct {
	Type    string    `json:"type"`
	Path    string    `json:"path"`
	Bytes   int64     `json:"bytes"`
	Seconds float64   `json:"seconds"`
	Rate    float64   `json:"bytes_per_second"`
	Method  string    `json:"method"`
	Via     string    `json:"via"`
	MD5     string    `json:"md5"`
	Digest  string    `json:"digest"`
	Error   string    `json:"error"`
	Time    time.Time `json:"time"`
}

// checkDone fails unless a done event says the row's method and way
// (direct or proxy), so that no row measures what it does not claim.
func checkDone(side string, ev event, w want) error {
	via := ev.Via
	if strings.HasPrefix(via, "proxy ") {
		via = "proxy"
	}
	if ev.Method != w.method || via != w.via {
		return fmt.Errorf("WRONG METHOD: xfer %s's done event says method %q via %q; this row measures method %q via %q", side, ev.Method, ev.Via, w.method, w.via)
	}
	return nil
}

// checkSums fails unless the receiver's done event carries the source's
// hash: SI's MD5 ("md5"), or Jingle's SHA-256 ("digest") and no MD5.
func checkSums(ev event, f payload, w want) error {
	if w.jingle() {
		if want := "sha-256:" + f.sha256; ev.Digest != want || ev.MD5 != "" {
			return fmt.Errorf("xfer receive's done event says digest %q, md5 %q; the source's is %s", ev.Digest, ev.MD5, want)
		}
		return nil
	}
	if ev.MD5 != f.sum || ev.Digest != "" {
		return fmt.Errorf("xfer receive's done event says md5 %q, digest %q; the source's MD5 is %s", ev.MD5, ev.Digest, f.sum)
	}
	return nil
}

// viaXfer sends f from alice to bob with bin/xfer send and the given flags,
// and checks that both sides used what w says.
func viaXfer(ctx context.Context, h hosts, xfer string, s *server, dir string, f payload, size int64, extra []string, w want) (result, error) {
	inbox, err := os.MkdirTemp(dir, "inbox-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(inbox)
	env := func(user string) []string {
		return append(os.Environ(), "XFER_JID="+user+"@localhost/bench", "XFER_PASSWORD="+s.pw[user], "XFER_SERVER="+s.srv.Addr)
	}
	cpu0 := procCPU(s.pid)

	var recvOut, recvErr, sendOut, sendErr bytes.Buffer
	tls := []string{"--tls-ca", s.srv.CAFile}
	if s.srv.CAFile == "" {
		tls = []string{"--no-tls"}
	}
	recvArgs := append(append([]string{"receive"}, tls...), "--dir", inbox,
		"--from", "alice@localhost", "--once", "--quiet", "--json")
	if w.method == "upload" {
		recvArgs = append(recvArgs, "--accept-links")
	}
	recv := h.command(ctx, true, xfer, recvArgs...)
	recv.Env, recv.Stdout, recv.Stderr = env("bob"), &recvOut, &recvErr
	if err := recv.Start(); err != nil {
		return result{}, err
	}
	defer recv.Process.Kill() // no-op once it has been waited for

	args := append(append([]string{"send"}, tls...), "--quiet", "--json", "--wait-online", "30s")
	args = append(args, extra...)
	args = append(args, f.path, "bob@localhost")
	send := h.command(ctx, false, xfer, args...)
	send.Env, send.Stdout, send.Stderr = env("alice"), &sendOut, &sendErr
	start := time.Now()
	serr := send.Run()
	wall := time.Since(start).Seconds()
	if serr != nil {
		recv.Process.Kill()
		recv.Wait()
		return result{}, fmt.Errorf("xfer send: %w\n%s%s\nreceiver: %s%s", serr, sendOut.String(), sendErr.String(), recvOut.String(), recvErr.String())
	}
	rerr := make(chan error, 1)
	go func() { rerr <- recv.Wait() }()
	select {
	case err := <-rerr:
		if err != nil {
			return result{}, fmt.Errorf("xfer receive: %w\n%s%s", err, recvOut.String(), recvErr.String())
		}
	case <-time.After(time.Minute):
		recv.Process.Kill()
		<-rerr
		return result{}, fmt.Errorf("xfer receive did not exit a minute after the sender finished\n%s%s", recvOut.String(), recvErr.String())
	}
	sent, ok := findEvent(sendOut.Bytes(), "done")
	if !ok {
		return result{}, fmt.Errorf("xfer send printed no done event:\n%s", sendOut.String())
	}
	got, ok := findEvent(recvOut.Bytes(), "done")
	if !ok {
		return result{}, fmt.Errorf("xfer receive printed no done event:\n%s", recvOut.String())
	}
	defer os.Remove(got.Path)
	checks := []error{checkDone("send", sent, w), checkDone("receive", got, w), checkSums(got, f, w)}
	if w.method == "upload" {
		// The receiver fetched a link (XEP-0066), without a hash: the
		// file on disk is checked below.
		checks = []error{checkDone("send", sent, w), checkDone("receive", got, want{"oob", "link"})}
	}
	for _, err := range checks {
		if err != nil {
			return result{}, fmt.Errorf("%w\nsender:\n%s\nreceiver:\n%s", err, sendOut.String(), recvOut.String())
		}
	}
	if err := verify(got.Path, f.sum, size); err != nil {
		return result{}, fmt.Errorf("xfer: %w", err)
	}
	res := result{bytes: sent.Bytes, seconds: sent.Seconds, wall: wall, serverCPU: -1, serverHWMKB: -1}
	if acc, ok := findEvent(sendOut.Bytes(), "accepted"); ok && !acc.Time.IsZero() && !got.Time.IsZero() {
		res.saved = got.Time.Sub(acc.Time).Seconds()
		res.accepted = acc.Time.Sub(start).Seconds()
	}
	if o, ok := findEvent(sendOut.Bytes(), "offer"); ok && !o.Time.IsZero() {
		res.offered = o.Time.Sub(start).Seconds()
	}
	if p, ok := findEvent(sendOut.Bytes(), "progress"); ok && !p.Time.IsZero() {
		res.firstByte = p.Time.Sub(start).Seconds()
		if o, ok := findEvent(sendOut.Bytes(), "online"); ok && !o.Time.IsZero() {
			res.loginByte = p.Time.Sub(o.Time).Seconds()
		}
	}
	res.steady = steadyRate(recvOut.Bytes(), size)
	if w.method == "upload" {
		// From the offer (before the upload slot is asked for) to the
		// receiver's file in place: upload, message, download.
		o, ok := findEvent(sendOut.Bytes(), "offer")
		if !ok || o.Time.IsZero() || got.Time.IsZero() {
			return result{}, fmt.Errorf("upload: no offer or done time:\n%s\n%s", sendOut.String(), recvOut.String())
		}
		res.bytes, res.seconds = size, got.Time.Sub(o.Time).Seconds()
	}
	res.sendRSS, res.sendCPU = usage(send.ProcessState)
	res.recvRSS, res.recvCPU = usage(recv.ProcessState)
	if cpu1 := procCPU(s.pid); cpu0 >= 0 && cpu1 >= 0 {
		res.serverCPU = cpu1 - cpu0
	}
	res.serverHWMKB = procHWM(s.pid)
	return res, nil
}

// steadyRate is the receiver's rate over the second half of a file of
// size bytes, from its progress events (four a second at most) to its done
// event: the rate once the transfer has started up (an adaptive window's
// ramp, TCP's slow start), without the negotiation and the close. 0 when
// the events do not tell (a file that took under a second).
func steadyRate(out []byte, size int64) float64 {
	var mid, last event
	for line := range bytes.Lines(out) {
		var ev event
		if json.Unmarshal(line, &ev) != nil || ev.Time.IsZero() {
			continue
		}
		switch {
		case ev.Type == "progress" && mid.Time.IsZero() && ev.Bytes >= size/2:
			mid = ev
		case ev.Type == "progress" && !mid.Time.IsZero():
			last = ev
		}
	}
	if mid.Time.IsZero() || last.Time.IsZero() || !last.Time.After(mid.Time) || size-mid.Bytes < size/4 {
		return 0
	}
	return float64(last.Bytes-mid.Bytes) / last.Time.Sub(mid.Time).Seconds()
}

func findEvent(out []byte, typ string) (event, bool) {
	for line := range bytes.Lines(out) {
		var ev event
		if json.Unmarshal(line, &ev) == nil && ev.Type == typ {
			return ev, true
		}
	}
	return event{}, false
}

// selfCPU returns this process's user+system CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// usage returns a finished child's peak RSS (KiB) and CPU seconds.
func usage(ps *os.ProcessState) (int64, float64) {
	if ps == nil {
		return -1, -1
	}
	var rss int64 = -1
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss // KiB on Linux
	}
	return rss, (ps.UserTime() + ps.SystemTime()).Seconds()
}

// findProsody finds the PID of the Prosody that runs with config, by its
// command line (the configuration lives in a fresh temporary directory).
func findProsody(config string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(config)) && bytes.Contains(cmdline, []byte("prosody")) {
			return pid
		}
	}
	return 0
}

// procCPU returns a process's user+system CPU seconds from /proc, or -1.
func procCPU(pid int) float64 {
	if pid <= 0 {
		return -1
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The fields after the command name, which is in parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return -1
	}
	const clkTck = 100 // USER_HZ on every Linux platform Go supports
	return float64(utime+stime) / clkTck
}

// procHWM returns a process's peak RSS (VmHWM, KiB) from /proc, or -1.
func procHWM(pid int) int64 {
	if pid <= 0 {
		return -1
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// makeFile writes size random bytes to path and returns their MD5 and
// SHA-256 (hex).
func makeFile(path string, size int64) (string, string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", "", err
	}
	h, h2 := md5.New(), sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h, h2), rand.Reader, size); err != nil {
		f.Close()
		return "", "", err
	}
	if err := f.Close(); err != nil {
		return "", "", err
	}
	return hex.EncodeToString(h.Sum(nil)), hex.EncodeToString(h2.Sum(nil)), nil
}

// verify checks that path holds size bytes with MD5 sum.
func verify(path, sum string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := md5.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != size || got != sum {
		return fmt.Errorf("received file %s is WRONG: %d bytes, MD5 %s; sent %d bytes, MD5 %s", path, n, got, size, sum)
	}
	return nil
}

// median returns the result with the median transfer time.
func median(rs []result) result {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b result) int {
		switch {
		case a.seconds < b.seconds:
			return -1
		case a.seconds > b.seconds:
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

// medianOf returns the median of f over the results with f > 0, or 0.
func medianOf(rs []result, f func(result) float64) float64 {
	var v []float64
	for _, r := range rs {
		if x := f(r); x > 0 {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func savedSecs(r result) float64 { return r.saved }
func firstSecs(r result) float64 { return r.firstByte }
func steadyOf(r result) float64  { return r.steady }
func loginSecs(r result) float64 { return r.loginByte }

// millis prints seconds as milliseconds, "-" for unknown.
func millis(x float64) string {
	if x <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", x*1000)
}

// ratioFmt prints a ratio with enough digits to read small ones.
func ratioFmt(x float64) string {
	if x < 0.1 {
		return fmt.Sprintf("%.4f×", x)
	}
	return fmt.Sprintf("%.2f×", x)
}

func printTable(w io.Writer, cfg config, rows []*row) {
	fmt.Fprintf(w, "\nxfer bench: %d run(s), median shown; %s\n", cfg.runs, machine())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "method\tsettings\tfile\tseconds\tMB/s\tspeed vs\tsaved s\tsaved vs\tto 1st byte s\tlogin to 1st byte ms\tsend wall s\tsender CPU s\treceiver CPU s\tProsody CPU s\tsender peak RSS\treceiver peak RSS\tProsody peak RSS")
	for _, r := range rows {
		if len(r.results) == 0 {
			continue
		}
		m := median(r.results)
		ratio, savedRatio := "-", "-"
		saved, first := medianOf(r.results, savedSecs), medianOf(r.results, firstSecs)
		if r.base != nil && r.base.size == r.size && len(r.base.results) > 0 {
			if b := rate(median(r.base.results)); b > 0 {
				ratio = ratioFmt(rate(m)/b) + " " + r.base.short()
			}
			if b := medianOf(r.base.results, savedSecs); b > 0 && saved > 0 {
				savedRatio = ratioFmt(b/saved) + " " + r.base.short()
			}
		}
		mbps := "-"
		if m.seconds > 0 {
			mbps = fmt.Sprintf("%.1f", rate(m)/1e6)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.3f\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.method, r.settings, human(r.size), m.seconds, mbps, ratio, secs3(saved), savedRatio, secs3(first), millis(medianOf(r.results, loginSecs)), m.wall,
			secs(m.sendCPU), secs(m.recvCPU), secs(m.serverCPU),
			mib(m.sendRSS), mib(m.recvRSS), mib(m.serverHWMKB))
	}
	tw.Flush()
	fmt.Fprintln(w, "defaults: xfer's own settings (README: in-band blocks that fill 8 KiB records, about 5.9 KB, an adaptive in-band window of 16 chunks to 1 MiB; S5B offers its own loopback streamhost, then the proxy); Prosody with Nagle on and TLS, as Debian ships it.")
	fmt.Fprintln(w, "xfer s5b / xfer ibb: SI (XEP-0096, send --method s5b / ibb); xfer jingle-s5b / jingle-ibb: Jingle file transfer (XEP-0234 over XEP-0260 / XEP-0261, --method jingle-s5b / jingle-ibb), the same file, right after its SI row. Both done events' method and via were checked, and every received file against the source (SI: md5, Jingle: sha-256 digest, and the file's MD5 on disk).")
	fmt.Fprintln(w, "seconds: as the sender sees it, to its close: xfer from the bytestream negotiation after the accept (the --json done event; Jingle's also waits for the receiver's session-terminate, which comes after its fsync); raw from its connect (the SOCKS5 relay: the target's connect, then the requester's connect to its close). The receiver may still have the socket buffers (tens of MiB on loopback) to drain.")
	fmt.Fprintln(w, "saved s: xfer, from the sender's accepted event to the receiver's done event (bytestream negotiation, transfer, hash checked, fsync, rename): the same span for SI and Jingle. to 1st byte s: the send process's start to its first progress event (login, hashing, finding bob, offer, accept, bytestream negotiation); login to 1st byte ms: from its online event (logged in) to the same (finding bob, offer, accept, bytestream negotiation; target: 50 ms for S5B direct on loopback).")
	fmt.Fprintln(w, "speed vs / saved vs: MB/s over the MB/s of the row named, for the same file size; xfer s5b is compared with the raw copy that, like xfer, hashes the file before sending, each Jingle row with its SI row.")
	fmt.Fprintln(w, "send wall s: the whole sending process (xfer: login, MD5 and SHA-256 of the file, finding bob, offer, transfer; raw: MD5 when hashing first, relay login, transfer). MB/s = 10^6 bytes/s.")
	fmt.Fprintln(w, "Prosody peak RSS is its high-water mark since start; CPU s is user+system. The machine is shared: compare the ratios within this run, not absolute numbers across runs.")
	printJingle(w, rows)
}

// printJingle sums up each Jingle row against its SI row (the issue's
// target: SOCKS5 at least 0.9× SI's throughput, in-band the same). It
// prints; it never fails the benchmark.
func printJingle(w io.Writer, rows []*row) {
	header := false
	for _, r := range rows {
		b := r.base
		if !r.want.jingle() || b == nil || len(r.results) == 0 || len(b.results) == 0 {
			continue
		}
		if !header {
			fmt.Fprintln(w, "\nJingle / SI, this run (target: SOCKS5 direct and proxy at least 0.90× SI's MB/s, in-band the same as SI):")
			header = true
		}
		m, bm := median(r.results), median(b.results)
		line := fmt.Sprintf("  %s, %s: %s by MB/s", r.method, r.settings, ratioFmt(rate(m)/rate(bm)))
		if s, bs := medianOf(r.results, savedSecs), medianOf(b.results, savedSecs); s > 0 && bs > 0 {
			line += fmt.Sprintf(", %s by accepted to saved (%.3f s vs %.3f s)", ratioFmt(bs/s), s, bs)
		}
		line += fmt.Sprintf(", send wall %.2f s vs %.2f s", m.wall, bm.wall)
		target := 0.9
		if r.want.method == "jingle-ibb" {
			target = 0.95 // "the same": within the noise of one run
		}
		if rate(m)/rate(bm) < target {
			line += fmt.Sprintf(" — below %.2f×", target)
		}
		fmt.Fprintln(w, line)
		fmt.Fprintf(w, "    send process start to offer / accepted / first byte: %s s (SI: %s s)\n", setup(r.results), setup(b.results))
	}
}

// setup prints the medians of an xfer row's phases before the first byte.
func setup(rs []result) string {
	var p []string
	for _, f := range []func(result) float64{
		func(r result) float64 { return r.offered },
		func(r result) float64 { return r.accepted },
		firstSecs,
	} {
		p = append(p, fmt.Sprintf("%.3f", medianOf(rs, f)))
	}
	return strings.Join(p, " / ")
}

func rate(r result) float64 {
	if r.seconds <= 0 {
		return 0
	}
	return float64(r.bytes) / r.seconds
}

// short names a baseline row in the "speed vs" column.
func (r *row) short() string {
	switch {
	case r.kind == kindTCP && r.hash == "":
		return "raw TCP"
	case r.kind == kindTCP:
		return "raw TCP+MD5 (hash " + r.hash + ")"
	case r.kind == kindRelay && r.hash == "":
		return "raw relay"
	case r.kind == kindRelay:
		return "raw relay (hash " + r.hash + ")"
	case !r.want.jingle():
		return r.method + " (SI)"
	}
	return r.name()
}

func secs3(s float64) string {
	if s <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", s)
}

func secs(s float64) string {
	if s < 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", s)
}

func mib(kib int64) string {
	if kib < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}

func machine() string {
	parts := []string{fmt.Sprintf("nproc %d", runtime.NumCPU()), runtime.Version(), runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		parts = append(parts, "linux "+strings.TrimSpace(string(b)))
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "prosody").Output(); err == nil {
		parts = append(parts, "prosody "+strings.TrimSpace(string(out)))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			parts = append(parts, "load "+strings.Join(f[:3], " "))
		}
	}
	return strings.Join(parts, ", ")
}

func human(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
