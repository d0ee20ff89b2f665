package session

// The XML of stream negotiation: one stream on a connection, and the
// parsers of what the server sends before the login ends (stream features,
// SASL payloads and failures, stream errors), each fuzzed.

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
)

// features is what xfer reads of <stream:features/>.
type features struct {
	StartTLS *struct {
		Required *struct{} `xml:"required"`
	} `xml:"urn:ietf:params:xml:ns:xmpp-tls starttls"`
	Mechanisms      []string `xml:"urn:ietf:params:xml:ns:xmpp-sasl mechanisms>mechanism"`
	ChannelBindings []struct {
		Type string `xml:"type,attr"`
	} `xml:"urn:xmpp:sasl-cb:0 sasl-channel-binding>channel-binding"`
	Bind    *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-bind bind"`
	Session *struct {
		Optional *struct{} `xml:"optional"`
	} `xml:"urn:ietf:params:xml:ns:xmpp-session session"`
}

func (f *features) cbTypes() []string {
	var out []string
	for _, c := range f.ChannelBindings {
		out = append(out, c.Type)
	}
	return out
}

// parseFeatures decodes a <stream:features/> element.
func parseFeatures(raw []byte) (*features, error) {
	var f features
	if err := xml.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("session: malformed stream features: %w", err)
	}
	for i, m := range f.Mechanisms {
		f.Mechanisms[i] = strings.TrimSpace(m)
	}
	return &f, nil
}

// saslFailure is a SASL <failure/> (RFC 6120 §6.5).
type saslFailure struct {
	Condition string
	Text      string
}

func (f saslFailure) String() string {
	if f.Text != "" {
		return f.Condition + ": " + f.Text
	}
	return f.Condition
}

// parseSASLFailure decodes the children of a SASL <failure/>. It never
// fails: an unknown or missing condition is "not-authorized".
func parseSASLFailure(raw []byte) saslFailure {
	var el struct {
		Items []struct {
			XMLName xml.Name
			Text    string `xml:",chardata"`
		} `xml:",any"`
	}
	_ = xml.Unmarshal(raw, &el)
	var f saslFailure
	for _, it := range el.Items {
		if it.XMLName.Local == "text" {
			f.Text = strings.TrimSpace(it.Text)
		} else if f.Condition == "" {
			f.Condition = it.XMLName.Local
		}
	}
	if f.Condition == "" {
		f.Condition = "not-authorized"
	}
	if len(f.Text) > 200 {
		f.Text = f.Text[:200]
	}
	return f
}

// streamError is a <stream:error/> from the server.
type streamError struct {
	Condition, Text string
}

func (e *streamError) Error() string {
	if e.Text != "" {
		return "stream error " + e.Condition + ": " + e.Text
	}
	return "stream error " + e.Condition
}

func parseStreamError(raw []byte) *streamError {
	f := parseSASLFailure(raw) // the same shape: a condition and a text
	if f.Condition == "not-authorized" && !strings.Contains(string(raw), "not-authorized") {
		f.Condition = "undefined-condition"
	}
	return &streamError{Condition: f.Condition, Text: f.Text}
}

// limitedReader fails once more than n bytes were read; n < 0 lifts the
// limit.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(p)
	}
	if l.n == 0 {
		return 0, fmt.Errorf("session: the server sent more than %d bytes before the login ended", negotiationLimit)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// xmlStream is one XML stream on a connection during negotiation.
type xmlStream struct {
	conn  net.Conn
	limit *limitedReader
	buf   *peekReader // one per connection, under every stream's decoder
	dec   *xml.Decoder
	// defaultNS is the default namespace the server's stream header
	// declared: jabber:client, or the fast path is off (fastread.go).
	defaultNS string
}

func newXMLStream(conn net.Conn, limit int64) *xmlStream {
	l := &limitedReader{r: conn, n: limit}
	return &xmlStream{conn: conn, limit: l, buf: newPeekReader(l)}
}

// open sends a stream header and reads the server's.
func (s *xmlStream) open(domain string) error {
	header := "<?xml version='1.0'?><stream:stream to='" + escapeAttr(domain) +
		"' version='1.0' xml:lang='en' xmlns='" + nsClient + "' xmlns:stream='" + nsStream + "'>"
	if _, err := io.WriteString(s.conn, header); err != nil {
		return err
	}
	return s.readHeader()
}

// readHeader reads the server's stream header.
func (s *xmlStream) readHeader() error {
	// A new decoder for every stream (RFC 6120 §4.3.3), on the same
	// buffer: a peekReader is an io.ByteReader, so the decoder reads from
	// it byte by byte and leaves the rest of the connection in it.
	s.dec = xml.NewDecoder(s.buf)
	for {
		tok, err := s.dec.Token()
		if err != nil {
			return fmt.Errorf("no stream header: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Space != nsStream || se.Name.Local != "stream" {
				return fmt.Errorf("expected a stream header, got <%s xmlns='%s'>", se.Name.Local, se.Name.Space)
			}
			s.defaultNS = ""
			for _, a := range se.Attr {
				if a.Name.Space == "" && a.Name.Local == "xmlns" {
					s.defaultNS = a.Value
				}
			}
			return nil
		}
	}
}

// next reads the next top-level element as raw XML. A stream error or the
// end of the stream is an error.
func (s *xmlStream) next() (xml.Name, []byte, error) {
	se, raw, err := s.nextElement()
	return se.Name, raw, err
}

// nextElement is next with the element's attributes.
func (s *xmlStream) nextElement() (xml.StartElement, []byte, error) {
	for {
		tok, err := s.dec.Token()
		if err != nil {
			return xml.StartElement{}, nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var raw struct {
				Inner []byte `xml:",innerxml"`
			}
			t = t.Copy()
			if err := s.dec.DecodeElement(&raw, &t); err != nil {
				return xml.StartElement{}, nil, err
			}
			el := []byte("<x>" + string(raw.Inner) + "</x>")
			if t.Name.Space == nsStream && t.Name.Local == "error" {
				return t, nil, parseStreamError(el)
			}
			return t, el, nil
		case xml.EndElement:
			return xml.StartElement{}, nil, errors.New("the server closed the stream")
		}
	}
}

// features reads <stream:features/>.
func (s *xmlStream) features() (*features, error) {
	name, raw, err := s.next()
	if err != nil {
		return nil, err
	}
	if name.Space != nsStream || name.Local != "features" {
		return nil, fmt.Errorf("expected stream features, got <%s xmlns='%s'>", name.Local, name.Space)
	}
	return parseFeatures(raw)
}

func (s *xmlStream) write(str string) error {
	_, err := io.WriteString(s.conn, str)
	return err
}

func escapeAttr(v string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(v))
	return b.String()
}

// encode64 is the SASL element text: base64, or "=" for an empty response
// (RFC 6120 §6.4.2).
func encode64(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// saslPayload decodes the base64 text of a challenge or success.
func saslPayload(el []byte) ([]byte, error) {
	var v struct {
		Text string `xml:",chardata"`
	}
	if err := xml.Unmarshal(el, &v); err != nil {
		return nil, err
	}
	t := strings.Join(strings.Fields(v.Text), "")
	if t == "" || t == "=" {
		return nil, nil
	}
	b, err := base64.StdEncoding.Strict().DecodeString(t)
	if err != nil {
		return nil, fmt.Errorf("SASL data is not base64: %v", err)
	}
	return b, nil
}

// bind binds a resource (RFC 6120 §7) and returns the full JID.
func (s *xmlStream) bind(resource string) (string, error) {
	payload := "<bind xmlns='" + nsBind + "'/>"
	if resource != "" {
		payload = "<bind xmlns='" + nsBind + "'><resource>" + escapeAttr(resource) + "</resource></bind>"
	}
	raw, err := s.iqResult(payload)
	if err != nil {
		return "", fmt.Errorf("resource binding: %w", err)
	}
	var res struct {
		JID string `xml:"urn:ietf:params:xml:ns:xmpp-bind bind>jid"`
	}
	if err := xml.Unmarshal(raw, &res); err != nil || Local(res.JID) == "" || Resource(res.JID) == "" {
		return "", fmt.Errorf("resource binding: the server returned no full JID")
	}
	return strings.TrimSpace(res.JID), nil
}

func (s *xmlStream) iq(payload string) error {
	_, err := s.iqResult(payload)
	return err
}

// iqResult sends a set IQ and reads its reply (nothing else comes before it
// while the session is being established).
func (s *xmlStream) iqResult(payload string) ([]byte, error) {
	id := NewID()
	if err := s.write("<iq type='set' id='" + id + "'>" + payload + "</iq>"); err != nil {
		return nil, err
	}
	for {
		se, raw, err := s.nextElement()
		if err != nil {
			return nil, err
		}
		if se.Name.Local != "iq" || attr(se, "id") != id {
			continue
		}
		switch attr(se, "type") {
		case TypeResult:
			return raw, nil
		case TypeError:
			return nil, fmt.Errorf("the server answered %s", ParseError([]byte(errorChild(raw))))
		default:
			return nil, fmt.Errorf("the server answered with an IQ of type %q", attr(se, "type"))
		}
	}
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

func errorChild(raw []byte) string {
	for _, c := range splitChildren(raw[len("<x>") : len(raw)-len("</x>")]) {
		if c.name.Local == "error" {
			return string(c.raw)
		}
	}
	return "<error/>"
}
