package s5b

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"xfer/internal/session"
)

// IQSender is what the requester's side and the proxy exchanges need from
// an XMPP session: send an IQ and wait for its reply.
type IQSender interface {
	SendIQ(context.Context, *session.IQ) (*session.IQ, error)
}

// Registrar is what the target's side needs from an XMPP session: route
// incoming IQs to a handler.
type Registrar interface {
	Handle(typ, ns string, h session.Handler)
}

// QueryProxy asks a proxy for its streamhosts (XEP-0065 §6.3.1). The
// result may be empty: a proxy that advertises no usable address.
func QueryProxy(ctx context.Context, s IQSender, proxyJID string) ([]Streamhost, error) {
	res, err := s.SendIQ(ctx, &session.IQ{Type: session.TypeGet, To: proxyJID, Payload: MarshalProxyQuery()})
	if err != nil {
		return nil, fmt.Errorf("s5b: asking proxy %s for its address: %w", proxyJID, err)
	}
	q, err := ParseQuery(res.Payload)
	if err != nil {
		return nil, fmt.Errorf("s5b: proxy %s: %w", proxyJID, err)
	}
	return q.Streamhosts, nil
}

// Activate asks a proxy to start relaying the bytestream sid to target
// (XEP-0065 §6.3.5). The requester must not write a byte before it returns
// nil. The proxy's refusal (item-not-found, not-allowed, not-authorized) is
// returned wrapped, as a *session.StanzaError.
func Activate(ctx context.Context, s IQSender, proxyJID, sid, target string) error {
	_, err := s.SendIQ(ctx, &session.IQ{Type: session.TypeSet, To: proxyJID, Payload: MarshalActivate(sid, target)})
	if err != nil {
		return fmt.Errorf("s5b: activating stream %s on proxy %s: %w", sid, proxyJID, err)
	}
	return nil
}

// Request offers hosts to target for the bytestream sid and returns the JID
// of the streamhost the target connected to (XEP-0065 §5.3.1, §6.3.1). If
// it names the requester's own streamhost, the connection is waiting on the
// Server; if a proxy, the requester connects to it with Dial and calls
// Activate. A target that could use none answers item-not-found, returned
// as ErrNoStreamhost wrapping the stanza error.
func Request(ctx context.Context, s IQSender, target, sid string, hosts []Streamhost) (used string, err error) {
	if len(hosts) == 0 {
		return "", fmt.Errorf("%w: nothing to offer", ErrNoStreamhost)
	}
	res, err := s.SendIQ(ctx, &session.IQ{Type: session.TypeSet, To: target, Payload: MarshalRequest(sid, hosts)})
	if err != nil {
		if errors.Is(err, session.NewError(session.CondItemNotFound, "")) {
			return "", fmt.Errorf("%w: %s could not connect to any: %w", ErrNoStreamhost, target, err)
		}
		return "", fmt.Errorf("s5b: offering streamhosts to %s: %w", target, err)
	}
	q, err := ParseQuery(res.Payload)
	if err != nil {
		return "", fmt.Errorf("s5b: answer from %s: %w", target, err)
	}
	// Only a streamhost we offered may be named: anything else would make
	// us connect where the peer chooses.
	for _, h := range hosts {
		if q.Used != "" && session.EqualJID(q.Used, h.JID) {
			return h.JID, nil
		}
	}
	return "", fmt.Errorf("%w: %s named %q", ErrUnexpectedStreamhost, target, q.Used)
}

// Connect is the target's side: it tries hosts in order, one at a time,
// each within perHost (when positive) and all within ctx, at most maxHosts
// of them (never more than MaxStreamhosts; 0 means that many), and returns
// the first bytestream whose handshake succeeded with the streamhost used.
// Only then may the target answer MarshalUsed; when none works the error
// wraps ErrNoStreamhost and the target answers item-not-found.
//
// Streamhosts are chosen by the peer: a caller that must not let a stranger
// make it dial internal addresses filters hosts first.
func Connect(ctx context.Context, hosts []Streamhost, dstAddr string, perHost time.Duration, maxHosts int) (net.Conn, Streamhost, error) {
	if maxHosts <= 0 || maxHosts > MaxStreamhosts {
		maxHosts = MaxStreamhosts
	}
	if len(hosts) > maxHosts {
		hosts = hosts[:maxHosts]
	}
	var errs []error
	for _, h := range hosts {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		c, err := Dial(ctx, h, dstAddr, perHost)
		if err == nil {
			return c, h, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, Streamhost{}, fmt.Errorf("%w: none offered", ErrNoStreamhost)
	}
	return nil, Streamhost{}, fmt.Errorf("%w: %w", ErrNoStreamhost, errors.Join(errs...))
}

// Handle registers f for incoming bytestream requests (IQ-set in NS) on r.
// f gets the requester's full JID and the parsed query, and returns the
// result payload (MarshalUsed) or a stanza error; a malformed query is
// answered bad-request without calling f. f must check that sid and from
// belong to a stream it accepted before connecting anywhere.
func Handle(r Registrar, f func(ctx context.Context, from string, q *Query) ([]byte, error)) {
	r.Handle(session.TypeSet, NS, func(ctx context.Context, iq *session.IQ) ([]byte, error) {
		q, err := ParseQuery(iq.Payload)
		if err != nil {
			return nil, session.NewError(session.CondBadRequest, err.Error())
		}
		return f(ctx, iq.From, q)
	})
}
