package testserver

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The private ejabberd starts on free loopback ports, takes accounts and
// roster items, survives a restart with its data, and leaves no process
// and no directory behind.
func TestIntegrationEjabberd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ejabberd")
	}
	s, err := StartEjabberd(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if s.Domain != "localhost" || s.ProxyJID != "proxy.localhost" || s.CAFile == "" {
		t.Fatalf("server %+v", s)
	}
	for _, u := range []string{"alice", "bob"} {
		if err := s.Register(u, u+"-pw"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Register("alice", "again"); err == nil {
		t.Fatal("registering alice twice succeeded")
	}
	if err := s.Befriend("alice", "bob"); err != nil {
		t.Fatal(err)
	}
	starttls(t, s)
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	starttls(t, s)
	if err := s.Register("carol", "pw"); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if c, err := net.DialTimeout("tcp", s.ProxyAddr, time.Second); err != nil {
		t.Fatalf("proxy: %v", err)
	} else {
		c.Close()
	}

	pid, dir := s.cmd.Process.Pid, s.Dir
	s.Stop()
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process group %d still there after Stop (%v)", pid, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) && os.Getenv("XFER_KEEP_SERVER_DIR") == "" {
		t.Fatalf("%s still there: %v", dir, err)
	}
	for _, a := range []string{s.Addr, s.ProxyAddr} {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Fatalf("%s still listening after Stop", a)
		}
	}
}

// starttls opens a c2s stream, upgrades it with STARTTLS and verifies the
// certificate against CAFile for "localhost".
func starttls(t *testing.T, s *Server) {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(`<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`)); err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(got.String(), "</stream:features>") {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("reading features: %v (so far %q)", err, got.String())
		}
		got.Write(buf[:n])
	}
	if !strings.Contains(got.String(), "<required/>") {
		t.Fatalf("STARTTLS not required: %s", got.String())
	}
	if _, err := c.Write([]byte(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "<proceed") {
		t.Fatalf("starttls: %v %q", err, buf[:n])
	}
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	tc := tls.Client(c, &tls.Config{ServerName: "localhost", RootCAs: roots})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
}
