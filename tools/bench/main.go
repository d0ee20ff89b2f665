// Command bench measures xfer's in-band throughput (SI + XEP-0047 IBB)
// through a private Prosody next to a raw TCP loopback copy of the same
// file, measured in the same run, with the peak memory (max RSS) and CPU
// time of both sides and of the server. `make bench` builds bin/xfer and
// runs it.
//
// It starts a private Prosody (internal/testserver) with the accounts alice
// and bob, who have each other in their rosters, creates a random file
// (-size, 64 MiB by default) and, -runs times, interleaving the rows so that
// all of them see the same machine load:
//
//   - raw TCP: two child processes of this program (re-executed with
//     XFER_BENCH_ROLE set) copy the file over a 127.0.0.1 connection with a
//     plain 64 KiB read/write loop (no sendfile/splice, no TLS);
//   - xfer: `bin/xfer receive --once` as bob and `bin/xfer send --method
//     ibb` as alice, both with --json; the throughput is the sender's "done"
//     event (IBB open to close, after the offer was accepted), and the wall
//     time of the send process (login, MD5 of the file, finding bob, offer)
//     is shown next to it. The received file's MD5 is checked against the
//     source; a mismatch fails the benchmark.
//
// Unless -quick is given, xfer is also measured with a few IBB settings
// (window, block size), against a second Prosody with TCP_NODELAY
// (testserver.Options.NoNagle) and against a third without TLS
// (Options.Plaintext, xfer --no-tls), one row each: they show where the
// time goes.
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
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"xfer/internal/testserver"
)

// roleEnv selects a child role when this program re-executes itself.
const roleEnv = "XFER_BENCH_ROLE"

func main() {
	switch role := os.Getenv(roleEnv); role {
	case "":
	case "tcp-recv", "tcp-send":
		if err := child(role); err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		return
	default:
		fmt.Fprintf(os.Stderr, "bench: unknown %s=%q\n", roleEnv, role)
		os.Exit(2)
	}

	sizeFlag := flag.String("size", "64MiB", "size of the test file (e.g. 64MiB, 512KiB, 1GB)")
	runs := flag.Int("runs", 1, "measure every row this many times (interleaved); the median is shown")
	xferBin := flag.String("xfer", "bin/xfer", "the xfer binary to measure")
	quick := flag.Bool("quick", false, "only raw TCP and xfer with default settings")
	timeout := flag.Duration("timeout", 10*time.Minute, "limit for one transfer")
	flag.Parse()
	size, err := parseSize(*sizeFlag)
	if err != nil || size <= 0 {
		fmt.Fprintf(os.Stderr, "bench: -size %q: not a positive size\n", *sizeFlag)
		os.Exit(2)
	}
	if *runs < 1 {
		fmt.Fprintln(os.Stderr, "bench: -runs must be at least 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, config{size: size, runs: *runs, xfer: *xferBin, quick: *quick, timeout: *timeout})
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		if ctx.Err() != nil {
			os.Exit(130)
		}
		os.Exit(1)
	}
}

type config struct {
	size    int64
	runs    int
	xfer    string
	quick   bool
	timeout time.Duration
}

// row is one line of the table: a way of moving the file.
type row struct {
	method   string
	settings string
	raw      bool               // raw TCP copy instead of xfer
	server   testserver.Options // the Prosody to go through
	args     []string           // extra `xfer send` flags
	results  []result
}

// result is one measurement of a row.
type result struct {
	bytes       int64
	seconds     float64 // the transfer itself
	wall        float64 // the sending process, start to exit
	sendCPU     float64
	recvCPU     float64
	serverCPU   float64 // -1: not measured
	sendRSS     int64   // KiB
	recvRSS     int64   // KiB
	serverHWMKB int64   // KiB, -1: not measured
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

	fmt.Fprintf(os.Stderr, "bench: creating a %s random file\n", human(cfg.size))
	src := filepath.Join(dir, "payload.bin")
	sum, err := makeFile(src, cfg.size)
	if err != nil {
		return err
	}

	rows := []*row{
		{method: "raw TCP", settings: "loopback, 64 KiB read/write", raw: true},
		{method: "xfer ibb", settings: "defaults"},
	}
	if !cfg.quick {
		rows = append(rows,
			&row{method: "xfer ibb", settings: "--ibb-window 4", args: []string{"--ibb-window", "4"}},
			&row{method: "xfer ibb", settings: "--ibb-window 64", args: []string{"--ibb-window", "64"}},
			&row{method: "xfer ibb", settings: "--ibb-block-size 8192", args: []string{"--ibb-block-size", "8192"}},
			&row{method: "xfer ibb", settings: "--ibb-block-size 65535", args: []string{"--ibb-block-size", "65535"}},
			&row{method: "xfer ibb", settings: "defaults, Prosody TCP_NODELAY", server: noNagle},
			&row{method: "xfer ibb", settings: "--ibb-block-size 65535, Prosody TCP_NODELAY", server: noNagle, args: []string{"--ibb-block-size", "65535"}},
			&row{method: "xfer ibb", settings: "defaults, no TLS", server: noTLS},
			&row{method: "xfer ibb", settings: "--ibb-block-size 65535, no TLS", server: noTLS, args: []string{"--ibb-block-size", "65535"}},
		)
	}

	servers := map[testserver.Options]*server{}
	defer func() {
		for _, s := range servers {
			s.srv.Stop()
		}
	}()
	for _, r := range rows {
		if r.raw || servers[r.server] != nil {
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
		for _, r := range rows {
			if err := ctx.Err(); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "bench: run %d/%d: %s, %s\n", i+1, cfg.runs, r.method, r.settings)
			tctx, cancel := context.WithTimeout(ctx, cfg.timeout)
			var res result
			if r.raw {
				res, err = rawTCP(tctx, self, dir, src, sum, cfg.size)
			} else {
				res, err = viaXfer(tctx, xfer, servers[r.server], dir, src, sum, cfg.size, r.args)
			}
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("%s (%s): %w", r.method, r.settings, err)
			}
			r.results = append(r.results, res)
		}
	}
	printTable(os.Stdout, cfg, rows)
	return nil
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

// rawTCP copies src over a loopback TCP connection between two child
// processes of this program and checks what arrived.
func rawTCP(ctx context.Context, self, dir, src, sum string, size int64) (result, error) {
	out := filepath.Join(dir, "raw-received.bin")
	defer os.Remove(out)
	recv := exec.CommandContext(ctx, self)
	recv.Env = append(os.Environ(), roleEnv+"=tcp-recv", "XFER_BENCH_FILE="+out)
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
		return result{}, errors.New("raw TCP receiver did not report its address")
	}
	addr := strings.TrimSpace(lines.Text())

	send := exec.CommandContext(ctx, self)
	send.Env = append(os.Environ(), roleEnv+"=tcp-send", "XFER_BENCH_FILE="+src, "XFER_BENCH_ADDR="+addr)
	send.Stderr = os.Stderr
	start := time.Now()
	if err := send.Run(); err != nil {
		return result{}, fmt.Errorf("raw TCP sender: %w", err)
	}
	wall := time.Since(start).Seconds()
	var rep childReport
	if !lines.Scan() {
		recv.Wait()
		return result{}, errors.New("raw TCP receiver did not report")
	}
	if err := json.Unmarshal(lines.Bytes(), &rep); err != nil {
		return result{}, fmt.Errorf("raw TCP receiver: %w", err)
	}
	if err := recv.Wait(); err != nil {
		return result{}, fmt.Errorf("raw TCP receiver: %w", err)
	}
	if err := verify(out, sum, size); err != nil {
		return result{}, fmt.Errorf("raw TCP: %w", err)
	}
	res := result{bytes: rep.Bytes, seconds: rep.Seconds, serverCPU: -1, serverHWMKB: -1}
	res.sendRSS, res.sendCPU = usage(send.ProcessState)
	res.recvRSS, res.recvCPU = usage(recv.ProcessState)
	res.wall = wall
	return res, nil
}

// childReport is what the raw TCP receiver prints when done.
type childReport struct {
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
}

// child runs one side of the raw TCP copy.
func child(role string) error {
	file := os.Getenv("XFER_BENCH_FILE")
	buf := make([]byte, 64<<10)
	switch role {
	case "tcp-recv":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		fmt.Println(l.Addr().String())
		c, err := l.Accept()
		if err != nil {
			return err
		}
		l.Close()
		start := time.Now()
		f, err := os.Create(file)
		if err != nil {
			return err
		}
		// Plain read/write loops on both sides: no sendfile or splice,
		// as an application copying through user space does.
		n, err := io.CopyBuffer(onlyWriter{f}, onlyReader{c}, buf)
		if err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		secs := time.Since(start).Seconds()
		c.Close()
		return json.NewEncoder(os.Stdout).Encode(childReport{Bytes: n, Seconds: secs})
	case "tcp-send":
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		c, err := net.Dial("tcp", os.Getenv("XFER_BENCH_ADDR"))
		if err != nil {
			return err
		}
		if _, err := io.CopyBuffer(onlyWriter{c}, onlyReader{f}, buf); err != nil {
			return err
		}
		return c.Close()
	}
	return fmt.Errorf("unknown role %q", role)
}

// onlyReader and onlyWriter hide ReaderFrom/WriterTo so that io.CopyBuffer
// really copies through the buffer.
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }

// event is the part of xfer's --json events the benchmark reads.
type event struct {
	Type    string  `json:"type"`
	Path    string  `json:"path"`
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	Rate    float64 `json:"bytes_per_second"`
	Error   string  `json:"error"`
}

// viaXfer sends src from alice to bob with bin/xfer over IBB.
func viaXfer(ctx context.Context, xfer string, s *server, dir, src, sum string, size int64, extra []string) (result, error) {
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
	recv := exec.CommandContext(ctx, xfer, append(append([]string{"receive"}, tls...), "--dir", inbox,
		"--from", "alice@localhost", "--once", "--quiet", "--json")...)
	recv.Env, recv.Stdout, recv.Stderr = env("bob"), &recvOut, &recvErr
	if err := recv.Start(); err != nil {
		return result{}, err
	}
	defer recv.Process.Kill() // no-op once it has been waited for

	args := append(append([]string{"send"}, tls...), "--method", "ibb", "--quiet", "--json", "--wait-online", "30s")
	args = append(args, extra...)
	args = append(args, src, "bob@localhost")
	send := exec.CommandContext(ctx, xfer, args...)
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
	if err := verify(got.Path, sum, size); err != nil {
		return result{}, fmt.Errorf("xfer: %w", err)
	}
	res := result{bytes: sent.Bytes, seconds: sent.Seconds, wall: wall, serverCPU: -1, serverHWMKB: -1}
	res.sendRSS, res.sendCPU = usage(send.ProcessState)
	res.recvRSS, res.recvCPU = usage(recv.ProcessState)
	if cpu1 := procCPU(s.pid); cpu0 >= 0 && cpu1 >= 0 {
		res.serverCPU = cpu1 - cpu0
	}
	res.serverHWMKB = procHWM(s.pid)
	return res, nil
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

// makeFile writes size random bytes to path and returns their MD5.
func makeFile(path string, size int64) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	h := md5.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
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

func printTable(w io.Writer, cfg config, rows []*row) {
	var rawSecs float64
	for _, r := range rows {
		if r.raw {
			rawSecs = median(r.results).seconds
		}
	}
	fmt.Fprintf(w, "\nxfer bench: %s file, %d run(s), median shown; %s\n", human(cfg.size), cfg.runs, machine())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "method\tsettings\tbytes\tseconds\tMB/s\ttime vs raw TCP\tsend wall s\tsender CPU s\treceiver CPU s\tProsody CPU s\tsender peak RSS\treceiver peak RSS\tProsody peak RSS")
	for _, r := range rows {
		m := median(r.results)
		ratio := "-"
		if rawSecs > 0 {
			ratio = fmt.Sprintf("x%.1f", m.seconds/rawSecs)
		}
		mbps := "-"
		if m.seconds > 0 {
			mbps = fmt.Sprintf("%.1f", float64(m.bytes)/m.seconds/1e6)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.3f\t%s\t%s\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.method, r.settings, m.bytes, m.seconds, mbps, ratio, m.wall,
			secs(m.sendCPU), secs(m.recvCPU), secs(m.serverCPU),
			mib(m.sendRSS), mib(m.recvRSS), mib(m.serverHWMKB))
	}
	tw.Flush()
	fmt.Fprintln(w, "defaults: xfer's own IBB settings (README: --ibb-block-size 4096, --ibb-window 16); Prosody with Nagle on and TLS, as Debian ships it.")
	fmt.Fprintln(w, "seconds: raw TCP from accept to the last byte written; xfer from the sender's IBB open to its close (the --json done event).")
	fmt.Fprintln(w, "send wall s: the whole `xfer send` process (login, MD5 of the file, finding bob, offer, transfer). MB/s = 10^6 bytes/s.")
	fmt.Fprintln(w, "Prosody peak RSS is its high-water mark since start; CPU s is user+system. The machine is shared: compare the ratios within this run, not absolute numbers across runs.")
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

// parseSize reads sizes like "64MiB", "512KiB", "1GB", "100".
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"kB", 1e3}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	return n * mult, nil
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
