package session

// Where to connect (RFC 6120 §3.2, XEP-0368): the --server the user gave,
// else the SRV records of the JID's domain for Direct TLS
// (_xmpps-client._tcp) and STARTTLS (_xmpp-client._tcp) merged in one
// order, else the domain on 5222.

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
)

// Resolver looks up SRV records; *net.Resolver is one. Tests inject their
// own, since SRV cannot be tested against real DNS here.
type Resolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (cname string, addrs []*net.SRV, err error)
}

// Endpoint is one place to try: a host and port, and whether TLS starts at
// once (Direct TLS, XEP-0368) or after STARTTLS.
type Endpoint struct {
	Host      string // a name or an address, without brackets
	Port      int
	DirectTLS bool
}

// Addr is host:port.
func (e Endpoint) Addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

// String is host:port, with tls:// in front for Direct TLS (the --server
// syntax).
func (e Endpoint) String() string {
	if e.DirectTLS {
		return "tls://" + e.Addr()
	}
	return e.Addr()
}

// Default ports.
const (
	PortSTARTTLS  = 5222
	PortDirectTLS = 5223
)

// ParseServer parses --server: HOST[:PORT] (STARTTLS, port 5222) or
// tls://HOST[:PORT] (Direct TLS, port 5223).
func ParseServer(s string) (Endpoint, error) {
	e := Endpoint{Port: PortSTARTTLS}
	rest := s
	if i := strings.Index(s, "://"); i >= 0 {
		switch strings.ToLower(s[:i]) {
		case "tls", "xmpps":
			e.DirectTLS, e.Port = true, PortDirectTLS
		case "tcp", "xmpp":
		default:
			return e, fmt.Errorf("session: server %q: unknown scheme %q (want HOST:PORT or tls://HOST:PORT)", s, s[:i])
		}
		rest = s[i+3:]
	}
	rest = strings.TrimSuffix(rest, "/")
	host, port, err := net.SplitHostPort(rest)
	if err != nil {
		host = strings.Trim(rest, "[]")
	} else {
		p, perr := strconv.Atoi(port)
		if perr != nil || p <= 0 || p > 65535 {
			return e, fmt.Errorf("session: server %q: bad port %q", s, port)
		}
		e.Port = p
	}
	if host == "" || strings.ContainsAny(host, "/ ") {
		return e, fmt.Errorf("session: server %q: no host", s)
	}
	e.Host = host
	return e, nil
}

// srvRecord is a record with the service it came from.
type srvRecord struct {
	net.SRV
	direct bool
	order  int // as the resolver returned it, for a stable sort
}

// Endpoints returns where to connect for jid, in the order to try them.
// With server set, that is the only one. Otherwise the SRV records of both
// services, by priority (lowest first), then weight (highest first), then
// Direct TLS before STARTTLS, then the domain on 5222 if no record named
// it. (RFC 2782 chooses among equal priorities at random by weight;
// xfer orders by weight instead, so the order is predictable.) A service
// whose only record is "." is not offered, and then the domain is not
// tried either (XEP-0368). r nil means net.DefaultResolver.
func Endpoints(ctx context.Context, r Resolver, jid, server string) ([]Endpoint, error) {
	if server != "" {
		e, err := ParseServer(server)
		if err != nil {
			return nil, err
		}
		return []Endpoint{e}, nil
	}
	if r == nil {
		r = net.DefaultResolver
	}
	domain := Domain(jid)
	var recs []srvRecord
	declined := false // a service answered "."
	for _, svc := range []struct {
		name   string
		direct bool
	}{{"xmpps-client", true}, {"xmpp-client", false}} {
		_, srvs, err := r.LookupSRV(ctx, svc.name, "tcp", domain)
		if err != nil {
			continue
		}
		if len(srvs) == 1 && srvs[0] != nil && (srvs[0].Target == "." || srvs[0].Target == "") {
			declined = true // RFC 2782: decidedly not available
			continue
		}
		for _, s := range srvs {
			if s == nil || s.Target == "." || s.Target == "" || s.Port == 0 {
				continue
			}
			recs = append(recs, srvRecord{SRV: *s, direct: svc.direct, order: len(recs)})
		}
	}
	sort.SliceStable(recs, func(i, j int) bool {
		a, b := recs[i], recs[j]
		if a.Priority != b.Priority {
			return a.Priority < b.Priority
		}
		if a.Weight != b.Weight {
			return a.Weight > b.Weight
		}
		if a.direct != b.direct {
			return a.direct
		}
		return a.order < b.order
	})
	var out []Endpoint
	seen := map[Endpoint]bool{}
	for _, s := range recs {
		e := Endpoint{Host: strings.TrimSuffix(s.Target, "."), Port: int(s.Port), DirectTLS: s.direct}
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	// XEP-0368 §5: a "." record says the domain does use SRV, so no
	// fallback to the domain itself then.
	if fallback := (Endpoint{Host: domain, Port: PortSTARTTLS}); !seen[fallback] && !declined {
		out = append(out, fallback)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("session: %s publishes no XMPP client service (its SRV records say \".\")", domain)
	}
	return out, nil
}
