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
	var x xmlData
	if err := xml.Unmarshal(raw, &x); err != nil {
		return dataElem{}, fmt.Errorf("ibb: malformed data: %v", err)
	}
	if x.SID == nil || *x.SID == "" {
		return dataElem{}, errors.New("ibb: data without sid")
	}
	if x.Seq == nil {
		return dataElem{}, errors.New("ibb: data without seq")
	}
	seq, err := strconv.ParseUint(*x.Seq, 10, 16)
	if err != nil {
		return dataElem{}, fmt.Errorf("ibb: bad seq %q", *x.Seq)
	}
	if len(x.Children) > 0 {
		return dataElem{}, errors.New("ibb: data with child elements")
	}
	return dataElem{SID: *x.SID, Seq: uint16(seq), Data: x.Text}, nil
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
	if len(s) > base64.StdEncoding.EncodedLen(max) {
		return nil, fmt.Errorf("chunk larger than block-size %d", max)
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '\r' || s[i] == '\n' {
			return nil, errors.New("line break in base64")
		}
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("invalid base64: %v", err)
	}
	if len(b) > max {
		return nil, fmt.Errorf("chunk of %d bytes exceeds block-size %d", len(b), max)
	}
	return b, nil
}
