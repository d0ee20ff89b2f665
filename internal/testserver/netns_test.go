package testserver

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// With Netns and Host, Prosody listens on Host inside the namespace only,
// and advertises Host for proxy65 and the upload service.
func TestIntegrationNetns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts prosody in a network namespace")
	}
	if !Installed() {
		t.Skip(ErrNoProsody)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for ip netns")
	}
	ns := fmt.Sprintf("xfer-testserver-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v: %s", err, out)
	}
	defer exec.Command("ip", "netns", "delete", ns).Run()
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "dev", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// Any 127/8 address is the namespace's own loopback.
	const host = "127.0.0.9"
	s, err := Start(Options{Netns: ns, Host: host, HTTPUpload: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	for _, a := range []string{s.Addr, s.TLSAddr, s.ProxyAddr, s.HTTPAddr} {
		if !strings.HasPrefix(a, host+":") {
			t.Errorf("address %q, want on %s", a, host)
		}
		c, err := dialIn(ns, a, 2*time.Second)
		if err != nil {
			t.Errorf("%s from inside the namespace: %v", a, err)
			continue
		}
		c.Close()
		// This process's own namespace has nothing on that port (its
		// 127.0.0.9 is its own loopback).
		if c, err := dialIn("", a, 200*time.Millisecond); err == nil {
			c.Close()
			t.Errorf("%s answers outside the namespace", a)
		}
	}
	cfg, err := os.ReadFile(s.ConfigFile())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`proxy65_address = "` + host + `"`, `http_external_url = "http://` + host + ":"} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("configuration lacks %s", want)
		}
	}
	if err := s.Register("alice", "pw"); err != nil {
		t.Fatal(err)
	}
}
