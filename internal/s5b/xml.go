package s5b

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Query is a decoded <query xmlns='http://jabber.org/protocol/bytestreams'/>:
// a streamhost list (a request, or a proxy's answer), a streamhost-used
// (the target's answer) or an activation (to a proxy).
type Query struct {
	SID         string
	Mode        string // "tcp", "udp" or empty (meaning tcp)
	Streamhosts []Streamhost
	Used        string // streamhost-used jid
	Activate    string // target full JID to activate
}

// ParseQuery decodes a bytestreams query payload. It is lenient where real
// peers differ and bounded where they could be hostile: a streamhost without
// a port gets DefaultPort, IPv6 literals may come bracketed or not,
// streamhosts without a JID or a usable host or port are skipped (XEP-0065
// zeroconf entries among them), and at most MaxStreamhosts are kept.
func ParseQuery(payload []byte) (*Query, error) {
	d := xml.NewDecoder(bytes.NewReader(payload))
	root, err := firstStart(d)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if root.Name.Space != NS || root.Name.Local != "query" {
		return nil, fmt.Errorf("%w: root element is {%s}%s", ErrMalformed, root.Name.Space, root.Name.Local)
	}
	q := &Query{SID: attr(root, "sid"), Mode: attr(root, "mode")}
	var haveUsed, haveActivate bool
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return q, nil // the query's own end: children are skipped whole
		case xml.StartElement:
			if t.Name.Space != NS {
				if err := d.Skip(); err != nil {
					return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
				}
				continue
			}
			switch t.Name.Local {
			case "streamhost":
				if h, ok := parseStreamhost(t); ok && len(q.Streamhosts) < MaxStreamhosts {
					q.Streamhosts = append(q.Streamhosts, h)
				}
				err = d.Skip()
			case "streamhost-used":
				if !haveUsed {
					q.Used, haveUsed = attr(t, "jid"), true
				}
				err = d.Skip()
			case "activate":
				var s string
				err = d.DecodeElement(&s, &t)
				if !haveActivate {
					q.Activate, haveActivate = strings.TrimSpace(s), true
				}
			default:
				err = d.Skip()
			}
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
			}
		}
	}
}

func firstStart(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se, nil
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

func parseStreamhost(se xml.StartElement) (Streamhost, bool) {
	h := Streamhost{JID: attr(se, "jid"), Port: DefaultPort}
	if h.JID == "" {
		return h, false // it could never be named in streamhost-used
	}
	host, ok := cleanHost(attr(se, "host"))
	if !ok {
		return h, false
	}
	h.Host = host
	if p := strings.TrimSpace(attr(se, "port")); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return h, false
		}
		h.Port = n
	}
	return h, true
}

// cleanHost accepts an IP literal (IPv6 with or without brackets, with or
// without a zone) or a DNS name, and refuses anything else: the host ends
// up in a dial string, so "host:port" or spaces must not slip through.
func cleanHost(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.String(), true
	}
	return s, validHostname(s)
}

func validHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
			default:
				return false
			}
		}
	}
	return true
}

// Wire forms, for marshaling only: encoding/xml escapes attribute values.
type queryXML struct {
	XMLName     xml.Name        `xml:"http://jabber.org/protocol/bytestreams query"`
	SID         string          `xml:"sid,attr,omitempty"`
	Mode        string          `xml:"mode,attr,omitempty"`
	Streamhosts []streamhostXML `xml:"streamhost"`
	Used        *usedXML        `xml:"streamhost-used"`
	Activate    string          `xml:"activate,omitempty"`
}

type streamhostXML struct {
	JID  string `xml:"jid,attr"`
	Host string `xml:"host,attr"`
	Port int    `xml:"port,attr"`
}

type usedXML struct {
	JID string `xml:"jid,attr"`
}

// Marshal renders the query. It is the inverse of ParseQuery for queries
// ParseQuery returns.
func (q *Query) Marshal() []byte {
	x := queryXML{SID: q.SID, Mode: q.Mode, Activate: q.Activate}
	for _, h := range q.Streamhosts {
		x.Streamhosts = append(x.Streamhosts, streamhostXML(h))
	}
	if q.Used != "" {
		x.Used = &usedXML{JID: q.Used}
	}
	b, err := xml.Marshal(x)
	if err != nil {
		// Only strings and ints: encoding/xml cannot fail on them.
		panic("s5b: marshaling query: " + err.Error())
	}
	return b
}

// MarshalRequest returns the requester's streamhost offer (XEP-0065 §5.3.1,
// §6.3.1), mode tcp. List direct streamhosts first and proxies last: the
// target tries them in order.
func MarshalRequest(sid string, hosts []Streamhost) []byte {
	return (&Query{SID: sid, Mode: "tcp", Streamhosts: hosts}).Marshal()
}

// MarshalUsed returns the target's answer naming the streamhost it connected
// to.
func MarshalUsed(sid, jid string) []byte {
	return (&Query{SID: sid, Used: jid}).Marshal()
}

// MarshalActivate returns the requester's activation request to a proxy.
func MarshalActivate(sid, target string) []byte {
	return (&Query{SID: sid, Activate: target}).Marshal()
}

// MarshalProxyQuery returns the empty query that asks a proxy for its
// network address (XEP-0065 §6.3.1 step 1).
func MarshalProxyQuery() []byte {
	return (&Query{}).Marshal()
}
