package session_test

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"xfer/internal/session"
	"xfer/internal/testserver"
)

var srv *testserver.Server

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// Unit tests only: no server is started, and the integration
		// tests (named so) skip.
		_ = flag.Set("test.skip", "^TestIntegration")
		os.Exit(m.Run())
	}
	var err error
	srv, err = testserver.Start(testserver.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, u := range []string{"alice", "bob"} {
		if err := srv.Register(u, u+"-pw"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			srv.Stop()
			os.Exit(1)
		}
	}
	code := m.Run()
	srv.Stop()
	os.Exit(code)
}

func caPool(t *testing.T) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(srv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return pool
}

func dial(t *testing.T, user string) *session.Session {
	t.Helper()
	s, err := session.Dial(context.Background(), session.Config{
		JID: user + "@localhost/test", Password: user + "-pw", Server: srv.Addr,
		RootCAs: caPool(t), Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestIntegrationLoginTLS(t *testing.T) {
	s := dial(t, "alice")
	if s.JID() != "alice@localhost/test" {
		t.Fatalf("bound JID %q", s.JID())
	}
	// The server answers a ping: the IQ round trip works through the library.
	if _, err := s.SendIQ(context.Background(), &session.IQ{Type: session.TypeGet, To: "localhost", Payload: []byte(`<ping xmlns='urn:xmpp:ping'/>`)}); err != nil {
		t.Fatal(err)
	}
}

func TestIntegrationIQBetweenAccounts(t *testing.T) {
	a, b := dial(t, "alice"), dial(t, "bob")
	b.Handle(session.TypeGet, "urn:xfer:test", func(ctx context.Context, iq *session.IQ) ([]byte, error) {
		return []byte(`<echo xmlns='urn:xfer:test'>` + iq.From + `</echo>`), nil
	})
	// Many quick round trips: none may be lost (the library's own SendIQ
	// registers its reply route after sending and loses some).
	for i := 0; i < 300; i++ {
		res, err := a.SendIQ(context.Background(), &session.IQ{Type: session.TypeGet, To: b.JID(), Payload: []byte(`<q xmlns='urn:xfer:test'/>`)})
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if res.PayloadName().Local != "echo" {
			t.Fatalf("payload %s", res.Payload)
		}
	}
	// An IQ nobody handles is answered service-unavailable, not
	// feature-not-implemented.
	_, err := a.SendIQ(context.Background(), &session.IQ{Type: session.TypeSet, To: b.JID(), Payload: []byte(`<nothing xmlns='urn:xfer:none'/>`)})
	if !errors.Is(err, session.NewError(session.CondServiceUnavailable, "")) {
		t.Fatalf("err = %v, want service-unavailable", err)
	}
}

func TestIntegrationWrongPassword(t *testing.T) {
	_, err := session.Dial(context.Background(), session.Config{
		JID: "alice@localhost", Password: "wrong", Server: srv.Addr, RootCAs: caPool(t), Timeout: 10 * time.Second,
	})
	if !errors.Is(err, session.ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
}

func TestIntegrationUntrustedCertificate(t *testing.T) {
	_, err := session.Dial(context.Background(), session.Config{
		JID: "alice@localhost", Password: "alice-pw", Server: srv.Addr, Timeout: 10 * time.Second,
	})
	if !errors.Is(err, session.ErrTLS) {
		t.Fatalf("err = %v, want ErrTLS", err)
	}
}

func TestIntegrationPlaintextLoopback(t *testing.T) {
	plain, err := testserver.Start(testserver.Options{Plaintext: true, NoProxy: true})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Stop()
	if err := plain.Register("carol", "carol-pw"); err != nil {
		t.Fatal(err)
	}
	cfg := session.Config{JID: "carol@localhost", Password: "carol-pw", Server: plain.Addr, Timeout: 10 * time.Second}
	// Without --no-tls a server that offers no TLS is refused.
	if _, err := session.Dial(context.Background(), cfg); err == nil {
		t.Fatal("plaintext login without AllowPlaintext succeeded")
	}
	cfg.AllowPlaintext = true
	s, err := session.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func TestPlaintextRefusedOffLoopback(t *testing.T) {
	_, err := session.Dial(context.Background(), session.Config{
		JID: "alice@example.org", Password: "x", Server: "192.0.2.1:5222", AllowPlaintext: true, Timeout: time.Second,
	})
	if err == nil || errors.Is(err, session.ErrConnect) {
		t.Fatalf("err = %v, want a refusal before connecting", err)
	}
}

func TestUnreachableServerTimesOut(t *testing.T) {
	// A port that accepts TCP but never speaks XMPP: the login must give up
	// at the timeout.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	start := time.Now()
	_, err = session.Dial(context.Background(), session.Config{
		JID: "alice@localhost", Password: "x", Server: l.Addr().String(), Timeout: time.Second,
	})
	if !errors.Is(err, session.ErrConnect) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
	// A closed port fails at once.
	l2, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l2.Addr().String()
	l2.Close()
	if _, err := session.Dial(context.Background(), session.Config{JID: "alice@localhost", Password: "x", Server: addr, Timeout: time.Second}); !errors.Is(err, session.ErrConnect) {
		t.Fatalf("closed port: err = %v", err)
	}
}

func TestIntegrationServerGoneEndsSession(t *testing.T) {
	other, err := testserver.Start(testserver.Options{NoProxy: true})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Stop()
	other.Register("dave", "dave-pw")
	pem, _ := os.ReadFile(other.CAFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	s, err := session.Dial(context.Background(), session.Config{JID: "dave@localhost", Password: "dave-pw", Server: other.Addr, RootCAs: pool, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other.Stop()
	select {
	case <-s.Done():
		if !errors.Is(s.Err(), session.ErrDisconnected) {
			t.Fatalf("Err = %v", s.Err())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("session did not notice the server going away")
	}
}

// Messages reach OnMessage with their body and kept extensions.
func TestIntegrationMessages(t *testing.T) {
	a, b := dial(t, "alice"), dial(t, "bob")
	got := make(chan session.Message, 1)
	b.OnMessage(func(m session.Message) { got <- m })
	if err := a.SendMessage(b.JID(), "chat", []byte(`<body>see https://example.org/f &amp; more</body><x xmlns='jabber:x:oob'><url>https://example.org/f</url><desc>a file</desc></x>`)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		p := string(m.Payload)
		if m.From != a.JID() || !strings.Contains(p, ">https://example.org/f</url>") || !strings.Contains(p, "&amp; more</body>") {
			t.Fatalf("message %+v: %s", m, p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
	}
}
