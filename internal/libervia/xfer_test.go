package libervia

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"xfer/internal/session"
	"xfer/internal/transfer"
)

// How a test points Libervia at xfer, shown with xfer's SI today: xfer
// logs in with a fresh resource (Libervia caches disco#info per full JID
// for the backend's life), registers its receiver (which answers
// disco#info) before Libervia's first look at that JID, and Libervia picks
// Jingle only if that disco#info lists urn:xmpp:jingle:apps:file-transfer:5,
// SI otherwise.

func xferLogin(t *testing.T) *session.Session {
	t.Helper()
	return srv.Login(t, "xfer@"+srv.Domain+"/xfer-"+session.NewID()[:8], "xfer-pw")
}

// Libervia sends to xfer's receiver with its stock choice of method.
func TestLiberviaSendsToXfer(t *testing.T) {
	requireLibervia(t)
	for _, tc := range []struct {
		name   string
		send   SendOptions
		method string // what xfer reports
		via    string
	}{
		{"stock", SendOptions{}, "s5b", "direct"},
		{"s5b-proxy", SendOptions{S5B: "proxy"}, "s5b", "proxy " + srv.ProxyJID},
		{"ibb", SendOptions{SIMethods: "ibb"}, "ibb", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			xs := xferLogin(t)
			dir := t.TempDir()
			r, err := transfer.NewReceiver(ctx, xs, transfer.ReceiveOptions{Dir: dir, Allow: []string{alice.Bare()}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			src, sum := writeRandom(t, t.TempDir(), "to xfer "+tc.name+".bin", 300<<10)
			mark := alice.LogMark()
			sent, err := alice.Send(ctx, src, xs.JID(), tc.send)
			if err != nil {
				t.Fatal(err)
			}
			res, err := r.Next(ctx)
			if err != nil {
				t.Fatalf("xfer: %v\n%s", err, alice.StanzasSince(mark))
			}
			if res.Size != sent.Size || session.Bare(res.Peer) != alice.Bare() || res.Path != filepath.Join(dir, filepath.Base(src)) {
				t.Fatalf("xfer received %+v; Libervia sent %+v", res, sent)
			}
			if got := sha256File(t, res.Path); got != sum {
				t.Fatalf("xfer stored sha256 %s, want %s", got, sum)
			}
			if res.Method != tc.method || res.Via != tc.via {
				t.Errorf("xfer received with %s via %q, want %s via %q", res.Method, res.Via, tc.method, tc.via)
			}
			wire := alice.StanzasSince(mark)
			if strings.Contains(wire, "<jingle xmlns='urn:xmpp:jingle:1'") {
				t.Errorf("Libervia used Jingle with an xfer that does not advertise it")
			}
			t.Logf("Libervia -> xfer %s: %s via %q, %d bytes, Libervia %.2fs", tc.name, res.Method, res.Via, res.Size, sent.Secs)
		})
	}
}

// xfer sends to Libervia with SI, over each of its stream methods.
func TestXferSendsToLibervia(t *testing.T) {
	requireLibervia(t)
	for _, method := range []string{"s5b", "ibb"} {
		t.Run(method, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			xs := xferLogin(t)
			dir := t.TempDir()
			r, err := bob.Receive(ctx, dir, session.Bare(xs.JID()), RecvOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			src, sum := writeRandom(t, t.TempDir(), "from xfer "+method+".bin", 300<<10)
			// ServerLoopback: xfer offers loopback direct streamhosts only
			// (lv_backend.py would not dial the others anyway)
			sd := &transfer.Sender{S: xs, Opts: transfer.SendOptions{Method: method, AcceptTimeout: 20 * time.Second,
				S5B: transfer.S5BOptions{ServerLoopback: true}}}
			res, err := sd.Send(ctx, bob.JID(), src)
			if err != nil {
				t.Fatalf("xfer send: %v\n%s", err, r.Output())
			}
			got, err := r.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got.SHA256 != sum || got.Size != res.Size || got.From != xs.JID() || got.Path != filepath.Join(dir, filepath.Base(src)) {
				t.Fatalf("Libervia received %+v; xfer sent %+v (sha256 %s)", got, res, sum)
			}
			if got.HashVerified {
				t.Errorf("Libervia verified a hash over SI, which carries none it reads")
			}
			t.Logf("xfer -> Libervia %s: %s via %q, Libervia %.2fs", method, res.Method, res.Via, got.Secs)
		})
	}
}

// Libervia fails a send at once when the full JID is offline, and when
// that JID's disco#info has no file transfer feature; and it keeps that
// answer for the JID: a receiver registered afterwards is not seen.
func TestLiberviaSendFailures(t *testing.T) {
	requireLibervia(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	src, _ := writeRandom(t, t.TempDir(), "nowhere.bin", 1000)

	t0 := time.Now()
	_, err := alice.Send(ctx, src, "xfer@"+srv.Domain+"/offline-"+session.NewID()[:8], SendOptions{})
	if err == nil || !strings.Contains(err.Error(), "service-unavailable") {
		t.Fatalf("send to an offline JID: %v, want service-unavailable", err)
	}
	t.Logf("offline JID: failed in %.1fs", time.Since(t0).Seconds())

	xs := xferLogin(t) // no receiver yet: disco#info gets an error
	_, err = alice.Send(ctx, src, xs.JID(), SendOptions{})
	if err == nil || !strings.Contains(err.Error(), "service-unavailable") {
		t.Fatalf("send to an xfer without receiver: %v, want service-unavailable", err)
	}
	if _, err := transfer.NewReceiver(ctx, xs, transfer.ReceiveOptions{Dir: t.TempDir(), Allow: []string{alice.Bare()}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = alice.Send(ctx, src, xs.JID(), SendOptions{})
	if err == nil || !strings.Contains(err.Error(), "Can't find any method") {
		t.Fatalf("second send to the same full JID: %v, want the cached answer (no method)", err)
	}
}
