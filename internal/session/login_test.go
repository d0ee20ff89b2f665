package session

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

var allMechs = []string{MechPlain, MechSCRAMSHA1, MechSCRAMSHA1Plus, MechSCRAMSHA256, MechSCRAMSHA256Plus}

// The strongest mechanism the server offers and the connection allows is
// used, with the channel binding type of the TLS version: tls-exporter on
// TLS 1.3 (only when the server advertises it, XEP-0440), tls-unique on
// TLS 1.2. The fake server checks the binding data against its own end of
// the connection.
func TestLoginChoosesStrongest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		srv     *fakeServer
		mech    string
		cb      string
		gs2Flag string
	}{
		{"tls1.3 exporter advertised", &fakeServer{mechs: allMechs, cbTypes: []string{"tls-exporter"}, starttls: true}, MechSCRAMSHA256Plus, CBTLSExporter, "p=tls-exporter"},
		{"tls1.3 no XEP-0440", &fakeServer{mechs: allMechs, starttls: true}, MechSCRAMSHA256, "", "n"},
		{"tls1.3 only tls-unique advertised", &fakeServer{mechs: allMechs, cbTypes: []string{"tls-unique"}, starttls: true}, MechSCRAMSHA256, "", "n"},
		{"tls1.2 tls-unique", &fakeServer{mechs: allMechs, starttls: true, maxTLS: tls.VersionTLS12}, MechSCRAMSHA256Plus, CBTLSUnique, "p=tls-unique"},
		{"direct tls sha-1 plus", &fakeServer{mechs: []string{MechSCRAMSHA1, MechSCRAMSHA1Plus, MechPlain}, cbTypes: []string{"tls-exporter", "tls-server-end-point"}, direct: true}, MechSCRAMSHA1Plus, CBTLSExporter, "p=tls-exporter"},
		{"sha-1", &fakeServer{mechs: []string{MechPlain, MechSCRAMSHA1}, starttls: true}, MechSCRAMSHA1, "", "n"},
		{"plain", &fakeServer{mechs: []string{MechPlain, "DIGEST-MD5"}, starttls: true}, MechPlain, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t, tc.srv)
			s, err := Dial(context.Background(), f.config())
			if err != nil {
				t.Fatalf("%v (server: %v)", err, f.errs)
			}
			defer s.Close()
			info := s.Info()
			if info.Mechanism != tc.mech || info.ChannelBinding != tc.cb || s.JID() != "user@example.org/r" {
				t.Fatalf("info %+v jid %s, want %s %q", info, s.JID(), tc.mech, tc.cb)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.gotMech != tc.mech || f.gotCB != tc.gs2Flag || (tc.gs2Flag != "" && !f.cbOK) {
				t.Fatalf("server saw %s gs2 %q cbOK %v, errs %v", f.gotMech, f.gotCB, f.cbOK, f.errs)
			}
			if tc.srv.direct && f.alpn != "xmpp-client" {
				t.Fatalf("ALPN %q", f.alpn)
			}
		})
	}
}

// A hostile server (or one in the middle) ends the login with a clear
// error wrapping ErrAuth (exit 4), never a hang or a panic.
func TestLoginHostileServer(t *testing.T) {
	for _, tc := range []struct{ hostile, want string }{
		{"signature", "bad server signature"},
		{"iter0", "iteration count 0"},
		{"iter1e9", "iteration count 1000000000"},
		{"nonce", "nonce does not extend"},
		{"error", "other-error"},
		{"nosig", "success without"},
		{"silent", "did not complete login"},
	} {
		t.Run(tc.hostile, func(t *testing.T) {
			f := newFakeServer(t, &fakeServer{mechs: []string{MechSCRAMSHA256, MechPlain}, starttls: true, hostile: tc.hostile})
			cfg := f.config()
			cfg.Timeout = 2 * time.Second
			start := time.Now()
			_, err := Dial(context.Background(), cfg)
			if tc.hostile == "silent" {
				// No answer: the login deadline ends it (exit 3, as any
				// server that stops talking).
				if !errors.Is(err, ErrConnect) {
					t.Fatalf("err = %v", err)
				}
			} else if !errors.Is(err, ErrAuth) || !errors.Is(err, ErrServerProof) {
				t.Fatalf("err = %v, want ErrAuth and ErrServerProof", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Fatalf("took %v", d)
			}
		})
	}
}

func TestLoginWrongPassword(t *testing.T) {
	for _, mechs := range [][]string{{MechSCRAMSHA1}, {MechPlain}} {
		f := newFakeServer(t, &fakeServer{mechs: mechs, starttls: true})
		cfg := f.config()
		cfg.Password = "wrong"
		_, err := Dial(context.Background(), cfg)
		if !errors.Is(err, ErrAuth) || errors.Is(err, ErrServerProof) || !strings.Contains(err.Error(), "not-authorized: wrong") {
			t.Fatalf("%v: err = %v", mechs, err)
		}
	}
}

// Downgrade protection: with RefusePlain a PLAIN-only server is refused
// before the password leaves; one that also offers SCRAM is fine.
func TestLoginRefusePlain(t *testing.T) {
	f := newFakeServer(t, &fakeServer{mechs: []string{MechPlain}, starttls: true})
	cfg := f.config()
	cfg.RefusePlain = true
	if _, err := Dial(context.Background(), cfg); !errors.Is(err, ErrAuth) || !errors.Is(err, ErrDowngrade) {
		t.Fatalf("err = %v", err)
	}
	if f.gotMech != "" {
		t.Fatalf("the client sent <auth mechanism=%s>", f.gotMech)
	}
	f2 := newFakeServer(t, &fakeServer{mechs: []string{MechPlain, MechSCRAMSHA1}, starttls: true})
	cfg = f2.config()
	cfg.RefusePlain = true
	s, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// --no-tls on loopback means no TLS: STARTTLS is not used even when the
// server offers it (issue 12). Without --no-tls it is.
func TestLoginNoTLSSkipsSTARTTLS(t *testing.T) {
	for _, allow := range []bool{true, false} {
		f := newFakeServer(t, &fakeServer{mechs: []string{MechSCRAMSHA1, MechPlain}, starttls: true})
		cfg := f.config()
		cfg.AllowPlaintext = allow
		cfg.RootCAs = nil
		cfg.InsecureSkipVerify = !allow // the TLS case does not test verification
		s, err := Dial(context.Background(), cfg)
		if err != nil {
			t.Fatalf("allow %v: %v", allow, err)
		}
		s.Close()
		if f.gotStartTLS == allow || (allow && s.Info().TLSVersion != "") {
			t.Fatalf("AllowPlaintext %v: STARTTLS used %v, info %+v", allow, f.gotStartTLS, s.Info())
		}
	}
}

// A server that offers no STARTTLS is refused without --no-tls.
func TestLoginNoSTARTTLSRefused(t *testing.T) {
	f := newFakeServer(t, &fakeServer{mechs: []string{MechPlain}})
	if _, err := Dial(context.Background(), f.config()); !errors.Is(err, ErrTLS) {
		t.Fatalf("err = %v", err)
	}
}

// The certificate must name the JID's domain.
func TestLoginCertificateForOtherDomain(t *testing.T) {
	f := newFakeServer(t, &fakeServer{mechs: []string{MechPlain}, direct: true})
	cfg := f.config()
	cfg.JID = "user@example.net"
	if _, err := Dial(context.Background(), cfg); !errors.Is(err, ErrTLS) {
		t.Fatalf("err = %v", err)
	}
}

// Endpoints are tried in turn: a dead first one does not stop the login.
func TestLoginTriesEndpointsInTurn(t *testing.T) {
	f := newFakeServer(t, &fakeServer{mechs: []string{MechSCRAMSHA1}, direct: true})
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadPort := dead.Addr().(*net.TCPAddr).Port
	dead.Close()
	port := f.ln.Addr().(*net.TCPAddr).Port
	cfg := f.config()
	cfg.Server = ""
	cfg.JID = "user@example.org/r"
	cfg.Resolver = fakeResolver{
		"xmpps-client": {{Target: "127.0.0.1.", Port: uint16(deadPort), Priority: 1}, {Target: "127.0.0.1.", Port: uint16(port), Priority: 2}},
	}
	s, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Info().Server != "tls://127.0.0.1:"+itoa(port) {
		t.Fatalf("info %+v", s.Info())
	}
}

// Cancelling the context (Ctrl-C) ends a login that hangs at once, and
// says so (context.Canceled: exit 130), not as a timeout.
func TestLoginCancelled(t *testing.T) {
	f := newFakeServer(t, &fakeServer{mechs: []string{MechSCRAMSHA1}, starttls: true, hostile: "silent"})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	start := time.Now()
	_, err := Dial(ctx, f.config())
	if !errors.Is(err, context.Canceled) || time.Since(start) > 2*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
}
