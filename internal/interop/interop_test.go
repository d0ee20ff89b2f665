package interop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"xfer/internal/ibb"
	"xfer/internal/negotiate"
	"xfer/internal/session"
	"xfer/internal/testserver"
	"xfer/internal/transfer"
)

// python is Debian's interpreter: python3-slixmpp installs into its
// dist-packages, which other pythons on PATH (pyenv) do not see.
const python = "/usr/bin/python3"

const (
	testTimeout   = 60 * time.Second // each transfer, both sides
	scriptTimeout = 50               // seconds: the drivers' own overall limit
)

// Accounts on the package's server.
const (
	xferUser = "xfer"     // the in-process xfer end
	slixUser = "slixmpp"  // the slixmpp end
	otherUsr = "stranger" // allowed by nobody
)

var (
	srv     *testserver.Server
	roots   *x509.CertPool
	scripts string // testdata/slixmpp, absolute
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		// Every test here needs the servers and the peers.
		_ = flag.Set("test.skip", ".")
		return m.Run()
	}
	var err error
	if scripts, err = filepath.Abs(filepath.Join("..", "..", "testdata", "slixmpp")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Plain: the matrix's Libervia logs in through Twisted, which has no SCRAM.
	if srv, err = testserver.Start(testserver.Options{Plain: true}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer srv.Stop()
	for _, u := range []string{xferUser, slixUser, otherUsr} {
		if err := srv.Register(u, password(u)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	pem, err := os.ReadFile(srv.CAFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	roots = x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	return m.Run()
}

func password(user string) string { return user + "-pw" }

func bare(user string) string { return user + "@" + srv.Domain }

var (
	slixOnce sync.Once
	slixErr  error
)

// requireSlixmpp fails the test when /usr/bin/python3 cannot import
// slixmpp: the interoperability tests are part of the suite, not optional.
func requireSlixmpp(t *testing.T) {
	t.Helper()
	slixOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, python, "-c", "import slixmpp; print(slixmpp.__version__)")
		cmd.Env = pythonEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			slixErr = fmt.Errorf("%s cannot import slixmpp (%v): %s\ninstall it: apt-get update && apt-get install -y python3-slixmpp", python, err, out)
		}
	})
	if slixErr != nil {
		t.Fatal(slixErr)
	}
}

// pythonEnv is the environment for the drivers: no pyenv or virtualenv
// settings that would point Debian's python elsewhere, no .pyc files
// written into testdata.
func pythonEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "SLIX_PASSWORD":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1")
	return append(env, extra...)
}

// login logs an xfer session in as user with a fresh resource.
func login(t *testing.T, user string) *session.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := session.Dial(ctx, session.Config{
		JID:      bare(user) + "/xfer-" + session.NewID()[:8],
		Password: password(user),
		Server:   srv.Addr,
		RootCAs:  roots,
		Timeout:  10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// driver is one running slixmpp script.
type driver struct {
	name   string
	cmd    *exec.Cmd
	lines  chan string // stdout, line by line; closed at EOF
	stderr testserver.LockedBuffer
	mu     sync.Mutex
	stdout []string
	done   chan struct{} // closed once the process has been waited for
	err    error         // its exit status, valid after done
}

// startDriver runs testdata/slixmpp/SCRIPT as user with the server's
// connection arguments and args; the process ends with ctx or the test.
func startDriver(ctx context.Context, t *testing.T, script, user string, args ...string) *driver {
	t.Helper()
	requireSlixmpp(t)
	host, port, err := net.SplitHostPort(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	argv := append([]string{
		filepath.Join(scripts, script),
		"--jid", bare(user), "--host", host, "--port", port, "--cafile", srv.CAFile,
		"--timeout", fmt.Sprint(scriptTimeout),
	}, args...)
	if os.Getenv("XFER_INTEROP_DEBUG") != "" {
		argv = append(argv, "--debug")
	}
	ctx, cancel := context.WithCancel(ctx)
	d := &driver{name: script, lines: make(chan string, 100), done: make(chan struct{})}
	d.cmd = exec.CommandContext(ctx, python, argv...)
	d.cmd.Env = pythonEnv("SLIX_PASSWORD=" + password(user))
	d.cmd.Stderr = &d.stderr
	d.cmd.WaitDelay = 5 * time.Second
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", script, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			d.mu.Lock()
			d.stdout = append(d.stdout, sc.Text())
			d.mu.Unlock()
			select {
			case d.lines <- sc.Text():
			default: // nobody waits for so many lines; they stay in d.stdout
			}
		}
		io.Copy(io.Discard, stdout)
		close(d.lines)
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-d.done
	})
	return d
}

// output is everything the script printed so far, for failure messages.
func (d *driver) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return fmt.Sprintf("--- %s stdout:\n%s\n--- %s stderr:\n%s", d.name, strings.Join(d.stdout, "\n"), d.name, d.stderr.String())
}

// report is a driver's JSON line.
type report struct {
	Type      string `json:"type"`
	OK        bool   `json:"ok"`
	Error     string `json:"error"`
	JID       string `json:"jid"`
	Name      string `json:"name"`
	Size      int64  `json:"size"`
	Hash      string `json:"hash"`
	Bytes     int64  `json:"bytes"`
	MD5       string `json:"md5"`
	SID       string `json:"sid"`
	BlockSize int    `json:"block_size"`
	Method    string `json:"method"`
	Path      string `json:"path"`
	From      string `json:"from"`
}

// next waits for the driver's next report of type typ.
func (d *driver) next(ctx context.Context, t *testing.T, typ string) report {
	t.Helper()
	for {
		select {
		case line, ok := <-d.lines:
			if !ok {
				<-d.done
				t.Fatalf("%s ended (%v) without a %q line\n%s", d.name, d.err, typ, d.output())
			}
			var r report
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("%s printed a line that is not JSON: %q\n%s", d.name, line, d.output())
			}
			if r.Type == typ {
				return r
			}
			if r.Type == "result" {
				<-d.done
				t.Fatalf("%s failed before its %q line: %s\n%s", d.name, typ, r.Error, d.output())
			}
		case <-ctx.Done():
			t.Fatalf("no %q line from %s: %v\n%s", typ, d.name, ctx.Err(), d.output())
		}
	}
}

// wait waits for the script to exit and fails the test unless it exited 0.
func (d *driver) wait(ctx context.Context, t *testing.T) {
	t.Helper()
	select {
	case <-d.done:
	case <-ctx.Done():
		t.Fatalf("%s still running: %v\n%s", d.name, ctx.Err(), d.output())
	}
	if d.err != nil {
		t.Fatalf("%s: %v\n%s", d.name, d.err, d.output())
	}
}

func writeRandom(t *testing.T, dir, name string, size int64) (string, string) {
	t.Helper()
	return testserver.WriteRandom(t, dir, name, size)
}

// sameFile fails unless the files at got and want hold the same bytes.
func sameFile(t *testing.T, got, want string) {
	t.Helper()
	g, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g, w) {
		t.Fatalf("%s (%d bytes) differs from %s (%d bytes)", got, len(g), want, len(w))
	}
}

func md5Hex(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

// sizes are the files sent in each direction: empty (open then close, no
// data), one byte, and several MiB (hundreds of blocks).
var sizes = []struct {
	name string
	size int64
}{
	{"empty", 0},
	{"one-byte", 1},
	{"3MiB", 3<<20 + 12345},
}

// slixmpp offers a file with SI and sends it over IBB the way slixmpp
// applications do (IBBytestream.sendfile: 4096-byte blocks, one in flight);
// xfer's receiver accepts it, checks size and MD5 and stores it.
func TestSlixmppSendsToXfer(t *testing.T) {
	for _, tc := range sizes {
		t.Run(tc.name, func(t *testing.T) {
			sent := slixmppToXfer(t, tc.name, tc.size)
			if sent.BlockSize != 4096 {
				t.Fatalf("slixmpp sent %d-byte blocks, want its default 4096", sent.BlockSize)
			}
		})
	}
}

// slixmpp keeps eight 8192-byte blocks in flight: xfer's session hands
// each IQ to its own goroutine, and its receiver must put them back in
// order.
func TestSlixmppPipelinedToXfer(t *testing.T) {
	slixmppToXfer(t, "pipelined", 3<<20+777, "--block-size", "8192", "--window", "8")
}

// slixmppToXfer starts an xfer receiver that allows the slixmpp account,
// sends it a file of size random bytes with si_send.py, checks both sides'
// accounts of it, and returns slixmpp's.
func slixmppToXfer(t *testing.T, name string, size int64, driverArgs ...string) report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	xs := login(t, xferUser)
	dir := t.TempDir()
	r, err := transfer.NewReceiver(ctx, xs, transfer.ReceiveOptions{Dir: dir, Allow: []string{bare(slixUser)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	src, sum := writeRandom(t, t.TempDir(), "from slixmpp "+name+".bin", size)

	d := startDriver(ctx, t, "si_send.py", slixUser, append([]string{"--to", xs.JID(), "--file", src}, driverArgs...)...)
	sent := d.next(ctx, t, "result")
	d.wait(ctx, t)
	if !sent.OK || sent.Bytes != size || sent.MD5 != sum || sent.Method != transfer.MethodIBB {
		t.Fatalf("slixmpp reports %+v, want %d bytes with md5 %s over IBB\n%s", sent, size, sum, d.output())
	}

	res, err := r.Next(ctx)
	if err != nil {
		t.Fatalf("xfer receiver: %v\n%s", err, d.output())
	}
	if res.Path != filepath.Join(dir, filepath.Base(src)) || res.Size != size || res.Hash != sum ||
		res.Method != "ibb" || res.SID != sent.SID || session.Bare(res.Peer) != bare(slixUser) {
		t.Fatalf("xfer result %+v; slixmpp sent %+v", res, sent)
	}
	sameFile(t, res.Path, src)
	if got := md5Hex(t, res.Path); got != sum {
		t.Fatalf("stored md5 %s, want %s", got, sum)
	}
	return sent
}

// xfer offers a file with SI and sends it over IBB at its default block
// size (the one that fills 8 KiB records, padded: ibb.Options.AlignRecords);
// slixmpp accepts it.
func TestXferSendsToSlixmpp(t *testing.T) {
	for _, tc := range sizes {
		t.Run(tc.name, func(t *testing.T) {
			got, to := xferToSlixmpp(t, tc.name, tc.size, ibb.Options{})
			if want := ibb.FillBlockSize(to, got.SID); got.BlockSize != want || want < transfer.DefaultIBBBlockSize {
				t.Fatalf("slixmpp accepted block-size %d, want xfer's default %d (filling a record)", got.BlockSize, want)
			}
		})
	}
}

// xfer opens with 65535-byte blocks; slixmpp answers resource-constraint
// above its max_block_size (8192), and xfer retries on the same sid with
// 32768, 16384, then 8192, which slixmpp accepts. Stock slixmpp refuses
// every retry (next test), so the receiver runs with its quirk fixed.
func TestXferSendsToSlixmppBlockSizeRetry(t *testing.T) {
	got, _ := xferToSlixmpp(t, "retry", 3<<20+999, ibb.Options{BlockSize: ibb.MaxBlockSize}, "--ibb-retry-fix")
	if got.BlockSize != 8192 {
		t.Fatalf("slixmpp accepted block-size %d, want 8192 after xfer's retries", got.BlockSize)
	}
}

// What a user of --ibb-block-size above 8192 meets with a stock slixmpp
// receiver: the first open is answered resource-constraint, and the retry
// not-acceptable, because slixmpp forgot the sid it accepted (quirk 3 in
// testdata/slixmpp/xferslix.py). xfer must fail cleanly with a refusal
// that names the condition, soon, not hang.
func TestXferLargeBlockToStockSlixmppIsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	d := startDriver(ctx, t, "si_receive.py", slixUser, "--dir", t.TempDir(), "--from", bare(xferUser))
	ready := d.next(ctx, t, "ready")
	xs := login(t, xferUser)
	src, _ := writeRandom(t, t.TempDir(), "big blocks.bin", 100_000)
	sd := &transfer.Sender{S: xs, Opts: transfer.SendOptions{Method: "ibb", AcceptTimeout: 20 * time.Second, IBB: ibb.Options{BlockSize: 16384}}}
	_, err := sd.Send(ctx, ready.JID, src)
	var se *session.StanzaError
	if !errors.Is(err, ibb.ErrRefused) || !errors.As(err, &se) || se.Condition != session.CondNotAcceptable {
		t.Fatalf("err = %v, want ibb.ErrRefused with not-acceptable\n%s", err, d.output())
	}
	if ctx.Err() != nil {
		t.Fatalf("took until the test's deadline: %v", err)
	}
}

// xferToSlixmpp starts slixmpp's receiver, sends it a file of size random
// bytes with xfer over IBB, checks both sides' accounts of it, and returns
// slixmpp's.
func xferToSlixmpp(t *testing.T, name string, size int64, opts ibb.Options, driverArgs ...string) (got report, to string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	dir := t.TempDir()
	d := startDriver(ctx, t, "si_receive.py", slixUser, append([]string{"--dir", dir, "--from", bare(xferUser)}, driverArgs...)...)
	ready := d.next(ctx, t, "ready")
	if session.Bare(ready.JID) != bare(slixUser) || session.Resource(ready.JID) == "" {
		t.Fatalf("slixmpp is online as %q", ready.JID)
	}

	xs := login(t, xferUser)
	src, sum := writeRandom(t, t.TempDir(), "from xfer "+name+".bin", size)
	sd := &transfer.Sender{S: xs, Opts: transfer.SendOptions{Method: "ibb", AcceptTimeout: 20 * time.Second, IBB: opts}}
	res, err := sd.Send(ctx, ready.JID, src)
	if err != nil {
		t.Fatalf("xfer send: %v\n%s", err, d.output())
	}
	if res.Method != "ibb" || res.Hash != sum || res.Size != size || res.Offset != 0 {
		t.Fatalf("xfer result %+v", res)
	}

	got = d.next(ctx, t, "result")
	d.wait(ctx, t)
	if !got.OK || got.SID != res.SID || got.Bytes != size || got.Size != size ||
		got.MD5 != sum || got.Hash != sum || got.Name != filepath.Base(src) || session.Bare(got.From) != bare(xferUser) {
		t.Fatalf("slixmpp reports %+v; xfer sent %+v\n%s", got, res, d.output())
	}
	if got.Path != filepath.Join(dir, filepath.Base(src)) {
		t.Fatalf("slixmpp wrote %q", got.Path)
	}
	sameFile(t, got.Path, src)
	return got, ready.JID
}

// Refusals cross in both directions: each side answers an offer from a
// sender it does not allow with forbidden, and the other side reports it as
// a refusal.
func TestRefusals(t *testing.T) {
	t.Run("slixmpp declines xfer", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		d := startDriver(ctx, t, "si_receive.py", slixUser, "--dir", t.TempDir(), "--from", bare(otherUsr))
		ready := d.next(ctx, t, "ready")
		xs := login(t, xferUser)
		src, _ := writeRandom(t, t.TempDir(), "unwanted.bin", 1000)
		_, err := (&transfer.Sender{S: xs, Opts: transfer.SendOptions{Method: "ibb", AcceptTimeout: 20 * time.Second}}).Send(ctx, ready.JID, src)
		if !errors.Is(err, transfer.ErrRefused) || !errors.Is(err, negotiate.ErrDeclined) {
			t.Fatalf("err = %v, want a refusal (declined)\n%s", err, d.output())
		}
	})
	t.Run("xfer refuses slixmpp", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		xs := login(t, xferUser)
		dir := t.TempDir()
		if _, err := transfer.NewReceiver(ctx, xs, transfer.ReceiveOptions{Dir: dir, Allow: []string{bare(otherUsr)}}, nil); err != nil {
			t.Fatal(err)
		}
		src, _ := writeRandom(t, t.TempDir(), "unwanted.bin", 1000)
		d := startDriver(ctx, t, "si_send.py", slixUser, "--to", xs.JID(), "--file", src)
		got := d.next(ctx, t, "result")
		<-d.done
		if got.OK || d.err == nil || !strings.Contains(got.Error, "forbidden") {
			t.Fatalf("slixmpp reports %+v (exit %v), want its offer refused with forbidden\n%s", got, d.err, d.output())
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("refused offer left files: %v", entries)
		}
	})
}
