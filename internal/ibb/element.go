package ibb

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
	sid, seq, text, ok := scanData(raw)
	children := false
	if !ok {
		var x xmlData
		if err := xml.Unmarshal(raw, &x); err != nil {
			return dataElem{}, fmt.Errorf("ibb: malformed data: %v", err)
		}
		sid, seq, text, children = x.SID, x.Seq, x.Text, len(x.Children) > 0
	}
	if sid == nil || *sid == "" {
		return dataElem{}, errors.New("ibb: data without sid")
	}
	if seq == nil {
		return dataElem{}, errors.New("ibb: data without seq")
	}
	n, err := strconv.ParseUint(*seq, 10, 16)
	if err != nil {
		return dataElem{}, fmt.Errorf("ibb: bad seq %q", *seq)
	}
	if children {
		return dataElem{}, errors.New("ibb: data with child elements")
	}
	return dataElem{SID: *sid, Seq: uint16(n), Data: text}, nil
}

// scanData is parseData's fast path, for the receive side: it takes a data
// element only in the form xfer and others send it, <data xmlns=NS
// attributes…>text</data> with ASCII names without prefixes, quoted
// attribute values and text without references or markup, and nothing
// after it; ok is false for anything else, which xml.Unmarshal then
// decodes. On what it takes it agrees with xml.Unmarshal (FuzzScanData): a
// chunk is 5 KiB of text, which encoding/xml reads at about 12 ns a byte.
func scanData(raw []byte) (sid, seq *string, text string, ok bool) {
	const open = "<data"
	if !bytes.HasPrefix(raw, []byte(open)) {
		return nil, nil, "", false
	}
	i := len(open)
	var ns *string
	for {
		sp := i
		for i < len(raw) && isSpace(raw[i]) {
			i++
		}
		if i == len(raw) {
			return nil, nil, "", false
		}
		if raw[i] == '>' || raw[i] == '/' {
			break
		}
		if i == sp {
			return nil, nil, "", false
		}
		ns0 := i
		for i < len(raw) && isNameByte(raw[i]) {
			i++
		}
		name := string(raw[ns0:i])
		if name == "" || !isNameStart(raw[ns0]) || i+1 >= len(raw) || raw[i] != '=' || raw[i+1] != '\'' && raw[i+1] != '"' {
			return nil, nil, "", false
		}
		q := raw[i+1]
		i += 2
		v0 := i
		for i < len(raw) && raw[i] != q {
			if c := raw[i]; c < 0x20 || c > 0x7e || c == '<' || c == '&' {
				return nil, nil, "", false
			}
			i++
		}
		if i == len(raw) {
			return nil, nil, "", false
		}
		v := string(raw[v0:i])
		i++
		var dst **string
		switch name {
		case "xmlns":
			dst = &ns
		case "sid":
			dst = &sid
		case "seq":
			dst = &seq
		default:
			continue // xml.Unmarshal ignores other attributes (duplicates too)
		}
		if *dst != nil {
			return nil, nil, "", false
		}
		*dst = &v
	}
	if ns == nil || *ns != NS {
		return nil, nil, "", false
	}
	if raw[i] == '/' {
		if string(raw[i:]) != "/>" {
			return nil, nil, "", false
		}
		return sid, seq, "", true
	}
	i++
	t0 := i
	for i < len(raw) && isTextByte(raw[i]) {
		i++
	}
	text = string(raw[t0:i])
	rest := raw[i:]
	if !bytes.HasPrefix(rest, []byte("</data")) {
		return nil, nil, "", false
	}
	rest = bytes.TrimLeft(rest[len("</data"):], " \t\r\n")
	if string(rest) != ">" {
		return nil, nil, "", false
	}
	return sid, seq, text, true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isNameStart(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' }

func isNameByte(c byte) bool {
	return isNameStart(c) || '0' <= c && c <= '9' || c == '-' || c == '.'
}

// isTextByte: printable ASCII without markup, references or the "]]>"
// strict XML refuses, and tab and newline (a carriage return would be
// normalised).
func isTextByte(c byte) bool {
	return 0x20 <= c && c <= 0x7e && c != '<' && c != '&' && c != '>' && c != ']' || c == '\t' || c == '\n'
}

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
	return decodeBlockInto(nil, s, max)
}

// decodeBlockInto is decodeBlock into dst's storage when it is large
// enough (the receive path reuses one), without converting s to bytes.
func decodeBlockInto(dst []byte, s string, max int) ([]byte, error) {
	if len(s) > base64.StdEncoding.EncodedLen(max) {
		return nil, fmt.Errorf("chunk larger than block-size %d", max)
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '\r' || s[i] == '\n' {
			return nil, errors.New("line break in base64")
		}
	}
	b, ok := decodeQuanta(dst, s)
	if !ok {
		// Anything odd, decoded whole, for the very error DecodeString gives.
		var err error
		if b, err = strict64.DecodeString(s); err != nil {
			return nil, fmt.Errorf("invalid base64: %v", err)
		}
	}
	if len(b) > max {
		return nil, fmt.Errorf("chunk of %d bytes exceeds block-size %d", len(b), max)
	}
	return b, nil
}

var strict64 = base64.StdEncoding.Strict()

// decodeQuanta decodes strict padded base64 without line breaks in pieces
// copied to the stack, which equals decoding it whole as long as padding
// comes only in the last quantum; ok is false when it does not, or on any
// error.
func decodeQuanta(dst []byte, s string) ([]byte, bool) {
	if len(s)%4 != 0 {
		return nil, false
	}
	if i := strings.IndexByte(s, '='); i >= 0 && i < len(s)-2 {
		return nil, false
	}
	n := base64.StdEncoding.DecodedLen(len(s))
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	var tmp [1024]byte // a multiple of 4
	w := 0
	for len(s) > 0 {
		k := copy(tmp[:], s)
		m, err := strict64.Decode(dst[w:], tmp[:k])
		if err != nil {
			return nil, false
		}
		w += m
		s = s[k:]
	}
	return dst[:w], true
}
