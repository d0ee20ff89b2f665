package jingle

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"xfer/internal/s5b"
	"xfer/internal/session"
)

// relayProxy is a SOCKS5 proxy on loopback that reports each greeting and
// CONNECT, and relays the two connections that name the same stream.
type relayProxy struct {
	ln      net.Listener
	events  chan string
	mu      sync.Mutex
	waiting map[string]net.Conn
	conns   int
}

func newRelayProxy(t *testing.T) (*relayProxy, s5b.Streamhost) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &relayProxy{ln: ln, events: make(chan string, 16), waiting: map[string]net.Conn{}}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns++
			p.mu.Unlock()
			go p.serve(c)
		}
	}()
	return p, s5b.Streamhost{JID: "proxy.example.org", Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port}
}

func (p *relayProxy) serve(c net.Conn) {
	var greeting [3]byte
	if _, err := io.ReadFull(c, greeting[:]); err != nil {
		c.Close()
		return
	}
	c.Write([]byte{5, 0})
	p.events <- "greeted"
	var head [5]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		c.Close()
		return
	}
	rest := make([]byte, int(head[4])+2)
	if _, err := io.ReadFull(c, rest); err != nil {
		c.Close()
		return
	}
	dst := string(rest[:head[4]])
	c.Write(append(append([]byte{5, 0, 0, 3, byte(len(dst))}, dst...), 0, 0))
	p.events <- "connect"
	p.mu.Lock()
	other := p.waiting[dst]
	if other == nil {
		p.waiting[dst] = c
	}
	p.mu.Unlock()
	if other != nil {
		go func() { io.Copy(other, c); other.Close() }()
		go func() { io.Copy(c, other); c.Close() }()
	}
}

func (p *relayProxy) next(t *testing.T, within time.Duration) string {
	t.Helper()
	select {
	case e := <-p.events:
		return e
	case <-time.After(within):
		return ""
	}
}

// An initiator whose proxy the responder uses greets that proxy while the
// responder is still connecting (after the accept: a person may take
// minutes), names the stream on that same connection once the responder
// reported the candidate, activates it, and the file goes through.
func TestProxyGreetedWhileResponderConnects(t *testing.T) {
	_, bob, ma, _, _ := pair(t)
	proxy, host := newRelayProxy(t)
	got := make(chan []byte, 1)
	bob.Handle(session.TypeSet, s5b.NS, func(_ context.Context, iq *session.IQ) ([]byte, error) {
		// The proxy's activation: bob's session stands in for its JID,
		// answering from it (the session's own answer, from bob, is
		// then a stray reply alice drops).
		res := &session.IQ{ID: iq.ID, To: iq.From, From: host.JID, Type: session.TypeResult}
		return nil, bob.Send(res.Marshal())
	})
	bob.Handle(session.TypeSet, NS, func(ctx context.Context, iq *session.IQ) ([]byte, error) {
		if j, err := Parse(iq.Payload); err == nil && j.Action == ActionSessionInitiate {
			go proxyResponder(t, bob, proxy, j, got)
		}
		return nil, nil
	})
	data := randomData(t, 200_000)
	st, err := sendOne(t, ma, data, OfferOptions{Transports: Transports{Proxies: []s5b.Streamhost{host}}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Method != "s5b" || st.Via != "proxy proxy.example.org" {
		t.Fatalf("stream %s via %s", st.Method, st.Via)
	}
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("responder read %d bytes of %d", len(b), len(data))
	}
	proxy.mu.Lock()
	defer proxy.mu.Unlock()
	if proxy.conns != 2 {
		t.Errorf("the proxy saw %d connections, want 2 (the initiator's greeted one used)", proxy.conns)
	}
}

// proxyResponder accepts without candidates of its own, waits until the
// initiator has greeted its proxy, then connects to it, reports it, reads
// the file and terminates with success.
func proxyResponder(t *testing.T, bob *session.Session, proxy *relayProxy, offer *Jingle, got chan<- []byte) {
	ctx := testCtx(t, 10*time.Second)
	ct, tr := offer.Contents[0], offer.Contents[0].S5B
	send := func(j *Jingle) {
		j.SID = offer.SID
		if _, err := bob.SendIQ(ctx, &session.IQ{Type: session.TypeSet, To: aliceJID, Payload: j.Marshal()}); err != nil {
			t.Error(err)
		}
	}
	send(&Jingle{Action: ActionSessionAccept, Responder: bobJID, Contents: []Content{{Creator: ct.Creator, Name: ct.Name, Description: &Description{File: &File{}}, S5B: &S5BTransport{SID: tr.SID}}}})
	if e := proxy.next(t, 5*time.Second); e != "greeted" {
		t.Errorf("after the accept, before the responder connected: proxy saw %q, want the initiator's greeting", e)
	}
	if e := proxy.next(t, 200*time.Millisecond); e != "" {
		t.Errorf("the initiator named the stream before the responder reported it: %q", e)
	}
	c := tr.Candidates[0]
	conn, err := s5b.Dial(ctx, s5b.Streamhost{JID: c.JID, Host: c.Host, Port: c.Port}, s5b.DstAddr(tr.SID, aliceJID, bobJID), time.Second)
	if err != nil {
		t.Error(err)
		got <- nil
		return
	}
	defer conn.Close()
	send(&Jingle{Action: ActionTransportInfo, Contents: []Content{{Creator: ct.Creator, Name: ct.Name, S5B: &S5BTransport{SID: tr.SID, CandidateUsed: &CandidateID{CID: c.CID}}}}})
	b, _ := io.ReadAll(conn)
	send(&Jingle{Action: ActionSessionTerminate, Reason: &Reason{Condition: ReasonSuccess}})
	got <- b
}
