package s5b

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"xfer/internal/session"
)

// sessionPair connects two sessions over net.Pipe, each stamping its own
// JID as from, as a server would.
func sessionPair(t *testing.T, jidA, jidB string) (a, b *session.Session) {
	t.Helper()
	ca, cb := net.Pipe()
	a, b = session.NewStream(ca, jidA), session.NewStream(cb, jidB)
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

var (
	_ IQSender  = (*session.Session)(nil)
	_ Registrar = (*session.Session)(nil)
)

func TestQueryProxy(t *testing.T) {
	me, proxy := sessionPair(t, "q1@localhost/QXmpp", "proxy.localhost")
	proxy.Handle(session.TypeGet, NS, func(ctx context.Context, iq *session.IQ) ([]byte, error) {
		q, err := ParseQuery(iq.Payload)
		if err != nil || len(q.Streamhosts) != 0 || q.SID != "" {
			return nil, session.NewError(session.CondBadRequest, "")
		}
		// As Prosody answers, plus an IPv6 entry without a port.
		return []byte(`<query xmlns='http://jabber.org/protocol/bytestreams'><streamhost port='49064' jid='proxy.localhost' host='127.0.0.1'/><streamhost jid='proxy.localhost' host='::1'/></query>`), nil
	})
	hosts, err := QueryProxy(ctxT(t), me, "proxy.localhost")
	if err != nil {
		t.Fatal(err)
	}
	want := []Streamhost{{"proxy.localhost", "127.0.0.1", 49064}, {"proxy.localhost", "::1", 1080}}
	if len(hosts) != len(want) || hosts[0] != want[0] || hosts[1] != want[1] {
		t.Fatalf("hosts = %+v, want %+v", hosts, want)
	}
}

func TestQueryProxyErrors(t *testing.T) {
	me, proxy := sessionPair(t, "q1@localhost/QXmpp", "proxy.localhost")
	proxy.Handle(session.TypeGet, NS, func(ctx context.Context, iq *session.IQ) ([]byte, error) {
		return nil, session.NewError(session.CondForbidden, "")
	})
	if _, err := QueryProxy(ctxT(t), me, "proxy.localhost"); !errors.Is(err, session.NewError(session.CondForbidden, "")) {
		t.Fatalf("err = %v", err)
	}
	proxy.Handle(session.TypeGet, NS, func(ctx context.Context, iq *session.IQ) ([]byte, error) {
		return nil, nil // an empty result
	})
	if _, err := QueryProxy(ctxT(t), me, "proxy.localhost"); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v", err)
	}
}

func TestActivate(t *testing.T) {
	me, proxy := sessionPair(t, "q1@localhost/QXmpp", "proxy.localhost")
	var mu sync.Mutex
	var got *Query
	proxy.Handle(session.TypeSet, NS, func(ctx context.Context, iq *session.IQ) ([]byte, error) {
		q, err := ParseQuery(iq.Payload)
		if err != nil {
			return nil, session.NewError(session.CondBadRequest, "")
		}
		mu.Lock()
		got = q
		mu.Unlock()
		if q.SID != "d73f" {
			return nil, session.NewError(session.CondItemNotFound, "")
		}
		if q.Activate != "q2@localhost/QXmpp" {
			return nil, session.NewError(session.CondNotAllowed, "")
		}
		return nil, nil
	})
	if err := Activate(ctxT(t), me, "proxy.localhost", "d73f", "q2@localhost/QXmpp"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if got.SID != "d73f" || got.Activate != "q2@localhost/QXmpp" {
		t.Fatalf("proxy got %+v", got)
	}
	mu.Unlock()
	for _, tt := range []struct{ sid, target, cond string }{
		{"nope", "q2@localhost/QXmpp", session.CondItemNotFound},
		{"d73f", "q3@localhost/QXmpp", session.CondNotAllowed},
	} {
		err := Activate(ctxT(t), me, "proxy.localhost", tt.sid, tt.target)
		if !errors.Is(err, session.NewError(tt.cond, "")) {
			t.Errorf("err = %v, want %s", err, tt.cond)
		}
	}
}

// TestDirectBytestream runs a whole direct bytestream: the requester's
// Server, Request over XMPP, and a target answering with Handle and Connect
// through a dead streamhost to the live one.
func TestDirectBytestream(t *testing.T) {
	const sid = "vxf9n471bn46"
	req, tgt := sessionPair(t, "requester@example.com/foo", "target@example.org/bar")
	srv := newTestServer(t, nil)
	dst := DstAddr(sid, req.JID(), tgt.JID())
	ch, err := srv.Expect(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Forget(dst)

	targetConn := make(chan net.Conn, 1)
	Handle(tgt, func(ctx context.Context, from string, q *Query) ([]byte, error) {
		if q.SID != sid || from != req.JID() {
			return nil, session.NewError(session.CondNotAcceptable, "unknown stream")
		}
		c, h, err := Connect(ctx, q.Streamhosts, DstAddr(q.SID, from, tgt.JID()), time.Second, 0)
		if err != nil {
			return nil, session.NewError(session.CondItemNotFound, "")
		}
		targetConn <- c
		return MarshalUsed(q.SID, h.JID), nil
	})

	hosts := []Streamhost{deadHost(t), hostOf(t, req.JID(), srv.Addrs()[0])}
	hosts[0].JID = "proxy.example.com"
	used, err := Request(ctxT(t), req, tgt.JID(), sid, hosts)
	if err != nil {
		t.Fatal(err)
	}
	if used != req.JID() {
		t.Fatalf("used = %q", used)
	}
	var rc, tc net.Conn
	// The target's answer may overtake the delivery by a moment.
	select {
	case rc = <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("streamhost-used without a connection")
	}
	defer rc.Close()
	tc = <-targetConn
	defer tc.Close()

	go func() {
		rc.Write([]byte("file contents"))
		rc.Close()
	}()
	got, err := io.ReadAll(tc)
	if err != nil || string(got) != "file contents" {
		t.Fatalf("target read %q, %v", got, err)
	}
}

func TestRequestFailures(t *testing.T) {
	const sid = "s1"
	req, tgt := sessionPair(t, "requester@example.com/foo", "target@example.org/bar")
	hosts := []Streamhost{{JID: "proxy.example.com", Host: "127.0.0.1", Port: 7777}}

	if _, err := Request(ctxT(t), req, tgt.JID(), sid, nil); !errors.Is(err, ErrNoStreamhost) {
		t.Fatalf("no hosts: err = %v", err)
	}

	answer := func(payload []byte, err error) {
		Handle(tgt, func(ctx context.Context, from string, q *Query) ([]byte, error) { return payload, err })
	}
	answer(nil, session.NewError(session.CondItemNotFound, ""))
	_, err := Request(ctxT(t), req, tgt.JID(), sid, hosts)
	if !errors.Is(err, ErrNoStreamhost) || !errors.Is(err, session.NewError(session.CondItemNotFound, "")) {
		t.Fatalf("item-not-found: err = %v", err)
	}

	answer(MarshalUsed(sid, "evil.example.com"), nil)
	if _, err := Request(ctxT(t), req, tgt.JID(), sid, hosts); !errors.Is(err, ErrUnexpectedStreamhost) {
		t.Fatalf("unoffered streamhost: err = %v", err)
	}
	answer(nil, nil)
	if _, err := Request(ctxT(t), req, tgt.JID(), sid, hosts); err == nil {
		t.Fatal("empty answer accepted")
	}
	answer(MarshalUsed(sid, "PROXY.example.com"), nil)
	if used, err := Request(ctxT(t), req, tgt.JID(), sid, hosts); err != nil || used != "proxy.example.com" {
		t.Fatalf("case-insensitive domain: used %q, err %v", used, err)
	}

	// Handle answers a query it cannot parse with bad-request.
	_, err = req.SendIQ(ctxT(t), &session.IQ{Type: session.TypeSet, To: tgt.JID(), Payload: []byte(`<activate xmlns='http://jabber.org/protocol/bytestreams'/>`)})
	if !errors.Is(err, session.NewError(session.CondBadRequest, "")) {
		t.Fatalf("malformed: err = %v", err)
	}

	// A target that never answers (gloox) ends with the caller's deadline.
	Handle(tgt, func(ctx context.Context, from string, q *Query) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := Request(ctx, req, tgt.JID(), sid, hosts); !errors.Is(err, session.ErrNoReply) {
		t.Fatalf("silent target: err = %v", err)
	}
}

// TestProxyBytestream plays the mediated flow against a fake proxy: a
// session answering the activation and a streamhost Server pairing the two
// connections, as Prosody's proxy65 does (first connection target, second
// requester).
func TestProxyBytestream(t *testing.T) {
	const sid = "d73f22b7"
	me, proxy := sessionPair(t, "q1@localhost/QXmpp", "proxy.localhost")
	relay := newFakeProxy(t)
	proxy.Handle(session.TypeGet, NS, func(ctx context.Context, iq *session.IQ) ([]byte, error) {
		return MarshalRequest("", []Streamhost{relay.host}), nil
	})
	proxy.Handle(session.TypeSet, NS, func(ctx context.Context, iq *session.IQ) ([]byte, error) {
		q, err := ParseQuery(iq.Payload)
		if err != nil {
			return nil, err
		}
		if err := relay.activate(DstAddr(q.SID, iq.From, q.Activate)); err != nil {
			return nil, session.NewError(session.CondNotAllowed, err.Error())
		}
		return nil, nil
	})

	hosts, err := QueryProxy(ctxT(t), me, "proxy.localhost")
	if err != nil {
		t.Fatal(err)
	}
	dst := DstAddr(sid, me.JID(), me.JID())
	target, _, err := Connect(ctxT(t), hosts, dst, time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	requester, err := Dial(ctxT(t), hosts[0], dst, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer requester.Close()
	if err := Activate(ctxT(t), me, "proxy.localhost", sid, me.JID()); err != nil {
		t.Fatal(err)
	}
	go func() {
		requester.Write([]byte("through the proxy"))
		requester.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(target)
	if err != nil || string(got) != "through the proxy" {
		t.Fatalf("read %q, %v", got, err)
	}
}

// fakeProxy accepts any hash on a loopback port and relays the first two
// connections for a hash once activated.
type fakeProxy struct {
	host Streamhost
	mu   sync.Mutex
	ln   net.Listener
	got  map[string][]net.Conn
}

func newFakeProxy(t *testing.T) *fakeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &fakeProxy{host: hostOf(t, "proxy.localhost", ln.Addr().String()), ln: ln, got: map[string][]net.Conn{}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			addr, err := readRequest(c)
			if err != nil {
				c.Close()
				continue
			}
			c.SetDeadline(time.Time{})
			// Recorded before the reply, so an activation that follows
			// it finds both sides.
			p.mu.Lock()
			p.got[addr] = append(p.got[addr], c)
			p.mu.Unlock()
			writeReply(c, ReplySucceeded, addr)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, cs := range p.got {
			for _, c := range cs {
				c.Close()
			}
		}
	})
	return p
}

func (p *fakeProxy) activate(dst string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cs := p.got[dst]
	if len(cs) != 2 {
		return errors.New("both sides must be connected")
	}
	target, requester := cs[0], cs[1]
	go func() {
		io.Copy(target, requester)
		target.(*net.TCPConn).CloseWrite()
	}()
	return nil
}

// Peers echo JIDs in other cases (an upper-case domain, as some servers
// and clients write it): the streamhost-used answer still names the host
// we offered.
func TestRequestAcceptsJIDInOtherCase(t *testing.T) {
	requester, target := sessionPair(t, "alice@example.org/a", "bob@example.org/b")
	hosts := []Streamhost{{JID: "Proxy.Example.ORG", Host: "127.0.0.1", Port: 7777}}
	Handle(target, func(ctx context.Context, from string, q *Query) ([]byte, error) {
		return MarshalUsed(q.SID, strings.ToUpper(q.Streamhosts[0].JID)), nil
	})
	used, err := Request(context.Background(), requester, target.JID(), "sid1", hosts)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.EqualFold(used, "proxy.example.org") {
		t.Fatalf("used %q", used)
	}
}
