package main

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"net"
	"strings"
	"testing"
	"time"
)

// hostileSCRAM is a loopback server that starts SCRAM-SHA-1 and then breaks
// it as told: a server-first-message built from the client's nonce, and,
// for the client's final message, a success with this server signature.
func hostileSCRAM(t *testing.T, serverFirst func(clientNonce string) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				c.Write([]byte(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>` +
					`<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms></stream:features>`))
				d := xml.NewDecoder(c)
				for {
					tok, err := d.Token()
					if err != nil {
						return
					}
					se, ok := tok.(xml.StartElement)
					if !ok || se.Name.Local == "stream" {
						continue
					}
					var v struct {
						Text string `xml:",chardata"`
					}
					if d.DecodeElement(&v, &se) != nil {
						return
					}
					data, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(v.Text))
					switch se.Name.Local {
					case "auth":
						_, nonce, _ := strings.Cut(string(data), ",r=")
						c.Write([]byte("<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + base64.StdEncoding.EncodeToString([]byte(serverFirst(nonce))) + "</challenge>"))
					case "response":
						// Any signature: this server does not know the password.
						c.Write([]byte("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + base64.StdEncoding.EncodeToString([]byte("v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=")) + "</success>"))
					}
				}
			}(c)
		}
	}()
	return ln.Addr().String()
}

// A hostile server ends the login with exit 4 and says what it did, never
// a hang or a panic.
func TestHostileServerExitsAuth(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("XFER_JID", "mallory@localhost")
	t.Setenv("XFER_PASSWORD", "secret")
	t.Setenv("XFER_SERVER", "")
	salt := base64.StdEncoding.EncodeToString([]byte("salt"))
	for _, tc := range []struct {
		name  string
		first func(string) string
		want  string
	}{
		{"bad server signature", func(n string) string { return "r=" + n + "x,s=" + salt + ",i=4096" }, "bad server signature"},
		{"iteration count 0", func(n string) string { return "r=" + n + "x,s=" + salt + ",i=0" }, "iteration count 0 "},
		{"iteration count 10^9", func(n string) string { return "r=" + n + "x,s=" + salt + ",i=1000000000" }, "iteration count 1000000000"},
		{"wrong nonce prefix", func(n string) string { return "r=evil" + n + ",s=" + salt + ",i=4096" }, "nonce does not extend"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := hostileSCRAM(t, tc.first)
			var stdout, stderr bytes.Buffer
			start := time.Now()
			code := Main([]string{"probe-proxy", "--server", addr, "--no-tls", "--json", "--timeout", "5s"}, nil, &stdout, &stderr)
			if code != ExitAuth || !strings.Contains(stderr.String(), tc.want) || !strings.Contains(stdout.String(), `"exit_code":4`) {
				t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout.String(), stderr.String())
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("took %v", d)
			}
		})
	}
}
