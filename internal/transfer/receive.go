package transfer

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"xfer/internal/disco"
	"xfer/internal/ibb"
	"xfer/internal/jingle"
	"xfer/internal/negotiate"
	"xfer/internal/oob"
	"xfer/internal/s5b"
	"xfer/internal/session"
)

// ReceiveOptions shape what is accepted and how it is stored.
type ReceiveOptions struct {
	Dir          string
	Allow        []string // bare JIDs allowed to send, besides the account's own
	AcceptAll    bool     // accept from anyone
	Overwrite    bool     // replace an existing file instead of choosing a new name
	MaxSize      int64    // refuse offers above this size; 0 means no limit
	MinFree      int64    // keep this much disk free after a file; -1 skips the check
	MaxPerPeer   int      // transfers one sender may have in progress; default DefaultMaxPerPeer
	OpenTimeout  time.Duration
	StallTimeout time.Duration
	IBB          ibb.Options
	S5B          S5BOptions
	// Out-of-band (oob.go): AcceptLinks also fetches jabber:x:oob links
	// in messages from allowed senders; FetchTimeout bounds one download
	// (default DefaultFetchTimeout).
	AcceptLinks  bool
	FetchTimeout time.Duration
}

// Receiver accepts offers on a session and stores the files.
type Receiver struct {
	s    Session
	opts ReceiveOptions
	obs  *Observer
	ibb  *ibb.Manager

	ctx        context.Context
	wg         sync.WaitGroup // transfers in progress
	mu         sync.Mutex
	active     map[string]bool           // part files being written
	perPeer    map[string]int            // transfers in progress by sender's bare JID
	s5bWaiting map[string]chan s5bResult // accepted S5B streams by streamKey
	results    chan outcome
}

type outcome struct {
	res *Result
	err error
}

// DefaultMaxPerPeer bounds the transfers one sender may have in progress
// at once, so that no peer can hold an unbounded number of files and
// streams open.
const DefaultMaxPerPeer = 32

// Features are what a receiver advertises in disco#info.
var Features = append([]string{disco.NSInfo, negotiate.NS, negotiate.NSFileTransfer, MethodS5B, MethodIBB, oob.NSIQ}, jingle.Features...)

// NewReceiver registers the receiver's handlers on the session: disco#info,
// SI offers and in-band bytestreams. Offers are handled until ctx ends.
func NewReceiver(ctx context.Context, s Session, opts ReceiveOptions, obs *Observer) (*Receiver, error) {
	st, err := os.Stat(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("%w: download directory: %w", ErrFile, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrFile, opts.Dir)
	}
	r := &Receiver{
		s: s, opts: opts, obs: obs, ctx: ctx,
		active:     map[string]bool{},
		perPeer:    map[string]int{},
		s5bWaiting: map[string]chan s5bResult{},
		results:    make(chan outcome, 16),
	}
	r.ibb = ibb.NewManager(s, opts.IBB)
	// Out-of-band handlers (oob.go), before disco announces us.
	if err := r.registerOOB(); err != nil {
		return nil, err
	}
	s.Handle(session.TypeGet, disco.NSInfo, disco.Handler(&disco.Info{
		Identities: []disco.Identity{{Category: "client", Type: "pc", Name: "xfer"}},
		Features:   Features,
	}))
	s.Handle(session.TypeSet, negotiate.NS, negotiate.Handle(r.decide))
	s5b.Handle(s, r.s5bRequest)
	jingle.NewManager(s).Listen(r.jingleOffer)
	return r, nil
}

// Next waits for the next transfer to end and returns its result.
func (r *Receiver) Next(ctx context.Context) (*Result, error) {
	select {
	case o := <-r.results:
		return o.res, o.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-r.s.Done():
		return nil, fmt.Errorf("transfer: session ended: %w", sessionErr(r.s))
	}
}

// Wait waits until the transfers in progress have ended; after the
// receiver's context is cancelled they end promptly, their part files
// closed and kept.
func (r *Receiver) Wait() { r.wg.Wait() }

func sessionErr(s Session) error {
	if e, ok := s.(interface{ Err() error }); ok && e.Err() != nil {
		return e.Err()
	}
	return session.ErrDisconnected
}

func (r *Receiver) allowed(from string) bool {
	if r.opts.AcceptAll || session.EqualJID(session.Bare(from), session.Bare(r.s.JID())) {
		return true
	}
	for _, a := range r.opts.Allow {
		if session.EqualJID(session.Bare(from), session.Bare(a)) {
			return true
		}
	}
	return false
}

// decide applies the receive policy to an SI offer; an accepted offer gets
// a goroutine that waits for the bytestream and stores the file.
func (r *Receiver) decide(_ context.Context, from string, o *negotiate.Offer) (*negotiate.Accept, error) {
	facts := offerFacts{SID: o.SID, From: from, Name: o.File.Name, Size: o.File.Size, Date: o.File.Date, Algo: "md5", Hash: o.File.Hash, CanRange: o.File.CanRange}
	ev := Event{Type: "offer", SID: o.SID, Direction: "receive", Peer: from, File: o.File.Name, Size: o.File.Size, Hash: o.File.Hash}
	r.obs.emit(ev)
	method := o.Choose(MethodS5B, MethodIBB)
	if method == "" && r.allowed(from) {
		ev.Type, ev.Error = "refused", "no stream method in common"
		r.obs.emit(ev)
		return nil, negotiate.NoValidStreams()
	}
	a, no := r.admitOffer(facts)
	if no != nil {
		ev.Type, ev.Error = "refused", no.why
		r.obs.emit(ev)
		if no.se == nil {
			return nil, negotiate.Declined("Offer Declined")
		}
		return nil, no.se
	}
	// Expect the bytestream before the accept leaves, so a request that
	// follows it at once is not turned away. With S5B chosen and IBB
	// offered too, the sender may fall back to IBB on the same sid.
	var s5bCh chan s5bResult
	if method == MethodS5B {
		s5bCh = make(chan s5bResult, 1)
		r.mu.Lock()
		r.s5bWaiting[streamKey(o.SID, from)] = s5bCh
		r.mu.Unlock()
	}
	ibbOffered := o.Choose(MethodIBB) != ""
	if ibbOffered {
		r.ibb.Expect(o.SID, from)
	}
	ev.Type, ev.Method, ev.Path, ev.Offset = "accepted", MethodName(method), a.part, a.offset
	r.obs.emit(ev)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		res, err := r.store(a, facts, s5bCh, ibbOffered)
		r.mu.Lock()
		delete(r.s5bWaiting, streamKey(o.SID, from))
		r.mu.Unlock()
		r.finished(a, facts, res, err)
	}()
	return &negotiate.Accept{Method: method, Offset: a.offset}, nil
}

// admit reserves the part file and a place among the sender's transfers
// in progress, or says why not; release gives them back.
func (r *Receiver) admit(part, peer, name string) (*session.StanzaError, string) {
	maxPeer := r.opts.MaxPerPeer
	if maxPeer <= 0 {
		maxPeer = DefaultMaxPerPeer
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.perPeer[peer] >= maxPeer:
		return session.NewError(session.CondResourceConstraint, "too many transfers in progress"), fmt.Sprintf("%s already has %d transfers in progress", peer, maxPeer)
	case r.active[part]:
		return session.NewError(session.CondResourceConstraint, "a file of that name is already arriving"), "a file named " + name + " is already arriving"
	}
	r.active[part] = true
	r.perPeer[peer]++
	return nil, ""
}

func (r *Receiver) release(part, peer string) {
	r.mu.Lock()
	delete(r.active, part)
	if r.perPeer[peer]--; r.perPeer[peer] <= 0 {
		delete(r.perPeer, peer)
	}
	r.mu.Unlock()
}

// store receives an SI file's bytes into the part file, checks them and
// moves the file into place. On failure no file is left under the final
// name.
func (r *Receiver) store(a *admitted, o offerFacts, s5bCh chan s5bResult, ibbOffered bool) (res *Result, err error) {
	res = &Result{SID: o.SID, Peer: o.From, Name: a.name, Size: o.Size, Hash: o.Hash, Offset: a.offset}
	defer func() { a.abandon(err) }()
	conn, err := r.awaitStream(o.SID, o.From, o.Size-a.offset, s5bCh, ibbOffered, res)
	if err != nil {
		return res, fmt.Errorf("transfer: %s accepted but no bytestream came from %s: %w", a.name, o.From, err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := r.readFile(conn, a, o); err != nil {
		return res, err
	}
	if got := hex.EncodeToString(a.h.Sum(nil)); o.Hash != "" && got != o.Hash {
		return res, fmt.Errorf("%w: %s: MD5 %s, the sender declared %s", ErrIntegrity, a.name, got, o.Hash)
	}
	return res, r.commit(a, o, res, start)
}

// awaitStream waits for the accepted offer's bytestream: the S5B
// connection, or an IBB open on the same sid (offered, or as the fallback
// after S5B failed).
func (r *Receiver) awaitStream(sid, from string, size int64, s5bCh chan s5bResult, ibbOffered bool, res *Result) (net.Conn, error) {
	octx, cancel := context.WithTimeout(r.ctx, orDefault(r.opts.OpenTimeout, 2*time.Minute))
	defer cancel()
	var ibbCh chan ibbResult
	if ibbOffered {
		ibbCh = make(chan ibbResult, 1)
		go func() {
			c, err := r.ibb.Accept(octx, sid, from)
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
						res.Method, res.Fallback = "ibb", "the sender fell back to in-band after connecting over SOCKS5"
						return ir.conn, nil
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
			res.Method = "s5b"
			res.Via = "direct"
			if !session.EqualJID(sr.via.JID, from) {
				res.Via = "proxy " + session.Bare(sr.via.JID) // ejabberd adds a node resource
			}
			return conn, nil
		case ir := <-ibbCh:
			if ir.err != nil {
				if s5bErr != nil {
					return nil, errors.Join(s5bErr, ir.err)
				}
				return nil, ir.err
			}
			res.Method = "ibb"
			if s5bCh != nil || s5bErr != nil {
				res.Fallback = "the sender fell back to in-band"
				if s5bErr != nil {
					res.Fallback += " after: " + s5bErr.Error()
				}
			}
			return ir.conn, nil
		case <-octx.Done():
			return nil, octx.Err()
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
