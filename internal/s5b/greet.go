package s5b

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"
)

// Greetings are connections to the proxies a party offers, greeted (Greet)
// while the peer is still choosing a streamhost, by proxy address. The
// party that offered a proxy is the one that connects to it last and
// activates it; greeting early overlaps the TCP and SOCKS5 greeting round
// trips with the peer's choice, so only the CONNECT (which names the
// stream) and the activation are left once the peer reports the proxy
// used: two round trips less. Both SI's requester (XEP-0065) and a Jingle
// party with proxy candidates (XEP-0260) use them.
// They are safe for concurrent use (an abort may close them while a
// transfer's negotiation takes one).
type Greetings struct {
	cancel context.CancelFunc
	mu     sync.Mutex
	conns  map[string]chan net.Conn // by address; a nil conn: the greeting failed
}

// GreetAll greets every proxy in hosts (once per address), each within
// timeout, in the background. Close the result when done with it.
func GreetAll(ctx context.Context, hosts []Streamhost, timeout time.Duration) *Greetings {
	ctx, cancel := context.WithCancel(ctx)
	g := &Greetings{cancel: cancel, conns: make(map[string]chan net.Conn)}
	for _, h := range hosts {
		if _, dup := g.conns[h.Addr()]; dup {
			continue
		}
		ch := make(chan net.Conn, 1)
		g.conns[h.Addr()] = ch
		go func() {
			c, err := Greet(ctx, h, timeout)
			if err != nil {
				c = nil // Connect dials again, and reports why it fails
			}
			ch <- c
		}()
	}
	return g
}

// Connect names the stream dstAddr on the greeted connection to h (waiting
// for its greeting, bounded by the greeting's own timeout), or on a new
// connection if that greeting failed or h was not greeted; each within
// timeout. A connection is taken once: a second Connect to the same proxy
// dials anew.
func (g *Greetings) Connect(ctx context.Context, h Streamhost, dstAddr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	if ch := g.take(h.Addr()); ch != nil {
		c = <-ch
	}
	if c == nil {
		return Dial(ctx, h, dstAddr, timeout)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := ClientConnect(cctx, c, dstAddr); err != nil {
		c.Close()
		return nil, fmt.Errorf("s5b: streamhost %s (%s): %w", h.JID, h.Addr(), err)
	}
	return c, nil
}

// Close ends the greetings not taken, and closes their connections. It
// does not wait for them.
func (g *Greetings) Close() {
	if g == nil {
		return
	}
	g.cancel()
	g.mu.Lock()
	defer g.mu.Unlock()
	for addr, ch := range g.conns {
		delete(g.conns, addr)
		go func() {
			if c := <-ch; c != nil {
				c.Close()
			}
		}()
	}
}

// take removes the greeting of addr, if any, and returns its channel.
func (g *Greetings) take(addr string) chan net.Conn {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	ch := g.conns[addr]
	delete(g.conns, addr)
	return ch
}
