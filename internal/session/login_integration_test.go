package session_test

import (
	"context"
	"crypto/tls"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"xfer/internal/session"
	"xfer/internal/testserver"
)

// Each server logs in with the strongest mechanism it offers, over
// STARTTLS and over Direct TLS; a wrong password is ErrAuth. The mechanism
// is the one the client sent in <auth/>, and for SCRAM the server proved in
// <success/> that it ran SCRAM with the stored key (a server signature
// that does not verify fails the login).
func TestIntegrationLoginMechanisms(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	for _, tc := range []struct {
		name     string
		ejabberd bool
		opts     testserver.Options
		mech     string
		cb       string
		tls      uint16 // the version negotiated; 0: not checked
	}{
		{name: "prosody default", mech: session.MechSCRAMSHA1, tls: tls.VersionTLS13},
		{name: "prosody tls1.2", opts: testserver.Options{TLS12: true}, mech: session.MechSCRAMSHA1Plus, cb: session.CBTLSUnique, tls: tls.VersionTLS12},
		{name: "prosody sha-256", opts: testserver.Options{SCRAMSHA256: true}, mech: session.MechSCRAMSHA256},
		{name: "prosody sha-256 tls1.2", opts: testserver.Options{SCRAMSHA256: true, TLS12: true}, mech: session.MechSCRAMSHA256Plus, cb: session.CBTLSUnique},
		{name: "prosody with plain", opts: testserver.Options{Plain: true}, mech: session.MechSCRAMSHA1},
		{name: "prosody plain only", opts: testserver.Options{OnlyPlain: true}, mech: session.MechPlain},
		{name: "ejabberd default", ejabberd: true, mech: session.MechSCRAMSHA1},
		{name: "ejabberd tls1.2", ejabberd: true, opts: testserver.Options{TLS12: true}, mech: session.MechSCRAMSHA1Plus, cb: session.CBTLSUnique, tls: tls.VersionTLS12},
		{name: "ejabberd sha-256", ejabberd: true, opts: testserver.Options{SCRAMSHA256: true}, mech: session.MechSCRAMSHA256},
		{name: "ejabberd with plain", ejabberd: true, opts: testserver.Options{Plain: true}, mech: session.MechSCRAMSHA1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.NoProxy = true
			start := testserver.Start
			if tc.ejabberd {
				start = testserver.StartEjabberd
			}
			s, err := start(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Stop()
			if err := s.Register("erin", "erin-pw"); err != nil {
				t.Fatal(err)
			}
			roots, err := s.RootCAs()
			if err != nil {
				t.Fatal(err)
			}
			for i, server := range []string{s.Addr, "tls://" + s.TLSAddr} {
				cfg := session.Config{JID: "erin@localhost/m", Password: "erin-pw", Server: server, RootCAs: roots, Timeout: 10 * time.Second}
				sess, err := session.Dial(context.Background(), cfg)
				if err != nil {
					t.Fatalf("%s: %v", server, err)
				}
				info := sess.Info()
				if info.Mechanism != tc.mech || info.ChannelBinding != tc.cb || info.Server != server {
					t.Errorf("%s: info %+v, want mechanism %s, channel binding %q", server, info, tc.mech, tc.cb)
				}
				offersPlain := slices.Contains(info.Offered, session.MechPlain)
				if offersPlain != (tc.opts.Plain || tc.opts.OnlyPlain) || (tc.opts.OnlyPlain && len(info.Offered) != 1) {
					t.Errorf("%s: offered %v", server, info.Offered)
				}
				if tc.tls != 0 && info.TLSVersion != tls.VersionName(tc.tls) {
					t.Errorf("%s: %s, want %s", server, info.TLSVersion, tls.VersionName(tc.tls))
				}
				if _, err := sess.SendIQ(context.Background(), &session.IQ{Type: session.TypeGet, To: "localhost", Payload: []byte(`<ping xmlns='urn:xmpp:ping'/>`)}); err != nil {
					t.Errorf("%s: ping: %v", server, err)
				}
				sess.Close()
				// ejabberd's log names the mechanism it accepted: the
				// server's side of the proof.
				if tc.ejabberd {
					want := "Accepted c2s " + tc.mech + " authentication for erin@localhost"
					deadline := time.Now().Add(5 * time.Second)
					for strings.Count(s.Log(), want) < i+1 && time.Now().Before(deadline) {
						time.Sleep(50 * time.Millisecond)
					}
					if n := strings.Count(s.Log(), want); n < i+1 {
						t.Errorf("%s: the server log has %q %d times, want at least %d", server, want, n, i+1)
					}
				}

				cfg.Password = "wrong"
				if _, err := session.Dial(context.Background(), cfg); !errors.Is(err, session.ErrAuth) {
					t.Errorf("%s: wrong password: err = %v, want ErrAuth", server, err)
				}
			}
			// Downgrade protection: an account that has used SCRAM is
			// not logged in with PLAIN.
			if tc.mech == session.MechPlain {
				_, err := session.Dial(context.Background(), session.Config{JID: "erin@localhost", Password: "erin-pw", Server: s.Addr, RootCAs: roots, Timeout: 10 * time.Second, RefusePlain: true})
				if !errors.Is(err, session.ErrAuth) || !errors.Is(err, session.ErrDowngrade) {
					t.Errorf("RefusePlain: err = %v, want ErrAuth and ErrDowngrade", err)
				}
			}
		})
	}
}
