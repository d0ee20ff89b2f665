package si

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"xfer/internal/bytestream"
	"xfer/internal/ibb"
	"xfer/internal/s5b"
	"xfer/internal/session"
)

// Target is the receiving side of SI bytestreams on one session: it
// answers XEP-0065 requests for the offers it expects, and only those, so
// that a stranger cannot make it dial anywhere, and waits for the stream
// of each accepted offer.
type Target struct {
	s    Session
	opts *bytestream.Options

	mu      sync.Mutex
	waiting map[string]chan s5bResult // accepted S5B streams by streamKey
}

// NewTarget registers the XEP-0065 handler on s. opts.InBand must be the
// session's IBB manager.
func NewTarget(s Session, opts *bytestream.Options) *Target {
	t := &Target{s: s, opts: opts, waiting: map[string]chan s5bResult{}}
	s5b.Handle(s, t.s5bRequest)
	return t
}

// Pending is an accepted offer whose bytestream has not come yet.
type Pending struct {
	t          *Target
	sid, from  string
	s5bCh      chan s5bResult
	ibbOffered bool
	once       sync.Once
}

// Expect announces the bytestream of an offer about to be accepted, before
// the accept leaves, so that a request that follows it at once is not
// turned away: SOCKS5 when that is the chosen method, and in-band when it
// was offered at all (the sender may fall back to it on the same sid).
func (t *Target) Expect(sid, from string, s5bChosen, ibbOffered bool) *Pending {
	p := &Pending{t: t, sid: sid, from: from, ibbOffered: ibbOffered}
	if s5bChosen {
		p.s5bCh = make(chan s5bResult, 1)
		t.mu.Lock()
		t.waiting[streamKey(sid, from)] = p.s5bCh
		t.mu.Unlock()
	}
	if ibbOffered {
		t.opts.InBand.Expect(sid, from)
	}
	return p
}

// Cancel withdraws the expectation; Await does it when it returns.
func (p *Pending) Cancel() {
	p.once.Do(func() {
		p.t.mu.Lock()
		delete(p.t.waiting, streamKey(p.sid, p.from))
		p.t.mu.Unlock()
		if p.ibbOffered {
			p.t.opts.InBand.Forget(p.sid, p.from)
		}
	})
}

// Await waits, within ctx, for the accepted offer's bytestream: the S5B
// connection, or an IBB open on the same sid (offered, or as the fallback
// after S5B failed). size is the number of bytes due.
func (p *Pending) Await(ctx context.Context, size int64) (*bytestream.Stream, error) {
	defer p.Cancel()
	octx, cancel := context.WithCancel(ctx)
	defer cancel()
	sid, from, s5bCh := p.sid, p.from, p.s5bCh
	var ibbCh chan ibbResult
	if p.ibbOffered {
		ibbCh = make(chan ibbResult, 1)
		go func() {
			c, err := p.t.opts.InBand.Accept(octx, sid, from)
			ibbCh <- ibbResult{c, err}
		}()
	}
	var s5bErr error
	for {
		select {
		case sr := <-s5bCh:
			if sr.err != nil {
				s5bErr = sr.err
				s5bCh = nil // keep waiting for the in-band fallback
				if ibbCh == nil {
					return nil, sr.err
				}
				continue
			}
			conn := sr.conn
			if ibbCh != nil {
				// The sender may still fail (its proxy refusing activation)
				// and fall back to IBB on this sid: keep expecting IBB until
				// the first byte, or the end, comes over SOCKS5.
				var ir *ibbResult
				conn, ir = firstOf(octx, sr.conn, ibbCh, size > 0)
				if ir != nil {
					if ir.err == nil {
						return &bytestream.Stream{Conn: ir.conn, Method: "ibb", Fallback: "the sender fell back to in-band after connecting over SOCKS5"}, nil
					}
					if conn == nil {
						return nil, ir.err
					}
				}
				cancel() // withdraw the IBB expectation
				if ir == nil {
					if r := <-ibbCh; r.conn != nil {
						r.conn.Close()
					}
				}
			}
			st := &bytestream.Stream{Conn: conn, Method: "s5b", Via: "direct"}
			if !session.EqualJID(sr.via.JID, from) {
				st.Via = "proxy " + session.Bare(sr.via.JID) // ejabberd adds a node resource
			}
			return st, nil
		case ir := <-ibbCh:
			if ir.err != nil {
				if s5bErr != nil {
					return nil, errors.Join(s5bErr, ir.err)
				}
				return nil, ir.err
			}
			st := &bytestream.Stream{Conn: ir.conn, Method: "ibb"}
			if s5bCh != nil || s5bErr != nil {
				st.Fallback = "the sender fell back to in-band"
				if s5bErr != nil {
					st.Fallback += " after: " + s5bErr.Error()
				}
			}
			return st, nil
		case <-octx.Done():
			return nil, fmt.Errorf("%w from %s: %w", errNoStream, from, octx.Err())
		}
	}
}

type ibbResult struct {
	conn *ibb.Conn
	err  error
}

// firstOf waits for the first read on a SOCKS5 bytestream or for an IBB
// open, whichever comes first. With data or the end of the stream first,
// it returns the SOCKS5 stream (what was read put back in front); with IBB
// first, it closes the SOCKS5 stream and returns the IBB result. When bytes
// are due, a SOCKS5 stream that ends before its first byte counts as failed.
func firstOf(ctx context.Context, s5bConn net.Conn, ibbCh chan ibbResult, wantBytes bool) (net.Conn, *ibbResult) {
	got := make(chan readAhead, 1)
	go func() {
		b := make([]byte, 1)
		n, err := s5bConn.Read(b)
		got <- readAhead{b[:n], err}
	}()
	select {
	case f := <-got:
		if len(f.b) == 0 && wantBytes {
			// The SOCKS5 stream ended before its first byte: the sender
			// failed on its side (the proxy tears the pair down when the
			// requester gives up) and is falling back to IBB.
			s5bConn.Close()
			select {
			case ir := <-ibbCh:
				return nil, &ir
			case <-ctx.Done():
				return nil, &ibbResult{err: ctx.Err()}
			}
		}
		return &prefixConn{Conn: s5bConn, prefix: f.b, err: f.err}, nil
	case ir := <-ibbCh:
		if ir.err != nil {
			// No fallback is coming: SOCKS5 it is, its first read
			// still under way (the reader's deadlines apply to it).
			return &prefixConn{Conn: s5bConn, pending: got}, &ir
		}
		s5bConn.Close()
		<-got
		return nil, &ir
	case <-ctx.Done():
		s5bConn.Close()
		<-got
		return nil, &ibbResult{err: ctx.Err()}
	}
}

type readAhead struct {
	b   []byte
	err error
}

// prefixConn replays what was read ahead of the reader.
type prefixConn struct {
	net.Conn
	pending chan readAhead // a read ahead still under way
	prefix  []byte
	err     error
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if c.pending != nil {
		f := <-c.pending
		c.pending, c.prefix, c.err = nil, f.b, f.err
	}
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	if c.err != nil {
		err := c.err
		c.err = nil
		return 0, err
	}
	return c.Conn.Read(p)
}

// s5bRequest is the target's side: for an accepted offer only, try the
// streamhosts in order and answer with the one that worked.
func (t *Target) s5bRequest(ctx context.Context, from string, q *s5b.Query) ([]byte, error) {
	key := streamKey(q.SID, from)
	t.mu.Lock()
	ch := t.waiting[key]
	t.mu.Unlock()
	if ch == nil {
		// No accepted offer: a stranger cannot make us dial anywhere.
		return nil, session.NewError(session.CondNotAcceptable, "no such stream")
	}
	var hosts []s5b.Streamhost
	for _, h := range q.Streamhosts {
		if t.opts.NoDirect && session.EqualJID(h.JID, from) {
			continue
		}
		hosts = append(hosts, h)
	}
	cctx, cancel := context.WithTimeout(ctx, requestTimeout(t.opts))
	defer cancel()
	conn, used, err := s5b.Connect(cctx, hosts, s5b.DstAddr(q.SID, from, t.s.JID()), t.opts.HostTimeoutOrDefault(), s5b.MaxStreamhosts)
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
