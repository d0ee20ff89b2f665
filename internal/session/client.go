package session

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"gosrc.io/xmpp/stanza"
)

// Config says how to log in.
type Config struct {
	JID      string // bare or full; a full JID asks for that resource
	Password string
	Server   string // HOST[:PORT] (STARTTLS) or tls://HOST[:PORT] (Direct TLS); empty means SRV lookup, then the JID's domain on 5222

	RootCAs            *x509.CertPool // extra trust (--tls-ca); nil means the system pool
	InsecureSkipVerify bool           // --insecure
	AllowPlaintext     bool           // --no-tls; refused unless Server is loopback, where STARTTLS is then skipped
	RefusePlain        bool           // never SASL PLAIN (downgrade protection: the account has used SCRAM)
	Resolver           Resolver       // SRV lookups; nil means net.DefaultResolver

	Timeout   time.Duration // bounds connect and login; default 30s
	IQTimeout time.Duration // default reply wait; default DefaultIQTimeout
	DebugXML  io.Writer     // stanzas in both directions, never SASL

	// PingInterval is how often the session pings its server (XEP-0199);
	// a ping unanswered within PingTimeout (default: the interval, at
	// most 30s) ends the session with ErrPingTimeout. Zero means
	// DefaultPingInterval, negative never.
	PingInterval time.Duration
	PingTimeout  time.Duration
}

// Namespaces whose payloads must reach handlers byte for byte. The library
// decodes a few namespaces into its own types (disco among them); for these
// it keeps the raw XML instead.
var rawNamespaces = []string{
	"http://jabber.org/protocol/disco#info",
	"http://jabber.org/protocol/disco#items",
	"http://jabber.org/protocol/si",
	"http://jabber.org/protocol/bytestreams",
	"http://jabber.org/protocol/ibb",
	"urn:xmpp:jingle:1",
	"jabber:iq:oob",
	"urn:xmpp:ping",
}

var registerOnce sync.Once

// Message extensions kept as raw XML (the library drops unknown ones and
// decodes these into its own types).
var rawMessageNamespaces = []string{"jabber:x:oob"}

func registerRawPayloads() {
	for _, ns := range rawMessageNamespaces {
		stanza.TypeRegistry.MapExtension(stanza.PKTMessage, xml.Name{Space: ns, Local: "*"}, rawPayload{})
		stanza.TypeRegistry.MapExtension(stanza.PKTMessage, xml.Name{Space: ns, Local: "x"}, rawPayload{})
	}
	for _, ns := range rawNamespaces {
		// "*" matches every element of the namespace; disco's "query" is
		// registered by name in the library, so override it by name too.
		stanza.TypeRegistry.MapExtension(stanza.PKTIQ, xml.Name{Space: ns, Local: "*"}, rawPayload{})
		stanza.TypeRegistry.MapExtension(stanza.PKTIQ, xml.Name{Space: ns, Local: "query"}, rawPayload{})
	}
}

// rawPayload keeps an IQ payload as XML text.
type rawPayload struct {
	ns  string
	raw []byte
}

func (r *rawPayload) Namespace() string         { return r.ns }
func (r *rawPayload) GetSet() *stanza.ResultSet { return nil }
func (r rawPayload) MarshalXML(*xml.Encoder, xml.StartElement) error {
	return errors.New("session: rawPayload is receive-only")
}

func (r *rawPayload) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	r.ns = start.Name.Space
	var b bytes.Buffer
	e := xml.NewEncoder(&b)
	depth := 0
	tok := xml.Token(start)
	for {
		if t, ok := tok.(xml.StartElement); ok {
			depth++
			// The encoder writes xmlns from Name.Space; drop the declarations
			// the decoder kept as attributes so they are not written twice.
			attrs := t.Attr[:0:0]
			for _, a := range t.Attr {
				if a.Name.Local != "xmlns" && a.Name.Space != "xmlns" {
					attrs = append(attrs, a)
				}
			}
			t.Attr = attrs
			tok = t
		}
		if err := e.EncodeToken(xml.CopyToken(tok)); err != nil {
			return err
		}
		if _, ok := tok.(xml.EndElement); ok {
			depth--
			if depth == 0 {
				break
			}
		}
		var err error
		if tok, err = d.Token(); err != nil {
			return err
		}
	}
	if err := e.Flush(); err != nil {
		return err
	}
	r.raw = b.Bytes()
	return nil
}

// IsLoopback reports whether host (a name or an address, without port)
// resolves to loopback addresses only.
func IsLoopback(ctx context.Context, host string) bool {
	if host == "localhost" {
		return true
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return false
		}
	}
	return true
}

// ServerAddress is the host:port Dial tries first for jid: the given
// server, else the first SRV target of its domain, else the domain on
// port 5222. Dial itself tries every endpoint in turn (see Endpoints).
func ServerAddress(ctx context.Context, jid, server string) string {
	eps, err := Endpoints(ctx, nil, jid, server)
	if err != nil || len(eps) == 0 {
		return server
	}
	return eps[0].Addr()
}

// Dial connects and logs in: each endpoint in turn (Endpoints), TLS
// (Direct TLS or STARTTLS) verified against the JID's domain, SASL with the
// strongest mechanism offered (SCRAM-SHA-256-PLUS, SCRAM-SHA-1-PLUS,
// SCRAM-SHA-256, SCRAM-SHA-1, PLAIN), resource binding. Plaintext is
// allowed only to a loopback server, and only with AllowPlaintext; then
// STARTTLS is not used even when offered. A refused login (ErrAuth) is not
// retried on the next endpoint.
func Dial(ctx context.Context, cfg Config) (*Session, error) {
	registerOnce.Do(registerRawPayloads)
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	if Local(cfg.JID) == "" || Domain(cfg.JID) == "" {
		return nil, fmt.Errorf("session: %q is not an account JID (want user@domain)", cfg.JID)
	}
	if cfg.Password == "" {
		return nil, fmt.Errorf("%w: no password given", ErrAuth)
	}
	eps, err := Endpoints(ctx, cfg.Resolver, cfg.JID, cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConnect, err)
	}
	loopback := make([]bool, len(eps))
	anyLoopback := false
	for i, ep := range eps {
		loopback[i] = IsLoopback(ctx, ep.Host)
		anyLoopback = anyLoopback || loopback[i]
	}
	if cfg.AllowPlaintext && !anyLoopback {
		return nil, fmt.Errorf("session: refusing plaintext to %s: the session (and with SASL PLAIN the password) would cross the network in the clear; use TLS", eps[0])
	}
	var firstErr, tlsErr error
	for i, ep := range eps {
		res, err := login(ctx, &cfg, ep, cfg.AllowPlaintext && loopback[i] && !ep.DirectTLS)
		if err == nil {
			s := newSession(res.jid, nil, cfg.IQTimeout, cfg.DebugXML)
			s.info = res.info
			tr := newLibTransport(res.conn, res.s)
			s.tr = tr
			go tr.readLoop(s)
			// A ping of a silent connection also keeps it alive, and
			// notices a dead one that a write would not: the whitespace
			// keepalive is for when pings are off.
			if every, wait := cfg.pingTimes(); every > 0 {
				go s.pingLoop(every, wait)
			} else {
				go tr.keepalive(s)
			}
			return s, nil
		}
		if errors.Is(err, ErrAuth) || ctx.Err() != nil {
			return nil, err
		}
		if firstErr == nil {
			firstErr = err
		}
		if tlsErr == nil && errors.Is(err, ErrTLS) {
			tlsErr = err
		}
	}
	if tlsErr != nil {
		firstErr = tlsErr
	}
	if len(eps) > 1 {
		return nil, fmt.Errorf("%w (tried %d endpoints)", firstErr, len(eps))
	}
	return nil, firstErr
}

// fromLibIQ converts the library's IQ into ours.
func fromLibIQ(in *stanza.IQ) *IQ {
	iq := &IQ{ID: in.Id, Type: string(in.Type), From: in.From, To: in.To}
	switch p := in.Payload.(type) {
	case nil:
	case *rawPayload:
		iq.Payload = p.raw
	default:
		iq.Payload, _ = xml.Marshal(p)
	}
	if iq.Payload == nil && in.Any != nil {
		iq.Payload, _ = xml.Marshal(in.Any)
	}
	if in.Error != nil {
		// The library keeps the defined condition and text but drops any
		// application-specific condition element.
		cond := in.Error.Reason
		if cond == "" {
			cond = CondUndefinedCondition
		}
		iq.Error = &StanzaError{Type: string(in.Error.Type), Condition: cond, Text: in.Error.Text}
	}
	return iq
}

// fromLibMessage converts the library's message into ours: the body and
// the extensions it kept, as raw XML.
func fromLibMessage(in *stanza.Message) Message {
	m := Message{ID: in.Id, Type: string(in.Type), From: in.From, To: in.To}
	var b bytes.Buffer
	if in.Body != "" {
		b.WriteString("<body>")
		_ = xml.EscapeText(&b, []byte(in.Body))
		b.WriteString("</body>")
	}
	for _, e := range in.Extensions {
		if r, ok := e.(*rawPayload); ok {
			b.Write(r.raw)
		} else if raw, err := xml.Marshal(e); err == nil {
			b.Write(raw)
		}
	}
	m.Payload = b.Bytes()
	return m
}
