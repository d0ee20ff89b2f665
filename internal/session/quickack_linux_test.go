package session

import (
	"net"
	"syscall"
	"testing"
)

// The server connection acknowledges at once after every read (Linux
// clears TCP_QUICKACK on its own, so each read sets it again).
func TestQuickAckAfterRead(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for range 3 {
			c.Write([]byte("<x/>"))
		}
	}()
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := quickAck(raw)
	defer c.Close()
	q, ok := c.(*quickAckConn)
	if !ok {
		t.Fatalf("quickAck returned %T", c)
	}
	buf := make([]byte, 4)
	for range 3 {
		// As the kernel does after a while: back to delayed ACKs.
		_ = q.rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 0)
		})
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
		var v int
		var serr error
		if err := q.rc.Control(func(fd uintptr) {
			v, serr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK)
		}); err != nil || serr != nil {
			t.Fatal(err, serr)
		}
		if v != 1 {
			t.Fatalf("TCP_QUICKACK is %d after a read", v)
		}
	}
	if _, ok := quickAck(&net.UnixConn{}).(*quickAckConn); ok {
		t.Fatal("a connection that is not TCP was wrapped")
	}
}
