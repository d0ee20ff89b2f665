package s5b

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// loopbackAddrs are the loopback listen addresses this machine supports.
func loopbackAddrs(t *testing.T) []string {
	t.Helper()
	addrs := []string{"127.0.0.1:0"}
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		ln.Close()
		addrs = append(addrs, "[::1]:0")
	} else {
		t.Logf("no IPv6 loopback: %v", err)
	}
	return addrs
}

func newTestServer(t *testing.T, opts *ServerOptions) *Server {
	t.Helper()
	s, err := Listen(context.Background(), loopbackAddrs(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func hostOf(t *testing.T, jid, addr string) Streamhost {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return Streamhost{JID: jid, Host: host, Port: p}
}

// deadHost returns a loopback streamhost nobody listens on.
func deadHost(t *testing.T) Streamhost {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := hostOf(t, "dead.example", ln.Addr().String())
	ln.Close()
	return h
}

// blackHoleHost returns a loopback streamhost that accepts and never answers.
func blackHoleHost(t *testing.T) Streamhost {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return hostOf(t, "blackhole.example", ln.Addr().String())
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestServerOneConnPerHash(t *testing.T) {
	s := newTestServer(t, nil)
	for _, addr := range s.Addrs() {
		t.Run(addr, func(t *testing.T) {
			h := hostOf(t, "a@example.com/r", addr)
			dst := DstAddr("sid-"+addr, "a@example.com/r", "b@example.com/r")
			ch, err := s.Expect(dst)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Expect(dst); !errors.Is(err, ErrDuplicate) {
				t.Fatalf("second Expect: %v", err)
			}

			// An unknown hash is refused and closed.
			_, err = Dial(ctxT(t), h, DstAddr("other", "a@example.com/r", "b@example.com/r"), time.Second)
			var re *ReplyError
			if !errors.As(err, &re) || re.Code != ReplyNotAllowed {
				t.Fatalf("unknown hash: err = %v", err)
			}

			c, err := Dial(ctxT(t), h, dst, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var sc net.Conn
			select {
			case sc = <-ch:
			case <-time.After(5 * time.Second):
				t.Fatal("no connection delivered")
			}
			defer sc.Close()
			if _, ok := <-ch; ok {
				t.Fatal("channel not closed after delivery")
			}

			// The same hash again is refused: one connection per stream.
			if _, err := Dial(ctxT(t), h, dst, time.Second); !errors.Is(err, ErrRefused) {
				t.Fatalf("second connection: err = %v", err)
			}

			// The delivered connection is the bytestream, with no deadline.
			go c.Write([]byte("payload"))
			got := make([]byte, 7)
			if _, err := io.ReadFull(sc, got); err != nil || string(got) != "payload" {
				t.Fatalf("read %q, %v", got, err)
			}
			s.Forget(dst) // the caller's connection stays open
			go sc.Write([]byte("back"))
			if _, err := io.ReadFull(c, got[:4]); err != nil || string(got[:4]) != "back" {
				t.Fatalf("read %q, %v", got[:4], err)
			}
		})
	}
}

// A client sending greeting and CONNECT in one write is served over TCP.
func TestServerGreetingAndConnectInOneWrite(t *testing.T) {
	s := newTestServer(t, nil)
	dst := DstAddr("s", "a@x/r", "b@x/r")
	ch, _ := s.Expect(dst)
	c, err := net.Dial("tcp", s.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(concat([]byte{5, 1, 0}, connectRequest(dst, 0))); err != nil {
		t.Fatal(err)
	}
	want := concat([]byte{5, 0}, domainReply(0, dst))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("reply % x, %v", got, err)
	}
	select {
	case sc := <-ch:
		sc.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("no connection delivered")
	}
}

func TestServerRejects(t *testing.T) {
	s := newTestServer(t, nil)
	dst := DstAddr("s", "a@x/r", "b@x/r")
	ch, _ := s.Expect(dst)
	tests := []struct {
		name string
		send []byte
	}{
		{"port not 0", concat([]byte{5, 1, 0}, connectRequest(dst, 1080))},
		{"wrong hash", concat([]byte{5, 1, 0}, connectRequest(DstAddr("x", "a@x/r", "b@x/r"), 0))},
		{"upper-case hash", concat([]byte{5, 1, 0}, connectRequest(string(bytes.ToUpper([]byte(dst))), 0))},
		{"password only", concat([]byte{5, 1, 2}, connectRequest(dst, 0))},
		{"HTTP", []byte("GET / HTTP/1.0\r\n\r\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", s.Addrs()[0])
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write(tt.send)
			// Ends when the server closes; unread input makes that a reset.
			got, err := io.ReadAll(c)
			if err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("read: %v (the server did not close)", err)
			}
			if len(got) > 3 && got[3] == 0 {
				t.Fatalf("server answered success: % x", got)
			}
		})
	}
	select {
	case c := <-ch:
		t.Fatalf("delivered %v", c)
	default:
	}
}

func TestServerHandshakeTimeout(t *testing.T) {
	s := newTestServer(t, &ServerOptions{HandshakeTimeout: 100 * time.Millisecond})
	c, err := net.Dial("tcp", s.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte{5, 1, 0}) // then silence
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("server kept a silent client: %v", err)
	}
	if !bytes.Equal(got, []byte{5, 0}) {
		t.Fatalf("got % x", got)
	}
}

func TestServerForgetAndClose(t *testing.T) {
	s := newTestServer(t, nil)
	h := hostOf(t, "a@x/r", s.Addrs()[0])
	dst1, dst2, dst3 := DstAddr("1", "a", "b"), DstAddr("2", "a", "b"), DstAddr("3", "a", "b")
	ch1, _ := s.Expect(dst1)
	ch2, _ := s.Expect(dst2)
	ch3, _ := s.Expect(dst3)

	s.Forget(dst1)
	if _, ok := <-ch1; ok {
		t.Fatal("forgotten channel delivered")
	}
	if _, err := Dial(ctxT(t), h, dst1, time.Second); !errors.Is(err, ErrRefused) {
		t.Fatalf("forgotten hash: err = %v", err)
	}

	// Delivered but never received: Close closes it.
	c2, err := Dial(ctxT(t), h, dst2, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	// A silent client mid-handshake: Close must not wait for its timeout.
	c4, err := net.Dial("tcp", s.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c4.Close()

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung on a handshake")
	}
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("unreceived connection still open: %v", err)
	}
	for _, ch := range []<-chan net.Conn{ch2, ch3} {
		if _, ok := <-ch; ok {
			t.Fatal("channel delivered after Close")
		}
	}
	if _, err := s.Expect(dst3); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Expect after Close: %v", err)
	}
	if _, err := Dial(ctxT(t), h, dst3, time.Second); err == nil {
		t.Fatal("closed server still accepts")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestListenFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := Listen(context.Background(), []string{"127.0.0.1:0", ln.Addr().String()}, nil); err == nil {
		t.Fatal("listening on a busy port succeeded")
	}
}

func TestConnect(t *testing.T) {
	s := newTestServer(t, nil)
	dst := DstAddr("s", "a@x/r", "b@x/r")
	live := hostOf(t, "a@x/r", s.Addrs()[len(s.Addrs())-1]) // IPv6 when there is one
	dead, hole := deadHost(t), blackHoleHost(t)

	t.Run("falls through dead and silent hosts", func(t *testing.T) {
		ch, _ := s.Expect(dst)
		defer s.Forget(dst)
		start := time.Now()
		c, used, err := Connect(ctxT(t), []Streamhost{dead, hole, live}, dst, 200*time.Millisecond, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if used != live {
			t.Fatalf("used %+v, want %+v", used, live)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %v", d)
		}
		sc := <-ch
		defer sc.Close()
		if _, ok := c.(interface{ CloseWrite() error }); !ok {
			t.Fatalf("bytestream %T cannot half-close", c)
		}
	})
	t.Run("max bounds the attempts", func(t *testing.T) {
		ch, _ := s.Expect(dst)
		defer s.Forget(dst)
		_, _, err := Connect(ctxT(t), []Streamhost{dead, live}, dst, time.Second, 1)
		if !errors.Is(err, ErrNoStreamhost) {
			t.Fatalf("err = %v", err)
		}
		select {
		case <-ch:
			t.Fatal("host beyond max was tried")
		default:
		}
	})
	t.Run("none offered", func(t *testing.T) {
		if _, _, err := Connect(ctxT(t), nil, dst, time.Second, 0); !errors.Is(err, ErrNoStreamhost) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("overall deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, _, err := Connect(ctx, []Streamhost{hole, hole, hole, live}, dst, time.Second, 0)
		if !errors.Is(err, ErrNoStreamhost) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("took %v", d)
		}
	})
	t.Run("invalid streamhost", func(t *testing.T) {
		_, _, err := Connect(ctxT(t), []Streamhost{{JID: "x", Host: "", Port: 1}, {JID: "x", Host: "h", Port: 0}}, dst, time.Second, 0)
		if !errors.Is(err, ErrBadStreamhost) {
			t.Fatalf("err = %v", err)
		}
	})
}
