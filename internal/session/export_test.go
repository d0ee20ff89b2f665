package session

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"net"
)

// NewServerStream runs a session over conn as Dial does once the login is
// over: conn carries what a server sends after resource binding, starting
// with a stream header, and the session reads it with the reader of a
// logged-in session. Benchmarks of the receive path use it (session_test
// may import ibb; package session may not).
func NewServerStream(conn net.Conn, jid string) (*Session, error) {
	dec := xml.NewDecoder(bufio.NewReaderSize(conn, 32<<10))
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("no stream header: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
			break
		}
	}
	registerOnce.Do(registerRawPayloads)
	s := newSession(jid, nil, 0, nil)
	tr := newLibTransport(conn, dec)
	s.tr = tr
	go tr.readLoop(s)
	return s, nil
}
