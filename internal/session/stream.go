package session

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
)

// NewStream runs a session over a bare stanza stream on conn: no stream
// header, TLS or SASL, just top-level <iq/>, <presence/> and <message/>
// elements, each sent with from=jid. Two such sessions over net.Pipe talk as
// if through a server, and a test can script a peer by reading and writing raw
// XML on the other end. The session ends when conn does.
func NewStream(conn net.Conn, jid string) *Session {
	st := &streamTransport{conn: conn, from: jid}
	s := newSession(jid, st, 0, nil)
	go st.readLoop(s)
	return s
}

type streamTransport struct {
	conn net.Conn
	from string
}

func (t *streamTransport) send(stanza []byte) error {
	// Stamp from='…' as a server would.
	if i := bytes.IndexAny(stanza, " >/"); i > 0 && !bytes.Contains(stanza[:bytes.IndexByte(stanza, '>')], []byte(" from=")) {
		var b bytes.Buffer
		b.Write(stanza[:i])
		writeAttr(&b, "from", t.from)
		b.Write(stanza[i:])
		stanza = b.Bytes()
	}
	_, err := t.conn.Write(stanza)
	return err
}

func (t *streamTransport) close() error { return t.conn.Close() }

// wireStanza is a top-level stanza as read from a bare stream.
type wireStanza struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Inner   []byte     `xml:",innerxml"`
}

func (w *wireStanza) attr(name string) string {
	for _, a := range w.Attrs {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

func (t *streamTransport) readLoop(s *Session) {
	d := xml.NewDecoder(t.conn)
	for {
		tok, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) {
				err = io.EOF
			}
			s.fail(fmt.Errorf("%w: %v", ErrDisconnected, err))
			return
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		var w wireStanza
		if err := d.DecodeElement(&w, &se); err != nil {
			s.fail(fmt.Errorf("%w: malformed XML: %v", ErrDisconnected, err))
			return
		}
		switch se.Name.Local {
		case "iq":
			iq := &IQ{ID: w.attr("id"), Type: w.attr("type"), From: w.attr("from"), To: w.attr("to")}
			for _, c := range splitChildren(w.Inner) {
				if c.name.Local == "error" {
					iq.Error = ParseError(c.raw)
				} else if iq.Payload == nil {
					iq.Payload = c.raw
				}
			}
			s.route(iq, false, false)
		case "presence":
			p := Presence{From: w.attr("from"), Type: w.attr("type")}
			for _, c := range splitChildren(w.Inner) {
				if c.name.Local == "priority" {
					var v struct {
						V string `xml:",chardata"`
					}
					if xml.Unmarshal(c.raw, &v) == nil {
						p.Priority, _ = strconv.Atoi(strings.TrimSpace(v.V))
					}
				}
			}
			go s.dispatchPresence(p)
		case "message":
			go s.dispatchMessage(Message{ID: w.attr("id"), Type: w.attr("type"), From: w.attr("from"), To: w.attr("to"), Payload: w.Inner})
		}
	}
}

type child struct {
	name xml.Name
	raw  []byte
}

// splitChildren returns the top-level elements of an XML fragment with their
// raw bytes.
func splitChildren(inner []byte) []child {
	var out []child
	d := xml.NewDecoder(bytes.NewReader(inner))
	depth := 0
	var begin int64
	var name xml.Name
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			return out
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				begin, name = off, t.Name
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 {
				out = append(out, child{name: name, raw: inner[begin:d.InputOffset()]})
			}
		}
	}
}
