package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"xfer/internal/testserver"
)

// One private Prosody serves every script of this package.
var srv, plain, plainOnly *testserver.Server

var accounts = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace"}

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"xfer": func() { os.Exit(int(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))) },
	})
}

func startServers(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the private XMPP servers (run without -short)")
	}
	if srv != nil {
		return
	}
	var err error
	if srv, err = testserver.Start(testserver.Options{DeadProxy: true, HTTPUpload: true}); err != nil {
		t.Fatal(err)
	}
	if plain, err = testserver.Start(testserver.Options{Plaintext: true, NoProxy: true}); err != nil {
		srv.Stop()
		t.Fatal(err)
	}
	// A server that offers PLAIN only, for the downgrade protection.
	if plainOnly, err = testserver.Start(testserver.Options{OnlyPlain: true, NoProxy: true}); err != nil {
		srv.Stop()
		plain.Stop()
		t.Fatal(err)
	}
	for _, s := range []*testserver.Server{srv, plain, plainOnly} {
		for _, u := range accounts {
			if err := s.Register(u, u+"-pw"); err != nil {
				t.Fatal(err)
			}
		}
		// Scripts run in parallel: each pair that needs presence has its
		// own accounts, so a bare JID resolves to that script's receiver.
		for _, pair := range [][2]string{{"alice", "bob"}, {"dave", "erin"}} {
			if err := s.Befriend(pair[0], pair[1]); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestScripts(t *testing.T) {
	startServers(t)
	t.Cleanup(func() { srv.Stop(); plain.Stop(); plainOnly.Stop() })
	// A port nothing listens on, for the unreachable-server case.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	testscript.Run(t, testscript.Params{
		Dir: filepath.Join("testdata", "script"),
		Setup: func(env *testscript.Env) error {
			env.Setenv("XFER_SERVER", srv.Addr)
			env.Setenv("PLAIN_SERVER", plain.Addr)
			env.Setenv("TLS_SERVER", "tls://"+srv.TLSAddr)
			env.Setenv("PLAINONLY_SERVER", plainOnly.Addr)
			env.Setenv("PLAINONLY_CA", plainOnly.CAFile)
			env.Setenv("CLOSED_SERVER", closed)
			env.Setenv("CA", srv.CAFile)
			env.Setenv("PROXY_ADDR", srv.ProxyAddr)
			env.Setenv("HOME", env.WorkDir)
			for _, u := range accounts {
				env.Setenv(fmt.Sprintf("%s_PW", u), u+"-pw")
			}
			return nil
		},
	})
}
