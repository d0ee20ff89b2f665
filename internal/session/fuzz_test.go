package session

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func FuzzParseError(f *testing.F) {
	f.Add([]byte(`<error type='cancel'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>x</text></error>`))
	f.Add([]byte(`<error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><no-valid-streams xmlns='http://jabber.org/protocol/si'/></error>`))
	f.Add([]byte(`<error`))
	f.Fuzz(func(t *testing.T, in []byte) {
		se := ParseError(in)
		if se == nil || se.Condition == "" {
			t.Fatalf("ParseError(%q) = %+v", in, se)
		}
		back := ParseError(se.marshal())
		if back.Condition != se.Condition || back.Text != se.Text {
			t.Fatalf("round trip %+v -> %+v", se, back)
		}
	})
}

// Whatever a peer writes on a stream, the session neither panics nor
// hangs: it dispatches what parses and ends on what does not.
func FuzzStream(f *testing.F) {
	f.Add([]byte(`<iq type='get' id='1' from='a@b/c'><ping xmlns='urn:xmpp:ping'/></iq>`))
	f.Add([]byte(`<iq type='result' id='x'/><presence from='a@b/c'><priority>5</priority></presence><message/>`))
	f.Add([]byte(`<iq type='set' id='2'><x xmlns='urn:a'/><error type='cancel'/></iq><<<`))
	f.Fuzz(func(t *testing.T, in []byte) {
		a, b := net.Pipe()
		s := NewStream(a, "me@example.org/r")
		go func() {
			buf := make([]byte, 4096)
			for {
				if _, err := b.Read(buf); err != nil {
					return
				}
			}
		}()
		b.SetWriteDeadline(time.Now().Add(time.Second))
		b.Write(in)
		b.Close()
		select {
		case <-s.Done():
		case <-time.After(2 * time.Second):
			t.Fatal("session did not end after the peer closed")
		}
		s.Close()
	})
}

// The SCRAM server-first-message parser never panics, accepts only what it
// can render back the same, and keeps the iteration count in bounds.
func FuzzParseServerFirst(f *testing.F) {
	f.Add([]byte("r=abcdef,s=c2FsdA==,i=4096"), []byte("abc"))
	f.Add([]byte("r=abcdef,s=c2FsdA==,i=1000000000"), []byte("abc"))
	f.Add([]byte("m=x,r=a,s=,i="), []byte(""))
	f.Fuzz(func(t *testing.T, in, nonce []byte) {
		sf, err := parseServerFirst(in, nonce)
		if err != nil {
			return
		}
		if sf.Iterations < MinSCRAMIterations || sf.Iterations > MaxSCRAMIterations || !strings.HasPrefix(sf.Nonce, string(nonce)) || len(sf.Salt) == 0 {
			t.Fatalf("accepted %q as %+v", in, sf)
		}
		back, err := parseServerFirst(sf.marshal(), nonce)
		if err != nil || back.Nonce != sf.Nonce || !bytes.Equal(back.Salt, sf.Salt) || back.Iterations != sf.Iterations {
			t.Fatalf("round trip of %+v: %+v, %v", sf, back, err)
		}
	})
}

func FuzzParseServerFinal(f *testing.F) {
	f.Add([]byte("v=c2ln"))
	f.Add([]byte("e=invalid-proof"))
	f.Fuzz(func(t *testing.T, in []byte) {
		sig, err := parseServerFinal(in)
		if err != nil {
			return
		}
		back, err := parseServerFinal([]byte("v=" + base64.StdEncoding.EncodeToString(sig)))
		if err != nil || !bytes.Equal(back, sig) {
			t.Fatalf("round trip of %q: %q, %v", sig, back, err)
		}
	})
}

func FuzzParseFeatures(f *testing.F) {
	f.Add([]byte(`<x><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism></mechanisms></x>`))
	f.Add([]byte(`<x><sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding type='tls-exporter'/></sasl-channel-binding><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></x>`))
	f.Fuzz(func(t *testing.T, in []byte) {
		ft, err := parseFeatures(in)
		if err != nil {
			return
		}
		// Whatever it offers, choosing never panics and PLAIN is never
		// chosen when refused.
		mech, _, err := chooseMechanism(ft.Mechanisms, ft.cbTypes(), &tls.ConnectionState{Version: tls.VersionTLS13}, true)
		if err == nil && mech == MechPlain {
			t.Fatal("PLAIN chosen although refused")
		}
	})
}

func FuzzParseSASLFailure(f *testing.F) {
	f.Add([]byte(`<x><not-authorized/><text>no</text></x>`))
	f.Add([]byte(`<x`))
	f.Fuzz(func(t *testing.T, in []byte) {
		if fl := parseSASLFailure(in); fl.Condition == "" || len(fl.Text) > 200 {
			t.Fatalf("%q: %+v", in, fl)
		}
		if se := parseStreamError(in); se.Condition == "" || se.Error() == "" {
			t.Fatalf("%q: %+v", in, se)
		}
	})
}

func FuzzSASLPayload(f *testing.F) {
	f.Add([]byte(`<x>cj1hYmM=</x>`))
	f.Add([]byte(`<x>=</x>`))
	f.Fuzz(func(t *testing.T, in []byte) {
		b, err := saslPayload(in)
		if err != nil || len(b) == 0 {
			return
		}
		back, err := saslPayload([]byte("<x>" + base64.StdEncoding.EncodeToString(b) + "</x>"))
		if err != nil || !bytes.Equal(back, b) {
			t.Fatalf("round trip of %q: %q, %v", b, back, err)
		}
	})
}

// Whatever a server sends during the login, Dial ends with an error (or a
// session) within its timeout, and never panics.
func FuzzLoginServer(f *testing.F) {
	f.Add([]byte(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'><stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features><challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>cj1hYmMscz1jMkZzZEE9PSxpPTQwOTY=</challenge>`))
	f.Add([]byte(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'><stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`))
	f.Fuzz(func(t *testing.T, in []byte) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Skip(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Second))
			c.Write(in)
			io.Copy(io.Discard, c)
		}()
		s, err := Dial(context.Background(), Config{JID: "u@localhost", Password: "p", Server: ln.Addr().String(), AllowPlaintext: true, Timeout: time.Second})
		if err == nil {
			s.Close()
		}
	})
}

// plainAttr is right that EscapeText leaves the value alone.
func FuzzPlainAttr(f *testing.F) {
	f.Add("alice@localhost/xfer-3f2a")
	f.Add("a'b")
	f.Add("\u00e9")
	f.Fuzz(func(t *testing.T, v string) {
		var b bytes.Buffer
		_ = xml.EscapeText(&b, []byte(v))
		if plainAttr(v) && b.String() != v {
			t.Fatalf("%q escapes to %q", v, b.String())
		}
	})
}
