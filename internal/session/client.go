package session

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"gosrc.io/xmpp"
	"gosrc.io/xmpp/stanza"
)

// Config says how to log in.
type Config struct {
	JID      string // bare or full; a full JID asks for that resource
	Password string
	Server   string // host:port; empty means SRV lookup, then the JID's domain on 5222

	RootCAs            *x509.CertPool // extra trust (--tls-ca); nil means the system pool
	InsecureSkipVerify bool           // --insecure
	AllowPlaintext     bool           // --no-tls; refused unless Server is loopback

	Timeout   time.Duration // bounds connect and login; default 30s
	IQTimeout time.Duration // default reply wait; default DefaultIQTimeout
	DebugXML  io.Writer     // stanzas in both directions, never SASL
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

// clientTransport sends through gosrc.io/xmpp's client.
type clientTransport struct {
	c       *xmpp.Client
	timeout time.Duration
}

func (t *clientTransport) send(stanza []byte) error { return t.c.SendRaw(string(stanza)) }

func (t *clientTransport) close() error {
	// The library waits for the server's </stream:stream> for up to its
	// connect timeout and may never see it (its receive loop can be stuck):
	// bound the wait here.
	done := make(chan error, 1)
	go func() { done <- t.c.Disconnect() }()
	select {
	case err := <-done:
		return err
	case <-time.After(t.timeout):
		return nil
	}
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

// ServerAddress resolves where to connect for jid: the given server, else
// the XMPP client SRV record of its domain, else the domain on port 5222.
func ServerAddress(ctx context.Context, jid, server string) string {
	if server != "" {
		if _, _, err := net.SplitHostPort(server); err != nil {
			return net.JoinHostPort(strings.Trim(server, "[]"), "5222")
		}
		return server
	}
	domain := Domain(jid)
	_, srvs, err := net.DefaultResolver.LookupSRV(ctx, "xmpp-client", "tcp", domain)
	if err == nil && len(srvs) > 0 && srvs[0].Target != "." {
		return net.JoinHostPort(strings.TrimSuffix(srvs[0].Target, "."), strconv.Itoa(int(srvs[0].Port)))
	}
	return net.JoinHostPort(domain, "5222")
}

// Dial connects and logs in. TLS (STARTTLS) is required and verified unless
// the config says otherwise; plaintext is allowed only to a loopback server,
// because the library authenticates with SASL PLAIN only.
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
	addr := ServerAddress(ctx, cfg.JID, cfg.Server)
	host, _, _ := net.SplitHostPort(addr)
	if cfg.AllowPlaintext && !IsLoopback(ctx, host) {
		return nil, fmt.Errorf("session: refusing plaintext to %s: the password would cross the network in the clear (SASL PLAIN); use TLS", addr)
	}

	tlsConfig := &tls.Config{
		RootCAs:            cfg.RootCAs,
		InsecureSkipVerify: cfg.InsecureSkipVerify,
		ServerName:         Domain(cfg.JID),
		MinVersion:         tls.VersionTLS12,
	}
	// The library uses this both as its dial timeout and as its wait for
	// the server's stream close after a failed login (TLS or SASL), which
	// it always sits out: keep it a fraction of the overall timeout so
	// that a failure is reported as such, before the timeout.
	connectSeconds := int(math.Ceil(cfg.Timeout.Seconds() / 3))
	libCfg := &xmpp.Config{
		TransportConfiguration: xmpp.TransportConfiguration{
			Address:        addr,
			Domain:         Domain(cfg.JID),
			ConnectTimeout: connectSeconds,
			TLSConfig:      tlsConfig,
		},
		Jid:            cfg.JID,
		Credential:     xmpp.Password(cfg.Password),
		Insecure:       cfg.AllowPlaintext,
		ConnectTimeout: connectSeconds,
	}

	var s *Session
	ready := make(chan struct{})
	router := xmpp.NewRouter()
	router.NewRoute().HandlerFunc(func(_ xmpp.Sender, p stanza.Packet) {
		<-ready
		switch st := p.(type) {
		case *stanza.IQ:
			s.dispatch(fromLibIQ(st))
		case stanza.Presence:
			s.dispatchPresence(Presence{From: st.From, Type: string(st.Type), Priority: int(st.Priority)})
		case stanza.Message:
			s.dispatchMessage(fromLibMessage(&st))
		}
	})
	var failMu sync.Mutex
	var early error // errors before the session exists
	onError := func(err error) {
		failMu.Lock()
		defer failMu.Unlock()
		if s != nil {
			s.fail(fmt.Errorf("%w: %v", ErrDisconnected, err))
		} else if early == nil {
			early = err
		}
	}
	client, err := xmpp.NewClient(libCfg, router, onError)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConnect, err)
	}
	// Every loss reaches the error handler (a failed read, a stream error,
	// a failed keepalive closes the socket and so fails the read); the
	// library's event handler does not always fire, and its Event type
	// cannot be passed without copying a lock.

	// The library's login has no deadline after the TCP connect: run it
	// aside and give up on it when ctx ends.
	connected := make(chan error, 1)
	go func() { connected <- client.Connect() }()
	select {
	case err = <-connected:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %s did not complete login within %v", ErrConnect, addr, cfg.Timeout)
	}
	if err != nil {
		return nil, classifyConnectError(addr, err)
	}
	failMu.Lock()
	jid := cfg.JID
	if client.Session != nil && client.Session.BindJid != "" {
		jid = client.Session.BindJid
	}
	s = newSession(jid, &clientTransport{c: client, timeout: 3 * time.Second}, cfg.IQTimeout, cfg.DebugXML)
	failMu.Unlock()
	close(ready)
	return s, nil
}

func classifyConnectError(addr string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "auth failure"):
		return fmt.Errorf("%w: the server rejected the JID or password (%s)", ErrAuth, strings.TrimPrefix(msg, "auth failure: "))
	case strings.Contains(msg, "no matching authentication"):
		return fmt.Errorf("%w: the server offers no SASL mechanism this client supports (PLAIN only): %v", ErrAuth, err)
	case strings.Contains(msg, "does not advertise support for starttls"):
		return fmt.Errorf("%w: %s offers no TLS (STARTTLS); xfer will not send the password in the clear (--no-tls allows it for a server on a loopback address)", ErrTLS, addr)
	case strings.Contains(msg, "x509") || strings.Contains(msg, "certificate") || strings.Contains(msg, "tls") || strings.Contains(msg, "TLS"):
		return fmt.Errorf("%w with %s: %v (use --tls-ca FILE to trust its certificate)", ErrTLS, addr, err)
	default:
		return fmt.Errorf("%w %s: %v", ErrConnect, addr, err)
	}
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
