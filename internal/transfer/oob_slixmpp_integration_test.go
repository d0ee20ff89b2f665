package transfer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"xfer/internal/session"
)

// slixmpp (Debian's python3-slixmpp, its xep_0066 plugin) as an
// independent XEP-0066 peer: testdata/slixmpp/oob_send.py and
// oob_receive.py, run with /usr/bin/python3 as carol.

type slixLine struct {
	Type      string `json:"type"`
	OK        bool   `json:"ok"`
	Error     string `json:"error"`
	Condition string `json:"condition"`
	JID       string `json:"jid"`
	URL       string `json:"url"`
	Path      string `json:"path"`
	Bytes     int64  `json:"bytes"`
	MD5       string `json:"md5"`
	SID       string `json:"sid"`
	Requests  int    `json:"requests"`
}

// slix runs a driver script and returns a channel of its JSON lines and a
// function that waits for its exit and returns its output.
func slix(ctx context.Context, t *testing.T, script string, args ...string) (<-chan slixLine, func() (string, error)) {
	t.Helper()
	if _, err := exec.LookPath("/usr/bin/python3"); err != nil {
		t.Fatalf("no /usr/bin/python3: install python3-slixmpp (apt-get install -y python3-slixmpp)")
	}
	dir, err := filepath.Abs(filepath.Join("..", "..", "testdata", "slixmpp"))
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(srv.Addr)
	argv := append([]string{filepath.Join(dir, script), "--jid", "carol@localhost", "--host", host, "--port", port, "--cafile", srv.CAFile, "--timeout", "50"}, args...)
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", argv...)
	env := []string{"SLIX_PASSWORD=carol-pw", "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != "PYTHONPATH" && k != "PYTHONHOME" && k != "VIRTUAL_ENV" && k != "SLIX_PASSWORD" {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan slixLine, 16)
	var stdout bytes.Buffer
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			stdout.WriteString(sc.Text() + "\n")
			var l slixLine
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				lines <- l
			}
		}
		close(lines)
		done <- cmd.Wait()
	}()
	var waited bool
	var werr error
	wait := func() (string, error) {
		if !waited {
			werr, waited = <-done, true
		}
		return fmt.Sprintf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String()), werr
	}
	t.Cleanup(func() { wait() })
	return lines, wait
}

func nextLine(t *testing.T, lines <-chan slixLine, typ string, wait func() (string, error)) slixLine {
	t.Helper()
	for l := range lines {
		if l.Type == typ {
			return l
		}
	}
	out, err := wait()
	t.Fatalf("no %q line (%v)\n%s", typ, err, out)
	return slixLine{}
}

// xfer offers with jabber:iq:oob; slixmpp fetches from xfer's server and
// answers once it has the file.
func TestIntegrationOOBXferToSlixmpp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	lines, wait := slix(ctx, t, "oob_receive.py", "--dir", dir, "--from", "alice@localhost")
	ready := nextLine(t, lines, "ready", wait)
	alice := login(t, "alice", "oob-slix")
	p, sum := writeRandom(t, t.TempDir(), "to slixmpp.bin", 2<<20+5)
	sd := &Sender{S: alice, Opts: SendOptions{Method: "oob", AcceptTimeout: 20 * time.Second, S5B: S5BOptions{ServerLoopback: true}}}
	res, err := sd.Send(ctx, ready.JID, p)
	if err != nil {
		out, _ := wait()
		t.Fatalf("%v\n%s", err, out)
	}
	got := nextLine(t, lines, "result", wait)
	if out, err := wait(); err != nil || !got.OK {
		t.Fatalf("slixmpp: %v\n%s", err, out)
	}
	if got.URL != res.URL || got.MD5 != sum || got.Bytes != 2<<20+5 || filepath.Base(got.Path) != "to slixmpp.bin" || got.SID != res.SID {
		t.Fatalf("slixmpp got %+v; xfer sent %+v", got, res)
	}
}

// slixmpp offers with jabber:iq:oob (its own http.server on 127.0.0.1);
// xfer's receiver fetches and answers with an empty result. A URL that
// answers 404 gets item-not-found.
func TestIntegrationOOBSlixmppToXfer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, bob, _ := oobReceiver(t, "bob", ReceiveOptions{Allow: []string{"carol@localhost"}})
	p, sum := writeRandom(t, t.TempDir(), "from slixmpp.bin", 1<<20+9)
	lines, wait := slix(ctx, t, "oob_send.py", "--to", bob.JID(), "--file", p, "--desc", "hello")
	sent := nextLine(t, lines, "result", wait)
	if out, err := wait(); err != nil || !sent.OK || sent.Requests != 1 {
		t.Fatalf("slixmpp: %+v %v\n%s", sent, err, out)
	}
	res, err := next(t, r)
	if err != nil {
		t.Fatal(err)
	}
	if md5Of(t, res.Path) != sum || filepath.Base(res.Path) != "from slixmpp.bin" || session.Bare(res.Peer) != "carol@localhost" {
		t.Fatalf("xfer received %+v", res)
	}

	lines, wait = slix(ctx, t, "oob_send.py", "--to", bob.JID(), "--file", p, "--url", strings.Replace(sent.URL, "/from", "/nothing", 1))
	nf := nextLine(t, lines, "result", wait)
	wait()
	if nf.OK || nf.Condition != "item-not-found" {
		t.Fatalf("404 URL: slixmpp got %+v", nf)
	}
	if _, err := next(t, r); err == nil {
		t.Fatal("the receiver reported success for a 404")
	}
}
