package session

// The client side of stream negotiation (RFC 6120 §4-§7): TLS (STARTTLS or
// Direct TLS, XEP-0368), SASL (sasl.go chooses, mellium.im/sasl computes),
// resource binding. gosrc.io/xmpp can only log in with PLAIN inside its own
// Connect, and its Client cannot be given a connection (its transport is
// unexported and always dialled by itself), so the session negotiates here
// and then reads stanzas with the library's stanza decoder (libstream.go).

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"mellium.im/sasl"
)

// Namespaces of stream negotiation.
const (
	nsStream   = "http://etherx.jabber.org/streams"
	nsStreams  = "urn:ietf:params:xml:ns:xmpp-streams"
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession  = "urn:ietf:params:xml:ns:xmpp-session"
	nsSASLCB   = "urn:xmpp:sasl-cb:0" // XEP-0440
	nsClient   = "jabber:client"
	alpnClient = "xmpp-client" // XEP-0368
)

// negotiationLimit bounds what a server may send before the login ends,
// so that a hostile one cannot fill memory with an endless element.
const negotiationLimit = 1 << 20

// ConnInfo says how a session reached its server.
type ConnInfo struct {
	Server         string // the endpoint, as --server names it (tls://host:port for Direct TLS)
	DirectTLS      bool
	TLSVersion     string   // "TLS 1.3", or "" without TLS
	Mechanism      string   // SASL mechanism, e.g. SCRAM-SHA-1-PLUS
	Offered        []string // the mechanisms the server offered
	ChannelBinding string   // tls-exporter, tls-unique, or ""
}

// features is what xfer reads of <stream:features/>.
type features struct {
	StartTLS *struct {
		Required *struct{} `xml:"required"`
	} `xml:"urn:ietf:params:xml:ns:xmpp-tls starttls"`
	Mechanisms      []string `xml:"urn:ietf:params:xml:ns:xmpp-sasl mechanisms>mechanism"`
	ChannelBindings []struct {
		Type string `xml:"type,attr"`
	} `xml:"urn:xmpp:sasl-cb:0 sasl-channel-binding>channel-binding"`
	Bind    *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-bind bind"`
	Session *struct {
		Optional *struct{} `xml:"optional"`
	} `xml:"urn:ietf:params:xml:ns:xmpp-session session"`
}

func (f *features) cbTypes() []string {
	var out []string
	for _, c := range f.ChannelBindings {
		out = append(out, c.Type)
	}
	return out
}

// parseFeatures decodes a <stream:features/> element.
func parseFeatures(raw []byte) (*features, error) {
	var f features
	if err := xml.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("session: malformed stream features: %w", err)
	}
	for i, m := range f.Mechanisms {
		f.Mechanisms[i] = strings.TrimSpace(m)
	}
	return &f, nil
}

// saslFailure is a SASL <failure/> (RFC 6120 §6.5).
type saslFailure struct {
	Condition string
	Text      string
}

func (f saslFailure) String() string {
	if f.Text != "" {
		return f.Condition + ": " + f.Text
	}
	return f.Condition
}

// parseSASLFailure decodes the children of a SASL <failure/>. It never
// fails: an unknown or missing condition is "not-authorized".
func parseSASLFailure(raw []byte) saslFailure {
	var el struct {
		Items []struct {
			XMLName xml.Name
			Text    string `xml:",chardata"`
		} `xml:",any"`
	}
	_ = xml.Unmarshal(raw, &el)
	var f saslFailure
	for _, it := range el.Items {
		if it.XMLName.Local == "text" {
			f.Text = strings.TrimSpace(it.Text)
		} else if f.Condition == "" {
			f.Condition = it.XMLName.Local
		}
	}
	if f.Condition == "" {
		f.Condition = "not-authorized"
	}
	if len(f.Text) > 200 {
		f.Text = f.Text[:200]
	}
	return f
}

// streamError is a <stream:error/> from the server.
type streamError struct {
	Condition, Text string
}

func (e *streamError) Error() string {
	if e.Text != "" {
		return "stream error " + e.Condition + ": " + e.Text
	}
	return "stream error " + e.Condition
}

func parseStreamError(raw []byte) *streamError {
	f := parseSASLFailure(raw) // the same shape: a condition and a text
	if f.Condition == "not-authorized" && !strings.Contains(string(raw), "not-authorized") {
		f.Condition = "undefined-condition"
	}
	return &streamError{Condition: f.Condition, Text: f.Text}
}

// limitedReader fails once more than n bytes were read; n < 0 lifts the
// limit.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(p)
	}
	if l.n == 0 {
		return 0, fmt.Errorf("session: the server sent more than %d bytes before the login ended", negotiationLimit)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// xmlStream is one XML stream on a connection during negotiation.
type xmlStream struct {
	conn  net.Conn
	limit *limitedReader
	buf   *bufio.Reader // one per connection, under every stream's decoder
	dec   *xml.Decoder
}

func newXMLStream(conn net.Conn, limit int64) *xmlStream {
	l := &limitedReader{r: conn, n: limit}
	return &xmlStream{conn: conn, limit: l, buf: bufio.NewReaderSize(l, 32<<10)}
}

// open sends a stream header and reads the server's.
func (s *xmlStream) open(domain string) error {
	header := "<?xml version='1.0'?><stream:stream to='" + escapeAttr(domain) +
		"' version='1.0' xml:lang='en' xmlns='" + nsClient + "' xmlns:stream='" + nsStream + "'>"
	if _, err := io.WriteString(s.conn, header); err != nil {
		return err
	}
	// A new decoder for every stream (RFC 6120 §4.3.3), on the same
	// buffer: a bufio.Reader is an io.ByteReader, so the decoder reads from
	// it byte by byte and leaves the rest of the connection in it.
	s.dec = xml.NewDecoder(s.buf)
	for {
		tok, err := s.dec.Token()
		if err != nil {
			return fmt.Errorf("no stream header: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Space != nsStream || se.Name.Local != "stream" {
				return fmt.Errorf("expected a stream header, got <%s xmlns='%s'>", se.Name.Local, se.Name.Space)
			}
			return nil
		}
	}
}

// next reads the next top-level element as raw XML. A stream error or the
// end of the stream is an error.
func (s *xmlStream) next() (xml.Name, []byte, error) {
	se, raw, err := s.nextElement()
	return se.Name, raw, err
}

// nextElement is next with the element's attributes.
func (s *xmlStream) nextElement() (xml.StartElement, []byte, error) {
	for {
		tok, err := s.dec.Token()
		if err != nil {
			return xml.StartElement{}, nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var raw struct {
				Inner []byte `xml:",innerxml"`
			}
			t = t.Copy()
			if err := s.dec.DecodeElement(&raw, &t); err != nil {
				return xml.StartElement{}, nil, err
			}
			el := []byte("<x>" + string(raw.Inner) + "</x>")
			if t.Name.Space == nsStream && t.Name.Local == "error" {
				return t, nil, parseStreamError(el)
			}
			return t, el, nil
		case xml.EndElement:
			return xml.StartElement{}, nil, errors.New("the server closed the stream")
		}
	}
}

// features reads <stream:features/>.
func (s *xmlStream) features() (*features, error) {
	name, raw, err := s.next()
	if err != nil {
		return nil, err
	}
	if name.Space != nsStream || name.Local != "features" {
		return nil, fmt.Errorf("expected stream features, got <%s xmlns='%s'>", name.Local, name.Space)
	}
	return parseFeatures(raw)
}

func (s *xmlStream) write(str string) error {
	_, err := io.WriteString(s.conn, str)
	return err
}

func escapeAttr(v string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(v))
	return b.String()
}

// loginResult is an authenticated, bound stream.
type loginResult struct {
	conn net.Conn
	dec  *xml.Decoder
	jid  string
	info ConnInfo
}

// negotiation is one login attempt at one endpoint.
type negotiation struct {
	ctx  context.Context
	cfg  *Config
	ep   Endpoint
	raw  net.Conn  // the TCP connection
	conn net.Conn  // raw, or the TLS connection over it
	tc   *tls.Conn // nil without TLS
	s    *xmlStream
	info ConnInfo
}

// login connects to one endpoint and negotiates the stream. plaintextOK
// means the user allowed no TLS (--no-tls) and the endpoint is loopback:
// then STARTTLS is not used even when offered.
func login(ctx context.Context, cfg *Config, ep Endpoint, plaintextOK bool) (_ *loginResult, err error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", ep.Addr())
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrConnect, ep, err)
	}
	n := &negotiation{ctx: ctx, cfg: cfg, ep: ep, raw: raw, conn: raw, info: ConnInfo{Server: ep.String(), DirectTLS: ep.DirectTLS}}
	defer func() {
		if err != nil {
			n.conn.Close()
		}
	}()
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Now()) })
	defer stop()

	if ep.DirectTLS {
		if err := n.startTLS(alpnClient); err != nil {
			return nil, err
		}
	}
	n.s = newXMLStream(n.conn, negotiationLimit)
	f, err := n.secure(plaintextOK)
	if err != nil {
		return nil, err
	}
	if err := n.authenticate(f); err != nil {
		return nil, err
	}
	jid, err := n.establish()
	if err != nil {
		return nil, n.wrap(err)
	}
	if !stop() {
		return nil, n.wrap(ctx.Err())
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		return nil, n.wrap(err)
	}
	n.s.limit.n = -1
	return &loginResult{conn: n.conn, dec: n.s.dec, jid: jid, info: n.info}, nil
}

// wrap classifies an error of the negotiation.
func (n *negotiation) wrap(err error) error {
	if errors.Is(n.ctx.Err(), context.Canceled) {
		return fmt.Errorf("%w: login to %s: %w", ErrConnect, n.ep, n.ctx.Err())
	}
	if n.ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: %s did not complete login within %v", ErrConnect, n.ep, n.cfg.Timeout)
	}
	var se *streamError
	if errors.As(err, &se) && (se.Condition == "not-authorized" || se.Condition == "policy-violation") {
		return fmt.Errorf("%w: %s: %v", ErrAuth, n.ep, err)
	}
	if errors.Is(err, ErrAuth) || errors.Is(err, ErrTLS) || errors.Is(err, ErrConnect) {
		return err
	}
	return fmt.Errorf("%w %s: %v", ErrConnect, n.ep, err)
}

// startTLS runs the TLS handshake on the TCP connection, verifying the
// certificate against the JID's domain (also the SNI name, XEP-0368).
func (n *negotiation) startTLS(alpn ...string) error {
	tc := tls.Client(n.raw, &tls.Config{
		RootCAs:            n.cfg.RootCAs,
		InsecureSkipVerify: n.cfg.InsecureSkipVerify,
		ServerName:         Domain(n.cfg.JID),
		MinVersion:         tls.VersionTLS12,
		NextProtos:         alpn,
	})
	if err := tc.HandshakeContext(n.ctx); err != nil {
		if n.ctx.Err() != nil {
			return n.wrap(err)
		}
		return fmt.Errorf("%w with %s: %v (use --tls-ca FILE to trust its certificate)", ErrTLS, n.ep, err)
	}
	n.tc, n.conn = tc, tc
	n.info.TLSVersion = tls.VersionName(tc.ConnectionState().Version)
	return nil
}

// secure opens the stream and, unless TLS is already up or plaintext is
// allowed, upgrades it with STARTTLS. It returns the features to log in
// with.
func (n *negotiation) secure(plaintextOK bool) (*features, error) {
	domain := Domain(n.cfg.JID)
	if err := n.s.open(domain); err != nil {
		return nil, n.wrap(err)
	}
	f, err := n.s.features()
	if err != nil {
		return nil, n.wrap(err)
	}
	if n.tc != nil || plaintextOK {
		if len(f.Mechanisms) == 0 && n.tc == nil && f.StartTLS != nil {
			return nil, fmt.Errorf("%w: %s offers login only after TLS, and --no-tls said not to use it", ErrTLS, n.ep)
		}
		return f, nil
	}
	if f.StartTLS == nil {
		return nil, fmt.Errorf("%w: %s offers no TLS (STARTTLS); xfer will not log in without it (--no-tls allows it for a server on a loopback address)", ErrTLS, n.ep)
	}
	if err := n.s.write("<starttls xmlns='" + nsTLS + "'/>"); err != nil {
		return nil, n.wrap(err)
	}
	name, _, err := n.s.next()
	if err != nil {
		return nil, n.wrap(err)
	}
	if name.Space != nsTLS || name.Local != "proceed" {
		return nil, fmt.Errorf("%w: %s refused STARTTLS (<%s/>)", ErrTLS, n.ep, name.Local)
	}
	// Nothing of the plaintext stream may be used after TLS.
	if n.s.buf.Buffered() > 0 {
		return nil, fmt.Errorf("%w: %s sent data after <proceed/>, before TLS", ErrTLS, n.ep)
	}
	if err := n.startTLS(); err != nil {
		return nil, err
	}
	n.s = newXMLStream(n.conn, n.s.limit.n)
	if err := n.s.open(domain); err != nil {
		return nil, n.wrap(err)
	}
	if f, err = n.s.features(); err != nil {
		return nil, n.wrap(err)
	}
	return f, nil
}

// authenticate chooses the mechanism and runs SASL.
func (n *negotiation) authenticate(f *features) error {
	var state *tls.ConnectionState
	if n.tc != nil {
		st := n.tc.ConnectionState()
		state = &st
	}
	mech, cb, err := chooseMechanism(f.Mechanisms, f.cbTypes(), state, n.cfg.RefusePlain)
	if err != nil {
		return err
	}
	if err := n.s.authenticate(mech, cb, Local(n.cfg.JID), n.cfg.Password, state, f.Mechanisms); err != nil {
		return n.wrap(err)
	}
	n.info.Mechanism, n.info.ChannelBinding, n.info.Offered = mech, cb, f.Mechanisms
	return nil
}

// establish restarts the stream after SASL, binds the resource, starts the
// RFC 3921 session if the server requires one, and sends the initial
// presence (as gosrc.io/xmpp's Connect did, so that the account's other
// resources and contacts see this one). It returns the full JID.
func (n *negotiation) establish() (string, error) {
	if err := n.s.open(Domain(n.cfg.JID)); err != nil {
		return "", err
	}
	f, err := n.s.features()
	if err != nil {
		return "", err
	}
	jid, err := n.s.bind(Resource(n.cfg.JID))
	if err != nil {
		return "", err
	}
	if f.Session != nil && f.Session.Optional == nil {
		if err := n.s.iq("<session xmlns='" + nsSession + "'/>"); err != nil {
			return "", fmt.Errorf("session establishment: %w", err)
		}
	}
	return jid, n.s.write("<presence/>")
}

// maxSASLSteps bounds the challenges a server may send.
const maxSASLSteps = 6

// authenticate runs one SASL exchange.
func (s *xmlStream) authenticate(mech, cb, user, password string, state *tls.ConnectionState, offered []string) error {
	opts := []sasl.Option{
		sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte(user), []byte(password), nil }),
		sasl.RemoteMechanisms(offered...),
	}
	if cb != "" && state != nil {
		opts = append(opts, sasl.TLSState(*state))
	}
	neg := sasl.NewClient(mechanisms[mech], opts...)
	scram := IsSCRAM(mech)
	_, resp, err := neg.Step(nil)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrAuth, mech, err)
	}
	if err := s.write("<auth xmlns='" + nsSASL + "' mechanism='" + mech + "'>" + encode64(resp) + "</auth>"); err != nil {
		return err
	}
	abort := func(err error) error {
		_ = s.write("<abort xmlns='" + nsSASL + "'/>")
		return &authError{kind: ErrServerProof, mech: mech, err: err}
	}
	verified := !scram // PLAIN has nothing to verify
	step := 0
	for ; step < maxSASLSteps; step++ {
		name, raw, err := s.next()
		if err != nil {
			return err
		}
		if name.Space != nsSASL {
			return abort(fmt.Errorf("%w: unexpected <%s xmlns='%s'> during SASL", ErrServerProof, name.Local, name.Space))
		}
		switch name.Local {
		case "failure":
			f := parseSASLFailure(raw)
			return fmt.Errorf("%w: the server rejected the JID or password (%s)", ErrAuth, f)
		case "challenge", "success":
			data, err := saslPayload(raw)
			if err != nil {
				return abort(fmt.Errorf("%w: %v", ErrServerProof, err))
			}
			if !verified && scram && name.Local == "success" && len(data) == 0 {
				return abort(fmt.Errorf("%w: success without the server's signature", ErrServerProof))
			}
			if !verified && scram {
				if step == 0 {
					if name.Local == "success" {
						return abort(fmt.Errorf("%w: success before the SCRAM exchange ended", ErrServerProof))
					}
					if _, err := parseServerFirst(data, neg.Nonce()); err != nil {
						return abort(err)
					}
				} else {
					if _, err := parseServerFinal(data); err != nil {
						return abort(err)
					}
				}
				_, resp, err = neg.Step(data)
				if err != nil {
					if errors.Is(err, sasl.ErrAuthn) {
						err = fmt.Errorf("%w: bad server signature (the server does not know the password, or something in between changed the exchange)", ErrServerProof)
					} else {
						err = fmt.Errorf("%w: %v", ErrServerProof, err)
					}
					return abort(err)
				}
				if step > 0 {
					verified = true
				}
			} else if name.Local == "challenge" {
				resp = nil
				if len(data) > 0 {
					return abort(fmt.Errorf("%w: an extra challenge after the exchange ended", ErrServerProof))
				}
			}
			if name.Local == "success" {
				if !verified {
					return abort(fmt.Errorf("%w: success without the server's signature", ErrServerProof))
				}
				return nil
			}
			if err := s.write("<response xmlns='" + nsSASL + "'>" + encode64(resp) + "</response>"); err != nil {
				return err
			}
		default:
			return abort(fmt.Errorf("%w: unexpected <%s/> during SASL", ErrServerProof, name.Local))
		}
	}
	return abort(fmt.Errorf("%w: more than %d SASL challenges", ErrServerProof, maxSASLSteps))
}

// encode64 is the SASL element text: base64, or "=" for an empty response
// (RFC 6120 §6.4.2).
func encode64(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// saslPayload decodes the base64 text of a challenge or success.
func saslPayload(el []byte) ([]byte, error) {
	var v struct {
		Text string `xml:",chardata"`
	}
	if err := xml.Unmarshal(el, &v); err != nil {
		return nil, err
	}
	t := strings.Join(strings.Fields(v.Text), "")
	if t == "" || t == "=" {
		return nil, nil
	}
	b, err := base64.StdEncoding.Strict().DecodeString(t)
	if err != nil {
		return nil, fmt.Errorf("SASL data is not base64: %v", err)
	}
	return b, nil
}

// bind binds a resource (RFC 6120 §7) and returns the full JID.
func (s *xmlStream) bind(resource string) (string, error) {
	payload := "<bind xmlns='" + nsBind + "'/>"
	if resource != "" {
		payload = "<bind xmlns='" + nsBind + "'><resource>" + escapeAttr(resource) + "</resource></bind>"
	}
	raw, err := s.iqResult(payload)
	if err != nil {
		return "", fmt.Errorf("resource binding: %w", err)
	}
	var res struct {
		JID string `xml:"urn:ietf:params:xml:ns:xmpp-bind bind>jid"`
	}
	if err := xml.Unmarshal(raw, &res); err != nil || Local(res.JID) == "" || Resource(res.JID) == "" {
		return "", fmt.Errorf("resource binding: the server returned no full JID")
	}
	return strings.TrimSpace(res.JID), nil
}

func (s *xmlStream) iq(payload string) error {
	_, err := s.iqResult(payload)
	return err
}

// iqResult sends a set IQ and reads its reply (nothing else comes before it
// while the session is being established).
func (s *xmlStream) iqResult(payload string) ([]byte, error) {
	id := NewID()
	if err := s.write("<iq type='set' id='" + id + "'>" + payload + "</iq>"); err != nil {
		return nil, err
	}
	for {
		se, raw, err := s.nextElement()
		if err != nil {
			return nil, err
		}
		if se.Name.Local != "iq" || attr(se, "id") != id {
			continue
		}
		switch attr(se, "type") {
		case TypeResult:
			return raw, nil
		case TypeError:
			return nil, fmt.Errorf("the server answered %s", ParseError([]byte(errorChild(raw))))
		default:
			return nil, fmt.Errorf("the server answered with an IQ of type %q", attr(se, "type"))
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

func errorChild(raw []byte) string {
	for _, c := range splitChildren(raw[len("<x>") : len(raw)-len("</x>")]) {
		if c.name.Local == "error" {
			return string(c.raw)
		}
	}
	return "<error/>"
}
