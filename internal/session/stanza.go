package session

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
)

// NSStanzas is the namespace of stanza error conditions (RFC 6120 §8.3).
const NSStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"

// IQ types.
const (
	TypeGet    = "get"
	TypeSet    = "set"
	TypeResult = "result"
	TypeError  = "error"
)

// IQ is an Info/Query stanza. Payload holds the raw XML of its single child
// element (empty for an empty result), so that protocol packages decode it
// with their own types and never see the XMPP library.
type IQ struct {
	ID      string
	Type    string
	From    string
	To      string
	Payload []byte
	Error   *StanzaError
}

// PayloadName returns the qualified name of the payload's root element, or
// the zero Name when there is none or it is not well-formed.
func (iq *IQ) PayloadName() xml.Name {
	return rootName(iq.Payload)
}

func rootName(payload []byte) xml.Name {
	if n, ok := fastRootName(payload); ok {
		return n
	}
	if len(bytes.TrimSpace(payload)) == 0 {
		return xml.Name{}
	}
	d := xml.NewDecoder(bytes.NewReader(payload))
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.Name{}
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name
		}
	}
}

// Marshal renders the IQ as a stanza. The payload is written as given:
// protocol packages produce it with encoding/xml, so it is well-formed.
func (iq *IQ) Marshal() []byte {
	var b bytes.Buffer
	b.Grow(len("<iq type='' id='' to='' from=''></iq>") + len(iq.Type) + len(iq.ID) + len(iq.To) + len(iq.From) + len(iq.Payload))
	b.WriteString("<iq")
	writeAttr(&b, "type", iq.Type)
	writeAttr(&b, "id", iq.ID)
	writeAttr(&b, "to", iq.To)
	writeAttr(&b, "from", iq.From)
	b.WriteString(">")
	b.Write(iq.Payload)
	if iq.Error != nil {
		b.Write(iq.Error.marshal())
	}
	b.WriteString("</iq>")
	return b.Bytes()
}

func writeAttr(b *bytes.Buffer, name, value string) {
	if value == "" {
		return
	}
	b.WriteString(" ")
	b.WriteString(name)
	b.WriteString("='")
	if plainAttr(value) {
		b.WriteString(value) // what EscapeText would write, without a copy
	} else {
		_ = xml.EscapeText(b, []byte(value))
	}
	b.WriteString("'")
}

// plainAttr reports whether xml.EscapeText leaves v as it is: printable
// ASCII without markup or quotes.
func plainAttr(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e || c == '<' || c == '>' || c == '&' || c == '\'' || c == '"' {
			return false
		}
	}
	return true
}

// StanzaError is an XMPP stanza error (RFC 6120 §8.3): a type, a defined
// condition, optional text and an optional application-specific condition
// such as SI's <no-valid-streams/>.
type StanzaError struct {
	Type      string   // cancel, modify, auth, wait, continue
	Condition string   // e.g. "forbidden", "item-not-found"
	Text      string   // human-readable, optional
	App       xml.Name // application-specific condition element, optional
}

// Error conditions used by xfer, named as in RFC 6120.
const (
	CondBadRequest           = "bad-request"
	CondFeatureNotImpl       = "feature-not-implemented"
	CondForbidden            = "forbidden"
	CondInternalServerError  = "internal-server-error"
	CondItemNotFound         = "item-not-found"
	CondNotAcceptable        = "not-acceptable"
	CondNotAllowed           = "not-allowed"
	CondNotAuthorized        = "not-authorized"
	CondRecipientUnavailable = "recipient-unavailable"
	CondRemoteServerNotFound = "remote-server-not-found"
	CondResourceConstraint   = "resource-constraint"
	CondServiceUnavailable   = "service-unavailable"
	CondUndefinedCondition   = "undefined-condition"
	CondUnexpectedRequest    = "unexpected-request"
	CondRemoteServerTimeout  = "remote-server-timeout"
)

// defaultErrorType gives the error type RFC 6120 §8.3.3 recommends for a condition.
var defaultErrorType = map[string]string{
	CondBadRequest:           "modify",
	CondFeatureNotImpl:       "cancel",
	CondForbidden:            "auth",
	CondInternalServerError:  "cancel",
	CondItemNotFound:         "cancel",
	CondNotAcceptable:        "modify",
	CondNotAllowed:           "cancel",
	CondNotAuthorized:        "auth",
	CondRecipientUnavailable: "wait",
	CondRemoteServerNotFound: "cancel",
	CondResourceConstraint:   "wait",
	CondServiceUnavailable:   "cancel",
	CondUndefinedCondition:   "cancel",
	CondUnexpectedRequest:    "wait",
	CondRemoteServerTimeout:  "wait",
}

// NewError returns a stanza error with the condition's usual type.
func NewError(condition, text string) *StanzaError {
	typ := defaultErrorType[condition]
	if typ == "" {
		typ = "cancel"
	}
	return &StanzaError{Type: typ, Condition: condition, Text: text}
}

func (e *StanzaError) Error() string {
	var b strings.Builder
	b.WriteString(e.Condition)
	if e.App.Local != "" {
		b.WriteString(" (")
		b.WriteString(e.App.Local)
		b.WriteString(")")
	}
	if e.Text != "" {
		b.WriteString(": ")
		b.WriteString(e.Text)
	}
	return b.String()
}

// Is lets errors.Is match a stanza error by condition (and by application
// condition when the target names one).
func (e *StanzaError) Is(target error) bool {
	var t *StanzaError
	if !errors.As(target, &t) {
		return false
	}
	if t.Condition != "" && t.Condition != e.Condition {
		return false
	}
	return t.App.Local == "" || t.App == e.App
}

func (e *StanzaError) marshal() []byte {
	var b bytes.Buffer
	typ := e.Type
	if typ == "" {
		typ = "cancel"
	}
	cond := e.Condition
	if cond == "" {
		cond = CondUndefinedCondition
	}
	b.WriteString("<error")
	writeAttr(&b, "type", typ)
	b.WriteString("><")
	b.WriteString(cond)
	b.WriteString(" xmlns='" + NSStanzas + "'/>")
	if e.Text != "" {
		b.WriteString("<text xmlns='" + NSStanzas + "'>")
		_ = xml.EscapeText(&b, []byte(e.Text))
		b.WriteString("</text>")
	}
	if e.App.Local != "" {
		fmt.Fprintf(&b, "<%s xmlns='", e.App.Local)
		_ = xml.EscapeText(&b, []byte(e.App.Space))
		b.WriteString("'/>")
	}
	b.WriteString("</error>")
	return b.Bytes()
}

// errorElement mirrors <error/> for decoding.
type errorElement struct {
	Type  string `xml:"type,attr"`
	Items []struct {
		XMLName xml.Name
		Text    string `xml:",chardata"`
	} `xml:",any"`
}

// ParseError decodes an <error/> element. It never fails: a malformed error
// becomes undefined-condition, so a broken peer still ends the wait.
func ParseError(raw []byte) *StanzaError {
	var el errorElement
	if err := xml.Unmarshal(raw, &el); err != nil {
		return &StanzaError{Type: "cancel", Condition: CondUndefinedCondition, Text: "malformed error element"}
	}
	se := &StanzaError{Type: el.Type}
	for _, it := range el.Items {
		switch {
		case it.XMLName.Space == NSStanzas && it.XMLName.Local == "text":
			se.Text = strings.TrimSpace(it.Text)
		case it.XMLName.Space == NSStanzas:
			if se.Condition == "" {
				se.Condition = it.XMLName.Local
			}
		default:
			if se.App.Local == "" {
				se.App = it.XMLName
			}
		}
	}
	if se.Condition == "" {
		se.Condition = CondUndefinedCondition
	}
	return se
}

// Presence is the part of a presence stanza xfer uses.
type Presence struct {
	From     string
	Type     string // "" (available), "unavailable", …
	Priority int
}

// Message is the part of a message stanza xfer uses: its attributes and the
// raw XML of its child elements.
type Message struct {
	ID, Type, From, To string
	Payload            []byte
}
