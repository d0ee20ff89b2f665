package session

import (
	"encoding/xml"
	"fmt"
	"net"
	"sync"
	"time"

	"gosrc.io/xmpp/stanza"
)

// keepaliveInterval is how often a stream without XMPP pings
// (Config.PingInterval < 0) gets a whitespace ping (RFC 6120 §4.6.1), as
// gosrc.io/xmpp's client sent: a dead connection then fails a write, which
// ends the session.
const keepaliveInterval = 30 * time.Second

// libTransport carries stanzas on a stream the session negotiated itself
// (login.go): gosrc.io/xmpp's stanza decoder reads them, but for the IQs
// the fast path takes (fastread.go), and the session writes its own raw
// XML.
type libTransport struct {
	conn    net.Conn
	rd      *peekReader // under dec
	dec     *xml.Decoder
	fast    bool          // the stream's default namespace is jabber:client
	timeout time.Duration // wait for the server's </stream:stream> on close

	writeMu  sync.Mutex
	readDone chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
}

func newLibTransport(conn net.Conn, s *xmlStream) *libTransport {
	return &libTransport{conn: conn, rd: s.buf, dec: s.dec, fast: s.defaultNS == nsClient, timeout: 3 * time.Second, readDone: make(chan struct{}), stop: make(chan struct{})}
}

func (t *libTransport) send(b []byte) error {
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	_, err := t.conn.Write(b)
	return err
}

func (t *libTransport) sendRecords(b []byte, size int) error {
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	for len(b) > 0 {
		n := min(size, len(b))
		if _, err := t.conn.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// close ends the stream: our </stream:stream>, then a bounded wait for the
// server's, then the connection.
func (t *libTransport) close() error {
	t.stopOnce.Do(func() { close(t.stop) })
	t.writeMu.Lock()
	_ = t.conn.SetWriteDeadline(time.Now().Add(t.timeout))
	_, _ = t.conn.Write([]byte("</stream:stream>"))
	t.writeMu.Unlock()
	select {
	case <-t.readDone:
	case <-time.After(t.timeout):
	}
	return t.conn.Close()
}

func (t *libTransport) keepalive(s *Session) {
	tick := time.NewTicker(keepaliveInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if s.aligned.Load() > 0 {
				continue // data flows, and a space would leave the records' grid
			}
			t.writeMu.Lock()
			_ = t.conn.SetWriteDeadline(time.Now().Add(keepaliveInterval))
			_, err := t.conn.Write([]byte(" "))
			_ = t.conn.SetWriteDeadline(time.Time{})
			t.writeMu.Unlock()
			if err != nil {
				s.fail(fmt.Errorf("%w: keepalive: %v", ErrDisconnected, err))
				t.conn.Close()
				return
			}
		case <-t.stop:
			return
		case <-s.Done():
			return
		}
	}
}

// next reads the next packet: an *IQ, or what stanza.NextPacket returns
// for anything else.
// The fast path's IQ payload is a slice of the reader's buffer (aliased).
func (t *libTransport) next() (p any, aliased bool, err error) {
	if t.fast {
		if iq := t.rd.fastStanza(); iq != nil {
			return iq, true, nil
		}
	}
	p, err = stanza.NextPacket(t.dec)
	if iq, ok := p.(*stanza.IQ); ok && err == nil {
		return fromLibIQ(iq), false, nil
	}
	return p, false, err
}

// readLoop hands every stanza to the session until the stream ends: each
// on its own goroutine as the library's router did, but what the session
// takes inline (inline.go), whose answers go out before the next read.
// Any error ends the session: a failed read, a stream error, the server's
// stream close.
func (t *libTransport) readLoop(s *Session) {
	defer close(t.readDone)
	defer t.stopOnce.Do(func() { close(t.stop) })
	t.rd.beforeRead = s.flushAnswers
	for {
		p, aliased, err := t.next()
		if err != nil {
			s.fail(fmt.Errorf("%w: %s", ErrDisconnected, readFailure(err)))
			t.conn.Close()
			return
		}
		switch st := p.(type) {
		case *IQ:
			s.route(st, aliased, true)
		case stanza.Presence:
			go s.dispatchPresence(Presence{From: st.From, Type: string(st.Type), Priority: int(st.Priority)})
		case stanza.Message:
			go s.dispatchMessage(fromLibMessage(&st))
		case stanza.StreamError:
			s.fail(fmt.Errorf("%w: stream error: %s %s", ErrDisconnected, st.Error.Local, st.Text))
			t.conn.Close()
			return
		case stanza.StreamClosePacket:
			s.fail(fmt.Errorf("%w: the server closed the stream", ErrDisconnected))
			t.conn.Close()
			return
		}
	}
}
