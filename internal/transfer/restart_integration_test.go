package transfer

import (
	"context"
	"os"
	"testing"
	"time"

	"xfer/internal/session"
)

// The server (and with it the proxy) restarts in the middle of a transfer:
// both sides end with an error within the timeouts, the part file stays,
// and the same transfer resumes once the server is back.
func TestIntegrationServerRestartMidTransfer(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts the server")
	}
	for _, tc := range []struct {
		name string
		opts SendOptions
	}{
		{"ibb", SendOptions{Method: "ibb"}},
		{"s5b via proxy", SendOptions{Method: "s5b", S5B: S5BOptions{NoDirect: true, Proxies: []string{"proxy.localhost"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const size = 8 << 20
			dir := t.TempDir()
			src, sum := writeRandom(t, t.TempDir(), "r.bin", size)
			tc.opts.StallTimeout = 3 * time.Second
			ropts := ReceiveOptions{Dir: dir, Allow: []string{"alice@localhost"}, StallTimeout: 3 * time.Second}

			rctx, rcancel := context.WithCancel(context.Background())
			defer rcancel()
			bob := login(t, "bob", "restart-"+session.NewID()[:4])
			r, err := NewReceiver(rctx, bob, ropts, nil)
			if err != nil {
				t.Fatal(err)
			}
			alice := login(t, "alice", "restart-"+session.NewID()[:4])
			// The restart happens inside the copy: the transfer is held at
			// half while the server goes down and comes back.
			restarted := make(chan error, 1)
			meter := &cutMeter{at: size / 2, cut: func() { restarted <- srv.Restart() }}
			sd := &Sender{S: alice, Opts: tc.opts, Obs: &Observer{Meter: func(string, int64, int64) Meter { return meter }}}
			start := time.Now()
			if _, err := sd.Send(context.Background(), bob.JID(), src); err == nil {
				t.Fatal("send survived the restart")
			}
			if err := <-restarted; err != nil {
				t.Fatal(err)
			}
			rcancel()
			r.Wait()
			if d := time.Since(start); d > 40*time.Second {
				t.Fatalf("the failure took %v", d)
			}
			fi, err := os.Stat(partName(dir, "r.bin"))
			if err != nil || fi.Size() == 0 || fi.Size() >= size {
				t.Fatalf("part after restart: %v, %v", fi, err)
			}

			bob2 := login(t, "bob", "restart2-"+session.NewID()[:4])
			r2, err := NewReceiver(context.Background(), bob2, ropts, nil)
			if err != nil {
				t.Fatal(err)
			}
			alice2 := login(t, "alice", "restart2-"+session.NewID()[:4])
			tc.opts.StallTimeout = 0
			res, err := (&Sender{S: alice2, Opts: tc.opts}).Send(context.Background(), bob2.JID(), src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := next(t, r2)
			if err != nil {
				t.Fatal(err)
			}
			if res.Offset == 0 || md5Of(t, got.Path) != sum {
				t.Fatalf("resumed at %d, result %+v", res.Offset, got)
			}
		})
	}
}
