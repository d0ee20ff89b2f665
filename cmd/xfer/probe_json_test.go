package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"xfer/internal/testserver"
)

// probe-proxy --json is one JSON document that parses, with the proxy, its
// streamhost and a verified self-test, and exit status 0.
func TestProbeProxyJSONParses(t *testing.T) {
	s, err := testserver.Start(testserver.Options{DeadProxy: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if err := s.Register("alice", "alice-pw"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XFER_JID", "alice@localhost/json")
	t.Setenv("XFER_PASSWORD", "alice-pw")
	t.Setenv("XFER_SERVER", s.Addr)
	var stdout, stderr bytes.Buffer
	code := Main([]string{"probe-proxy", "--tls-ca", s.CAFile, "--payload", "256KiB", "--host-timeout", "2s", "--json"}, nil, &stdout, &stderr)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var rep struct {
		Type  string `json:"type"`
		OK    bool   `json:"ok"`
		Login struct {
			Server    string `json:"server"`
			TLS       string `json:"tls"`
			Mechanism string `json:"mechanism"`
		} `json:"login"`
		Proxies []struct {
			JID         string `json:"jid"`
			OK          bool   `json:"ok"`
			Streamhosts []struct {
				Host     string `json:"host"`
				Port     int    `json:"port"`
				Bytes    int64  `json:"bytes"`
				Verified bool   `json:"verified"`
				Error    string `json:"error"`
			} `json:"streamhosts"`
		} `json:"proxies"`
	}
	dec := json.NewDecoder(&stdout)
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout.String())
	}
	if dec.More() {
		t.Fatal("more than one JSON document")
	}
	if rep.Login.Server != s.Addr || rep.Login.TLS != "TLS 1.3" || rep.Login.Mechanism != "SCRAM-SHA-1" {
		t.Fatalf("login %+v", rep.Login)
	}
	byJID := map[string]int{}
	for i, p := range rep.Proxies {
		byJID[p.JID] = i
	}
	live, ok := byJID["proxy.localhost"]
	if rep.Type != "probe" || !rep.OK || !ok || !rep.Proxies[live].OK {
		t.Fatalf("report %+v", rep)
	}
	h := rep.Proxies[live].Streamhosts[0]
	if h.Host != "127.0.0.1" || h.Port == 0 || !h.Verified || h.Bytes != 256<<10 {
		t.Fatalf("streamhost %+v", h)
	}
	dead, ok := byJID["deadproxy.localhost"]
	if !ok || rep.Proxies[dead].OK || rep.Proxies[dead].Streamhosts[0].Error == "" {
		t.Fatalf("dead proxy not reported as failing: %+v", rep)
	}
}
