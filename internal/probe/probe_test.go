package probe

import (
	"context"
	"strings"
	"testing"
)

// The Openfire xmpp.proxy.externalip case: a proxy that advertises an
// address remote users cannot reach while the server itself is public.
func TestAddressWarning(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		server, proxyHost string
		warn              bool
	}{
		{"203.0.113.10", "127.0.0.1", true},
		{"203.0.113.10", "10.0.0.5", true},
		{"203.0.113.10", "192.168.1.2", true},
		{"203.0.113.10", "0.0.0.0", true},
		{"203.0.113.10", "fe80::1", true},
		{"203.0.113.10", "198.51.100.7", false},
		{"203.0.113.10", "2001:db8::1", false},
		{"127.0.0.1", "127.0.0.1", false}, // a local setup: nothing to warn about
		{"10.0.0.1", "10.0.0.5", false},   // a private network: its proxy may be private too
		{"", "127.0.0.1", false},
	} {
		w := addressWarning(ctx, "proxy.example.org", tc.proxyHost, isPublicHost(ctx, tc.server))
		if (w != "") != tc.warn {
			t.Errorf("server %s, proxy %s: warning %q", tc.server, tc.proxyHost, w)
		}
		if w != "" && !strings.Contains(w, "xmpp.proxy.externalip") {
			t.Errorf("the warning does not name the fix: %q", w)
		}
	}
}
