package session

// The client side of stream negotiation (RFC 6120 §4-§7): TLS (STARTTLS or
// Direct TLS, XEP-0368), SASL (sasl.go chooses, mellium.im/sasl computes),
// resource binding. gosrc.io/xmpp can only log in with PLAIN inside its own
// Connect, and its Client cannot be given a connection (its transport is
// unexported and always dialled by itself), so the session negotiates here
// and then reads stanzas with the library's stanza decoder (libstream.go),
// but for the IQs of a fast path (fastread.go).

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"mellium.im/sasl"
)

// Namespaces of stream negotiation.
const (
	nsStream   = "http://etherx.jabber.org/streams"
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession  = "urn:ietf:params:xml:ns:xmpp-session"
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

// loginResult is an authenticated, bound stream.
type loginResult struct {
	conn net.Conn
	s    *xmlStream // the stream the stanzas come on
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
	raw = quickAck(raw)
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
	return &loginResult{conn: n.conn, s: n.s, jid: jid, info: n.info}, nil
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
		// A record per write, from the first: aligned writes (align.go)
		// need it, and small first records help only a browser.
		DynamicRecordSizingDisabled: true,
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
