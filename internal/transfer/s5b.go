package transfer

import (
	"context"
	"errors"
	"net"
	"strconv"
	"time"

	"xfer/internal/disco"
	"xfer/internal/s5b"
	"xfer/internal/session"
)

// S5BOptions shape SOCKS5 bytestreams (XEP-0065).
type S5BOptions struct {
	// NoDirect offers (as sender) or tries (as receiver) no direct
	// streamhost: proxies only.
	NoDirect bool
	// DirectAddrs are extra HOST[:PORT] addresses to advertise for our
	// own streamhost, e.g. a public or NAT-mapped address.
	DirectAddrs []string
	// ListenPort fixes our streamhost's port (for a port forward); 0 picks one.
	ListenPort int
	// Proxies are proxy JIDs to use; empty means discover the server's.
	Proxies []string
	// ServerLoopback says the XMPP server was reached on a loopback
	// address: then only loopback addresses are offered as direct
	// streamhosts, so a local setup never exposes this machine's
	// interface addresses.
	ServerLoopback bool
	// HostTimeout bounds each streamhost's connect and handshake.
	HostTimeout time.Duration
}

func (o *S5BOptions) hostTimeout() time.Duration { return orDefault(o.HostTimeout, 5*time.Second) }

// listenDirect starts our own streamhost and returns the addresses to
// advertise for it, best first (their JIDs are left to the negotiator).
func listenDirect(ctx context.Context, o *S5BOptions) (*s5b.Server, []s5b.Streamhost, error) {
	port := strconv.Itoa(o.ListenPort)
	var listen []string
	if o.ServerLoopback {
		listen = []string{net.JoinHostPort("127.0.0.1", port)}
	} else {
		listen = []string{net.JoinHostPort("", port)} // every address, IPv4 and IPv6
	}
	srv, err := s5b.Listen(ctx, listen, &s5b.ServerOptions{HandshakeTimeout: o.hostTimeout()})
	if err != nil {
		return nil, nil, err
	}
	_, actual, _ := net.SplitHostPort(srv.Addrs()[0])
	p, _ := strconv.Atoi(actual)
	var hosts []s5b.Streamhost
	for _, a := range o.DirectAddrs {
		host, hp, err := net.SplitHostPort(a)
		hport := p
		if err != nil {
			host = a
		} else if n, err := strconv.Atoi(hp); err == nil {
			hport = n
		}
		hosts = append(hosts, s5b.Streamhost{Host: host, Port: hport})
	}
	if o.ServerLoopback {
		hosts = append(hosts, s5b.Streamhost{Host: "127.0.0.1", Port: p})
	} else {
		for _, ip := range interfaceIPs() {
			hosts = append(hosts, s5b.Streamhost{Host: ip.String(), Port: p})
		}
	}
	return srv, hosts, nil
}

// interfaceIPs lists this machine's addresses a peer might reach: IPv4
// first, then IPv6, without loopback and link-local ones (as QXmpp does).
func interfaceIPs() []net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var v4, v6 []net.IP
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.IsLoopback() || n.IP.IsLinkLocalUnicast() || n.IP.IsUnspecified() {
			continue
		}
		if n.IP.To4() != nil {
			v4 = append(v4, n.IP)
		} else {
			v6 = append(v6, n.IP)
		}
	}
	return append(v4, v6...)
}

// proxyHosts returns the streamhosts of the proxies to use, discovering
// them once per Sender.
func (sd *Sender) proxyHosts(ctx context.Context) ([]s5b.Streamhost, error) {
	sd.proxyOnce.Do(func() {
		jids := sd.Opts.S5B.Proxies
		if len(jids) == 0 {
			var err error
			if jids, err = disco.FindProxies(ctx, sd.S, session.Domain(sd.S.JID())); err != nil {
				sd.proxyErr = err
				return
			}
		}
		var errs []error
		for _, j := range jids {
			hs, err := s5b.QueryProxy(ctx, sd.S, j)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			sd.proxies = append(sd.proxies, hs...)
		}
		if len(sd.proxies) == 0 {
			if len(errs) == 0 {
				errs = append(errs, errors.New("the server advertises no SOCKS5 proxy"))
			}
			sd.proxyErr = errors.Join(errs...)
		}
	})
	return sd.proxies, sd.proxyErr
}
