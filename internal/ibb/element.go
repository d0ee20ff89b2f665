package ibb

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
)

// The wire elements. Parsers are strict about what they must understand and
// never panic on hostile input; marshalers produce what the parsers accept,
// which FuzzParseOpen and FuzzParseData check.

// openElem is <open xmlns=NS sid block-size stanza/>.
type openElem struct {
	SID       string
	BlockSize int
	Stanza    string // "iq" or "message"; an absent attribute means "iq"
}

// dataElem is <data xmlns=NS sid seq>base64</data>.
type dataElem struct {
	SID  string
	Seq  uint16
	Data string // base64 as received; decodeBlock checks it
}

// closeElem is <close xmlns=NS sid/>.
type closeElem struct {
	SID string
}

type xmlOpen struct {
	XMLName   xml.Name `xml:"http://jabber.org/protocol/ibb open"`
	SID       *string  `xml:"sid,attr"`
	BlockSize *string  `xml:"block-size,attr"`
	Stanza    string   `xml:"stanza,attr"`
}

type xmlData struct {
	XMLName  xml.Name   `xml:"http://jabber.org/protocol/ibb data"`
	SID      *string    `xml:"sid,attr"`
	Seq      *string    `xml:"seq,attr"`
	Text     string     `xml:",chardata"`
	Children []xml.Name `xml:",any"`
}

type xmlClose struct {
	XMLName xml.Name `xml:"http://jabber.org/protocol/ibb close"`
	SID     *string  `xml:"sid,attr"`
}

func parseOpen(raw []byte) (openElem, error) {
	var x xmlOpen
	if err := xml.Unmarshal(raw, &x); err != nil {
		return openElem{}, fmt.Errorf("ibb: malformed open: %v", err)
	}
	if x.SID == nil || *x.SID == "" {
		return openElem{}, errors.New("ibb: open without sid")
	}
	if x.BlockSize == nil {
		return openElem{}, errors.New("ibb: open without block-size")
	}
	// ParseUint refuses signs and spaces. Values above 65535 parse, so that
	// the handler can answer them resource-constraint and let the peer retry.
	bs, err := strconv.ParseUint(*x.BlockSize, 10, 31)
	if err != nil || bs == 0 {
		return openElem{}, fmt.Errorf("ibb: bad block-size %q", *x.BlockSize)
	}
	o := openElem{SID: *x.SID, BlockSize: int(bs), Stanza: x.Stanza}
	switch o.Stanza {
	case "":
		o.Stanza = "iq"
	case "iq", "message":
	default:
		return openElem{}, fmt.Errorf("ibb: bad stanza attribute %q", x.Stanza)
	}
	return o, nil
}

func (o openElem) marshal() []byte {
	var b bytes.Buffer
	b.WriteString("<open xmlns='" + NS + "' sid='")
	escape(&b, o.SID)
	b.WriteString("' block-size='")
	b.WriteString(strconv.Itoa(o.BlockSize))
	b.WriteString("' stanza='")
	escape(&b, o.Stanza)
	b.WriteString("'/>")
	return b.Bytes()
}

func parseData(raw []byte) (dataElem, error) {
	c, err := parseChunk(raw)
	if err != nil {
		return dataElem{}, err
	}
	return dataElem{SID: c.SID, Seq: c.Seq, Data: string(c.Text)}, nil
}

// dataChunk is a data element as the receive path takes it: the text may
// be a slice of the stanza it came in, and is not copied.
type dataChunk struct {
	SID  string
	Seq  uint16
	Text []byte // base64 as received; decodeBlockBytes checks it
}

// scannedData is what the receive path reads of a data element.
type scannedData struct {
	sid, seq       []byte
	hasSID, hasSeq bool
	text           []byte
	children       bool
}

// parseChunk is parseData without copying the text.
func parseChunk(raw []byte) (dataChunk, error) {
	d, ok := scanData(raw)
	if !ok {
		var x xmlData
		if err := xml.Unmarshal(raw, &x); err != nil {
			return dataChunk{}, fmt.Errorf("ibb: malformed data: %v", err)
		}
		d = scannedData{text: []byte(x.Text), children: len(x.Children) > 0}
		if x.SID != nil {
			d.sid, d.hasSID = []byte(*x.SID), true
		}
		if x.Seq != nil {
			d.seq, d.hasSeq = []byte(*x.Seq), true
		}
	}
	if !d.hasSID || len(d.sid) == 0 {
		return dataChunk{}, errors.New("ibb: data without sid")
	}
	if !d.hasSeq {
		return dataChunk{}, errors.New("ibb: data without seq")
	}
	seq, ok := parseSeq(d.seq)
	if !ok {
		return dataChunk{}, fmt.Errorf("ibb: bad seq %q", d.seq)
	}
	if d.children {
		return dataChunk{}, errors.New("ibb: data with child elements")
	}
	return dataChunk{SID: string(d.sid), Seq: seq, Text: d.text}, nil
}

// parseSeq is strconv.ParseUint(string(b), 10, 16), without the string.
func parseSeq(b []byte) (uint16, bool) {
	if len(b) == 0 {
		return 0, false
	}
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if v = 10*v + int(c-'0'); v > 65535 {
			return 0, false
		}
	}
	return uint16(v), true
}

// scanData is parseChunk's fast path, for the receive side: it takes a
// data element only in the form xfer and others send it, <data xmlns=NS
// attributes…>text</data> with ASCII names without prefixes, quoted
// attribute values and text without references or markup, and nothing
// after it; ok is false for anything else, which xml.Unmarshal then
// decodes. On what it takes it agrees with xml.Unmarshal (FuzzScanData): a
// chunk is 5 KiB of text, which encoding/xml reads at about 12 ns a byte.
// The slices it returns alias raw.
func scanData(raw []byte) (d scannedData, ok bool) {
	const open = "<data"
	if !bytes.HasPrefix(raw, []byte(open)) {
		return d, false
	}
	i := len(open)
	var ns []byte
	hasNS := false
	for {
		sp := i
		for i < len(raw) && isSpace(raw[i]) {
			i++
		}
		if i == len(raw) {
			return d, false
		}
		if raw[i] == '>' || raw[i] == '/' {
			break
		}
		if i == sp {
			return d, false
		}
		n0 := i
		for i < len(raw) && isNameByte(raw[i]) {
			i++
		}
		name := raw[n0:i]
		if len(name) == 0 || !isNameStart(raw[n0]) || i+1 >= len(raw) || raw[i] != '=' || raw[i+1] != '\'' && raw[i+1] != '"' {
			return d, false
		}
		q := raw[i+1]
		i += 2
		v0 := i
		for i < len(raw) && raw[i] != q {
			if c := raw[i]; c < 0x20 || c > 0x7e || c == '<' || c == '&' {
				return d, false
			}
			i++
		}
		if i == len(raw) {
			return d, false
		}
		v := raw[v0:i:i]
		i++
		var dst *[]byte
		var has *bool
		switch string(name) {
		case "xmlns":
			dst, has = &ns, &hasNS
		case "sid":
			dst, has = &d.sid, &d.hasSID
		case "seq":
			dst, has = &d.seq, &d.hasSeq
		default:
			continue // xml.Unmarshal ignores other attributes (duplicates too)
		}
		if *has {
			return scannedData{}, false
		}
		*dst, *has = v, true
	}
	if !hasNS || string(ns) != NS {
		return scannedData{}, false
	}
	if raw[i] == '/' {
		if string(raw[i:]) != "/>" {
			return scannedData{}, false
		}
		return d, true
	}
	i++
	t0 := i
	for i < len(raw) && textByte[raw[i]] { // the chunk's base64: the hot loop
		i++
	}
	d.text = raw[t0:i:i]
	rest := raw[i:]
	if !bytes.HasPrefix(rest, []byte("</data")) {
		return scannedData{}, false
	}
	rest = bytes.TrimLeft(rest[len("</data"):], " \t\r\n")
	if string(rest) != ">" {
		return scannedData{}, false
	}
	return d, true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isNameStart(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' }

func isNameByte(c byte) bool {
	return isNameStart(c) || '0' <= c && c <= '9' || c == '-' || c == '.'
}

// textByte: printable ASCII without markup, references or the "]]>"
// strict XML refuses, and tab and newline (a carriage return would be
// normalised). A table: the test of every byte of every chunk.
var textByte = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 0x20 <= c && c <= 0x7e && c != '<' && c != '&' && c != '>' && c != ']' || c == '\t' || c == '\n'
	}
	return t
}()

func (d dataElem) marshal() []byte {
	var b bytes.Buffer
	writeDataStart(&b, d.SID, d.Seq)
	escape(&b, d.Data)
	b.WriteString("</data>")
	return b.Bytes()
}

// marshalData encodes raw straight into the element, saving a copy of the
// largest thing a sender holds per chunk.
func marshalData(sid string, seq uint16, raw []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(sid) + 80 + base64.StdEncoding.EncodedLen(len(raw)))
	writeDataStart(&b, sid, seq)
	enc := base64.NewEncoder(base64.StdEncoding, &b)
	_, _ = enc.Write(raw) // writes to a bytes.Buffer cannot fail
	_ = enc.Close()
	b.WriteString("</data>")
	return b.Bytes()
}

func writeDataStart(b *bytes.Buffer, sid string, seq uint16) {
	b.WriteString("<data xmlns='" + NS + "' sid='")
	escape(b, sid)
	b.WriteString("' seq='")
	b.WriteString(strconv.Itoa(int(seq)))
	b.WriteString("'>")
}

func parseClose(raw []byte) (closeElem, error) {
	var x xmlClose
	if err := xml.Unmarshal(raw, &x); err != nil {
		return closeElem{}, fmt.Errorf("ibb: malformed close: %v", err)
	}
	if x.SID == nil || *x.SID == "" {
		return closeElem{}, errors.New("ibb: close without sid")
	}
	return closeElem{SID: *x.SID}, nil
}

func (c closeElem) marshal() []byte {
	var b bytes.Buffer
	b.WriteString("<close xmlns='" + NS + "' sid='")
	escape(&b, c.SID)
	b.WriteString("'/>")
	return b.Bytes()
}

// escape writes s as XML text, safe inside a single-quoted attribute too
// (EscapeText escapes both quote characters and line endings).
func escape(b *bytes.Buffer, s string) {
	_ = xml.EscapeText(b, []byte(s))
}

// decodeBlock decodes one chunk's base64 strictly: padded standard
// alphabet, no whitespace or line breaks (which encoding/base64 would
// otherwise skip), zero padding bits, and at most max bytes. Strictness
// makes the encoding canonical, so garbage cannot pass as data.
func decodeBlock(s string, max int) ([]byte, error) {
	return decodeBlockBytes(nil, []byte(s), max)
}

var strict64 = base64.StdEncoding.Strict()

// decodeBlockBytes is decodeBlock into dst's storage when it is large
// enough (the receive path reuses one).
func decodeBlockBytes(dst, src []byte, max int) ([]byte, error) {
	if len(src) > base64.StdEncoding.EncodedLen(max) {
		return nil, fmt.Errorf("chunk larger than block-size %d", max)
	}
	if bytes.IndexByte(src, '\r') >= 0 || bytes.IndexByte(src, '\n') >= 0 {
		return nil, errors.New("line break in base64")
	}
	if n := base64.StdEncoding.DecodedLen(len(src)); cap(dst) < n {
		dst = make([]byte, n)
	}
	n, err := strict64.Decode(dst[:cap(dst)], src)
	if err != nil {
		return nil, fmt.Errorf("invalid base64: %v", err)
	}
	if n > max {
		return nil, fmt.Errorf("chunk of %d bytes exceeds block-size %d", n, max)
	}
	return dst[:n], nil
}
