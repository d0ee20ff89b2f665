package ibb

import (
	"context"
	"encoding/xml"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"xfer/internal/session"
)

const (
	aliceJID   = "alice@example.org/a"
	bobJID     = "bob@example.org/b"
	malloryJID = "mallory@example.org/m"
)

func testCtx(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// sessionPair connects alice and bob as if through a server.
func sessionPair(t testing.TB) (alice, bob *session.Session) {
	t.Helper()
	ca, cb := net.Pipe()
	alice = session.NewStream(ca, aliceJID)
	bob = session.NewStream(cb, bobJID)
	t.Cleanup(func() { alice.Close(); bob.Close() })
	return alice, bob
}

// openPair opens stream sid from alice (sender) to bob (a Manager with
// recvOpts) and returns both ends.
func openPair(t testing.TB, sid string, sendOpts, recvOpts Options) (w, r *Conn) {
	t.Helper()
	alice, bob := sessionPair(t)
	m := NewManager(bob, recvOpts)
	m.Expect(sid, aliceJID)
	ctx := testCtx(t, 10*time.Second)
	var err error
	w, err = Open(ctx, alice, bobJID, sid, sendOpts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	r, err = m.Accept(ctx, sid, aliceJID)
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	return w, r
}

// wire is one top-level stanza as a raw peer sees it.
type wire struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Inner   string     `xml:",innerxml"`
}

func (w wire) attr(name string) string {
	for _, a := range w.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// payloadAttr returns an attribute of the stanza's child element.
func (w wire) payloadAttr(name string) string {
	d := xml.NewDecoder(strings.NewReader(w.Inner))
	for {
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		if se, ok := tok.(xml.StartElement); ok {
			for _, a := range se.Attr {
				if a.Name.Local == name {
					return a.Value
				}
			}
			return ""
		}
	}
}

// condition returns the stanza error condition of an error reply.
func (w wire) condition() string {
	if w.attr("type") != "error" {
		return ""
	}
	i := strings.Index(w.Inner, "<error")
	if i < 0 {
		return "?"
	}
	return session.ParseError([]byte(w.Inner[i:])).Condition
}

// rawPeer scripts the other end of a session's pipe with raw XML.
type rawPeer struct {
	t    testing.TB
	conn net.Conn
	jid  string // stamped as from unless a stanza names another
	in   chan wire

	mu    sync.Mutex
	stash []wire
}

// newRawPeer returns a session for jid and a raw peer speaking as peerJID.
func newRawPeer(t testing.TB, jid, peerJID string) (*session.Session, *rawPeer) {
	t.Helper()
	ca, cb := net.Pipe()
	s := session.NewStream(ca, jid)
	p := &rawPeer{t: t, conn: cb, jid: peerJID, in: make(chan wire, 4096)}
	t.Cleanup(func() { s.Close(); cb.Close() })
	go func() {
		defer close(p.in)
		d := xml.NewDecoder(cb)
		for {
			tok, err := d.Token()
			if err != nil {
				return
			}
			if se, ok := tok.(xml.StartElement); ok {
				var w wire
				if d.DecodeElement(&w, &se) != nil {
					return
				}
				p.in <- w
			}
		}
	}()
	return s, p
}

func (p *rawPeer) send(format string, args ...any) {
	p.t.Helper()
	if _, err := fmt.Fprintf(p.conn, format, args...); err != nil {
		p.t.Errorf("raw peer write: %v", err)
	}
}

// set sends an IQ-set from the peer (or from, if given) with payload.
func (p *rawPeer) set(id, to, payload string) {
	p.setFrom(p.jid, id, to, payload)
}

func (p *rawPeer) setFrom(from, id, to, payload string) {
	p.send(`<iq type='set' id='%s' from='%s' to='%s'>%s</iq>`, id, from, to, payload)
}

// result answers the IQ w.
func (p *rawPeer) result(w wire) {
	p.send(`<iq type='result' id='%s' from='%s' to='%s'/>`, w.attr("id"), p.jid, w.attr("from"))
}

func (p *rawPeer) errorReply(w wire, cond string) {
	p.send(`<iq type='error' id='%s' from='%s' to='%s'><error type='cancel'><%s xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		w.attr("id"), p.jid, w.attr("from"), cond)
}

// next returns the next stanza the session sent, failing after d.
func (p *rawPeer) next(d time.Duration) (wire, bool) {
	p.mu.Lock()
	if len(p.stash) > 0 {
		w := p.stash[0]
		p.stash = p.stash[1:]
		p.mu.Unlock()
		return w, true
	}
	p.mu.Unlock()
	select {
	case w, ok := <-p.in:
		return w, ok
	case <-time.After(d):
		return wire{}, false
	}
}

// reply waits for the answer to the IQ with the given id, keeping other
// stanzas for next.
func (p *rawPeer) reply(id string) wire {
	p.t.Helper()
	isReply := func(w wire) bool {
		return w.attr("id") == id && (w.attr("type") == "result" || w.attr("type") == "error")
	}
	p.mu.Lock()
	for i, w := range p.stash {
		if isReply(w) {
			p.stash = append(p.stash[:i:i], p.stash[i+1:]...)
			p.mu.Unlock()
			return w
		}
	}
	p.mu.Unlock()
	timeout := time.After(10 * time.Second)
	var other []wire
	defer func() {
		p.mu.Lock()
		p.stash = append(p.stash, other...)
		p.mu.Unlock()
	}()
	for {
		select {
		case w, ok := <-p.in:
			if !ok {
				p.t.Fatalf("stream ended waiting for reply to %s", id)
			}
			if isReply(w) {
				return w
			}
			other = append(other, w)
		case <-timeout:
			p.t.Fatalf("no reply to %s", id)
		}
	}
}

// openRaw has the raw peer (as alice) open sid to bob's manager and returns
// the accepted Conn.
func openRaw(t testing.TB, m *Manager, p *rawPeer, sid string, blockSize int) *Conn {
	t.Helper()
	m.Expect(sid, p.jid)
	p.set("open1", bobJID, fmt.Sprintf(`<open xmlns='%s' sid='%s' block-size='%d'/>`, NS, sid, blockSize))
	if r := p.reply("open1"); r.attr("type") != "result" {
		t.Fatalf("open answered %s", r.condition())
	}
	c, err := m.Accept(testCtx(t, 5*time.Second), sid, p.jid)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func dataXML(sid string, seq int, b64 string) string {
	return fmt.Sprintf(`<data xmlns='%s' sid='%s' seq='%d'>%s</data>`, NS, sid, seq, b64)
}
