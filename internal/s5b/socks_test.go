package s5b

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

var testDst = DstAddr("sid", "requester@example.com/foo", "target@example.org/bar")

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func connectRequest(addr string, port uint16) []byte {
	return concat([]byte{5, 1, 0, 3, byte(len(addr))}, []byte(addr), []byte{byte(port >> 8), byte(port)})
}

func domainReply(rep byte, addr string) []byte {
	return concat([]byte{5, rep, 0, 3, byte(len(addr))}, []byte(addr), []byte{0, 0})
}

// scriptedServer plays a SOCKS5 server on conn: it checks that the client's
// greeting and CONNECT each arrive as one whole message, in order, and
// answers with methodReply and connectReply (nil: stay silent). Errors go to
// the returned channel.
func scriptedServer(conn net.Conn, methodReply, connectReply []byte) <-chan error {
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		buf := make([]byte, 512)
		n, err := conn.Read(buf)
		if err != nil {
			errc <- err
			return
		}
		if want := []byte{5, 1, 0}; !bytes.Equal(buf[:n], want) {
			errc <- errors.New("greeting is not exactly 05 01 00 in one message")
			return
		}
		if methodReply == nil {
			io.Copy(io.Discard, conn) // black hole
			return
		}
		if _, err := conn.Write(methodReply); err != nil {
			errc <- err
			return
		}
		n, err = conn.Read(buf)
		if err != nil {
			return // the client gave up after the method reply
		}
		if want := connectRequest(testDst, 0); !bytes.Equal(buf[:n], want) {
			errc <- errors.New("CONNECT is not the expected 47 bytes in one message")
			return
		}
		if connectReply == nil {
			io.Copy(io.Discard, conn)
			return
		}
		conn.Write(connectReply)
		conn.Close()
	}()
	return errc
}

func TestClientHandshake(t *testing.T) {
	ok := []byte{5, 0}
	tests := []struct {
		name         string
		methodReply  []byte
		connectReply []byte
		wantErr      error
		wantCode     Reply
	}{
		{name: "success echoing the address", methodReply: ok, connectReply: domainReply(0, testDst)},
		{name: "success with IPv4 bound address", methodReply: ok, connectReply: []byte{5, 0, 0, 1, 127, 0, 0, 1, 0x13, 0x88}},
		{name: "success with IPv6 bound address", methodReply: ok, connectReply: concat([]byte{5, 0, 0, 4}, make([]byte, 16), []byte{0, 0})},
		{name: "success with odd RSV", methodReply: ok, connectReply: concat([]byte{5, 0, 9}, domainReply(0, testDst)[3:])},
		{name: "answers for another destination", methodReply: ok, connectReply: domainReply(0, strings.Repeat("f", 40)), wantErr: ErrProtocol},
		{name: "answers with an empty destination", methodReply: ok, connectReply: concat([]byte{5, 0, 0, 3, 0}, []byte{0, 0}), wantErr: ErrProtocol},
		{name: "echo in upper case", methodReply: ok, connectReply: domainReply(0, strings.ToUpper(testDst))},
		{name: "general failure", methodReply: ok, connectReply: []byte{5, 1, 0, 1, 0, 0, 0, 0, 0, 0}, wantErr: ErrRefused, wantCode: ReplyGeneralFailure},
		{name: "not allowed", methodReply: ok, connectReply: []byte{5, 2, 0, 1, 0, 0, 0, 0, 0, 0}, wantErr: ErrRefused, wantCode: ReplyNotAllowed},
		{name: "host unreachable, short reply", methodReply: ok, connectReply: []byte{5, 4, 0}, wantErr: ErrProtocol},
		{name: "connection refused, reply cut after code", methodReply: ok, connectReply: []byte{5, 5, 0, 1}, wantErr: ErrRefused, wantCode: ReplyConnectionRefused},
		{name: "unknown code", methodReply: ok, connectReply: []byte{5, 0x42, 0, 1, 0, 0, 0, 0, 0, 0}, wantErr: ErrRefused, wantCode: 0x42},
		{name: "method reply version 4", methodReply: []byte{4, 0}, wantErr: ErrProtocol},
		{name: "no acceptable method", methodReply: []byte{5, 0xff}, wantErr: ErrAuthRequired},
		{name: "method not offered", methodReply: []byte{5, 2}, wantErr: ErrProtocol},
		{name: "method reply truncated", methodReply: []byte{5}, wantErr: ErrProtocol},
		{name: "connect reply empty", methodReply: ok, connectReply: []byte{}, wantErr: ErrProtocol},
		{name: "connect reply wrong version", methodReply: ok, connectReply: concat([]byte{4}, domainReply(0, testDst)[1:]), wantErr: ErrProtocol},
		{name: "connect reply address truncated", methodReply: ok, connectReply: domainReply(0, testDst)[:20], wantErr: ErrProtocol},
		{name: "connect reply port truncated", methodReply: ok, connectReply: domainReply(0, testDst)[:46], wantErr: ErrProtocol},
		{name: "connect reply unknown address type", methodReply: ok, connectReply: []byte{5, 0, 0, 9, 0, 0, 0, 0, 0, 0}, wantErr: ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			methodReply := tt.methodReply
			if len(methodReply) < 2 {
				// A truncated reply must end the stream, or the client waits.
				go func() {
					server.Read(make([]byte, 3))
					server.Write(methodReply)
					server.Close()
				}()
			} else {
				errc := scriptedServer(server, methodReply, tt.connectReply)
				defer func() {
					client.Close()
					if err := <-errc; err != nil {
						t.Errorf("server script: %v", err)
					}
				}()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := ClientHandshake(ctx, client, testDst)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v: the client hung instead of failing", err)
			}
			var re *ReplyError
			if tt.wantCode != 0 && (!errors.As(err, &re) || re.Code != tt.wantCode) {
				t.Fatalf("err = %v, want reply code %d", err, tt.wantCode)
			}
		})
	}
}

// The reply is consumed exactly: stream data sent right behind it is the
// caller's, and the handshake's deadline does not outlive it.
func TestClientHandshakeLeavesStreamIntact(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	go func() {
		buf := make([]byte, 64)
		server.Read(buf)
		server.Write([]byte{5, 0})
		server.Read(buf)
		server.Write(concat(domainReply(0, testDst), []byte("first")))
		<-ctx.Done() // the handshake's deadline has passed
		server.Write([]byte("second"))
	}()
	if err := ClientHandshake(ctx, client, testDst); err != nil {
		t.Fatal(err)
	}
	cancel()
	got := make([]byte, len("firstsecond"))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatalf("reading after the handshake: %v", err)
	}
	if string(got) != "firstsecond" {
		t.Fatalf("stream data = %q", got)
	}
}

func TestClientHandshakeBlackHole(t *testing.T) {
	for _, stage := range []string{"deaf", "greeting", "connect"} {
		t.Run(stage, func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			if stage == "deaf" {
				// Not even the greeting is read: the write itself blocks.
				defer server.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				defer cancel()
				if err := ClientHandshake(ctx, client, testDst); !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("err = %v, want deadline exceeded", err)
				}
				return
			}
			var methodReply []byte
			if stage == "connect" {
				methodReply = []byte{5, 0}
			}
			errc := scriptedServer(server, methodReply, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := ClientHandshake(ctx, client, testDst)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want deadline exceeded", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("took %v", d)
			}
			client.Close()
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestClientHandshakeCancel(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	errc := scriptedServer(server, []byte{5, 0}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ClientHandshake(ctx, client, testDst) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancellation did not unblock the handshake")
	}
	client.Close()
	<-errc
}

func TestClientHandshakeBadAddress(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	for _, addr := range []string{"", string(make([]byte, 256))} {
		if err := ClientHandshake(context.Background(), client, addr); err == nil {
			t.Errorf("address of %d bytes accepted", len(addr))
		}
	}
}

// scriptConn is a client played from a script: Read returns one message at
// a time and then EOF, as if the client half-closed; Write records replies.
type scriptConn struct {
	net.Conn // nil: readRequest uses only Read and Write
	r        io.Reader
	w        bytes.Buffer
}

func (c *scriptConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c *scriptConn) Write(b []byte) (int, error) { return c.w.Write(b) }

// runServerSide feeds the client's messages to readRequest, answers success
// if it returns, and reports what the client received.
func runServerSide(msgs ...[]byte) (addr string, err error, received []byte) {
	var rs []io.Reader
	for _, m := range msgs {
		rs = append(rs, bytes.NewReader(m))
	}
	c := &scriptConn{r: io.MultiReader(rs...)}
	addr, err = readRequest(c)
	if err == nil {
		writeReply(c, ReplySucceeded, addr)
	}
	return addr, err, c.w.Bytes()
}

func TestServerHandshake(t *testing.T) {
	greeting := []byte{5, 1, 0}
	connect := connectRequest(testDst, 0)
	failure := func(rep byte) []byte { return []byte{5, 0, 5, rep, 0, 1, 0, 0, 0, 0, 0, 0} }
	tests := []struct {
		name string
		msgs [][]byte
		ok   bool
		want []byte // what the client receives
	}{
		{name: "separate messages", msgs: [][]byte{greeting, connect}, ok: true, want: concat([]byte{5, 0}, domainReply(0, testDst))},
		{name: "one write", msgs: [][]byte{concat(greeting, connect)}, ok: true, want: concat([]byte{5, 0}, domainReply(0, testDst))},
		{name: "byte by byte", msgs: bytesOf(concat(greeting, connect)), ok: true, want: concat([]byte{5, 0}, domainReply(0, testDst))},
		{name: "several methods offered", msgs: [][]byte{{5, 3, 2, 1, 0}, connect}, ok: true, want: concat([]byte{5, 0}, domainReply(0, testDst))},
		{name: "no NO-AUTH", msgs: [][]byte{{5, 1, 2}, connect}, want: []byte{5, 0xff}},
		{name: "no methods", msgs: [][]byte{{5, 0}, connect}, want: []byte{5, 0xff}},
		{name: "SOCKS4", msgs: [][]byte{{4, 1, 0, 80, 127, 0, 0, 1, 0}}, want: nil},
		{name: "BIND", msgs: [][]byte{greeting, concat([]byte{5, 2}, connect[2:])}, want: failure(7)},
		{name: "IPv4 address", msgs: [][]byte{greeting, {5, 1, 0, 1, 127, 0, 0, 1, 0, 0}}, want: failure(8)},
		{name: "port 1080", msgs: [][]byte{greeting, connectRequest(testDst, 1080)}, want: failure(2)},
		{name: "connect version 4", msgs: [][]byte{greeting, concat([]byte{4}, connect[1:])}, want: []byte{5, 0}},
		{name: "truncated greeting", msgs: [][]byte{{5, 2, 0}}, want: nil},
		{name: "truncated connect", msgs: [][]byte{greeting, connect[:30]}, want: []byte{5, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, err, got := runServerSide(tt.msgs...)
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v", err)
			}
			if tt.ok && addr != testDst {
				t.Fatalf("addr = %q", addr)
			}
			if !tt.ok && !errors.Is(err, ErrProtocol) {
				t.Fatalf("err = %v, want ErrProtocol", err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("client received % x\nwant              % x", got, tt.want)
			}
		})
	}
}

func bytesOf(b []byte) [][]byte {
	out := make([][]byte, len(b))
	for i := range b {
		out[i] = b[i : i+1]
	}
	return out
}

// Our client and our server agree.
func TestClientAgainstServerSide(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	errc := make(chan error, 1)
	go func() {
		addr, err := readRequest(server)
		if err == nil {
			err = writeReply(server, ReplySucceeded, addr)
		}
		errc <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ClientHandshake(ctx, client, testDst); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func FuzzClientHandshakeReply(f *testing.F) {
	f.Add(concat([]byte{5, 0}, domainReply(0, testDst)))
	f.Add(concat([]byte{5, 0}, domainReply(0, testDst), []byte("data")))
	f.Add([]byte{5, 0, 5, 0, 0, 1, 127, 0, 0, 1, 0, 80})
	f.Add(concat([]byte{5, 0, 5, 0, 0, 4}, make([]byte, 18)))
	f.Add([]byte{5, 0, 5, 2, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{5, 0xff})
	f.Add([]byte{5, 0, 5, 0, 0, 3, 255})
	f.Fuzz(func(t *testing.T, reply []byte) {
		client, server := net.Pipe()
		go io.Copy(io.Discard, server)
		go func() {
			server.Write(reply)
			server.Close()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := ClientHandshake(ctx, client, testDst)
		client.Close()
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("hung on % x", reply)
		}
		if err != nil {
			return
		}
		// Success needs a NO-AUTH selection and a version-5 success reply
		// with a complete address.
		if len(reply) < 6 || reply[0] != 5 || reply[1] != 0 || reply[2] != 5 || reply[3] != 0 {
			t.Fatalf("accepted % x", reply)
		}
		need := map[byte]int{1: 4, 4: 16}[reply[5]]
		if reply[5] == 3 {
			if len(reply) < 7 {
				t.Fatalf("accepted % x", reply)
			}
			need = 1 + int(reply[6])
		}
		if need == 0 || len(reply) < 6+need+2 {
			t.Fatalf("accepted incomplete reply % x", reply)
		}
	})
}

func FuzzServerHandshake(f *testing.F) {
	f.Add(concat([]byte{5, 1, 0}, connectRequest(testDst, 0)))
	f.Add(concat([]byte{5, 2, 2, 0}, connectRequest(testDst, 0)))
	f.Add(concat([]byte{5, 1, 0}, connectRequest(testDst, 80)))
	f.Add(concat([]byte{5, 1, 0}, []byte{5, 1, 0, 1, 127, 0, 0, 1, 0, 0}))
	f.Add([]byte{5, 1, 2})
	f.Add([]byte{5, 255})
	f.Fuzz(func(t *testing.T, in []byte) {
		addr, err, got := runServerSide(in)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("err = %v", err)
			}
			return
		}
		// Accepted: a version-5 greeting offering NO-AUTH, then CONNECT with
		// a domain name and port 0, and the reply echoes the address.
		if len(in) < 3 || in[0] != 5 || bytes.IndexByte(in[2:2+int(in[1])], 0) < 0 {
			t.Fatalf("accepted greeting % x", in)
		}
		req := in[2+int(in[1]):]
		if len(req) < 7 || !bytes.Equal(req[:4], []byte{5, 1, req[2], 3}) || string(req[5:5+int(req[4])]) != addr {
			t.Fatalf("accepted request % x as %q", req, addr)
		}
		if p := req[5+len(addr):]; len(p) < 2 || p[0] != 0 || p[1] != 0 {
			t.Fatalf("accepted port in % x", req)
		}
		if want := concat([]byte{5, 0}, domainReply(0, addr)); !bytes.Equal(got, want) {
			t.Fatalf("replied % x", got)
		}
	})
}
