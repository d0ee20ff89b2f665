package transfer

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"xfer/internal/ibb"
	"xfer/internal/testserver"
)

func (e *events) count(typ string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.all {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

// A large in-band transfer, SI and Jingle, with the adaptive window (the
// default) next to the old fixed window of 16: each arrives and verifies,
// and no throttled event is said on an unlimited server. The times are
// logged, not asserted.
func TestIntegrationIBBAdaptiveWindow(t *testing.T) {
	r, bob, _ := receiver(t, ReceiveOptions{Allow: []string{"alice@localhost"}})
	alice := login(t, "alice", "adaptive")
	p, sum := writeRandom(t, t.TempDir(), "big.bin", 16<<20)
	for _, tc := range []struct {
		method string
		window int
	}{{"ibb", 0}, {"ibb", 16}, {"jingle-ibb", 0}} {
		t.Run(fmt.Sprintf("%s/window%d", tc.method, tc.window), func(t *testing.T) {
			var ev events
			sd := &Sender{S: alice, Obs: ev.observer(), Opts: SendOptions{Method: tc.method, AcceptTimeout: 10 * time.Second, IBB: ibb.Options{Window: tc.window}}}
			res, err := sd.Send(context.Background(), bob.JID(), p)
			if err != nil {
				t.Fatal(err)
			}
			got, err := next(t, r)
			if err != nil {
				t.Fatal(err)
			}
			if md5Of(t, got.Path) != sum || !strings.HasSuffix(res.Method, "ibb") {
				t.Fatalf("sent %+v, received %+v", res, got)
			}
			if n := ev.count("throttled"); n != 0 {
				t.Errorf("%d throttled events on an unlimited server", n)
			}
			t.Logf("%s, window %d: %v, %.1f MB/s", tc.method, tc.window, res.Elapsed.Round(time.Millisecond), float64(16<<20)/res.Elapsed.Seconds()/1e6)
		})
	}
}

// Through a server that holds each client to 20 kB/s (Prosody's limits
// module; an ejabberd shaper in the ejabberd run), an in-band transfer
// still completes, and the sender says once that the server limits the
// account, with about its rate.
func TestIntegrationIBBThrottled(t *testing.T) {
	requireServer(t)
	start := testserver.Start
	if serverKind == "ejabberd" {
		start = testserver.StartEjabberd
	}
	s, err := start(testserver.Options{NoProxy: true, C2SRate: 20_000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	for _, u := range []string{"alice", "bob"} {
		if err := s.Register(u, u+"-pw"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Befriend("alice", "bob"); err != nil {
		t.Fatal(err)
	}
	bob := s.Login(t, "bob@localhost/recv", "bob-pw")
	alice := s.Login(t, "alice@localhost/send", "alice-pw")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r, err := NewReceiver(ctx, bob, ReceiveOptions{Dir: t.TempDir(), Allow: []string{"alice@localhost"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 192 KiB is 33 chunks that fill 8 KiB records (ibb.FillBlockSize),
	// some 270 kB on the wire: about 13.5 s at 20 kB/s. The detection
	// needs 3 s of acknowledgements of chunks that waited for the window
	// (16 chunks at first): the last 17 take about 7 s. (160 KiB left
	// only 11 of them, about 4 s: it passed or not by a few hundred ms.)
	p, sum := writeRandom(t, t.TempDir(), "slow.bin", 192<<10)
	var ev events
	sd := &Sender{S: alice, Obs: ev.observer(), Opts: SendOptions{Method: "ibb", AcceptTimeout: 20 * time.Second,
		IBB: ibb.Options{ThrottleAfter: 3 * time.Second}}}
	res, err := sd.Send(context.Background(), bob.JID(), p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := next(t, r)
	if err != nil {
		t.Fatal(err)
	}
	if md5Of(t, got.Path) != sum {
		t.Fatal("md5 differs")
	}
	t.Logf("sent in %v", res.Elapsed.Round(time.Millisecond))
	if n := ev.count("throttled"); n != 1 {
		t.Fatalf("%d throttled events, want 1: %+v", n, ev.all)
	}
	th, _ := ev.find("throttled")
	t.Logf("throttled event: %+v", th)
	if th.Rate < 10e3 || th.Rate > 30e3 || th.Error != ThrottledMessage(th.Rate) ||
		!strings.Contains(th.Error, "ask its admin for a proxy65 / upload") || th.File != "slow.bin" || th.Method != "ibb" || th.SID == "" {
		t.Fatalf("throttled event %+v", th)
	}
}
