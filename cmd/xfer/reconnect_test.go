package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"xfer/internal/session"
	"xfer/internal/testserver"
)

// A receiver left running (as the systemd unit in examples/ runs it)
// outlives its server: killed and started again while the receiver idles,
// killed in the middle of a transfer, and a connection that dies silently
// (a middlebox that stops forwarding). Each time the receiver says so, logs
// in again without being restarted, and the next send (a resumed one after
// the cut transfer) arrives verified. The server is a Prosody of this
// test's own, since it is killed.
func TestIntegrationReceiverReconnects(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a private XMPP server (run without -short)")
	}
	srv, err := testserver.Start(testserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	for _, u := range []string{"alice", "bob"} {
		if err := srv.Register(u, u+"-pw"); err != nil {
			t.Fatal(err)
		}
	}
	// The receiver runs as the example unit says, and reaches the server
	// through a relay the test can freeze.
	relay := newFreezableRelay(t, srv.Addr)
	dir := t.TempDir()
	args := unitCommand(t, srv, "bob@localhost/svc", dir)
	rcv := startCLI(t, srv, "", relay.addr(), append(args, "--json", "--keepalive", "2s", "--stall-timeout", "5s")...)
	rcv.want(t, "online", 30*time.Second)
	send := func(t *testing.T, file string, extra ...string) error {
		args := append([]string{"send", "--jid", "alice@localhost/s-" + filepath.Base(file), "--wait-online", "20s", "--accept-timeout", "20s"}, extra...)
		out, err := runCLI(t, srv, "alice", srv.Addr, append(args, file, "bob@localhost/svc")...)
		if err != nil {
			t.Logf("send: %v\n%s", err, out)
		}
		return err
	}
	received := func(t *testing.T, src string) {
		t.Helper()
		ev := rcv.want(t, "done", 60*time.Second)
		if ev["file"] != filepath.Base(src) || testserver.MD5File(t, filepath.Join(dir, filepath.Base(src))) != testserver.MD5File(t, src) {
			t.Fatalf("receiver's done %v does not match %s", ev, src)
		}
	}

	t.Run("server killed while idle", func(t *testing.T) {
		srv.KillProcess()
		rcv.want(t, "disconnected", 30*time.Second)
		if err := srv.StartProcess(); err != nil {
			t.Fatal(err)
		}
		rcv.want(t, "reconnected", 90*time.Second)
		src := randomFile(t, "after-restart.bin", 300<<10)
		if err := send(t, src); err != nil {
			t.Fatal(err)
		}
		received(t, src)
	})

	t.Run("server killed mid-transfer", func(t *testing.T) {
		src := randomFile(t, "big.bin", 24<<20)
		done := make(chan error, 1)
		go func() { done <- send(t, src, "--method", "ibb") }()
		rcv.wantProgress(t, 2<<20, 60*time.Second)
		srv.KillProcess()
		if err := <-done; err == nil {
			t.Fatal("the send survived the server's death")
		}
		if ev := rcv.want(t, "error", 30*time.Second); ev["file"] != "big.bin" {
			t.Fatalf("error event %v", ev)
		}
		rcv.want(t, "disconnected", 30*time.Second)
		fi, err := os.Stat(filepath.Join(dir, ".big.bin.part"))
		if err != nil || fi.Size() == 0 {
			t.Fatalf("part after the cut: %v, %v", fi, err)
		}
		if err := srv.StartProcess(); err != nil {
			t.Fatal(err)
		}
		rcv.want(t, "reconnected", 90*time.Second)
		if err := send(t, src, "--method", "ibb"); err != nil {
			t.Fatal(err)
		}
		if ev := rcv.want(t, "accepted", 30*time.Second); ev["offset"] == nil || ev["offset"].(float64) <= 0 {
			t.Fatalf("the second send was not resumed: %v", ev)
		}
		received(t, src)
	})

	t.Run("connection dies silently", func(t *testing.T) {
		relay.freeze()
		ev := rcv.want(t, "disconnected", 30*time.Second)
		if !strings.Contains(ev["error"].(string), "ping") {
			t.Fatalf("disconnected for %q, want the unanswered ping", ev["error"])
		}
		rcv.want(t, "reconnected", 90*time.Second)
		src := randomFile(t, "after-silence.bin", 100<<10)
		if err := send(t, src); err != nil {
			t.Fatal(err)
		}
		received(t, src)
	})

	// The service ends as it always did: an interrupt is a clean exit.
	if err := rcv.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := rcv.wait(); err != nil {
		t.Fatalf("receiver after Ctrl-C: %v\n%s", err, rcv.stderr.String())
	}
}

// --once and --no-reconnect keep the fail-fast behaviour: a lost server
// ends the receiver with exit code 3.
func TestIntegrationReceiverNoReconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a private XMPP server (run without -short)")
	}
	srv, err := testserver.Start(testserver.Options{NoProxy: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	if err := srv.Register("bob", "bob-pw"); err != nil {
		t.Fatal(err)
	}
	a := startCLI(t, srv, "bob", srv.Addr, "receive", "--jid", "bob@localhost/a", "--dir", t.TempDir(), "--json", "--no-reconnect")
	b := startCLI(t, srv, "bob", srv.Addr, "receive", "--jid", "bob@localhost/b", "--dir", t.TempDir(), "--json", "--once")
	a.want(t, "online", 30*time.Second)
	b.want(t, "online", 30*time.Second)
	srv.KillProcess()
	for _, r := range []*cliProcess{a, b} {
		err := r.wait()
		var ee *exec.ExitError
		if !asExit(err, &ee) || ee.ExitCode() != int(ExitConnect) {
			t.Fatalf("receiver after the server's death: %v, want exit %d\n%s", err, ExitConnect, r.stderr.String())
		}
		if strings.Contains(r.stderr.String(), "logging in again") {
			t.Fatalf("a fail-fast receiver tried to reconnect:\n%s", r.stderr.String())
		}
	}
}

// unitCommand is the ExecStart of examples/xfer-receive.service, with its
// configuration file, inbox and sender replaced by the test's: a config
// like the one the unit's comment describes (an account with a
// password_file) for jid, and dir.
func unitCommand(t *testing.T, srv *testserver.Server, jid, dir string) []string {
	t.Helper()
	unit, err := os.ReadFile(filepath.Join("..", "..", "examples", "xfer-receive.service"))
	if err != nil {
		t.Fatal(err)
	}
	var exec string
	for _, l := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
			exec = v
		}
	}
	words := shellWords(exec)
	if len(words) < 2 || filepath.Base(words[0]) != "xfer" || words[1] != "receive" {
		t.Fatalf("the unit's ExecStart %q does not run xfer receive", exec)
	}
	etc := t.TempDir()
	pw := filepath.Join(etc, "password")
	if err := os.WriteFile(pw, []byte(session.Local(jid)+"-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(etc, "config.toml")
	toml := fmt.Sprintf("default_account = \"inbox\"\n[accounts.inbox]\njid = %q\npassword_file = %q\n", jid, pw)
	if err := os.WriteFile(cfg, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	replace := map[string]string{"/etc/xfer/config.toml": cfg, "/srv/xfer/inbox": dir, "alice@example.org": "alice@localhost"}
	args := words[1:]
	for i, w := range args {
		if r, ok := replace[w]; ok {
			args[i] = r
			delete(replace, w)
		}
	}
	if len(replace) > 0 {
		t.Fatalf("the unit's ExecStart %q lacks %v", exec, replace)
	}
	return args
}

func asExit(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*ee = e
	return ok
}

// cliProcess is an xfer command running as a process of its own, with its
// JSON events collected as they come (never blocking its stdout).
type cliProcess struct {
	cmd    *exec.Cmd
	stderr testserver.LockedBuffer
	exited chan error

	mu     sync.Mutex
	events []map[string]any
	ended  bool
	more   chan struct{} // signalled on each event and at the end
	next   int           // the first event want has not looked at
}

// cliEnv is the environment of an xfer process: a home of its own, the
// server, and user's password (none for "": the configuration has it).
func cliEnv(t *testing.T, srv *testserver.Server, user, server string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "XFER_") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			env = append(env, kv)
		}
	}
	env = append(env, "HOME="+t.TempDir(), "XFER_SERVER="+server, "NO_COLOR=1")
	if user != "" {
		env = append(env, "XFER_PASSWORD="+user+"-pw")
	}
	return env
}

func startCLI(t *testing.T, srv *testserver.Server, user, server string, args ...string) *cliProcess {
	t.Helper()
	p := &cliProcess{cmd: exec.Command("xfer", append(args, "--tls-ca", srv.CAFile)...), exited: make(chan error, 1), more: make(chan struct{}, 1)}
	p.cmd.Env = cliEnv(t, srv, user, server)
	p.cmd.Stderr = &p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				p.mu.Lock()
				p.events = append(p.events, ev)
				p.mu.Unlock()
				p.signal()
			}
		}
		p.exited <- p.cmd.Wait()
		p.mu.Lock()
		p.ended = true
		p.mu.Unlock()
		p.signal()
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", args[0], p.stderr.String())
		}
	})
	return p
}

func (p *cliProcess) signal() {
	select {
	case p.more <- struct{}{}:
	default:
	}
}

func (p *cliProcess) wait() error {
	select {
	case err := <-p.exited:
		return err
	case <-time.After(30 * time.Second):
		return os.ErrDeadlineExceeded
	}
}

// want waits for the next event of type typ, skipping others.
func (p *cliProcess) want(t *testing.T, typ string, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		for p.next < len(p.events) {
			ev := p.events[p.next]
			p.next++
			if ev["type"] == typ {
				p.mu.Unlock()
				return ev
			}
		}
		ended := p.ended
		p.mu.Unlock()
		if ended {
			t.Fatalf("the process ended before a %s event\n%s", typ, p.stderr.String())
		}
		select {
		case <-p.more:
		case <-deadline:
			t.Fatalf("no %s event within %v\n%s", typ, timeout, p.stderr.String())
		}
	}
}

// wantProgress waits until the process reports at least n bytes.
func (p *cliProcess) wantProgress(t *testing.T, n float64, timeout time.Duration) {
	t.Helper()
	for {
		ev := p.want(t, "progress", timeout)
		if b, _ := ev["bytes"].(float64); b >= n {
			return
		}
	}
}

func runCLI(t *testing.T, srv *testserver.Server, user, server string, args ...string) ([]byte, error) {
	cmd := exec.Command("xfer", append(args, "--tls-ca", srv.CAFile)...)
	cmd.Env = cliEnv(t, srv, user, server)
	return cmd.CombinedOutput()
}

// freezableRelay forwards TCP connections to a server; freeze makes the
// connections open at that moment go silent (nothing forwarded, nothing
// closed, as a NAT that forgot them), while new ones are forwarded.
type freezableRelay struct {
	l      net.Listener
	to     string
	mu     sync.Mutex
	frozen []chan struct{}
	conns  []net.Conn // closed at the end of the test
}

func newFreezableRelay(t *testing.T, to string) *freezableRelay {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &freezableRelay{l: l, to: to}
	t.Cleanup(func() {
		l.Close()
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, c := range r.conns {
			c.Close()
		}
	})
	go r.serve()
	return r
}

func (r *freezableRelay) addr() string { return r.l.Addr().String() }

func (r *freezableRelay) serve() {
	for {
		c, err := r.l.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", r.to)
		if err != nil {
			c.Close()
			continue
		}
		stop := make(chan struct{})
		r.mu.Lock()
		r.frozen = append(r.frozen, stop)
		r.conns = append(r.conns, c, up)
		r.mu.Unlock()
		go r.pipe(c, up, stop)
		go r.pipe(up, c, stop)
	}
}

// pipe copies until the stream ends or freezes. A frozen link reads on
// (so the writer's writes succeed) and passes nothing on, not even a close.
func (r *freezableRelay) pipe(dst, src net.Conn, stop chan struct{}) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-stop:
			if err != nil {
				return
			}
			continue
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

func (r *freezableRelay) freeze() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, stop := range r.frozen {
		close(stop)
	}
	r.frozen = nil
}

func randomFile(t *testing.T, name string, size int64) string {
	p, _ := testserver.WriteRandom(t, t.TempDir(), name, size)
	return p
}
