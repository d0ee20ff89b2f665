// Package oob implements XEP-0066: Out of Band Data. It is the way to reach
// a client that speaks no Stream Initiation (XEP-0095/0096): the sender
// hands over a URL, either in an IQ-set in the jabber:iq:oob namespace, which
// the receiver answers only once it holds the whole file, or as a
// fire-and-forget jabber:x:oob child of a message (how XEP-0363 HTTP File
// Upload links are shared).
//
// The package parses and builds both payloads, fetches a URL over HTTP(S)
// with bounded size, time and memory (Get), and serves one local file at an
// unguessable URL (Serve). It knows nothing about sessions: the transfer
// package wires it to XMPP.
package oob

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"unicode/utf8"

	"xfer/internal/fault"
)

// Namespaces.
const (
	NSIQ = "jabber:iq:oob" // IQ-set offer, answered after the fetch
	NSX  = "jabber:x:oob"  // message child, fire and forget
)

// Limits on what a peer may send us.
const (
	MaxURLBytes  = 8 << 10 // a URL longer than this is refused
	MaxDescBytes = 4 << 10 // a longer description is cut
	MaxLinks     = 8       // jabber:x:oob children looked at per message
)

// Errors a caller may test with errors.Is.
var (
	ErrMalformed = fault.New(fault.Transfer, "oob: malformed payload")
	ErrScheme    = fault.New(fault.Refused, "oob: only http and https URLs are allowed")
	ErrFetch     = fault.New(fault.Transfer, "oob: fetching the URL failed")
	ErrTooLarge  = fault.New(fault.Refused, "oob: the file is larger than allowed")
)

// Query is a jabber:iq:oob offer:
// <query xmlns='jabber:iq:oob' sid='…'><url/><desc/></query>.
type Query struct {
	SID  string
	URL  string
	Desc string
}

type queryElement struct {
	XMLName xml.Name `xml:"jabber:iq:oob query"`
	SID     string   `xml:"sid,attr,omitempty"`
	URL     string   `xml:"url"`
	Desc    string   `xml:"desc,omitempty"`
}

// ParseQuery decodes a jabber:iq:oob IQ payload. The URL is returned as
// sent, trimmed of surrounding white space; CheckURL says whether it may be
// fetched.
func ParseQuery(payload []byte) (*Query, error) {
	var q queryElement
	if err := xml.Unmarshal(payload, &q); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	u := strings.TrimSpace(q.URL)
	if u == "" {
		return nil, fmt.Errorf("%w: no <url/>", ErrMalformed)
	}
	if len(u) > MaxURLBytes {
		return nil, fmt.Errorf("%w: URL of %d bytes", ErrMalformed, len(u))
	}
	return &Query{SID: q.SID, URL: u, Desc: cut(strings.TrimSpace(q.Desc), MaxDescBytes)}, nil
}

// Marshal renders the query as an IQ payload.
func (q *Query) Marshal() []byte {
	out, _ := xml.Marshal(queryElement{SID: q.SID, URL: q.URL, Desc: q.Desc}) // strings only: cannot fail
	return out
}

// Link is a jabber:x:oob message child: <x xmlns='jabber:x:oob'><url/><desc/></x>.
type Link struct {
	URL  string
	Desc string
}

type linkElement struct {
	XMLName xml.Name `xml:"jabber:x:oob x"`
	URL     string   `xml:"url"`
	Desc    string   `xml:"desc,omitempty"`
}

// Marshal renders the link as a message child.
func (l Link) Marshal() []byte {
	out, _ := xml.Marshal(linkElement{URL: l.URL, Desc: l.Desc})
	return out
}

// MessagePayload is the message body and link XEP-0363 clients send for an
// uploaded file: <body>URL</body><x xmlns='jabber:x:oob'><url>URL</url></x>.
// Clients that show OOB links inline (Conversations, Dino, Gajim) need the
// body to be exactly the URL.
func MessagePayload(l Link) []byte {
	var b bytes.Buffer
	b.WriteString("<body>")
	_ = xml.EscapeText(&b, []byte(l.URL))
	b.WriteString("</body>")
	b.Write(l.Marshal())
	return b.Bytes()
}

// ParseLinks returns the jabber:x:oob links among a message's children
// (the raw XML of a session.Message's payload: a sequence of elements, not
// one root). Other children are ignored; at most MaxLinks are returned.
func ParseLinks(payload []byte) ([]Link, error) {
	d := xml.NewDecoder(bytes.NewReader(payload))
	var links []Link
	for len(links) < MaxLinks {
		tok, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return links, nil
			}
			return links, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if se.Name.Space != NSX || se.Name.Local != "x" {
			if err := d.Skip(); err != nil {
				return links, fmt.Errorf("%w: %v", ErrMalformed, err)
			}
			continue
		}
		var el linkElement
		if err := d.DecodeElement(&el, &se); err != nil {
			return links, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		u := strings.TrimSpace(el.URL)
		if u == "" || len(u) > MaxURLBytes {
			continue
		}
		links = append(links, Link{URL: u, Desc: cut(strings.TrimSpace(el.Desc), MaxDescBytes)})
	}
	return links, nil
}

// CheckURL parses a URL offered by a peer and accepts only absolute http
// and https URLs with a host and without user information (credentials in
// a URL would end up in logs).
func CheckURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	default:
		return nil, fmt.Errorf("%w, not %q", ErrScheme, u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("%w: URL without a host", ErrMalformed)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: URL with user information", ErrMalformed)
	}
	return u, nil
}

// NameFromURL is the file name a URL suggests: its last path element,
// unescaped (the caller still makes it safe for its directory).
func NameFromURL(u *url.URL) string {
	p := u.Path
	if i := strings.LastIndex(p, "/"); i >= 0 {
		p = p[i+1:]
	}
	return p
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
