package jingle

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"xfer/internal/bytestream"
	"xfer/internal/ibb"
	"xfer/internal/s5b"
	"xfer/internal/session"
)

// Transports say how the bytes of a session may move.
type Transports = bytestream.Options

// Stream is an established bytestream of a session.
type Stream = bytestream.Stream

// negotiation is one side's state of a session's transport.
type negotiation struct {
	c *call
	t *Transports

	// XEP-0260
	s5bSID   string
	local    []Candidate
	hosts    map[string]s5b.Streamhost // our candidates by cid
	directCh <-chan net.Conn
	remote   []Candidate
	greeted  *s5b.Greetings // our proxies, greeted while the peer connects

	// XEP-0261
	ibbSID    string
	blockSize int
}

// errNoCandidate is a SOCKS5 negotiation in which no candidate worked.
var errNoCandidate = errors.New("no SOCKS5 candidate worked")

// prepare sets up our side's transport for the content: SOCKS5 candidates
// (registering the direct ones' destination with the server first, since
// the peer may connect before it answers) or, without them, in-band.
func (n *negotiation) prepare() error {
	if !n.t.NoS5B && (n.t.Server != nil && len(n.t.Direct) > 0 || len(n.t.Proxies) > 0) {
		return n.prepareS5B()
	}
	if n.t.NoIBB {
		return fmt.Errorf("%w: neither SOCKS5 candidates nor in-band allowed", ErrNoTransport)
	}
	n.useIBB("")
	return nil
}

// prepareS5B gathers our SOCKS5 candidates: the direct addresses of our
// server and the proxies.
func (n *negotiation) prepareS5B() error {
	if n.s5bSID == "" {
		n.s5bSID = session.NewID()
	}
	n.hosts = map[string]s5b.Streamhost{}
	if n.t.Server != nil && len(n.t.Direct) > 0 {
		ch, err := n.t.Server.Expect(n.dstAddr(true))
		if err != nil {
			return fmt.Errorf("jingle: own streamhost: %w", err)
		}
		n.directCh = ch
		for i, h := range n.t.Direct {
			n.addLocal(TypeDirect, uint16(len(n.t.Direct)-i), s5b.Streamhost{JID: n.c.m.s.JID(), Host: h.Host, Port: h.Port})
		}
	}
	for i, h := range n.t.Proxies {
		n.addLocal(TypeProxy, uint16(len(n.t.Proxies)-i), h)
	}
	return nil
}

func isNoCandidate(err error) bool { return errors.Is(err, errNoCandidate) }

func (n *negotiation) addLocal(typ string, pref uint16, h s5b.Streamhost) {
	cid := session.NewID()
	n.hosts[cid] = h
	n.local = append(n.local, Candidate{CID: cid, Host: h.Host, JID: h.JID, Port: h.Port, Priority: Priority(typ, pref), Type: typ})
}

func (n *negotiation) useIBB(sid string) {
	if sid == "" {
		sid = session.NewID()
	}
	n.ibbSID = sid
	if n.blockSize <= 0 {
		n.blockSize = n.t.IBB.BlockSize
		if n.t.IBB.AlignRecords {
			if fill := ibb.FillBlockSize(n.c.peer, sid); fill > 0 {
				n.blockSize = fill // see ibb.Options.AlignRecords
			}
		}
	}
	if n.blockSize <= 0 || n.blockSize > ibb.MaxBlockSize {
		n.blockSize = 4096
	}
}

// dstAddr is the SOCKS5 destination of the session's candidates: those
// offered by ours (true) or by the peer: the hash of the transport sid,
// the candidate owner's JID and the other party's (XEP-0260 §2.3).
func (n *negotiation) dstAddr(ours bool) string {
	me, peer := n.c.m.s.JID(), n.c.peer
	if ours {
		return s5b.DstAddr(n.s5bSID, me, peer)
	}
	return s5b.DstAddr(n.s5bSID, peer, me)
}

// transportElem is our transport for a content.
func (n *negotiation) transportElem(c *Content) {
	if n.ibbSID != "" {
		c.IBB = &IBBTransport{SID: n.ibbSID, BlockSize: n.blockSize}
		return
	}
	c.S5B = &S5BTransport{SID: n.s5bSID, Mode: "tcp", Candidates: n.local}
	if len(n.t.Proxies) > 0 {
		c.S5B.DstAddr = n.dstAddr(true)
	}
}

// release withdraws what prepare set up, and the greetings of our proxies.
func (n *negotiation) release() {
	n.greeted.Close()
	if n.directCh != nil && n.t.Server != nil {
		n.t.Server.Forget(n.dstAddr(true))
		n.directCh = nil
	}
}

type dialResult struct {
	conn net.Conn
	cand Candidate
	err  error
}

// dialRemote tries the peer's candidates, best first, one at a time.
func (n *negotiation) dialRemote(ctx context.Context) dialResult {
	cands := slices.Clone(n.remote)
	slices.SortStableFunc(cands, func(a, b Candidate) int { return int(int64(b.Priority) - int64(a.Priority)) })
	if len(cands) > s5b.MaxStreamhosts {
		cands = cands[:s5b.MaxStreamhosts]
	}
	var errs []error
	for _, c := range cands {
		if n.t.NoDirect && c.Type != TypeProxy {
			continue
		}
		h := s5b.Streamhost{JID: c.JID, Host: c.Host, Port: c.Port}
		conn, err := s5b.Dial(ctx, h, n.dstAddr(false), n.t.HostTimeoutOrDefault())
		if err == nil {
			return dialResult{conn: conn, cand: c}
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return dialResult{err: errors.New("the peer offered no usable candidate")}
	}
	return dialResult{err: errors.Join(errs...)}
}

func (n *negotiation) transportInfo(ctx context.Context, t *S5BTransport) error {
	t.SID = n.s5bSID
	return n.c.send(ctx, &Jingle{Action: ActionTransportInfo, Contents: []Content{{Creator: n.c.contentCreator, Name: n.c.contentName, S5B: t}}})
}

// s5bReports is what the peer said about candidates, in any order.
type s5bReports struct {
	theirsKnown bool
	theirs      *Candidate // our candidate they connected to
	activated   string     // cid the peer activated on its proxy
	proxyError  bool
}

// note takes a transport-info (or a transport inside another action) about
// SOCKS5; it reports whether it was one.
func (n *negotiation) note(j *Jingle, r *s5bReports) bool {
	if j.Action != ActionTransportInfo || len(j.Contents) == 0 || j.Contents[0].S5B == nil {
		return false
	}
	t := j.Contents[0].S5B
	switch {
	case r.theirsKnown && (t.CandidateUsed != nil || t.CandidateError != nil):
		// One report per side: a second one changes nothing.
	case t.CandidateUsed != nil:
		r.theirsKnown = true
		for i := range n.local {
			if n.local[i].CID == t.CandidateUsed.CID {
				r.theirs = &n.local[i]
			}
		}
	case t.CandidateError != nil:
		r.theirsKnown = true
	case t.Activated != nil:
		r.activated = t.Activated.CID
	case t.ProxyError != nil:
		r.proxyError = true
	}
	return true
}

// establishS5B runs XEP-0260 §2.3–2.4 from either side: connect to the
// peer's candidates, tell the peer which one worked, learn which of ours it
// used, nominate the pair (higher priority wins, the initiator's choice on
// a tie) and activate a proxy when the nominated candidate is ours. Jingle
// requests it does not consume are kept for later. It returns
// errNoCandidate (wrapped) when the session must move to in-band.
func (n *negotiation) establishS5B(ctx context.Context) (*Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s5b.MaxStreamhosts+4)*n.t.HostTimeoutOrDefault())
	defer cancel()
	if len(n.t.Proxies) > 0 {
		// Should the peer use one of our proxies, we connect to it last
		// and activate it: the TCP and SOCKS5 greetings overlap the
		// peer's connecting (as SI's requester does, see s5b.Greetings).
		// Not before the peer accepted: a person may take minutes.
		n.greeted = s5b.GreetAll(ctx, n.t.Proxies, n.t.HostTimeoutOrDefault())
		defer n.greeted.Close()
	}
	dialed := make(chan dialResult, 1)
	go func() { dialed <- n.dialRemote(ctx) }()
	var ours *dialResult
	var r s5bReports
	for _, j := range n.c.takePending() {
		if !n.note(j, &r) {
			n.c.keep(j)
		}
	}
	defer func() {
		if ours == nil { // still dialling: whatever it gets is not ours to use
			go func() {
				if d := <-dialed; d.conn != nil {
					d.conn.Close()
				}
			}()
		}
	}()
	for ours == nil || !r.theirsKnown {
		select {
		case d := <-dialed:
			ours = &d
			rep := &S5BTransport{CandidateError: &struct{}{}}
			if d.err == nil {
				rep = &S5BTransport{CandidateUsed: &CandidateID{CID: d.cand.CID}}
			}
			if err := n.transportInfo(ctx, rep); err != nil {
				closeConn(d.conn)
				return nil, err
			}
		case j := <-n.c.events:
			if err := n.c.observe(j); err != nil {
				closeConn(ours.connOrNil())
				return nil, err
			}
			if !n.note(j, &r) {
				n.c.keep(j)
			}
		case <-ctx.Done():
			closeConn(ours.connOrNil())
			return nil, fmt.Errorf("jingle: SOCKS5 candidate exchange with %s: %w", n.c.peer, ctx.Err())
		}
	}
	return n.nominate(ctx, ours, &r)
}

func (d *dialResult) connOrNil() net.Conn {
	if d == nil {
		return nil
	}
	return d.conn
}

func closeConn(c net.Conn) {
	if c != nil {
		c.Close()
	}
}

// nominate picks the pair and makes it usable.
func (n *negotiation) nominate(ctx context.Context, ours *dialResult, r *s5bReports) (*Stream, error) {
	var mine *Candidate // theirs that we connected to
	if ours.err == nil {
		mine = &ours.cand
	}
	useOurs := false // use the candidate of ours that the peer connected to
	switch {
	case mine == nil && r.theirs == nil:
		why := "the peer could connect to none of ours"
		if ours.err != nil {
			why = fmt.Sprintf("we could connect to none of the peer's (%v), nor it to ours", ours.err)
		}
		return nil, fmt.Errorf("%w: %s", errNoCandidate, why)
	case mine == nil:
		useOurs = true
	case r.theirs == nil:
	case r.theirs.Priority != mine.Priority:
		useOurs = r.theirs.Priority > mine.Priority
	default:
		// A tie: the initiator's choice wins. Ours is the candidate the
		// peer chose, so it wins when the peer initiated.
		useOurs = !n.c.initiator
	}
	if !useOurs {
		n.release()
		if mine.Type == TypeProxy {
			if err := n.awaitActivation(ctx, mine.CID, r); err != nil {
				ours.conn.Close()
				return nil, err
			}
			return &Stream{Conn: ours.conn, Method: "s5b", Via: "proxy " + session.Bare(mine.JID)}, nil
		}
		return &Stream{Conn: ours.conn, Method: "s5b", Via: "direct"}, nil
	}
	closeConn(ours.connOrNil())
	h := n.hosts[r.theirs.CID]
	if r.theirs.Type != TypeProxy {
		select {
		case c, ok := <-n.directCh:
			n.directCh = nil
			if ok {
				return &Stream{Conn: c, Method: "s5b", Via: "direct"}, nil
			}
		case <-time.After(n.t.HostTimeoutOrDefault()):
		case <-ctx.Done():
		}
		n.release()
		return nil, fmt.Errorf("%w: %s reported our streamhost but its connection did not arrive", errNoCandidate, n.c.peer)
	}
	conn, err := n.activate(ctx, h, r.theirs.CID)
	n.release()
	if err != nil {
		_ = n.transportInfo(ctx, &S5BTransport{ProxyError: &struct{}{}})
		return nil, fmt.Errorf("%w: %w", errNoCandidate, err)
	}
	return &Stream{Conn: conn, Method: "s5b", Via: "proxy " + session.Bare(h.JID)}, nil
}

// activate connects to our proxy candidate that the peer used, activates
// the stream there and tells the peer (XEP-0260 §2.4).
func (n *negotiation) activate(ctx context.Context, h s5b.Streamhost, cid string) (net.Conn, error) {
	conn, err := n.greeted.Connect(ctx, h, n.dstAddr(true), n.t.HostTimeoutOrDefault())
	if err != nil {
		return nil, fmt.Errorf("connecting to proxy %s: %w", h.JID, err)
	}
	actx, cancel := context.WithTimeout(ctx, n.t.HostTimeoutOrDefault())
	err = s5b.Activate(actx, n.c.m.s, h.JID, n.s5bSID, n.c.peer)
	cancel()
	if err == nil {
		err = n.transportInfo(ctx, &S5BTransport{Activated: &CandidateID{CID: cid}})
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("activating the stream on proxy %s: %w", h.JID, err)
	}
	return conn, nil
}

// awaitActivation waits for the peer to activate its proxy candidate.
func (n *negotiation) awaitActivation(ctx context.Context, cid string, r *s5bReports) error {
	timer := time.NewTimer(2 * n.t.HostTimeoutOrDefault())
	defer timer.Stop()
	for r.activated != cid {
		if r.proxyError {
			return fmt.Errorf("%w: the peer could not activate its proxy", errNoCandidate)
		}
		select {
		case j := <-n.c.events:
			if err := n.c.observe(j); err != nil {
				return err
			}
			if !n.note(j, r) {
				n.c.keep(j)
			}
		case <-timer.C:
			return fmt.Errorf("%w: the peer did not activate its proxy", errNoCandidate)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
