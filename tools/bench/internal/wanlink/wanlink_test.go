package wanlink

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// start creates a two-node network A, B, or skips where it cannot run.
func start(t *testing.T) *Net {
	t.Helper()
	if testing.Short() {
		t.Skip("creates network namespaces: not in -short")
	}
	if err := Available(); err != nil {
		t.Skip(err)
	}
	n, err := New(fmt.Sprintf("xfer-wanlink-test%d", os.Getpid()), "10.78.0", "A", "B")
	if err != nil {
		t.Skip(err) // e.g. no namespaces in a container
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
		for _, nd := range n.Nodes {
			if _, err := os.Stat("/run/netns/" + nd.NS); err == nil {
				t.Errorf("namespace %s left behind", nd.NS)
			}
		}
	})
	return n
}

// A TCP connect and a one-byte echo over the emulated link each take at
// least the configured round trip (both links' delays, both ways), and
// the bytes arrive intact and in order.
func TestRoundTrip(t *testing.T) {
	n := start(t)
	a, b := n.Node("A"), n.Node("B")
	a.SetLink(Link{Delay: 10 * time.Millisecond})
	b.SetLink(Link{Delay: 15 * time.Millisecond})
	const rtt = 2 * (10 + 15) * time.Millisecond

	var l net.Listener
	if err := b.Do(func() (err error) { l, err = net.Listen("tcp", b.IP.String()+":0"); return }); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	var c net.Conn
	start := time.Now()
	if err := a.Do(func() (err error) { c, err = net.DialTimeout("tcp", l.Addr().String(), 5*time.Second); return }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if d := time.Since(start); d < rtt {
		t.Errorf("connect took %v, less than the round trip %v", d, rtt)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1)
	start = time.Now()
	if _, err := c.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil || buf[0] != 'x' {
		t.Fatalf("echo: %q, %v", buf, err)
	}
	if d := time.Since(start); d < rtt || d > rtt+500*time.Millisecond {
		t.Errorf("echo took %v, want about %v", d, rtt)
	}
	// 1 MiB of counting bytes, echoed back intact: order kept through
	// the queues (TCP would repair reordering, but not this fast).
	msg := make([]byte, 1<<20)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	go c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != msg[i] {
			t.Fatalf("byte %d differs", i)
		}
	}
	if d := n.Dropped.Load() + n.QueueDrops.Load(); d != 0 {
		t.Errorf("%d packets dropped on lossless links", d)
	}
}

// Datagrams are lost at about the configured rate, on each link crossed.
func TestLoss(t *testing.T) {
	n := start(t)
	a, b := n.Node("A"), n.Node("B")
	a.SetLink(Link{Loss: 0.10})
	b.SetLink(Link{Loss: 0.05})
	var rc *net.UDPConn
	if err := b.Do(func() (err error) {
		rc, err = net.ListenUDP("udp4", &net.UDPAddr{IP: b.IP.AsSlice()})
		return
	}); err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var sc net.Conn
	if err := a.Do(func() (err error) { sc, err = net.Dial("udp4", rc.LocalAddr().String()); return }); err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	var recv atomic.Uint64
	go func() {
		buf := make([]byte, 16)
		for {
			if _, err := rc.Read(buf); err != nil {
				return
			}
			recv.Add(1)
		}
	}()
	// In batches, each waited for (polling a condition) until the
	// emulator has decided every datagram's fate and the forwarded ones
	// have arrived: the receiving socket's buffer holds a few hundred.
	const sent, batch = 4000, 200
	deadline := time.Now().Add(4 * time.Second)
	for i := 0; i < sent; i += batch {
		for j := range batch {
			if _, err := sc.Write([]byte{byte(j)}); err != nil {
				t.Fatal(err)
			}
		}
		for time.Now().Before(deadline) {
			f := n.Forwarded.Load()
			if f+n.Dropped.Load()+n.QueueDrops.Load() >= uint64(i+batch) && recv.Load() >= f {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	fwd, drop := n.Forwarded.Load(), n.Dropped.Load()
	if q := n.QueueDrops.Load(); q != 0 {
		t.Errorf("%d queue drops", q)
	}
	want := 1 - (1-0.10)*(1-0.05) // 14.5 %
	got := float64(drop) / float64(fwd+drop)
	if got < want-0.03 || got > want+0.03 {
		t.Errorf("lost %d of %d (%.1f %%), want about %.1f %%", drop, fwd+drop, 100*got, 100*want)
	}
	if r := recv.Load(); r != fwd {
		t.Errorf("received %d datagrams, the emulator forwarded %d", r, fwd)
	}
}
