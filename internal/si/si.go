// Package si implements the flows of XEP-0096 SI File Transfer: after an
// XEP-0095 offer was accepted (package negotiate builds and parses those
// payloads), the sender opens the bytestream the receiver chose, XEP-0065
// SOCKS5 (directly or through a proxy it activates) or XEP-0047 in-band,
// falling back to in-band on the same sid when no streamhost works, the
// convention Pidgin set; the receiver's Target connects to the offered
// streamhosts of accepted offers only and hands over whichever stream
// comes.
//
// Use it for peers that speak only the first generation of XMPP file
// transfer (Pidgin, Spark, gloox, QXmpp, slixmpp); package jingle serves
// today's clients.
package si

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"xfer/internal/bytestream"
	"xfer/internal/ibb"
	"xfer/internal/negotiate"
	"xfer/internal/s5b"
	"xfer/internal/session"
)

// Session is what the flows need from an XMPP session.
type Session = bytestream.Session

// requestTimeout bounds a whole streamhost negotiation: the target tries
// up to s5b.MaxStreamhosts hosts one after another.
func requestTimeout(o *bytestream.Options) time.Duration {
	return o.HostTimeoutOrDefault()*time.Duration(s5b.MaxStreamhosts) + 10*time.Second
}

// Open opens the bytestream the receiver accepted for the offer: S5B,
// falling back to IBB on the same sid when S5B fails and IBB was offered
// too.
func Open(ctx context.Context, s Session, to string, offer *negotiate.Offer, acc *negotiate.Accept, o *bytestream.Options) (*bytestream.Stream, error) {
	var fallback string
	if acc.Method == negotiate.MethodS5B {
		conn, via, err := connectS5B(ctx, s, to, offer.SID, o)
		if err == nil {
			return &bytestream.Stream{Conn: conn, Method: "s5b", Via: via}, nil
		}
		if ctx.Err() != nil || !slices.Contains(offer.Methods, negotiate.MethodIBB) {
			return nil, fmt.Errorf("si: SOCKS5 bytestream to %s: %w", to, err)
		}
		fallback = err.Error()
	}
	conn, err := ibb.Open(ctx, s, to, offer.SID, o.IBB)
	if err != nil {
		return nil, fmt.Errorf("si: opening the in-band bytestream to %s: %w", to, err)
	}
	return &bytestream.Stream{Conn: conn, Method: "ibb", Fallback: fallback}, nil
}

// connectS5B runs the requester's side of XEP-0065 for sid and returns the
// bytestream, ready to write, and how it goes ("direct" or "proxy JID").
func connectS5B(ctx context.Context, s Session, to, sid string, o *bytestream.Options) (net.Conn, string, error) {
	me := s.JID()
	dst := s5b.DstAddr(sid, me, to)
	var hosts []s5b.Streamhost
	var direct <-chan net.Conn
	if o.Server != nil && len(o.Direct) > 0 {
		ch, err := o.Server.Expect(dst)
		if err == nil {
			defer o.Server.Forget(dst)
			direct = ch
			for _, h := range o.Direct {
				hosts = append(hosts, s5b.Streamhost{JID: me, Host: h.Host, Port: h.Port})
			}
		}
	}
	hosts = append(hosts, o.Proxies...)
	if len(hosts) > s5b.MaxStreamhosts {
		hosts = hosts[:s5b.MaxStreamhosts]
	}
	if len(hosts) == 0 {
		return nil, "", fmt.Errorf("%w: no direct address and no proxy", s5b.ErrNoStreamhost)
	}
	greeted := s5b.GreetAll(ctx, o.Proxies, o.HostTimeoutOrDefault())
	defer greeted.Close()
	rctx, cancel := context.WithTimeout(ctx, requestTimeout(o))
	used, err := s5b.Request(rctx, s, to, sid, hosts)
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
		case <-time.After(o.HostTimeoutOrDefault()):
			return nil, "", fmt.Errorf("%w: %s reported our streamhost but its connection did not arrive", s5b.ErrNoStreamhost, to)
		case <-ctx.Done():
			return nil, "", ctx.Err()
		}
	}
	for _, h := range o.Proxies {
		if !session.EqualJID(h.JID, used) {
			continue
		}
		conn, err := greeted.Connect(ctx, h, dst, o.HostTimeoutOrDefault())
		if err != nil {
			return nil, "", fmt.Errorf("connecting to proxy %s at %s: %w", used, h.Addr(), err)
		}
		actx, cancel := context.WithTimeout(ctx, o.HostTimeoutOrDefault())
		err = s5b.Activate(actx, s, used, sid, to)
		cancel()
		if err != nil {
			conn.Close()
			return nil, "", fmt.Errorf("activating the bytestream on proxy %s: %w", used, err)
		}
		return conn, "proxy " + session.Bare(used), nil // ejabberd adds a node resource
	}
	return nil, "", fmt.Errorf("%w: %s used %s", s5b.ErrUnexpectedStreamhost, to, used)
}

var errNoStream = errors.New("si: no bytestream came")
