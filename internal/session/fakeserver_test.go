package session

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"hash"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeServer is a scripted XMPP server on a loopback port, with the server
// side of SCRAM (and of channel binding) written out here from RFC 5802 so
// that tests can check what the client sends and make the server lie.
type fakeServer struct {
	t        *testing.T
	ln       net.Listener
	cert     tls.Certificate
	roots    *x509.CertPool
	password string

	mechs     []string // offered SASL mechanisms
	cbTypes   []string // XEP-0440 channel binding types advertised; nil: none
	starttls  bool     // offer STARTTLS (on a plain listener)
	direct    bool     // TLS from the first byte (Direct TLS)
	maxTLS    uint16
	hostile   string // see scram()
	iteration int    // 0: 4096

	mu          sync.Mutex
	gotStartTLS bool
	gotMech     string
	gotCB       string // gs2 header's channel binding flag
	alpn        string
	cbOK        bool
	errs        []string
}

func newFakeServer(t *testing.T, f *fakeServer) *fakeServer {
	t.Helper()
	f.t = t
	if f.password == "" {
		f.password = "pw"
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "example.org"},
		DNSNames: []string{"example.org"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	f.cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	leaf, _ := x509.ParseCertificate(der)
	f.roots = x509.NewCertPool()
	f.roots.AddCert(leaf)
	if f.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.ln.Close() })
	go func() {
		for {
			c, err := f.ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

// server is what --server names for this fake.
func (f *fakeServer) server() string {
	if f.direct {
		return "tls://" + f.ln.Addr().String()
	}
	return f.ln.Addr().String()
}

func (f *fakeServer) config() Config {
	return Config{JID: "user@example.org/r", Password: f.password, Server: f.server(), RootCAs: f.roots, Timeout: 5 * time.Second}
}

func (f *fakeServer) fail(format string, args ...any) {
	f.mu.Lock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

func (f *fakeServer) tlsConfig() *tls.Config {
	c := &tls.Config{Certificates: []tls.Certificate{f.cert}, NextProtos: []string{"xmpp-client"}}
	if f.maxTLS != 0 {
		c.MaxVersion = f.maxTLS
	}
	return c
}

// fakeConn is one client connection.
type fakeConn struct {
	f    *fakeServer
	conn net.Conn
	tls  *tls.Conn
	dec  *xml.Decoder
}

func (c *fakeConn) write(s string) { _, _ = c.conn.Write([]byte(s)) }

// element reads the next top-level element: its start and inner XML.
func (c *fakeConn) element() (xml.StartElement, string, bool) {
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return xml.StartElement{}, "", false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Local == "stream" {
				continue // a stream restart
			}
			var v struct {
				Inner string `xml:",innerxml"`
			}
			t = t.Copy()
			if c.dec.DecodeElement(&v, &t) != nil {
				return xml.StartElement{}, "", false
			}
			return t, v.Inner, true
		case xml.EndElement:
			return xml.StartElement{}, "", false
		}
	}
}

func (c *fakeConn) header(features string) {
	c.write("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='example.org' version='1.0'>" +
		"<stream:features>" + features + "</stream:features>")
}

func (f *fakeServer) serve(raw net.Conn) {
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	c := &fakeConn{f: f, conn: raw}
	if f.direct {
		c.tls = tls.Server(raw, f.tlsConfig())
		if c.tls.Handshake() != nil {
			return
		}
		c.conn = c.tls
		f.mu.Lock()
		f.alpn = c.tls.ConnectionState().NegotiatedProtocol
		f.mu.Unlock()
	}
	c.dec = xml.NewDecoder(c.conn)
	saslFeatures := func() string {
		var b strings.Builder
		b.WriteString("<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>")
		for _, m := range f.mechs {
			b.WriteString("<mechanism>" + m + "</mechanism>")
		}
		b.WriteString("</mechanisms>")
		if f.cbTypes != nil {
			b.WriteString("<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>")
			for _, t := range f.cbTypes {
				b.WriteString("<channel-binding type='" + t + "'/>")
			}
			b.WriteString("</sasl-channel-binding>")
		}
		return b.String()
	}
	first := saslFeatures()
	if f.starttls && c.tls == nil {
		first = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" + first
	}
	c.header(first)
	for {
		se, inner, ok := c.element()
		if !ok {
			return
		}
		switch se.Name.Local {
		case "starttls":
			f.mu.Lock()
			f.gotStartTLS = true
			f.mu.Unlock()
			c.write("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
			c.tls = tls.Server(raw, f.tlsConfig())
			if c.tls.Handshake() != nil {
				return
			}
			c.conn = c.tls
			c.dec = xml.NewDecoder(c.conn)
			c.header(saslFeatures())
		case "auth":
			mech := attr(se, "mechanism")
			f.mu.Lock()
			f.gotMech = mech
			f.mu.Unlock()
			data, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(inner))
			ok := false
			if mech == MechPlain {
				ok = bytes.Equal(data, []byte("\x00user\x00"+f.password))
				if ok {
					c.write("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
				}
			} else {
				ok = c.scram(mech, data)
			}
			if !ok {
				if f.hostile == "" {
					c.write("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/><text>wrong</text></failure>")
				}
				// A hostile server leaves the client to find out.
				c.element()
				return
			}
			c.dec = xml.NewDecoder(c.conn)
			c.header("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>")
		case "iq":
			if strings.Contains(inner, "xmpp-bind") {
				c.write("<iq type='result' id='" + attr(se, "id") + "'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>user@example.org/r</jid></bind></iq>")
			} else if attr(se, "type") == "get" {
				c.write("<iq type='result' id='" + attr(se, "id") + "' from='example.org'/>")
			}
		case "presence":
		}
	}
}

// scram runs the server side of SCRAM for the client-first-message data.
// Hostile modes: "signature" (a wrong server signature), "iter0" and
// "iter1e9" (iteration counts), "nonce" (a nonce not extending the
// client's), "error" (e=other-error), "nosig" (success without v=),
// "silent" (no answer at all).
func (c *fakeConn) scram(mech string, clientFirst []byte) bool {
	f := c.f
	h := sha1.New
	if strings.HasPrefix(mech, "SCRAM-SHA-256") {
		h = sha256.New
	}
	parts := strings.SplitN(string(clientFirst), ",", 3)
	if len(parts) != 3 {
		f.fail("client-first %q", clientFirst)
		return false
	}
	gs2 := parts[0] + "," + parts[1] + ","
	f.mu.Lock()
	f.gotCB = parts[0]
	f.mu.Unlock()
	bare := parts[2]
	cnonce := ""
	for _, kv := range strings.Split(bare, ",") {
		if strings.HasPrefix(kv, "r=") {
			cnonce = kv[2:]
		}
	}
	if f.hostile == "silent" {
		c.element()
		return false
	}
	salt := []byte("saltsaltsalt")
	iter := 4096
	snonce := cnonce + "srvnonce"
	switch f.hostile {
	case "iter0":
		iter = 0
	case "iter1e9":
		iter = 1_000_000_000
	case "nonce":
		snonce = "x" + cnonce + "srvnonce"
	}
	serverFirst := fmt.Sprintf("r=%s,s=%s,i=%d", snonce, base64.StdEncoding.EncodeToString(salt), iter)
	c.write("<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + base64.StdEncoding.EncodeToString([]byte(serverFirst)) + "</challenge>")
	se, inner, ok := c.element()
	if !ok || se.Name.Local != "response" {
		return false
	}
	final, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(inner))
	i := bytes.LastIndex(final, []byte(",p="))
	if i < 0 {
		f.fail("client-final %q", final)
		return false
	}
	withoutProof := string(final[:i])
	proof, _ := base64.StdEncoding.DecodeString(string(final[i+3:]))

	// Channel binding: c= must be the gs2 header plus the binding data.
	cbData := []byte(gs2)
	if strings.HasPrefix(gs2, "p=tls-exporter") && c.tls != nil {
		st := c.tls.ConnectionState()
		km, _ := st.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
		cbData = append(cbData, km...)
	} else if strings.HasPrefix(gs2, "p=tls-unique") && c.tls != nil {
		cbData = append(cbData, c.tls.ConnectionState().TLSUnique...)
	}
	wantC := "c=" + base64.StdEncoding.EncodeToString(cbData)
	if !strings.HasPrefix(withoutProof, wantC+",") {
		f.fail("channel binding %q, want %q", withoutProof, wantC)
		return false
	}
	f.mu.Lock()
	f.cbOK = true
	f.mu.Unlock()

	salted, _ := pbkdf2.Key(h, f.password, salt, 4096, h().Size())
	mac := func(key []byte, s string) []byte { m := hmac.New(h, key); m.Write([]byte(s)); return m.Sum(nil) }
	clientKey := mac(salted, "Client Key")
	stored := hashOf(h, clientKey)
	authMessage := bare + "," + serverFirst + "," + withoutProof
	sig := mac(stored, authMessage)
	got := make([]byte, len(proof))
	for i := range proof {
		if i < len(sig) {
			got[i] = proof[i] ^ sig[i]
		}
	}
	if !bytes.Equal(hashOf(h, got), stored) {
		return false
	}
	serverSig := mac(mac(salted, "Server Key"), authMessage)
	switch f.hostile {
	case "signature":
		serverSig[0] ^= 1
	case "error":
		c.write("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + base64.StdEncoding.EncodeToString([]byte("e=other-error")) + "</success>")
		return true
	case "nosig":
		c.write("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
		return true
	}
	c.write("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + base64.StdEncoding.EncodeToString([]byte("v="+base64.StdEncoding.EncodeToString(serverSig))) + "</success>")
	return true
}

func hashOf(h func() hash.Hash, b []byte) []byte {
	x := h()
	x.Write(b)
	return x.Sum(nil)
}
