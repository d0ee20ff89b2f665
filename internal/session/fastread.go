package session

// The fast path of reading stanzas. Nearly everything a logged-in session
// receives during a transfer is one shape of IQ: an In-Band Bytestream
// chunk (<iq><data xmlns='…ibb' seq sid>BASE64</data></iq>) or an empty
// result acknowledging one of ours. gosrc.io/xmpp decodes each with
// encoding/xml, whose tokenizer costs about 12 ns a byte, and our
// rawPayload then re-encodes the payload, escaping it byte by byte: most of
// a receiver's CPU. Here a stanza of that shape is recognised in the
// buffered input by a scanner that accepts only a small, unambiguous subset
// of XML (ASCII names without prefixes but the IQ's xml:lang, quoted attribute values and text
// with no references, no comments or CDATA, the IQ's one payload element
// declaring its own namespace, which must be one of rawNamespaces, and
// holding text only) and sliced out as is. Anything else, or anything that
// does not fit the buffer, goes to the library's decoder exactly as before,
// on the same bytes: the scanner only looks, and consumes a stanza only when
// it has accepted all of it. FuzzFastIQ checks that what it accepts, the
// library reads the same; FuzzReadStanzas that a stream of stanzas reads the
// same through both.

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
)

// peekReader is a buffered reader, like bufio.Reader, whose buffer the fast
// path can look into before deciding to consume. It is an io.ByteReader,
// so an xml.Decoder reads from it byte by byte and buffers nothing itself:
// the decoder and the fast path take turns on the same input.
type peekReader struct {
	r    io.Reader
	buf  []byte
	rpos int // unread bytes are buf[rpos:wpos]
	wpos int
	err  error // sticky, returned once the buffer is empty

	beforeRead func() // called before each read of r: the session's queued answers go out
}

const (
	peekBufSize = 32 << 10
	// maxFastStanza bounds the stanzas the fast path takes: a chunk of
	// IBB's largest block size (65535 bytes, 87380 in base64) fits.
	maxFastStanza = 96 << 10
)

func newPeekReader(r io.Reader) *peekReader {
	return &peekReader{r: r, buf: make([]byte, peekBufSize)}
}

// Buffered returns the number of bytes read from the connection but not yet
// consumed.
func (p *peekReader) Buffered() int { return p.wpos - p.rpos }

// fill reads once more from the underlying reader, keeping the unread bytes
// and growing the buffer if they fill it (up to maxFastStanza+peekBufSize).
func (p *peekReader) fill() error {
	if p.err != nil {
		return p.err
	}
	if p.rpos > 0 {
		p.wpos = copy(p.buf, p.buf[p.rpos:p.wpos])
		p.rpos = 0
	}
	if p.wpos == len(p.buf) {
		if len(p.buf) >= maxFastStanza+peekBufSize {
			return errors.New("session: peekReader buffer full") // not reached: callers stop at maxFastStanza
		}
		nb := make([]byte, min(2*len(p.buf), maxFastStanza+peekBufSize))
		copy(nb, p.buf[:p.wpos])
		p.buf = nb
	}
	if p.beforeRead != nil {
		p.beforeRead()
	}
	for range 100 {
		n, err := p.r.Read(p.buf[p.wpos:])
		p.wpos += n
		if err != nil {
			p.err = err
		}
		if n > 0 || err != nil {
			return err
		}
	}
	p.err = io.ErrNoProgress
	return p.err
}

func (p *peekReader) ReadByte() (byte, error) {
	for p.rpos == p.wpos {
		if p.err != nil {
			return 0, p.err
		}
		if err := p.fill(); err != nil && p.rpos == p.wpos {
			return 0, err
		}
	}
	b := p.buf[p.rpos]
	p.rpos++
	return b, nil
}

func (p *peekReader) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if p.rpos == p.wpos {
		if p.err != nil {
			return 0, p.err
		}
		if len(b) >= len(p.buf) {
			if p.beforeRead != nil {
				p.beforeRead()
			}
			return p.r.Read(b) // nothing buffered: read straight through
		}
		if err := p.fill(); err != nil && p.rpos == p.wpos {
			return 0, err
		}
	}
	n := copy(b, p.buf[p.rpos:p.wpos])
	p.rpos += n
	return n, nil
}

// fastStatus is the fast path's verdict on the buffered input.
type fastStatus int

const (
	fastNo   fastStatus = iota // not a stanza the fast path takes: use the decoder
	fastMore                   // so far so good, but the stanza goes on past the buffer
	fastOK
)

// nameChar and textChar are the bytes the scanner allows in names and in
// text; attrChar in attribute values (besides the other quote).
var nameChar, textChar, attrChar [256]bool

func init() {
	for c := 0; c < 256; c++ {
		nameChar[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.'
		// Printable ASCII without markup, references and the ]]> that strict
		// XML refuses in text; tab and newline (a carriage return would be
		// normalised, so it is left to the decoder).
		textChar[c] = 0x20 <= c && c <= 0x7e && c != '<' && c != '&' && c != '>' && c != ']' || c == '\t' || c == '\n'
		attrChar[c] = 0x20 <= c && c <= 0x7e && c != '<' && c != '&'
	}
}

// textRun is the length of b's leading run of textChar bytes.
func textRun(b []byte) int {
	for i, c := range b {
		if !textChar[c] {
			return i
		}
	}
	return len(b)
}

var rawNamespaceSet = func() map[string]bool {
	m := make(map[string]bool, len(rawNamespaces))
	for _, ns := range rawNamespaces {
		m[ns] = true
	}
	return m
}()

// fastAttr is one attribute of a scanned start tag; the value has no
// references, so it is its own unescaped text.
type fastAttr struct{ name, value []byte }

// scanner walks a buffer; more is set when it ran off the end.
type scanner struct {
	b    []byte
	i    int
	more bool
}

// verdict is the status of a failed match: fastMore if it failed for want
// of input.
func (s *scanner) verdict() fastStatus {
	if s.more {
		return fastMore
	}
	return fastNo
}

func (s *scanner) peek() (byte, bool) {
	if s.i >= len(s.b) {
		s.more = true
		return 0, false
	}
	return s.b[s.i], true
}

func (s *scanner) lit(l string) bool {
	for j := 0; j < len(l); j++ {
		c, ok := s.peek()
		if !ok || c != l[j] {
			return false
		}
		s.i++
	}
	return true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *scanner) spaces() int {
	n := 0
	for {
		c, ok := s.peek()
		if !ok || !isSpace(c) {
			return n
		}
		s.i++
		n++
	}
}

// name scans a prefix-free ASCII name.
func (s *scanner) name() []byte {
	start := s.i
	c, ok := s.peek()
	if !ok || !nameChar[c] || c == '-' || c == '.' || '0' <= c && c <= '9' {
		return nil
	}
	for {
		c, ok := s.peek()
		if !ok || !nameChar[c] {
			return s.b[start:s.i]
		}
		s.i++
	}
}

// startTag scans the attributes and the end of a start tag whose name has
// been read, appending to attrs. It reports whether the element was
// self-closing. With lang, it also takes xml:lang (Prosody stamps it on
// every stanza it routes; the library ignores it, as does the IQ we make).
func (s *scanner) startTag(attrs []fastAttr, lang bool) ([]fastAttr, bool, bool) {
	for {
		sp := s.spaces()
		c, ok := s.peek()
		if !ok {
			return attrs, false, false
		}
		switch c {
		case '>':
			s.i++
			return attrs, false, true
		case '/':
			s.i++
			return attrs, true, s.lit(">")
		}
		if sp == 0 {
			return attrs, false, false
		}
		n0 := s.i
		name := s.name()
		if lang && string(name) == "xml" && s.lit(":lang") {
			name = s.b[n0:s.i]
		}
		if name == nil || !s.lit("=") {
			return attrs, false, false
		}
		q, ok := s.peek()
		if !ok || q != '\'' && q != '"' {
			return attrs, false, false
		}
		s.i++
		start := s.i
		for {
			c, ok := s.peek()
			if !ok {
				return attrs, false, false
			}
			if c == q {
				break
			}
			if !attrChar[c] {
				return attrs, false, false
			}
			s.i++
		}
		for _, a := range attrs {
			if bytes.Equal(a.name, name) {
				return attrs, false, false // the decoder decides duplicates
			}
		}
		attrs = append(attrs, fastAttr{name, s.b[start:s.i]})
		s.i++
	}
}

func attrValue(attrs []fastAttr, name string) ([]byte, bool) {
	for _, a := range attrs {
		if string(a.name) == name {
			return a.value, true
		}
	}
	return nil, false
}

// endTag scans </name> (with optional space before the >).
func (s *scanner) endTag(name []byte) bool {
	if !s.lit("</") {
		return false
	}
	got := s.name()
	if got == nil || !bytes.Equal(got, name) {
		return false
	}
	c, ok := s.peek()
	if !ok || c != '>' && !isSpace(c) {
		return false
	}
	s.spaces()
	return s.lit(">")
}

// parseFastIQ looks at the start of b for an IQ the fast path takes. With
// fastOK it returns the IQ, its payload a slice of b, and the length of
// the stanza in b.
func parseFastIQ(b []byte) (*IQ, int, fastStatus) {
	s := scanner{b: b}
	if !s.lit("<iq") {
		return nil, 0, s.verdict()
	}
	if c, ok := s.peek(); !ok || !isSpace(c) && c != '>' && c != '/' {
		return nil, 0, s.verdict()
	}
	var buf [6]fastAttr
	attrs, empty, ok := s.startTag(buf[:0], true)
	if !ok {
		return nil, 0, s.verdict()
	}
	if ns, ok := attrValue(attrs, "xmlns"); ok && string(ns) != nsClient {
		return nil, 0, fastNo
	}
	iq := &IQ{}
	for _, a := range attrs {
		switch string(a.name) {
		case "id":
			iq.ID = string(a.value)
		case "type":
			iq.Type = string(a.value)
		case "from":
			iq.From = string(a.value)
		case "to":
			iq.To = string(a.value)
		}
	}
	if empty {
		return iq, s.i, fastOK
	}
	if s.i+1 >= len(b) {
		return nil, 0, fastMore
	}
	if b[s.i] == '<' && b[s.i+1] == '/' {
		if !s.endTag([]byte("iq")) {
			return nil, 0, s.verdict()
		}
		return iq, s.i, fastOK
	}
	// The payload: one element, in a namespace it declares, text only.
	start := s.i
	if !s.lit("<") {
		return nil, 0, s.verdict()
	}
	name := s.name()
	if name == nil {
		return nil, 0, s.verdict()
	}
	if c, ok := s.peek(); !ok || !isSpace(c) && c != '>' && c != '/' {
		return nil, 0, s.verdict()
	}
	var pbuf [6]fastAttr
	pattrs, pempty, ok := s.startTag(pbuf[:0], false)
	if !ok {
		return nil, 0, s.verdict()
	}
	if ns, _ := attrValue(pattrs, "xmlns"); !rawNamespaceSet[string(ns)] || string(name) == "error" {
		return nil, 0, fastNo
	}
	if !pempty {
		s.i += textRun(s.b[s.i:]) // the chunk's whole base64 text: the hot loop
		if _, ok := s.peek(); !ok {
			return nil, 0, fastMore
		}
		if !s.endTag(name) {
			return nil, 0, s.verdict()
		}
	}
	end := s.i
	if !s.endTag([]byte("iq")) {
		return nil, 0, s.verdict()
	}
	iq.Payload = b[start:end]
	return iq, s.i, fastOK
}

// fastRootName is rootName for a payload that starts with a start tag of
// the scanner's subset; ok is false otherwise, and rootName decodes.
func fastRootName(payload []byte) (xml.Name, bool) {
	s := scanner{b: payload}
	if !s.lit("<") {
		return xml.Name{}, false
	}
	name := s.name()
	if name == nil {
		return xml.Name{}, false
	}
	if c, ok := s.peek(); !ok || !isSpace(c) && c != '>' && c != '/' {
		return xml.Name{}, false
	}
	var buf [6]fastAttr
	attrs, _, ok := s.startTag(buf[:0], false)
	if !ok {
		return xml.Name{}, false
	}
	ns, _ := attrValue(attrs, "xmlns")
	return xml.Name{Space: intern(ns), Local: intern(name)}, true
}

// interned holds the names fastRootName sees all the time, so that naming a
// payload's root allocates nothing.
var interned = func() map[string]string {
	m := map[string]string{}
	for _, s := range append(rawNamespaces, "data", "open", "close", "query", "si", "jingle", "ping") {
		m[s] = s
	}
	return m
}()

func intern(b []byte) string {
	if s, ok := interned[string(b)]; ok {
		return s
	}
	return string(b)
}

// fastStanza waits, if need be, for the next top-level stanza to be in
// the buffer and returns it if the fast path takes it. It consumes the
// whitespace between stanzas (the decoder would skip it); nil means the
// decoder must read what comes next.
func (p *peekReader) fastStanza() *IQ {
	for {
		i := p.rpos
		for i < p.wpos && isSpace(p.buf[i]) {
			i++
		}
		p.rpos = i
		if p.rpos == p.wpos {
			if p.fill() != nil {
				return nil // the decoder reports it
			}
			continue
		}
		iq, n, st := parseFastIQ(p.buf[p.rpos:p.wpos])
		switch st {
		case fastOK:
			p.rpos += n
			return iq
		case fastMore:
			if p.Buffered() >= maxFastStanza || p.fill() != nil {
				return nil
			}
		default:
			return nil
		}
	}
}
