package transfer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"xfer/internal/s5b"
	"xfer/internal/session"
)

// Every S5B path against the real Prosody and its proxy65 component.
func TestIntegrationS5B(t *testing.T) {
	for _, tc := range []struct {
		name        string
		send        SendOptions
		recv        S5BOptions
		wantMethod  string
		wantVia     string
		wantFallbck bool
	}{
		{"direct", SendOptions{Method: "si"}, S5BOptions{}, "s5b", "direct", false},
		{"proxy: sender offers no direct host", SendOptions{Method: "s5b", S5B: S5BOptions{NoDirect: true}}, S5BOptions{}, "s5b", "proxy proxy.localhost", false},
		{"proxy: receiver refuses direct hosts", SendOptions{Method: "si"}, S5BOptions{NoDirect: true}, "s5b", "proxy proxy.localhost", false},
		{"fallback to IBB: no proxy answers", SendOptions{Method: "si", S5B: S5BOptions{NoDirect: true, Proxies: []string{"nosuchproxy.localhost"}}}, S5BOptions{}, "ibb", "", true},
		{"fallback to IBB: the receiver reaches no streamhost", SendOptions{Method: "si", S5B: S5BOptions{NoDirect: true, Proxies: []string{"deadproxy.localhost"}}}, S5BOptions{}, "ibb", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.Contains(fmt.Sprint(tc.send.S5B.Proxies), "deadproxy") {
				prosodyOnly(t, "a proxy component advertising an unreachable address")
			}
			tc.send.S5B.ServerLoopback = true
			tc.send.S5B.HostTimeout = 2 * time.Second
			tc.recv.HostTimeout = 2 * time.Second
			r, bob, _ := receiver(t, ReceiveOptions{Allow: []string{"alice@localhost"}, S5B: tc.recv})
			alice := login(t, "alice", "s5b")
			p, sum := writeRandom(t, t.TempDir(), "s5b.bin", 3<<20)
			var events []Event
			sd := &Sender{S: alice, Opts: tc.send, Obs: &Observer{Event: func(e Event) { events = append(events, e) }}}
			res, err := sd.Send(context.Background(), bob.JID(), p)
			if err != nil {
				t.Fatal(err)
			}
			if res.Method != tc.wantMethod || res.Via != tc.wantVia || (res.Fallback != "") != tc.wantFallbck {
				t.Fatalf("sent by %s via %q (fallback %q), want %s via %q", res.Method, res.Via, res.Fallback, tc.wantMethod, tc.wantVia)
			}
			got, err := next(t, r)
			if err != nil {
				t.Fatal(err)
			}
			if md5Of(t, got.Path) != sum || got.Method != tc.wantMethod {
				t.Fatalf("received %+v", got)
			}
			if tc.wantFallbck {
				requireFallbackEvent(t, events)
			}
		})
	}
}

// requireFallbackEvent fails unless a fallback event says why.
func requireFallbackEvent(t *testing.T, events []Event) {
	t.Helper()
	for _, e := range events {
		if e.Type == "fallback" && strings.Contains(e.Error, "falling back") {
			return
		}
	}
	t.Fatalf("no fallback event in %+v", events)
}

// --method s5b with no working streamhost fails clearly, within the
// timeouts, and leaves nothing behind.
func TestIntegrationS5BOnlyFails(t *testing.T) {
	r, bob, dir := receiver(t, ReceiveOptions{Allow: []string{"alice@localhost"}, OpenTimeout: 20 * time.Second})
	alice := login(t, "alice", "s5bfail")
	p, _ := writeRandom(t, t.TempDir(), "x.bin", 1000)
	sd := &Sender{S: alice, Opts: SendOptions{Method: "s5b", S5B: S5BOptions{NoDirect: true, Proxies: []string{"nosuchproxy.localhost"}, HostTimeout: time.Second}}}
	start := time.Now()
	_, err := sd.Send(context.Background(), bob.JID(), p)
	if !errors.Is(err, s5b.ErrNoStreamhost) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("took %v", d)
	}
	_ = r
	_ = dir
}

// A stranger's streamhost request for a stream nobody accepted is refused
// without any dialing.
func TestIntegrationS5BRequestWithoutOffer(t *testing.T) {
	_, bob, _ := receiver(t, ReceiveOptions{Allow: []string{"alice@localhost"}})
	mallory := login(t, "mallory", "s5b")
	trap, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer trap.Close()
	dialled := make(chan struct{}, 1)
	go func() {
		if c, err := trap.Accept(); err == nil {
			c.Close()
			dialled <- struct{}{}
		}
	}()
	port := trap.Addr().(*net.TCPAddr).Port
	_, err = s5b.Request(context.Background(), mallory, bob.JID(), "forged-sid", []s5b.Streamhost{{JID: mallory.JID(), Host: "127.0.0.1", Port: port}})
	if err == nil {
		t.Fatal("request without an accepted offer succeeded")
	}
	select {
	case <-dialled:
		t.Fatal("the receiver dialled a stranger's streamhost")
	case <-time.After(300 * time.Millisecond):
	}
}

// Sizes over both SOCKS5 paths: empty, small, and 64 MiB.
func TestIntegrationS5BSizes(t *testing.T) {
	r, bob, _ := receiver(t, ReceiveOptions{Allow: []string{"alice@localhost"}})
	alice := login(t, "alice", "s5bsizes")
	src := t.TempDir()
	for _, path := range []struct {
		name string
		opts S5BOptions
		via  string
	}{
		{"direct", S5BOptions{}, "direct"},
		{"proxy", S5BOptions{NoDirect: true}, "proxy proxy.localhost"},
	} {
		for _, size := range []int64{0, 1000, 64 << 20} {
			t.Run(fmt.Sprintf("%s/%d", path.name, size), func(t *testing.T) {
				if testing.Short() && size > 1<<20 {
					t.Skip("long")
				}
				p, sum := writeRandom(t, src, fmt.Sprintf("%s-%d.bin", path.name, size), size)
				o := path.opts
				o.ServerLoopback = true
				res, err := (&Sender{S: alice, Opts: SendOptions{Method: "s5b", S5B: o}}).Send(context.Background(), bob.JID(), p)
				if err != nil {
					t.Fatal(err)
				}
				got, err := next(t, r)
				if err != nil {
					t.Fatal(err)
				}
				if res.Via != path.via || got.Via != path.via || md5Of(t, got.Path) != sum {
					t.Fatalf("sent via %q, received via %q %+v", res.Via, got.Via, got)
				}
			})
		}
	}
}

// A streamhost that accepts TCP but never answers SOCKS5 costs the
// receiver one host timeout, then it takes the next candidate.
func TestIntegrationS5BBlackHoleStreamhost(t *testing.T) {
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	go func() {
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	r, bob, _ := receiver(t, ReceiveOptions{Allow: []string{"alice@localhost"}, S5B: S5BOptions{HostTimeout: time.Second}})
	alice := login(t, "alice", "blackhole")
	p, sum := writeRandom(t, t.TempDir(), "bh.bin", 100000)
	// The black hole is advertised first, as a --direct-addr.
	sd := &Sender{S: alice, Opts: SendOptions{Method: "s5b", S5B: S5BOptions{ServerLoopback: true, DirectAddrs: []string{hole.Addr().String()}}}}
	start := time.Now()
	res, err := sd.Send(context.Background(), bob.JID(), p)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := next(t, r); err != nil || md5Of(t, got.Path) != sum {
		t.Fatalf("%+v %v", got, err)
	}
	if res.Via != "direct" || time.Since(start) > 15*time.Second {
		t.Fatalf("via %q after %v", res.Via, time.Since(start))
	}
}

// activationRefused stands for a proxy that refuses to activate.
type activationRefused struct{ *session.Session }

func (a activationRefused) SendIQ(ctx context.Context, iq *session.IQ) (*session.IQ, error) {
	if strings.Contains(string(iq.Payload), "<activate") {
		return nil, session.NewError(session.CondNotAllowed, "activation refused (test)")
	}
	return a.Session.SendIQ(ctx, iq)
}

// The proxy refuses activation after the receiver connected to it: the
// sender falls back to IBB on the same sid, and the receiver, still
// expecting IBB until the first byte, follows.
func TestIntegrationS5BActivationRefusedFallsBack(t *testing.T) {
	// SI falls back on the same sid; Jingle replaces the transport.
	for method, want := range map[string]string{"si": "ibb", "jingle": "jingle-ibb"} {
		t.Run(method, func(t *testing.T) {
			r, bob, _ := receiver(t, ReceiveOptions{Allow: []string{"alice@localhost"}})
			alice := login(t, "alice", "noactivate-"+method)
			p, sum := writeRandom(t, t.TempDir(), "act.bin", 200000)
			sd := &Sender{S: activationRefused{alice}, Opts: SendOptions{Method: method, S5B: S5BOptions{NoDirect: true}}}
			res, err := sd.Send(context.Background(), bob.JID(), p)
			if err != nil {
				t.Fatal(err)
			}
			if res.Method != want || !strings.Contains(res.Fallback, "activat") {
				t.Fatalf("result %+v", res)
			}
			got, err := next(t, r)
			if err != nil || got.Method != want || md5Of(t, got.Path) != sum {
				t.Fatalf("%+v %v", got, err)
			}
		})
	}
}
