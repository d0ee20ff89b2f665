package session

import (
	"net"
)

// NewServerStream runs a session over conn as Dial does once the login is
// over: conn carries what a server sends after resource binding, starting
// with a stream header, and the session reads it with the reader of a
// logged-in session. Benchmarks of the receive path use it (session_test
// may import ibb; package session may not).
func NewServerStream(conn net.Conn, jid string) (*Session, error) {
	xs := newXMLStream(conn, -1)
	if err := xs.readHeader(); err != nil {
		return nil, err
	}
	registerOnce.Do(registerRawPayloads)
	s := newSession(jid, nil, 0, nil)
	tr := newLibTransport(conn, xs)
	s.tr = tr
	go tr.readLoop(s)
	return s, nil
}
