package transfer

import (
	"context"
	"errors"
	"fmt"
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

// requestTimeout bounds the whole streamhost negotiation: the target tries
// up to s5b.MaxStreamhosts hosts one after another.
func (o *S5BOptions) requestTimeout() time.Duration {
	return o.hostTimeout()*time.Duration(s5b.MaxStreamhosts) + 10*time.Second
}

// s5bConnect runs the requester's side of XEP-0065 for sid and returns the
// bytestream, ready to write.
func (sd *Sender) s5bConnect(ctx context.Context, to, sid string) (net.Conn, string, error) {
	me := sd.S.JID()
	dst := s5b.DstAddr(sid, me, to)
	var hosts []s5b.Streamhost
	var direct <-chan net.Conn
	var directErr error
	if !sd.Opts.S5B.NoDirect {
		srv, hs, err := sd.listenDirect(ctx)
		if err == nil {
			defer srv.Close()
			if direct, err = srv.Expect(dst); err == nil {
				hosts = append(hosts, hs...)
			}
		}
		directErr = err
	}
	proxies, proxyErr := sd.proxyHosts(ctx)
	hosts = append(hosts, proxies...)
	if len(hosts) > s5b.MaxStreamhosts {
		hosts = hosts[:s5b.MaxStreamhosts]
	}
	if len(hosts) == 0 {
		return nil, "", fmt.Errorf("%w: no direct address (%v) and no proxy (%v)", s5b.ErrNoStreamhost, directErr, proxyErr)
	}
	rctx, cancel := context.WithTimeout(ctx, sd.Opts.S5B.requestTimeout())
	used, err := s5b.Request(rctx, sd.S, to, sid, hosts)
	cancel()
	if err != nil {
		return nil, "", err
	}
	if session.EqualJID(used, me) {
		select {
		case c, ok := <-direct:
			if !ok {
				return nil, "", fmt.Errorf("%w: %s reported our streamhost but never connected", s5b.ErrNoStreamhost, to)
			}
			return c, "direct", nil
		case <-time.After(sd.Opts.S5B.hostTimeout()):
			return nil, "", fmt.Errorf("%w: %s reported our streamhost but its connection did not arrive", s5b.ErrNoStreamhost, to)
		case <-ctx.Done():
			return nil, "", ctx.Err()
		}
	}
	for _, h := range proxies {
		if !session.EqualJID(h.JID, used) {
			continue
		}
		conn, err := s5b.Dial(ctx, h, dst, sd.Opts.S5B.hostTimeout())
		if err != nil {
			return nil, "", fmt.Errorf("connecting to proxy %s at %s: %w", used, h.Addr(), err)
		}
		actx, cancel := context.WithTimeout(ctx, sd.Opts.S5B.hostTimeout())
		err = s5b.Activate(actx, sd.S, used, sid, to)
		cancel()
		if err != nil {
			conn.Close()
			return nil, "", fmt.Errorf("activating the bytestream on proxy %s: %w", used, err)
		}
		return conn, "proxy " + session.Bare(used), nil // ejabberd adds a node resource
	}
	return nil, "", fmt.Errorf("%w: %s used %s", s5b.ErrUnexpectedStreamhost, to, used)
}

// listenDirect starts our own streamhost and returns the addresses to
// advertise for it, best first.
func (sd *Sender) listenDirect(ctx context.Context) (*s5b.Server, []s5b.Streamhost, error) {
	o := &sd.Opts.S5B
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
	me := sd.S.JID()
	var hosts []s5b.Streamhost
	for _, a := range o.DirectAddrs {
		host, hp, err := net.SplitHostPort(a)
		hport := p
		if err != nil {
			host = a
		} else if n, err := strconv.Atoi(hp); err == nil {
			hport = n
		}
		hosts = append(hosts, s5b.Streamhost{JID: me, Host: host, Port: hport})
	}
	if o.ServerLoopback {
		hosts = append(hosts, s5b.Streamhost{JID: me, Host: "127.0.0.1", Port: p})
	} else {
		for _, ip := range interfaceIPs() {
			hosts = append(hosts, s5b.Streamhost{JID: me, Host: ip.String(), Port: p})
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

// s5bRequest is the target's side: for an accepted offer only, try the
// streamhosts in order and answer with the one that worked.
func (r *Receiver) s5bRequest(ctx context.Context, from string, q *s5b.Query) ([]byte, error) {
	key := streamKey(q.SID, from)
	r.mu.Lock()
	ch := r.s5bWaiting[key]
	r.mu.Unlock()
	if ch == nil {
		// No accepted offer: a stranger cannot make us dial anywhere.
		return nil, session.NewError(session.CondNotAcceptable, "no such stream")
	}
	var hosts []s5b.Streamhost
	for _, h := range q.Streamhosts {
		if r.opts.S5B.NoDirect && session.EqualJID(h.JID, from) {
			continue
		}
		hosts = append(hosts, h)
	}
	cctx, cancel := context.WithTimeout(ctx, r.opts.S5B.requestTimeout())
	defer cancel()
	conn, used, err := s5b.Connect(cctx, hosts, s5b.DstAddr(q.SID, from, r.s.JID()), r.opts.S5B.hostTimeout(), s5b.MaxStreamhosts)
	if err != nil {
		select {
		case ch <- s5bResult{err: err}:
		default:
		}
		return nil, session.NewError(session.CondItemNotFound, "no streamhost could be reached")
	}
	select {
	case ch <- s5bResult{conn: conn, via: used}:
	default:
		conn.Close() // a second request for the same stream
		return nil, session.NewError(session.CondNotAcceptable, "stream already connected")
	}
	return s5b.MarshalUsed(q.SID, used.JID), nil
}

type s5bResult struct {
	conn net.Conn
	via  s5b.Streamhost
	err  error
}

func streamKey(sid, from string) string { return sid + "\x00" + from }
