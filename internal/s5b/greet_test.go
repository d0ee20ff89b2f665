package s5b

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// scriptedProxy is a SOCKS5 streamhost that reports each step of each
// connection: "greeted", "connect DST", "closed".
type scriptedProxy struct {
	ln     net.Listener
	events chan string
}

func newScriptedProxy(t *testing.T) (*scriptedProxy, Streamhost) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &scriptedProxy{ln: ln, events: make(chan string, 16)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p, Streamhost{JID: "proxy.example.org", Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port}
}

func (p *scriptedProxy) serve(c net.Conn) {
	defer c.Close()
	var b [3]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return
	}
	c.Write([]byte{5, 0})
	p.events <- "greeted"
	var head [5]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		p.events <- "closed"
		return
	}
	rest := make([]byte, int(head[4])+2)
	if _, err := io.ReadFull(c, rest); err != nil {
		return
	}
	dst := string(rest[:head[4]])
	p.events <- "connect " + dst
	reply := append([]byte{5, 0, 0, 3, byte(len(dst))}, dst...)
	c.Write(append(reply, 0, 0))
	io.Copy(io.Discard, c)
}

func (p *scriptedProxy) next(t *testing.T, within time.Duration) string {
	t.Helper()
	select {
	case e := <-p.events:
		return e
	case <-time.After(within):
		return ""
	}
}

// A requester greets its proxies before the target has answered, names
// the stream only on the connection of the proxy used, once it is known,
// and closes the greetings it did not use.
func TestGreetings(t *testing.T) {
	used, hu := newScriptedProxy(t)
	other, ho := newScriptedProxy(t)
	ho.JID = "proxy2.example.org"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g := GreetAll(ctx, []Streamhost{hu, ho}, 5*time.Second)
	for _, p := range []*scriptedProxy{used, other} {
		if e := p.next(t, 5*time.Second); e != "greeted" {
			t.Fatalf("before the target answered: %q, want a greeting", e)
		}
	}
	if e := used.next(t, 200*time.Millisecond); e != "" {
		t.Fatalf("the stream was named before the target chose: %q", e)
	}
	c, err := g.Connect(ctx, hu, "hash-of-the-stream", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if e := used.next(t, 5*time.Second); e != "connect hash-of-the-stream" {
		t.Fatalf("the proxy used saw %q", e)
	}
	g.Close()
	if e := other.next(t, 5*time.Second); e != "closed" {
		t.Errorf("the greeting not used: %q, want it closed", e)
	}
	if e := used.next(t, 200*time.Millisecond); e != "" {
		t.Errorf("the proxy used saw another connection: %q", e)
	}
}

// A greeting that failed is dialled again when its proxy is the one used,
// and the error of that dial is what the requester reports.
func TestGreetingsFailedGreeting(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	h := Streamhost{JID: "proxy.example.org", Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port}
	ln.Close() // nobody answers
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g := GreetAll(ctx, []Streamhost{h}, time.Second)
	defer g.Close()
	_, err := g.Connect(ctx, h, "hash", time.Second)
	var op *net.OpError
	if err == nil || !errors.As(err, &op) || !strings.Contains(err.Error(), "proxy.example.org") {
		t.Fatalf("connect: %v, want the dial's error naming the proxy", err)
	}
}
