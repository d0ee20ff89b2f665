package transfer

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"xfer/internal/ibb"
	"xfer/internal/negotiate"
	"xfer/internal/session"
	"xfer/internal/testserver"
)

// One Prosody for the package.
var srv *testserver.Server

// serverKind picks the server the package's integration tests run
// against: Prosody by default, ejabberd with XFER_TEST_SERVER=ejabberd
// (make test runs both).
var serverKind = os.Getenv("XFER_TEST_SERVER")

// prosodyOnly skips a test that needs a part of the Prosody test server the
// ejabberd one does not have (a dead proxy component, HTTP upload).
func prosodyOnly(t *testing.T, needs string) {
	t.Helper()
	if serverKind == "ejabberd" {
		t.Skipf("ejabberd run: needs %s, which only the Prosody test server has", needs)
	}
}

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// Unit tests only: no server is started, and the integration
		// tests (named so) skip.
		_ = flag.Set("test.skip", "^TestIntegration")
		os.Exit(m.Run())
	}
	var err error
	if serverKind == "ejabberd" {
		srv, err = testserver.StartEjabberd(testserver.Options{})
	} else {
		srv, err = testserver.Start(testserver.Options{DeadProxy: true, HTTPUpload: true})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, u := range []string{"alice", "bob", "carol", "mallory"} {
		if err = srv.Register(u, u+"-pw"); err != nil {
			break
		}
	}
	if err == nil {
		err = srv.Befriend("alice", "bob")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		srv.Stop()
		os.Exit(1)
	}
	code := m.Run()
	srv.Stop()
	os.Exit(code)
}

func login(t testing.TB, user, resource string) *session.Session {
	t.Helper()
	requireServer(t)
	return srv.Login(t, user+"@localhost/"+resource, user+"-pw")
}

// requireServer skips an integration test under -short, where TestMain
// starts no server.
func requireServer(t testing.TB) {
	t.Helper()
	if srv == nil {
		t.Skip("integration test: needs the private XMPP server (run without -short)")
	}
}

func writeRandom(t testing.TB, dir, name string, size int64) (string, string) {
	t.Helper()
	return testserver.WriteRandom(t, dir, name, size)
}

func md5Of(t testing.TB, p string) string {
	t.Helper()
	return testserver.MD5File(t, p)
}

// receiver logs bob in with a receiver into a fresh directory.
func receiver(t testing.TB, opts ReceiveOptions) (*Receiver, *session.Session, string) {
	t.Helper()
	bob := login(t, "bob", "recv-"+session.NewID()[:6])
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r, err := NewReceiver(ctx, bob, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r, bob, opts.Dir
}

func next(t testing.TB, r *Receiver) (*Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return r.Next(ctx)
}

func TestIntegrationIBBSizes(t *testing.T) {
	r, bob, dir := receiver(t, ReceiveOptions{Allow: []string{"alice@localhost"}})
	alice := login(t, "alice", "send")
	src := t.TempDir()
	sd := &Sender{S: alice, Opts: SendOptions{Method: "ibb", AcceptTimeout: 10 * time.Second}}
	for _, size := range []int64{0, 1, 10 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			name := fmt.Sprintf("f%d.bin", size)
			p, sum := writeRandom(t, src, name, size)
			res, err := sd.Send(context.Background(), bob.JID(), p)
			if err != nil {
				t.Fatal(err)
			}
			if res.Method != "ibb" || res.Hash != sum {
				t.Fatalf("result %+v", res)
			}
			got, err := next(t, r)
			if err != nil {
				t.Fatal(err)
			}
			if got.Path != filepath.Join(dir, name) || md5Of(t, got.Path) != sum {
				t.Fatalf("received %+v", got)
			}
			if fi, _ := os.Stat(got.Path); fi.Size() != size {
				t.Fatalf("size %d", fi.Size())
			}
			if _, err := os.Stat(partName(dir, name)); !os.IsNotExist(err) {
				t.Fatalf("part file left: %v", err)
			}
		})
	}
}

// 70,000 chunks of 256 bytes: the 16-bit seq wraps past 65535.
func TestIntegrationIBBSeqWrap(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	r, bob, _ := receiver(t, ReceiveOptions{Allow: []string{"alice@localhost"}})
	alice := login(t, "alice", "wrap")
	p, sum := writeRandom(t, t.TempDir(), "wrap.bin", 70000*256)
	sd := &Sender{S: alice, Opts: SendOptions{Method: "ibb", IBB: ibb.Options{BlockSize: 256, Window: 32}}}
	if _, err := sd.Send(context.Background(), bob.JID(), p); err != nil {
		t.Fatal(err)
	}
	got, err := next(t, r)
	if err != nil {
		t.Fatal(err)
	}
	if md5Of(t, got.Path) != sum {
		t.Fatal("md5 differs")
	}
}

func TestIntegrationNameTakenGetsNewName(t *testing.T) {
	r, bob, dir := receiver(t, ReceiveOptions{Allow: []string{"alice@localhost"}})
	os.WriteFile(filepath.Join(dir, "report.txt"), []byte("mine"), 0o644)
	alice := login(t, "alice", "taken")
	p, sum := writeRandom(t, t.TempDir(), "report.txt", 1000)
	sd := &Sender{S: alice}
	if _, err := sd.Send(context.Background(), bob.JID(), p); err != nil {
		t.Fatal(err)
	}
	got, err := next(t, r)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Renamed || filepath.Base(got.Path) != "report (1).txt" || md5Of(t, got.Path) != sum {
		t.Fatalf("got %+v", got)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "report.txt")); string(b) != "mine" {
		t.Fatal("existing file overwritten")
	}
}

func TestIntegrationRefusals(t *testing.T) {
	_, bob, dir := receiver(t, ReceiveOptions{Allow: []string{"alice@localhost"}, MaxSize: 1 << 20})
	p, _ := writeRandom(t, t.TempDir(), "x.bin", 100)
	big, _ := writeRandom(t, t.TempDir(), "big.bin", 2<<20)

	// carol is not on the list: forbidden.
	carol := login(t, "carol", "r")
	_, err := (&Sender{S: carol, Opts: SendOptions{Method: "si"}}).Send(context.Background(), bob.JID(), p)
	if !errors.Is(err, ErrRefused) || !errors.Is(err, negotiate.ErrDeclined) {
		t.Fatalf("stranger: err = %v", err)
	}
	// Over --max-size: refused.
	alice := login(t, "alice", "r")
	if _, err := (&Sender{S: alice}).Send(context.Background(), bob.JID(), big); !errors.Is(err, ErrRefused) {
		t.Fatalf("too big: err = %v", err)
	}
	// A resource that is not online: the server answers for it.
	_, err = (&Sender{S: alice}).Send(context.Background(), "bob@localhost/nobody-here", p)
	if !errors.Is(err, ErrRefused) || !errors.Is(err, negotiate.ErrUnavailable) {
		t.Fatalf("offline: err = %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("refused offers left files: %v", entries)
	}
}

// A peer that takes the offer but never answers: the sender gives up at
// its accept timeout.
func TestIntegrationAcceptNeverComes(t *testing.T) {
	bob := login(t, "bob", "silent")
	bob.Handle(session.TypeSet, negotiate.NS, func(ctx context.Context, iq *session.IQ) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	alice := login(t, "alice", "impatient")
	p, _ := writeRandom(t, t.TempDir(), "x.bin", 10)
	start := time.Now()
	_, err := (&Sender{S: alice, Opts: SendOptions{AcceptTimeout: time.Second}}).Send(context.Background(), bob.JID(), p)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("took too long")
	}
}

func TestIntegrationResolveBareJID(t *testing.T) {
	_, bob, _ := receiver(t, ReceiveOptions{Allow: []string{"alice@localhost"}})
	alice := login(t, "alice", "resolver")
	got, err := ResolveRecipient(context.Background(), alice, "bob@localhost", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Any of bob's online receivers will do, but it must be one that
	// advertises SI: the receiver's own resource qualifies.
	if session.Bare(got) != "bob@localhost" || session.Resource(got) == "" {
		t.Fatalf("resolved to %q (bob is %s)", got, bob.JID())
	}
	// mallory is nobody's contact: no presence, a clear error.
	_, err = ResolveRecipient(context.Background(), alice, "mallory@localhost", 500*time.Millisecond)
	if !errors.Is(err, ErrNoRecipient) || !strings.Contains(err.Error(), "full JID") {
		t.Fatalf("err = %v", err)
	}
}

// evilOffer sends a crafted offer and, when accepted, a crafted stream.
func evilOffer(t *testing.T, from *session.Session, to string, f negotiate.File, body []byte) (*negotiate.Accept, error) {
	t.Helper()
	o := &negotiate.Offer{SID: session.NewID(), File: f, Methods: []string{MethodIBB}}
	acc, err := negotiate.Send(context.Background(), from, to, o)
	if err != nil {
		return nil, err
	}
	conn, err := ibb.Open(context.Background(), from, to, o.SID, ibb.Options{BlockSize: 4096})
	if err != nil {
		return acc, err
	}
	_, err = conn.Write(body)
	conn.Close()
	return acc, err
}

func TestIntegrationHostileOffers(t *testing.T) {
	r, bob, dir := receiver(t, ReceiveOptions{AcceptAll: true})
	outside := t.TempDir()
	mallory := login(t, "mallory", "evil")

	// Path names are reduced to their base name inside DIR.
	for _, tc := range []struct{ name, want string }{
		{"../x", "x"},
		{"/etc/passwd", "passwd"},
		{"../../" + filepath.Base(outside) + "/planted", "planted"},
		{strings.Repeat("n", 10000) + ".txt", strings.Repeat("n", MaxNameBytes-4) + ".txt"},
	} {
		body := []byte("hostile")
		if _, err := evilOffer(t, mallory, bob.JID(), negotiate.File{Name: tc.name, Size: int64(len(body))}, body); err != nil {
			t.Fatalf("%q: %v", tc.name, err)
		}
		got, err := next(t, r)
		if err != nil {
			t.Fatalf("%q: %v", tc.name, err)
		}
		if got.Path != filepath.Join(dir, tc.want) {
			t.Fatalf("%q stored at %q", tc.name, got.Path)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("something was written outside DIR: %v", entries)
	}

	// More bytes than declared: refused, nothing kept.
	evilOffer(t, mallory, bob.JID(), negotiate.File{Name: "long.bin", Size: 10}, bytes.Repeat([]byte("A"), 5000))
	if _, err := next(t, r); !errors.Is(err, ErrTooLong) {
		t.Fatalf("too long: err = %v", err)
	}
	// A wrong MD5: no file under the final name.
	evilOffer(t, mallory, bob.JID(), negotiate.File{Name: "hash.bin", Size: 5, Hash: strings.Repeat("0", 32)}, []byte("hello"))
	if _, err := next(t, r); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("bad hash: err = %v", err)
	}
	// Fewer bytes than declared, then close: truncated.
	evilOffer(t, mallory, bob.JID(), negotiate.File{Name: "short.bin", Size: 100}, []byte("only this"))
	if _, err := next(t, r); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short: err = %v", err)
	}
	for _, n := range []string{"long.bin", "hash.bin", "short.bin"} {
		if _, err := os.Stat(filepath.Join(dir, n)); !os.IsNotExist(err) {
			t.Errorf("%s exists after a failed transfer", n)
		}
	}
	// Wrong bytes are thrown away; an interrupted transfer is kept for
	// resuming.
	for _, n := range []string{"long.bin", "hash.bin"} {
		if _, err := os.Stat(partName(dir, n)); !os.IsNotExist(err) {
			t.Errorf("%s part left after a failed transfer", n)
		}
	}
	if _, err := os.Stat(partName(dir, "short.bin")); err != nil {
		t.Errorf("short.bin part not kept for resuming: %v", err)
	}
}

// Stanzas for a stream from someone else than its peer, or for an unknown
// sid, are refused and do not disturb the transfer.
func TestIntegrationForeignStreamData(t *testing.T) {
	r, bob, _ := receiver(t, ReceiveOptions{Allow: []string{"alice@localhost"}})
	carol := login(t, "carol", "intruder")
	for _, payload := range []string{
		`<data xmlns='http://jabber.org/protocol/ibb' seq='0' sid='nosuchsid'>aGVsbG8=</data>`,
		`<open xmlns='http://jabber.org/protocol/ibb' sid='nosuchsid' block-size='4096' stanza='iq'/>`,
	} {
		_, err := carol.SendIQ(context.Background(), &session.IQ{Type: session.TypeSet, To: bob.JID(), Payload: []byte(payload)})
		var se *session.StanzaError
		if !errors.As(err, &se) {
			t.Fatalf("%s: err = %v, want a stanza error", payload, err)
		}
	}
	alice := login(t, "alice", "legit")
	p, sum := writeRandom(t, t.TempDir(), "ok.bin", 100000)
	if _, err := (&Sender{S: alice}).Send(context.Background(), bob.JID(), p); err != nil {
		t.Fatal(err)
	}
	got, err := next(t, r)
	if err != nil || md5Of(t, got.Path) != sum {
		t.Fatalf("%+v %v", got, err)
	}
}

// An offer that would not fit on the disk is refused before any byte is
// written. (The disk here has room; asking to keep an exabyte free makes
// every offer too big.)
func TestIntegrationNoRoomRefused(t *testing.T) {
	_, bob, dir := receiver(t, ReceiveOptions{Allow: []string{"alice@localhost"}, MinFree: 1 << 60})
	alice := login(t, "alice", "noroom")
	p, _ := writeRandom(t, t.TempDir(), "big.bin", 1000)
	_, err := (&Sender{S: alice}).Send(context.Background(), bob.JID(), p)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("err = %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("files written: %v", entries)
	}
}
