package si

import (
	"bytes"
	"context"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"xfer/internal/bytestream"
	"xfer/internal/ibb"
	"xfer/internal/negotiate"
	"xfer/internal/s5b"
	"xfer/internal/session"
)

const (
	aliceJID = "alice@example.org/a"
	bobJID   = "bob@example.org/b"
)

// An accepted SI offer's stream over a pipe between two sessions: SOCKS5
// to the sender's own streamhost, or, with no streamhost that works, the
// in-band fallback on the same sid.
func TestOpenAndAwait(t *testing.T) {
	for _, tc := range []struct {
		name       string
		direct     bool
		wantMethod string
	}{
		{"s5b direct", true, "s5b"},
		{"no streamhost: ibb on the same sid", false, "ibb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca, cb := net.Pipe()
			alice, bob := session.NewStream(ca, aliceJID), session.NewStream(cb, bobJID)
			defer alice.Close()
			defer bob.Close()
			target := NewTarget(bob, &bytestream.Options{InBand: ibb.NewManager(bob, ibb.Options{}), HostTimeout: time.Second})
			send := &bytestream.Options{HostTimeout: time.Second, IBB: ibb.Options{BlockSize: 4096}}
			if tc.direct {
				srv, err := s5b.Listen(context.Background(), []string{"127.0.0.1:0"}, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer srv.Close()
				_, p, _ := net.SplitHostPort(srv.Addrs()[0])
				port, _ := strconv.Atoi(p)
				send.Server, send.Direct = srv, []s5b.Streamhost{{Host: "127.0.0.1", Port: port}}
			} else {
				ln, _ := net.Listen("tcp", "127.0.0.1:0")
				port := ln.Addr().(*net.TCPAddr).Port
				ln.Close() // a proxy nobody answers at
				send.Proxies = []s5b.Streamhost{{JID: "proxy.example.org", Host: "127.0.0.1", Port: port}}
			}
			offer := &negotiate.Offer{SID: "sid1", Methods: []string{negotiate.MethodS5B, negotiate.MethodIBB}}
			pending := target.Expect(offer.SID, aliceJID, true, true)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			data := bytes.Repeat([]byte("xfer si "), 20000)
			got := make(chan []byte, 1)
			go func() {
				st, err := pending.Await(ctx, int64(len(data)))
				if err != nil {
					t.Error(err)
					got <- nil
					return
				}
				b, _ := io.ReadAll(st)
				got <- b
			}()
			st, err := Open(ctx, alice, bobJID, offer, &negotiate.Accept{Method: negotiate.MethodS5B}, send)
			if err != nil {
				t.Fatal(err)
			}
			if st.Method != tc.wantMethod || (tc.wantMethod == "ibb") != (st.Fallback != "") {
				t.Fatalf("stream %s (fallback %q), want %s", st.Method, st.Fallback, tc.wantMethod)
			}
			st.Write(data)
			st.Close()
			if b := <-got; !bytes.Equal(b, data) {
				t.Fatalf("received %d bytes of %d", len(b), len(data))
			}
		})
	}
}

// A bytestream request for an offer the target never accepted is refused
// without a dial.
func TestTargetRefusesUnexpected(t *testing.T) {
	ca, cb := net.Pipe()
	alice, bob := session.NewStream(ca, aliceJID), session.NewStream(cb, bobJID)
	defer alice.Close()
	defer bob.Close()
	NewTarget(bob, &bytestream.Options{InBand: ibb.NewManager(bob, ibb.Options{})})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := s5b.Request(ctx, alice, bobJID, "nosuch", []s5b.Streamhost{{JID: aliceJID, Host: "127.0.0.1", Port: 9}})
	if err == nil {
		t.Fatal("a request for no accepted offer was answered with a streamhost")
	}
}
