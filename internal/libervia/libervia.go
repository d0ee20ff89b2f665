// Package libervia runs Libervia 0.9 (Debian 12's libervia-backend and
// libervia-cli, formerly Salut à Toi) as an independent, headless file
// transfer peer for integration tests: Jingle File Transfer (XEP-0234) over
// SOCKS5 Bytestreams (XEP-0260/XEP-0065) or In-Band Bytestreams
// (XEP-0261/XEP-0047), with XEP-0300 hashes, and legacy Stream Initiation
// (XEP-0096). It is someone else's reading of those XEPs, against which
// xfer's Jingle and SI code can be checked.
//
// Each Peer is one stock Libervia backend on its own temporary directory,
// started by testdata/libervia/lv_backend.py with the pb bridge and
// loopback-only networking (it never offers or dials an interface address),
// with one profile connected to a private Prosody from internal/testserver.
// Send and Receive drive it through testdata/libervia/lv_ctl.py, which
// prints one JSON line per result. testdata/libervia/README.md says how
// Libervia picks its protocols and how to point it at an xfer JID.
//
// Everything runs with /usr/bin/python3 (the Debian interpreter, which
// sees /usr/share/libervia); a backend takes 4-9 s to start on two busy
// cores and 1-2 s to connect, so a test package starts its peers once and
// shares them.
// Every process is stopped by its PID; so is the gpg-agent that Libervia's
// OX plugin leaves behind (with gpgconf --kill, by its home directory).
package libervia

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"xfer/internal/testserver"
)

// Python is the interpreter the scripts run with: Debian's, not the first
// python3 on PATH (pyenv there has no "sat" module).
const Python = "/usr/bin/python3"

// InstallCommand installs what Installed looks for.
const InstallCommand = "apt-get update && apt-get install -y --no-install-recommends libervia-backend libervia-cli"

// ErrDeclined is returned by Send when the receiver declined the offer
// (Jingle session-terminate with <decline/>). An SI refusal is not seen
// by Libervia's sender: it times out instead.
var ErrDeclined = errors.New("libervia: the receiver declined the file")

const (
	pluginCheck = "/usr/share/libervia/sat/plugins/plugin_xep_0234.py"
	// DefaultResource is the resource of a peer's JID unless Options say otherwise.
	DefaultResource = "lv"
)

// Installed reports whether Libervia's backend and Debian's python are
// installed.
func Installed() bool {
	for _, p := range []string{pluginCheck, Python} {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// Scripts is the absolute path of testdata/libervia, found from this
// source file's path; $XFER_LIBERVIA_SCRIPTS overrides it (for binaries
// built with -trimpath).
func Scripts() string {
	if d := os.Getenv("XFER_LIBERVIA_SCRIPTS"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "libervia")
}

// Options shape a peer.
type Options struct {
	Resource string        // resource of its JID; DefaultResource if empty
	LogLevel string        // backend log level: debug, info (default), warning
	Timeout  time.Duration // limit for start and connection; 90 s if zero
}

// Peer is one running Libervia backend with a connected profile.
type Peer struct {
	jid     string
	user    string
	dir     string
	cmd     *exec.Cmd
	exited  chan struct{}
	out     *os.File
	mu      sync.Mutex
	recvs   map[*Receiving]bool
	stopped bool
	keep    bool

	// StartSecs and ConnectSecs say how long the backend took to be ready
	// and the profile to be created and connected.
	StartSecs, ConnectSecs float64
}

// Start starts a peer for user (registered on srv with password) and stops
// it when the test ends; on failure the test fails with the backend's log.
// If the test failed, the peer's directory is kept and its path logged.
func Start(tb testing.TB, srv *testserver.Server, user, password string, opts Options) *Peer {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeoutOr(opts.Timeout, 90*time.Second))
	defer cancel()
	p, err := StartPeer(ctx, srv, user, password, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			p.Keep()
			tb.Logf("libervia %s: directory kept: %s (stanzas: %s)", p.JID(), p.Dir(), p.XMLLog())
		}
		p.Stop()
	})
	return p
}

// StartPeer is Start for TestMain, without testing.TB: the caller must
// call Stop.
func StartPeer(ctx context.Context, srv *testserver.Server, user, password string, opts Options) (*Peer, error) {
	if !Installed() {
		return nil, fmt.Errorf("libervia is not installed: %s", InstallCommand)
	}
	if opts.Resource == "" {
		opts.Resource = DefaultResource
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	host, port, err := net.SplitHostPort(srv.Addr)
	if err != nil {
		return nil, err
	}
	// Short paths: the pb socket and gpg-agent's sockets live under it.
	dir, err := os.MkdirTemp("", "lv-"+user+"-")
	if err != nil {
		return nil, err
	}
	p := &Peer{user: user, dir: dir, jid: user + "@" + srv.Domain + "/" + opts.Resource,
		exited: make(chan struct{}), recvs: map[*Receiving]bool{}}
	ok := false
	defer func() {
		if !ok {
			p.Stop()
		}
	}()
	if p.out, err = os.Create(filepath.Join(dir, "backend.out")); err != nil {
		return nil, err
	}
	args := []string{filepath.Join(Scripts(), "lv_backend.py"), "--dir", dir, "--log-level", opts.LogLevel}
	if srv.CAFile != "" {
		args = append(args, "--ca", srv.CAFile)
	}
	t0 := time.Now()
	p.cmd = exec.Command(Python, args...)
	p.cmd.Env = pythonEnv()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("libervia: start backend: %w", err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()

	if err := p.waitReady(ctx); err != nil {
		return nil, err
	}
	p.StartSecs = time.Since(t0).Seconds()
	t1 := time.Now()
	setup := []string{"setup", "--jid", p.jid, "--password", password, "--server", host, "--port", port}
	if srv.CAFile != "" {
		setup = append(setup, "--ca")
	}
	lines, err := p.ctl(ctx, setup...)
	if err != nil {
		return nil, err
	}
	var r struct {
		OK  bool   `json:"ok"`
		JID string `json:"jid"`
	}
	if len(lines) == 0 || json.Unmarshal([]byte(lines[len(lines)-1]), &r) != nil || !r.OK {
		return nil, p.errorf("setup printed %q", lines)
	}
	if r.JID != "" {
		p.jid = r.JID
	}
	p.ConnectSecs = time.Since(t1).Seconds()
	ok = true
	return p, nil
}

// waitReady waits for the backend's "Backend is ready" log line.
func (p *Peer) waitReady(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		b, _ := os.ReadFile(p.out.Name())
		if bytes.Contains(b, []byte("Backend is ready")) {
			return nil
		}
		select {
		case <-p.exited:
			return p.errorf("backend exited at start-up")
		case <-ctx.Done():
			return p.errorf("backend not ready: %v", ctx.Err())
		case <-tick.C:
		}
	}
}

// JID is the peer's full JID, e.g. "alice@localhost/lv".
func (p *Peer) JID() string { return p.jid }

// Bare is the peer's bare JID.
func (p *Peer) Bare() string { j, _, _ := strings.Cut(p.jid, "/"); return j }

// Dir is the peer's instance directory (see lv_backend.py for its layout).
func (p *Peer) Dir() string { return p.dir }

// XMLLog is the path of the log of every stanza the peer sent or received.
func (p *Peer) XMLLog() string { return filepath.Join(p.dir, "xml.log") }

// LogMark is the current size of the stanza log: StanzasSince(mark)
// gives what was logged after it, e.g. the stanzas of one transfer.
func (p *Peer) LogMark() int64 {
	st, err := os.Stat(p.XMLLog())
	if err != nil {
		return 0
	}
	return st.Size()
}

// StanzasSince is the stanza log from mark on: one line per element,
// "TIME PROFILE IN|OUT XML", IBB payloads cut after 64 characters.
func (p *Peer) StanzasSince(mark int64) string {
	b, _ := os.ReadFile(p.XMLLog())
	if mark > int64(len(b)) {
		return ""
	}
	return string(b[mark:])
}

// Log is the backend's output so far (its log, and tracebacks).
func (p *Peer) Log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "backend.out"))
	return string(b)
}

// LogTail is the last n lines of Log.
func (p *Peer) LogTail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Keep keeps the peer's directory when it stops (it is removed otherwise,
// unless XFER_KEEP_LIBERVIA_DIR is set).
func (p *Peer) Keep() {
	p.mu.Lock()
	p.keep = true
	p.mu.Unlock()
}

func (p *Peer) errorf(format string, args ...any) error {
	return fmt.Errorf("libervia %s: %s\n--- backend log tail (%s):\n%s", p.jid, fmt.Sprintf(format, args...), p.dir, p.LogTail(40))
}

// Stop ends the receivers still running, the backend (SIGTERM, SIGKILL
// after 10 s) and the gpg-agent of its OX plugin, then removes the
// directory unless kept. Safe to call twice.
func (p *Peer) Stop() {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.stopped = true
	recvs := p.recvs
	p.recvs = nil
	keep := p.keep || os.Getenv("XFER_KEEP_LIBERVIA_DIR") != ""
	p.mu.Unlock()
	for r := range recvs {
		r.Close()
	}
	if p.cmd != nil && p.cmd.Process != nil {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(10 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.exited
			}
		}
	}
	p.killGPGAgents()
	if p.out != nil {
		p.out.Close()
	}
	if !keep {
		os.RemoveAll(p.dir)
	}
}

// killGPGAgents stops the gpg-agent of every GnuPG home the OX plugin made
// (local/gnupg-home/<profile>): it daemonises and outlives the backend.
func (p *Peer) killGPGAgents() {
	homes, _ := filepath.Glob(filepath.Join(p.dir, "local", "gnupg-home", "*"))
	gpgconf, err := exec.LookPath("gpgconf")
	if err != nil {
		return
	}
	for _, h := range homes {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = exec.CommandContext(ctx, gpgconf, "--homedir", h, "--kill", "gpg-agent").Run()
		cancel()
	}
}

// ctl runs lv_ctl.py ARGS to completion and returns its stdout lines; an
// exit status other than 0 is an error carrying its output and the log tail.
func (p *Peer) ctl(ctx context.Context, args ...string) ([]string, error) {
	argv := append([]string{filepath.Join(Scripts(), "lv_ctl.py"), "--dir", p.dir, "--timeout", ctlTimeout(ctx)}, args...)
	cmd := exec.CommandContext(ctx, Python, argv...)
	cmd.Env = pythonEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	lines := splitLines(stdout.String())
	if err != nil {
		return lines, &ctlError{exit: exitCode(err), err: p.errorf("lv_ctl %s: %v\n--- stdout:\n%s--- stderr:\n%s", args[0], err, stdout.String(), stderr.String())}
	}
	return lines, nil
}

type ctlError struct {
	exit int
	err  error
}

func (e *ctlError) Error() string { return e.err.Error() }

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// ctlTimeout is the script's own limit: a little less than ctx's deadline,
// so that it reports a timeout before it is killed.
func ctlTimeout(ctx context.Context) string {
	d := 120 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl) - 2*time.Second
	}
	if d < time.Second {
		d = time.Second
	}
	return fmt.Sprintf("%.1f", d.Seconds())
}

// SendOptions choose how Libervia sends; the zero value is its stock choice.
type SendOptions struct {
	Method    string // "jingle", "si", or "" (Jingle if the peer's disco#info has FT:5, else SI)
	Transport string // Jingle: "s5b", "ibb" (put IBB in session-initiate), or "" (S5B, IBB as fallback)
	S5B       string // own candidates/streamhosts offered: "all" (""), "direct", "proxy", "none"
	BlockSize int    // IBB block size; 0: Libervia's 4096
	// FixProxyActivate corrects Libervia's XEP-0260 proxy activation call,
	// without which a proxy it offered and that was chosen ends in IBB.
	FixProxyActivate bool
	SIMethods        string // SI stream methods offered: "s5b", "ibb", "s5b,ibb"; "" both, S5B first
	Name             string // file name to announce; the file's own if empty
}

// SendResult is Libervia's account of a send.
type SendResult struct {
	OK         bool           `json:"ok"`
	Error      string         `json:"error"`
	ProgressID string         `json:"progress_id"`
	To         string         `json:"to"`
	File       string         `json:"file"`
	Size       int64          `json:"size"`
	SHA256     string         `json:"sha256"`   // of the file sent
	Secs       float64        `json:"secs"`     // from fileSend to the end of the progress
	Metadata   map[string]any `json:"metadata"` // of Libervia's progressFinished
}

// Send sends file to the full JID to (a bare JID makes Libervia use Jingle
// Message Initiation) and waits until Libervia reports the end of the
// transfer, or ctx ends. A declined offer returns ErrDeclined.
func (p *Peer) Send(ctx context.Context, file, to string, o SendOptions) (SendResult, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 120*time.Second)
		defer cancel()
	}
	args := []string{"send", file, to}
	for flag, v := range map[string]string{"--method": o.Method, "--transport": o.Transport, "--s5b": o.S5B, "--name": o.Name, "--si-methods": o.SIMethods} {
		if v != "" {
			args = append(args, flag, v)
		}
	}
	if o.BlockSize > 0 {
		args = append(args, "--block-size", fmt.Sprint(o.BlockSize))
	}
	if o.FixProxyActivate {
		args = append(args, "--fix-proxy-activate")
	}
	lines, err := p.ctl(ctx, args...)
	var r SendResult
	for _, l := range lines {
		if strings.HasPrefix(l, "{") {
			_ = json.Unmarshal([]byte(l), &r)
		}
	}
	if err != nil {
		var ce *ctlError
		if errors.As(err, &ce) && ce.exit == 3 {
			return r, fmt.Errorf("%w: %v", ErrDeclined, err)
		}
		return r, err
	}
	if !r.OK {
		return r, p.errorf("send reported %q", lines)
	}
	return r, nil
}

// RecvOptions shape a receiver.
type RecvOptions struct {
	Count     int    // offers to handle before the receiver ends; 1 if zero, -1 for no limit
	Overwrite bool   // answer yes when a file of the same name exists (else refuse the offer)
	Decline   bool   // decline the offers instead
	S5B       string // own S5B candidates offered as Jingle responder: "all", "direct", "proxy", "none"
	SIMethods string // SI stream methods accepted: "s5b", "ibb", "s5b,ibb"
	// Timeout is the receiver's own limit; 10 minutes if zero.
	Timeout time.Duration
}

// Received is Libervia's account of one offer it handled.
type Received struct {
	OK           bool    `json:"ok"`
	Error        string  `json:"error"`
	Path         string  `json:"path"`
	Size         int64   `json:"size"`
	SHA256       string  `json:"sha256"`        // of the file on disk
	HashVerified bool    `json:"hash_verified"` // Libervia checked the sender's XEP-0300 checksum
	HashAlgo     string  `json:"hash_algo"`
	Hash         string  `json:"hash"`
	From         string  `json:"from"` // the sender's full JID
	ProgressID   string  `json:"progress_id"`
	Secs         float64 `json:"secs"` // from the acceptance to the end
}

// Receiving is a running receiver (one lv_ctl.py recv process).
type Receiving struct {
	p      *Peer
	cmd    *exec.Cmd
	notify chan struct{} // a line was added to all
	done   chan struct{} // closed once the process has been waited for
	err    error         // its exit status, valid after done
	mu     sync.Mutex
	stderr bytes.Buffer
	all    []string // stdout lines so far
	next   int      // all[next:] not yet consumed by Next
	once   sync.Once
}

// Receive starts a receiver that accepts into dir every offer from the
// bare JID fromBare (and confirms the "not in roster" question for it),
// including offers already pending. It returns once the receiver listens;
// Next gives each result. Close stops it (Stop of the peer does too).
// Only one receiver per peer should run at a time.
func (p *Peer) Receive(ctx context.Context, dir, fromBare string, o RecvOptions) (*Receiving, error) {
	count := o.Count
	switch {
	case count == 0:
		count = 1
	case count < 0:
		count = 0
	}
	limit := timeoutOr(o.Timeout, 10*time.Minute)
	args := []string{filepath.Join(Scripts(), "lv_ctl.py"), "--dir", p.dir, "--timeout", fmt.Sprint(limit.Seconds()),
		"recv", dir, "--from", fromBare, "--count", fmt.Sprint(count)}
	if o.Overwrite {
		args = append(args, "--overwrite")
	}
	if o.Decline {
		args = append(args, "--decline")
	}
	if o.S5B != "" {
		args = append(args, "--s5b", o.S5B)
	}
	if o.SIMethods != "" {
		args = append(args, "--si-methods", o.SIMethods)
	}
	r := &Receiving{p: p, notify: make(chan struct{}, 1), done: make(chan struct{})}
	r.cmd = exec.Command(Python, args...)
	r.cmd.Env = pythonEnv()
	r.cmd.Stderr = &lockedWriter{mu: &r.mu, w: &r.stderr}
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return nil, errors.New("libervia: peer stopped")
	}
	if err := r.cmd.Start(); err != nil {
		p.mu.Unlock()
		return nil, err
	}
	p.recvs[r] = true
	p.mu.Unlock()
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			r.mu.Lock()
			r.all = append(r.all, sc.Text())
			r.mu.Unlock()
			select {
			case r.notify <- struct{}{}:
			default:
			}
		}
		io.Copy(io.Discard, stdout)
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	l, err := r.line(ctx)
	if err == nil && l != "READY" {
		err = r.errorf("receiver printed %q before READY", l)
	}
	if err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// line returns the receiver's next unconsumed stdout line.
func (r *Receiving) line(ctx context.Context) (string, error) {
	for {
		r.mu.Lock()
		if r.next < len(r.all) {
			l := r.all[r.next]
			r.next++
			r.mu.Unlock()
			return l, nil
		}
		r.mu.Unlock()
		select {
		case <-r.notify:
		case <-r.done:
			r.mu.Lock()
			more := r.next < len(r.all)
			r.mu.Unlock()
			if !more {
				return "", r.errorf("receiver ended (%v)", r.err)
			}
		case <-ctx.Done():
			return "", r.errorf("receiver: %v", ctx.Err())
		}
	}
}

// Next waits for the receiver's next result. A failed transfer is a
// Received with OK false and an error naming it.
func (r *Receiving) Next(ctx context.Context) (Received, error) {
	for {
		l, err := r.line(ctx)
		if err != nil {
			return Received{}, err
		}
		var got struct {
			Type string `json:"type"`
			Received
		}
		if err := json.Unmarshal([]byte(l), &got); err != nil {
			return Received{}, r.errorf("receiver printed %q", l)
		}
		switch got.Type {
		case "received":
			if !got.OK {
				return got.Received, r.errorf("transfer failed: %s", got.Error)
			}
			return got.Received, nil
		case "error":
			return got.Received, r.errorf("receiver: %s", got.Error)
		}
	}
}

// Close stops the receiver process (by its PID) and waits for it.
func (r *Receiving) Close() {
	r.once.Do(func() {
		select {
		case <-r.done:
		default:
			_ = r.cmd.Process.Kill()
			<-r.done
		}
		r.p.mu.Lock()
		delete(r.p.recvs, r)
		r.p.mu.Unlock()
	})
}

// Output is what the receiver printed so far, for failure messages.
func (r *Receiving) Output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("--- lv_ctl recv stdout:\n%s\n--- stderr:\n%s", strings.Join(r.all, "\n"), r.stderr.String())
}

func (r *Receiving) errorf(format string, args ...any) error {
	return r.p.errorf("%s\n%s", fmt.Sprintf(format, args...), r.Output())
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// pythonEnv is the environment for the scripts: no pyenv/virtualenv
// settings that would point Debian's python elsewhere, no .pyc files
// written into testdata, no session bus.
func pythonEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "DBUS_SESSION_BUS_ADDRESS":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1")
}

func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func timeoutOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
