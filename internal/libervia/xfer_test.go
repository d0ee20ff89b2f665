package libervia

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"xfer/internal/session"
	"xfer/internal/transfer"
)

// How a test points Libervia at xfer: xfer logs in with a fresh resource
// (Libervia caches disco#info per full JID for the backend's life) and
// registers its receiver (which answers disco#info) before Libervia's first
// look at that JID. xfer's receiver advertises
// urn:xmpp:jingle:apps:file-transfer:5, so Libervia picks Jingle unless
// told to use SI.

func xferLogin(t *testing.T) *session.Session {
	t.Helper()
	return srv.Login(t, "xfer@"+srv.Domain+"/xfer-"+session.NewID()[:8], "xfer-pw")
}

// Libervia sends to xfer's receiver: Jingle over each transport (with its
// quirks: candidate-used before session-accept, checksum as base64 of the
// hex digest right after the bytes, broken proxy activation), and SI.
func TestLiberviaSendsToXfer(t *testing.T) {
	requireLibervia(t)
	for _, tc := range []struct {
		name     string
		send     SendOptions
		method   string // what xfer reports
		via      string
		fallback bool
	}{
		{"jingle stock: s5b direct", SendOptions{}, "jingle-s5b", "direct", false},
		{"jingle ibb", SendOptions{Transport: "ibb"}, "jingle-ibb", "", false},
		{"jingle no candidates: transport-replace to ibb", SendOptions{S5B: "none"}, "jingle-ibb", "", true},
		{"jingle proxy, activation fixed", SendOptions{S5B: "proxy", FixProxyActivate: true}, "jingle-s5b", "proxy " + srv.ProxyJID, false},
		{"jingle proxy, stock activation: proxy-error then ibb", SendOptions{S5B: "proxy"}, "jingle-ibb", "", true},
		{"si s5b", SendOptions{Method: "si"}, "s5b", "direct", false},
		{"si ibb", SendOptions{Method: "si", SIMethods: "ibb"}, "ibb", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			xs := xferLogin(t)
			dir := t.TempDir()
			r, err := transfer.NewReceiver(ctx, xs, transfer.ReceiveOptions{Dir: dir, Allow: []string{alice.Bare()}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			src, sum := writeRandom(t, t.TempDir(), "to xfer "+fileName(tc.name)+".bin", 300<<10)
			mark := alice.LogMark()
			sent, err := alice.Send(ctx, src, xs.JID(), tc.send)
			if err != nil {
				t.Fatalf("%v\n%s", err, alice.StanzasSince(mark))
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
			if res.Method != tc.method || res.Via != tc.via || (res.Fallback != "") != tc.fallback {
				t.Errorf("xfer received with %s via %q (fallback %q), want %s via %q", res.Method, res.Via, res.Fallback, tc.method, tc.via)
			}
			jingle := strings.HasPrefix(tc.method, "jingle")
			if jingle && (res.Unverified || res.Digest != "sha-256:"+sum) {
				t.Errorf("xfer did not verify Libervia's checksum: digest %q, unverified %v", res.Digest, res.Unverified)
			}
			if wire := alice.StanzasSince(mark); jingle != strings.Contains(wire, "<jingle xmlns='urn:xmpp:jingle:1'") {
				t.Errorf("Libervia used Jingle: %v, want %v", !jingle, jingle)
			}
			t.Logf("Libervia -> xfer %s: %s via %q, %d bytes, Libervia %.2fs", tc.name, res.Method, res.Via, res.Size, sent.Secs)
		})
	}
}

// xfer sends to Libervia: Jingle over each transport (Libervia verifies
// the checksum), and SI.
func TestXferSendsToLibervia(t *testing.T) {
	requireLibervia(t)
	for _, tc := range []struct {
		name   string
		send   transfer.SendOptions
		recv   RecvOptions
		method string
		via    string
	}{
		{"auto: jingle s5b", transfer.SendOptions{Method: "auto"}, RecvOptions{}, "jingle-s5b", "direct"},
		{"jingle s5b through xfer's proxy candidate", transfer.SendOptions{Method: "jingle-s5b", S5B: transfer.S5BOptions{NoDirect: true}}, RecvOptions{S5B: "none"}, "jingle-s5b", "proxy " + srv.ProxyJID},
		{"jingle ibb", transfer.SendOptions{Method: "jingle-ibb"}, RecvOptions{}, "jingle-ibb", ""},
		{"si s5b", transfer.SendOptions{Method: "s5b"}, RecvOptions{}, "s5b", "direct"},
		{"si ibb", transfer.SendOptions{Method: "ibb"}, RecvOptions{}, "ibb", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			xs := xferLogin(t)
			dir := t.TempDir()
			r, err := bob.Receive(ctx, dir, session.Bare(xs.JID()), tc.recv)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			src, sum := writeRandom(t, t.TempDir(), "from xfer "+fileName(tc.name)+".bin", 300<<10)
			// ServerLoopback: xfer offers loopback direct streamhosts only
			// (lv_backend.py would not dial the others anyway).
			tc.send.AcceptTimeout = 20 * time.Second
			tc.send.S5B.ServerLoopback = true
			sd := &transfer.Sender{S: xs, Opts: tc.send}
			mark := bob.LogMark()
			res, err := sd.Send(ctx, bob.JID(), src)
			if err != nil {
				t.Fatalf("xfer send: %v\n%s\n%s", err, r.Output(), bob.StanzasSince(mark))
			}
			got, err := r.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got.SHA256 != sum || got.Size != res.Size || got.From != xs.JID() || got.Path != filepath.Join(dir, filepath.Base(src)) {
				t.Fatalf("Libervia received %+v; xfer sent %+v (sha256 %s)", got, res, sum)
			}
			if res.Method != tc.method || res.Via != tc.via {
				t.Errorf("xfer sent with %s via %q, want %s via %q", res.Method, res.Via, tc.method, tc.via)
			}
			if jingle := strings.HasPrefix(tc.method, "jingle"); got.HashVerified != jingle {
				t.Errorf("Libervia verified the hash: %v, want %v (%s)", got.HashVerified, jingle, got.HashAlgo)
			}
			t.Logf("xfer -> Libervia %s: %s via %q, Libervia %.2fs", tc.name, res.Method, res.Via, got.Secs)
		})
	}
}

// fileName makes a case name a name both sides store unchanged.
func fileName(s string) string {
	return strings.NewReplacer(":", "", "'", "", ",", "").Replace(s)
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

// Libervia 0.9 echoes the resume offset xfer asks for, then sends the whole
// file from byte 0: xfer sees more bytes than were due, says why, drops the
// part, and the next offer of the file starts over and arrives whole.
func TestLiberviaIgnoresResume(t *testing.T) {
	requireLibervia(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	xs := xferLogin(t)
	dir := t.TempDir()
	src, sum := writeRandom(t, t.TempDir(), "resume.bin", 200<<10)
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	// A part of this file from alice, as an interrupted transfer leaves it.
	part := filepath.Join(dir, ".resume.bin.part")
	if err := os.WriteFile(part, data[:50<<10], 0o600); err != nil {
		t.Fatal(err)
	}
	sidecar := fmt.Sprintf(`{"name":"resume.bin","size":%d,"algo":"sha-256","from":%q}`, len(data), alice.Bare())
	if err := os.WriteFile(part+".json", []byte(sidecar), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := transfer.NewReceiver(ctx, xs, transfer.ReceiveOptions{Dir: dir, Allow: []string{alice.Bare()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, _ = alice.Send(ctx, src, xs.JID(), SendOptions{})
	res, err := r.Next(ctx)
	if !errors.Is(err, transfer.ErrTooLong) || !strings.Contains(err.Error(), "resume from byte 51200") || res == nil || res.Offset != 50<<10 {
		t.Fatalf("xfer: %+v, %v; want a clear error about the ignored offset", res, err)
	}
	if _, err := os.Stat(part); !os.IsNotExist(err) {
		t.Fatalf("the part is still there: %v", err)
	}
	if _, err := alice.Send(ctx, src, xs.JID(), SendOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err = r.Next(ctx)
	if err != nil || res.Offset != 0 || sha256File(t, res.Path) != sum {
		t.Fatalf("second offer: %+v, %v", res, err)
	}
}
