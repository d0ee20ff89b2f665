package jingle

import (
	"bytes"
	"encoding/xml"
	"io"
	"strconv"
	"strings"
	"time"
)

// Jingle is the <jingle/> element of XEP-0166 with the children xfer uses:
// contents (XEP-0234 file descriptions with XEP-0260 or XEP-0261
// transports), a reason, and the XEP-0234 session-info payloads.
type Jingle struct {
	XMLName   xml.Name  `xml:"urn:xmpp:jingle:1 jingle"`
	Action    string    `xml:"action,attr"`
	Initiator string    `xml:"initiator,attr,omitempty"`
	Responder string    `xml:"responder,attr,omitempty"`
	SID       string    `xml:"sid,attr"`
	Contents  []Content `xml:"urn:xmpp:jingle:1 content"`
	Reason    *Reason   `xml:"urn:xmpp:jingle:1 reason"`
	Checksum  *Checksum `xml:"urn:xmpp:jingle:apps:file-transfer:5 checksum"`
	Received  *Received `xml:"urn:xmpp:jingle:apps:file-transfer:5 received"`
}

// Content is one <content/>: xfer sends and accepts exactly one.
type Content struct {
	Creator     string        `xml:"creator,attr"`
	Name        string        `xml:"name,attr"`
	Senders     string        `xml:"senders,attr,omitempty"`
	Description *Description  `xml:"urn:xmpp:jingle:apps:file-transfer:5 description"`
	S5B         *S5BTransport `xml:"urn:xmpp:jingle:transports:s5b:1 transport"`
	IBB         *IBBTransport `xml:"urn:xmpp:jingle:transports:ibb:1 transport"`
	Security    *Security     `xml:"urn:xmpp:jingle:jet:0 security"`
	// Other is set by Parse when the content has a description or a
	// transport of a namespace xfer does not speak.
	Other []xml.Name `xml:"-"`
}

// Security marks a JET (XEP-0391) encrypted content.
type Security struct {
	Name   string `xml:"name,attr,omitempty"`
	Type   string `xml:"type,attr,omitempty"`
	Cipher string `xml:"cipher,attr,omitempty"`
}

// Description is XEP-0234's application description.
type Description struct {
	File *File `xml:"file"`
}

// File is XEP-0234's <file/>. Date is kept as text: peers write it in more
// than one shape, and a bad date must not sink an offer.
type File struct {
	Date      string     `xml:"date,omitempty"`
	Desc      *string    `xml:"desc"`
	MediaType string     `xml:"media-type,omitempty"`
	Name      string     `xml:"name,omitempty"`
	Size      string     `xml:"size,omitempty"`
	Range     *Range     `xml:"range"`
	Hashes    []Hash     `xml:"urn:xmpp:hashes:2 hash"`
	HashUsed  []HashUsed `xml:"urn:xmpp:hashes:2 hash-used"`
	// Conversations writes <mediaType/>; read it, never write it.
	MediaTypeCamel string `xml:"mediaType,omitempty"`
}

// Range is XEP-0234's <range/>: in an offer, that the sender can send part
// of the file; in an accept, which part the receiver wants.
type Range struct {
	Offset string `xml:"offset,attr,omitempty"`
	Length string `xml:"length,attr,omitempty"`
}

// Hash is XEP-0300's <hash/>: the algorithm and the base64 of the digest.
type Hash struct {
	Algo  string `xml:"algo,attr"`
	Value string `xml:",chardata"`
}

// HashUsed is XEP-0300's <hash-used/>: the digest follows later.
type HashUsed struct {
	Algo string `xml:"algo,attr"`
}

// S5BTransport is XEP-0260's <transport/>.
type S5BTransport struct {
	SID            string       `xml:"sid,attr"`
	Mode           string       `xml:"mode,attr,omitempty"`
	DstAddr        string       `xml:"dstaddr,attr,omitempty"`
	Candidates     []Candidate  `xml:"candidate"`
	CandidateUsed  *CandidateID `xml:"candidate-used"`
	Activated      *CandidateID `xml:"activated"`
	CandidateError *struct{}    `xml:"candidate-error"`
	ProxyError     *struct{}    `xml:"proxy-error"`
}

// Candidate is one XEP-0260 <candidate/>.
type Candidate struct {
	CID      string `xml:"cid,attr"`
	Host     string `xml:"host,attr"`
	JID      string `xml:"jid,attr"`
	Port     int    `xml:"port,attr,omitempty"`
	Priority uint32 `xml:"priority,attr"`
	Type     string `xml:"type,attr,omitempty"`
}

// CandidateID names a candidate in candidate-used and activated.
type CandidateID struct {
	CID string `xml:"cid,attr"`
}

// Candidate types of XEP-0260 §2.2 and their type preferences (§2.3.1).
const (
	TypeDirect   = "direct"
	TypeAssisted = "assisted"
	TypeTunnel   = "tunnel"
	TypeProxy    = "proxy"
)

// Priority is XEP-0260's recommended priority of a candidate: its type
// preference shifted left 16 bits, plus a local preference.
func Priority(typ string, local uint16) uint32 {
	pref := map[string]uint32{TypeDirect: 126, TypeAssisted: 120, TypeTunnel: 110, TypeProxy: 10}[typ]
	return pref<<16 | uint32(local)
}

// IBBTransport is XEP-0261's <transport/>.
type IBBTransport struct {
	SID       string `xml:"sid,attr"`
	BlockSize int    `xml:"block-size,attr,omitempty"`
}

// Reason is XEP-0166's <reason/>: one condition element and optional text.
type Reason struct {
	Condition string
	Text      string
}

type reasonXML struct {
	Text  string     `xml:"text,omitempty"`
	Conds []anyEmpty `xml:",any"`
}

type anyEmpty struct{ XMLName xml.Name }

// MarshalXML writes the condition as an element of the Jingle namespace.
func (r Reason) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	x := reasonXML{Text: r.Text}
	if r.Condition != "" {
		x.Conds = []anyEmpty{{XMLName: xml.Name{Local: r.Condition}}}
	}
	return e.EncodeElement(x, start)
}

// UnmarshalXML takes the first child other than <text/> as the condition.
func (r *Reason) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	var x reasonXML
	if err := d.DecodeElement(&x, &start); err != nil {
		return err
	}
	r.Text = strings.TrimSpace(x.Text)
	for _, c := range x.Conds {
		if c.XMLName.Local != "text" {
			r.Condition = c.XMLName.Local
			break
		}
	}
	return nil
}

// Checksum is XEP-0234's session-info <checksum/>: the hashes of the file,
// sent after (or while) the bytes move.
type Checksum struct {
	Creator string `xml:"creator,attr"`
	Name    string `xml:"name,attr"`
	File    *File  `xml:"file"`
}

// Received is XEP-0234's session-info <received/>: the receiver has the
// whole file.
type Received struct {
	Creator string `xml:"creator,attr"`
	Name    string `xml:"name,attr"`
}

// Parse decodes a <jingle/> payload and checks what XEP-0166 requires of
// every action: an action, a sid, and for the contents a creator and a name.
// Descriptions and transports of other namespaces are listed in
// Content.Other, never an error here: the caller answers them with the
// right reason.
func Parse(payload []byte) (*Jingle, error) {
	var j Jingle
	if err := xml.Unmarshal(payload, &j); err != nil {
		return nil, malformed("%v", err)
	}
	if j.Action == "" || j.SID == "" {
		return nil, malformed("no action or sid")
	}
	if len(j.Contents) > 0 {
		others, err := foreignChildren(payload)
		if err != nil {
			return nil, malformed("%v", err)
		}
		for i := range j.Contents {
			c := &j.Contents[i]
			if c.Name == "" {
				return nil, malformed("content without a name")
			}
			if i < len(others) {
				c.Other = others[i]
			}
		}
	}
	return &j, nil
}

// foreignChildren lists, per <content/>, its children in namespaces this
// package does not decode.
func foreignChildren(payload []byte) ([][]xml.Name, error) {
	known := map[string]bool{NSFileTransfer: true, NSS5B: true, NSIBB: true, NSJET: true}
	d := xml.NewDecoder(bytes.NewReader(payload))
	var out [][]xml.Name
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && t.Name.Local == "content" && t.Name.Space == NS {
				out = append(out, nil)
			}
			if depth == 3 && len(out) > 0 && !known[t.Name.Space] {
				out[len(out)-1] = append(out[len(out)-1], t.Name)
			}
		case xml.EndElement:
			depth--
		}
	}
}

// Marshal renders the element.
func (j *Jingle) Marshal() []byte {
	b, err := xml.Marshal(j)
	if err != nil {
		// Strings and numbers only: encoding/xml cannot fail on them.
		panic("jingle: marshaling: " + err.Error())
	}
	return b
}

// ParseSize reads a <size/> or a range attribute: a non-negative decimal.
func ParseSize(s string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	return n, err == nil && n >= 0
}

// ParseDate reads an XEP-0082 date-time, with or without fractions.
func ParseDate(s string) time.Time {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}
