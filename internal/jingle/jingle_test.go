package jingle

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"xfer/internal/ibb"
	"xfer/internal/s5b"
	"xfer/internal/session"
)

const (
	aliceJID = "alice@example.org/a"
	bobJID   = "bob@example.org/b"
)

func testCtx(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// pair connects alice and bob as if through a server, each with a
// Manager; bob also accepts in-band streams.
func pair(t testing.TB) (alice, bob *session.Session, ma, mb *Manager, inband *ibb.Manager) {
	t.Helper()
	ca, cb := net.Pipe()
	alice = session.NewStream(ca, aliceJID)
	bob = session.NewStream(cb, bobJID)
	t.Cleanup(func() { alice.Close(); bob.Close() })
	return alice, bob, NewManager(alice), NewManager(bob), ibb.NewManager(bob, ibb.Options{})
}

// directServer is a SOCKS5 streamhost on loopback and its address.
func directServer(t testing.TB) (*s5b.Server, []s5b.Streamhost) {
	t.Helper()
	srv, err := s5b.Listen(context.Background(), []string{"127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	_, p, _ := net.SplitHostPort(srv.Addrs()[0])
	port, _ := strconv.Atoi(p)
	return srv, []s5b.Streamhost{{Host: "127.0.0.1", Port: port}}
}

func digestOf(b []byte) *Digest {
	s := sha256.Sum256(b)
	return &Digest{Algo: "sha-256", Sum: s[:]}
}

type received struct {
	data   []byte
	stream *Stream
	sum    Digest
	sumOK  bool
	err    error
}

// receiveOne makes bob accept the next offer with tr and read it whole.
func receiveOne(t *testing.T, mb *Manager, tr *Transports, reason string) <-chan received {
	t.Helper()
	out := make(chan received, 1)
	mb.Listen(func(in *Incoming) {
		ctx := testCtx(t, 20*time.Second)
		if _, err := in.File(); err != nil {
			var oe *OfferError
			errors.As(err, &oe)
			_ = in.Decline(ctx, oe.Reason, oe.Text)
			out <- received{err: err}
			return
		}
		if reason != "" {
			_ = in.Decline(ctx, reason, "no thanks")
			out <- received{err: errors.New("declined")}
			return
		}
		st, err := in.Accept(ctx, tr, 0)
		if err != nil {
			out <- received{err: err}
			return
		}
		data, err := io.ReadAll(st)
		st.Close()
		var sum Digest
		sums := in.Checksums(ctx, 5*time.Second)
		ok := len(sums) > 0
		if ok {
			sum = sums[0]
		}
		_ = in.Finish(ctx, ReasonSuccess, "")
		out <- received{data: data, stream: st, sum: sum, sumOK: ok, err: err}
	})
	return out
}

func sendOne(t *testing.T, ma *Manager, data []byte, opts OfferOptions) (*Stream, error) {
	t.Helper()
	ctx := testCtx(t, 20*time.Second)
	f := FileInfo{Name: "f.bin", Size: int64(len(data)), Hash: digestOf(data), CanRange: true, Date: time.Now()}
	o, err := Offer(ctx, ma, bobJID, f, opts)
	if err != nil {
		return nil, err
	}
	st, err := o.Stream(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := st.Write(data); err != nil {
		return st, err
	}
	if err := st.Close(); err != nil {
		return st, err
	}
	return st, o.Finish(ctx)
}

func randomData(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTransfer(t *testing.T) {
	for _, tc := range []struct {
		name         string
		senderDirect bool // alice offers its own streamhost
		recvDirect   bool // bob offers its own streamhost
		noS5B        bool
		hashLater    bool
		wantMethod   string
	}{
		{name: "s5b-direct", senderDirect: true, wantMethod: "s5b"},
		{name: "s5b-responder-candidate", recvDirect: true, wantMethod: "s5b"},
		{name: "s5b-both", senderDirect: true, recvDirect: true, wantMethod: "s5b"},
		{name: "ibb", noS5B: true, wantMethod: "ibb"},
		{name: "ibb-hash-later", noS5B: true, hashLater: true, wantMethod: "ibb"},
		{name: "s5b-direct-hash-later", senderDirect: true, hashLater: true, wantMethod: "s5b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, ma, mb, inband := pair(t)
			send := Transports{NoS5B: tc.noS5B}
			if tc.senderDirect {
				send.Server, send.Direct = directServer(t)
			}
			if !tc.senderDirect && !tc.noS5B {
				// An unreachable proxy makes alice offer SOCKS5 at all.
				send.Proxies = []s5b.Streamhost{{JID: "proxy.example.org", Host: "127.0.0.1", Port: closedPort(t)}}
			}
			recv := Transports{InBand: inband}
			if tc.recvDirect {
				recv.Server, recv.Direct = directServer(t)
			}
			got := receiveOne(t, mb, &recv, "")
			data := randomData(t, 300_000)
			st, err := sendOne(t, ma, data, OfferOptions{Transports: send, HashLater: tc.hashLater})
			if err != nil {
				t.Fatalf("send: %v", err)
			}
			if st.Method != tc.wantMethod {
				t.Errorf("sender method %s, want %s", st.Method, tc.wantMethod)
			}
			r := <-got
			if r.err != nil {
				t.Fatalf("receive: %v", r.err)
			}
			if !bytes.Equal(r.data, data) {
				t.Fatalf("received %d bytes, differ from the %d sent", len(r.data), len(data))
			}
			if !r.sumOK || !bytes.Equal(r.sum.Sum, digestOf(data).Sum) {
				t.Errorf("checksum %v %x, want the sha-256 of the data", r.sumOK, r.sum.Sum)
			}
		})
	}
}

// closedPort is a loopback port nothing listens on.
func closedPort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return p
}

// With no candidate working both ways, the initiator replaces the
// transport with in-band and the file still arrives.
func TestFallbackToIBB(t *testing.T) {
	_, _, ma, mb, inband := pair(t)
	send := Transports{Proxies: []s5b.Streamhost{{JID: "proxy.example.org", Host: "127.0.0.1", Port: closedPort(t)}}, HostTimeout: time.Second}
	got := receiveOne(t, mb, &Transports{InBand: inband, HostTimeout: time.Second}, "")
	data := randomData(t, 50_000)
	st, err := sendOne(t, ma, data, OfferOptions{Transports: send})
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	if st.Method != "ibb" || st.Fallback == "" {
		t.Errorf("method %s fallback %q, want ibb after a fallback", st.Method, st.Fallback)
	}
	r := <-got
	if r.err != nil || !bytes.Equal(r.data, data) {
		t.Fatalf("receive: %v, %d bytes", r.err, len(r.data))
	}
}

func TestDecline(t *testing.T) {
	_, _, ma, mb, inband := pair(t)
	got := receiveOne(t, mb, &Transports{InBand: inband}, ReasonDecline)
	_, err := sendOne(t, ma, []byte("x"), OfferOptions{Transports: Transports{NoS5B: true}})
	if !errors.Is(err, ErrDeclined) {
		t.Fatalf("send: %v, want ErrDeclined", err)
	}
	<-got
}
