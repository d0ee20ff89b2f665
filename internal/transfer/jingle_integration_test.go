package transfer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"xfer/internal/jingle"
	"xfer/internal/session"
)

// xfer to xfer over Jingle file transfer (XEP-0234) through the real
// server: each transport, and the fallback to in-band.
func TestIntegrationJingle(t *testing.T) {
	for _, tc := range []struct {
		name       string
		send       SendOptions
		recv       S5BOptions
		sizes      []int64
		wantMethod string
		wantVia    string
		fallback   bool
	}{
		{"s5b direct", SendOptions{Method: "auto"}, S5BOptions{}, []int64{0, 1000, 64 << 20}, "jingle-s5b", "direct", false},
		{"s5b proxy: sender offers no direct host", SendOptions{Method: "jingle", S5B: S5BOptions{NoDirect: true}}, S5BOptions{}, []int64{0, 1000, 64 << 20}, "jingle-s5b", "proxy proxy.localhost", false},
		{"s5b proxy: receiver refuses direct hosts", SendOptions{Method: "jingle-s5b"}, S5BOptions{NoDirect: true}, []int64{1000}, "jingle-s5b", "proxy proxy.localhost", false},
		{"ibb", SendOptions{Method: "jingle-ibb"}, S5BOptions{}, []int64{0, 1000, 64 << 20}, "jingle-ibb", "", false},
		{"s5b fails: transport-replace to ibb", SendOptions{Method: "jingle", S5B: S5BOptions{NoDirect: true, Proxies: []string{"deadproxy.localhost"}}}, S5BOptions{}, []int64{0, 1000}, "jingle-ibb", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.Contains(fmt.Sprint(tc.send.S5B.Proxies), "deadproxy") {
				prosodyOnly(t, "a proxy component advertising an unreachable address")
			}
			tc.send.S5B.ServerLoopback = true
			tc.send.S5B.HostTimeout = 2 * time.Second
			tc.recv.HostTimeout = 2 * time.Second
			r, bob, dir := receiver(t, ReceiveOptions{Allow: []string{"alice@localhost"}, S5B: tc.recv})
			alice := login(t, "alice", "jingle-"+session.NewID()[:4])
			var events []Event
			sd := &Sender{S: alice, Opts: tc.send, Obs: &Observer{Event: func(e Event) { events = append(events, e) }}}
			for _, size := range tc.sizes {
				name := fmt.Sprintf("j%d.bin", size)
				p, sum := writeRandom(t, t.TempDir(), name, size)
				res, err := sd.Send(context.Background(), bob.JID(), p)
				if err != nil {
					t.Fatalf("%d bytes: %v", size, err)
				}
				if res.Method != tc.wantMethod || res.Via != tc.wantVia || (res.Fallback != "") != tc.fallback {
					t.Fatalf("%d bytes sent by %s via %q (fallback %q), want %s via %q", size, res.Method, res.Via, res.Fallback, tc.wantMethod, tc.wantVia)
				}
				got, err := next(t, r)
				if err != nil {
					t.Fatalf("%d bytes: %v", size, err)
				}
				if got.Path != filepath.Join(dir, name) || md5Of(t, got.Path) != sum || got.Method != tc.wantMethod {
					t.Fatalf("received %+v", got)
				}
				if got.Unverified || got.Digest != res.Digest || !strings.HasPrefix(got.Digest, "sha-256:") {
					t.Fatalf("digest: received %q (unverified %v), sent %q", got.Digest, got.Unverified, res.Digest)
				}
			}
			if tc.fallback {
				requireFallbackEvent(t, events)
			}
		})
	}
}

// A stranger's session-initiate is declined: nothing is written, and
// nothing dialled: its candidate is a listener that must see no connection.
func TestIntegrationJingleStrangerDeclined(t *testing.T) {
	_, bob, dir := receiver(t, ReceiveOptions{Allow: []string{"alice@localhost"}})
	carol := login(t, "carol", "jingle")
	p, _ := writeRandom(t, t.TempDir(), "x.bin", 100)
	sd := &Sender{S: carol, Opts: SendOptions{Method: "jingle", S5B: S5BOptions{ServerLoopback: true, Proxies: []string{"nosuchproxy.localhost"}}}}
	_, err := sd.Send(context.Background(), bob.JID(), p)
	if !errors.Is(err, ErrRefused) || !errors.Is(err, jingle.ErrDeclined) {
		t.Fatalf("stranger: err = %v", err)
	}

	// The same by hand, with a candidate we watch.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialled := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
			dialled <- struct{}{}
		}
	}()
	declined := make(chan string, 1)
	carol.Handle(session.TypeSet, jingle.NS, func(_ context.Context, iq *session.IQ) ([]byte, error) {
		if j, err := jingle.Parse(iq.Payload); err == nil && j.Action == jingle.ActionSessionTerminate && j.Reason != nil {
			declined <- j.Reason.Condition
		}
		return nil, nil
	})
	port := ln.Addr().(*net.TCPAddr).Port
	offer := fmt.Sprintf(`<jingle xmlns='%s' action='session-initiate' sid='s1' initiator='%s'><content creator='initiator' name='f'>`+
		`<description xmlns='%s'><file><name>x.bin</name><size>5</size><desc/></file></description>`+
		`<transport xmlns='%s' sid='t1' mode='tcp'><candidate cid='c1' host='127.0.0.1' jid='%s' port='%d' priority='8257536' type='direct'/></transport>`+
		`</content></jingle>`, jingle.NS, carol.JID(), jingle.NSFileTransfer, jingle.NSS5B, carol.JID(), port)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := carol.SendIQ(ctx, &session.IQ{Type: session.TypeSet, To: bob.JID(), Payload: []byte(offer)}); err != nil {
		t.Fatal(err)
	}
	select {
	case reason := <-declined:
		if reason != jingle.ReasonDecline {
			t.Fatalf("terminated with %s, want decline", reason)
		}
	case <-ctx.Done():
		t.Fatal("no decline")
	}
	select {
	case <-dialled:
		t.Fatal("the receiver dialled a stranger's candidate")
	case <-time.After(time.Second):
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("files written for a stranger: %v", entries)
	}
}

// Hostile names in a Jingle offer are reduced to a safe base name in DIR.
func TestIntegrationJingleHostileNames(t *testing.T) {
	r, bob, dir := receiver(t, ReceiveOptions{AcceptAll: true})
	mallory := login(t, "mallory", "jingle")
	outside, src := t.TempDir(), t.TempDir()
	p, sum := writeRandom(t, src, "body.bin", 500)
	for _, tc := range []struct{ name, want string }{
		{"../x", "x"},
		{"/etc/passwd", "passwd"},
		{"../../" + filepath.Base(outside) + "/planted", "planted"},
	} {
		sd := &Sender{S: mallory, Opts: SendOptions{Method: "jingle-ibb", Name: tc.name}}
		if _, err := sd.Send(context.Background(), bob.JID(), p); err != nil {
			t.Fatalf("%q: %v", tc.name, err)
		}
		got, err := next(t, r)
		if err != nil {
			t.Fatalf("%q: %v", tc.name, err)
		}
		if got.Path != filepath.Join(dir, tc.want) || md5Of(t, got.Path) != sum {
			t.Fatalf("%q stored at %q", tc.name, got.Path)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("something was written outside DIR: %v", entries)
	}
}

// A receive directory given as "." or "./x" (documented examples) does not
// make every file look renamed, with either generation.
func TestIntegrationRelativeDirNotRenamed(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := os.Mkdir("x", 0o755); err != nil {
		t.Fatal(err)
	}
	alice := login(t, "alice", "reldir")
	for _, dir := range []string{".", "./x"} {
		for _, method := range []string{"jingle-ibb", "ibb"} {
			r, bob, _ := receiver(t, ReceiveOptions{Dir: dir, Allow: []string{"alice@localhost"}})
			name := "rel-" + method + ".bin"
			p, sum := writeRandom(t, t.TempDir(), name, 1000)
			if _, err := (&Sender{S: alice, Opts: SendOptions{Method: method}}).Send(context.Background(), bob.JID(), p); err != nil {
				t.Fatal(err)
			}
			got, err := next(t, r)
			if err != nil {
				t.Fatal(err)
			}
			if got.Renamed || got.Path != filepath.Join(dir, name) || md5Of(t, got.Path) != sum {
				t.Fatalf("--dir %s, %s: %+v", dir, method, got)
			}
		}
	}
}
