package ibb

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"sync"

	"xfer/internal/session"
)

// Manager routes a session's incoming IBB stanzas (open, data, close) to
// its streams. Register one per session with NewManager. It accepts only
// streams the application announced with Expect or Accept, from exactly
// the full JID named there: every IBB stanza is bound to its sid and peer.
type Manager struct {
	s    Session
	opts Options

	mu       sync.Mutex
	conns    map[streamKey]*Conn
	expected map[streamKey]*expectation
}

// streamKey names a stream by sid and the peer's full JID, normalised so
// that two spellings the server treats as one JID match.
type streamKey struct{ sid, peer string }

func keyOf(sid, jid string) streamKey {
	k := strings.ToLower(session.Bare(jid))
	if r := session.Resource(jid); r != "" {
		k += "/" + r
	}
	return streamKey{sid: sid, peer: k}
}

type expectation struct {
	ready     chan struct{} // closed when the peer's open arrived (conn set)
	gone      chan struct{} // closed by Forget
	conn      *Conn
	accepting bool
}

// NewManager registers IBB handling on s and returns the Manager. opts
// apply to every stream it opens or accepts.
func NewManager(s Session, opts Options) *Manager {
	m := &Manager{
		s:        s,
		opts:     opts.withDefaults(),
		conns:    make(map[streamKey]*Conn),
		expected: make(map[streamKey]*expectation),
	}
	s.Handle(session.TypeSet, NS, m.HandleIQ)
	if in, ok := s.(inlineSession); ok {
		in.HandleInline(session.TypeSet, NS, m.takeInline)
	}
	return m
}

// inlineSession is a Session that can hand IQs to a handler on its read
// loop (*session.Session).
type inlineSession interface {
	HandleInline(typ, ns string, h session.InlineHandler)
}

// takeInline takes a data chunk on the session's read loop when it can
// without waiting: the next in sequence, with room in its stream's buffer.
// Anything else goes to HandleIQ on a goroutine of its own.
func (m *Manager) takeInline(iq *session.IQ) ([]byte, bool, error) {
	if iq.PayloadName().Local != "data" {
		return nil, false, nil
	}
	d, err := parseChunk(iq.Payload)
	if err != nil {
		return nil, true, session.NewError(session.CondBadRequest, err.Error())
	}
	c := m.lookup(d.SID, iq.From)
	if c == nil {
		return nil, true, session.NewError(session.CondItemNotFound, "no such bytestream")
	}
	handled, err := c.takeData(d)
	return nil, handled, err
}

// Expect announces that from (a full JID) will open the stream sid. Call it
// before telling the peer to go ahead (before answering the stream
// initiation), so that an open arriving before Accept is not refused. An
// open that arrives before Accept is answered at once and its data is
// buffered, within the usual bounds, until Accept returns the Conn.
func (m *Manager) Expect(sid, from string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expectLocked(keyOf(sid, from))
}

func (m *Manager) expectLocked(k streamKey) *expectation {
	e := m.expected[k]
	if e == nil {
		e = &expectation{ready: make(chan struct{}), gone: make(chan struct{})}
		m.expected[k] = e
	}
	return e
}

// Forget withdraws an Expect that no Accept will follow, closing the stream
// if the peer had already opened it.
func (m *Manager) Forget(sid, from string) {
	k := keyOf(sid, from)
	m.mu.Lock()
	e := m.expected[k]
	delete(m.expected, k)
	var parked *Conn
	if e != nil {
		parked = e.conn
		close(e.gone)
	}
	m.mu.Unlock()
	if parked != nil {
		_ = parked.Close()
	}
}

// Accept waits until from (a full JID) opens the stream sid, and returns it.
// It implies Expect. Cancelling ctx, Forget, or the session ending stop the
// wait; the expectation is gone afterwards either way.
func (m *Manager) Accept(ctx context.Context, sid, from string) (*Conn, error) {
	k := keyOf(sid, from)
	m.mu.Lock()
	e := m.expectLocked(k)
	if e.accepting {
		m.mu.Unlock()
		return nil, fmt.Errorf("ibb: already accepting stream %q from %s", sid, from)
	}
	e.accepting = true
	m.mu.Unlock()

	var why error
	select {
	case <-e.ready:
	case <-ctx.Done():
		why = ctx.Err()
	case <-e.gone:
		why = errors.New("expectation withdrawn")
	case <-sessionDone(m.s): // nil channel without Done: never ready
		why = ErrSessionEnded
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.expected[k] == e {
		delete(m.expected, k)
	}
	if e.conn != nil && why == nil {
		return e.conn, nil
	}
	if e.conn != nil {
		// Opened just as we gave up: nobody will read it.
		go e.conn.Close()
	}
	if errors.Is(why, context.DeadlineExceeded) {
		why = fmt.Errorf("%w: %w", ErrTimeout, why)
	}
	return nil, fmt.Errorf("ibb: no open of stream %q from %s: %w", sid, from, why)
}

// Open opens the stream sid to the full JID to, like the package's Open,
// but registered with m: the peer may send data back, and its close ends
// our writes at once instead of at the next chunk.
func (m *Manager) Open(ctx context.Context, to, sid string) (*Conn, error) {
	return open(ctx, m.s, m, to, sid, m.opts)
}

// Open opens the stream sid to the full JID to over s, and returns it once
// the peer agreed. On resource-constraint it retries on the same sid with
// smaller blocks. No Manager routes incoming data to the returned Conn, so
// it is for writing: Read sees nothing until Close or its deadline. Use
// Manager.Open for a two-way stream.
func Open(ctx context.Context, s Session, to, sid string, opts Options) (*Conn, error) {
	return open(ctx, s, nil, to, sid, opts.withDefaults())
}

func open(ctx context.Context, s Session, m *Manager, to, sid string, opts Options) (*Conn, error) {
	if sid == "" || to == "" {
		return nil, errors.New("ibb: open needs a sid and a peer")
	}
	bs := opts.BlockSize
	fill := 0
	if _, ok := s.(aligner); ok && opts.AlignRecords {
		fill = FillBlockSize(to, sid)
		if fill > 0 {
			bs = fill
		}
	}
	c := newConn(s, m, to, sid, bs, opts)
	if m != nil {
		if err := m.add(c); err != nil {
			c.abort()
			return nil, err
		}
	}
	for {
		// The peer may send data right after its answer; it must find the
		// block size it agreed to.
		c.mu.Lock()
		c.setBlockSizeLocked(bs)
		c.mu.Unlock()
		_, err := s.SendIQ(ctx, &session.IQ{
			Type:    session.TypeSet,
			To:      to,
			Payload: openElem{SID: sid, BlockSize: bs, Stanza: "iq"}.marshal(),
		})
		if err == nil {
			if bs == fill {
				c.alignWrites(s.(aligner))
			}
			return c, nil
		}
		var se *session.StanzaError
		if errors.As(err, &se) && se.Condition == session.CondResourceConstraint && bs > minRetryBlockSize {
			bs = smallerBlock(bs)
			continue
		}
		c.abort()
		switch {
		case se != nil:
			return nil, fmt.Errorf("%w: %s answered open of %q (block-size %d): %w", ErrRefused, to, sid, bs, se)
		case errors.Is(err, context.DeadlineExceeded):
			return nil, fmt.Errorf("%w: %s did not answer open of %q: %w", ErrTimeout, to, sid, err)
		default:
			return nil, fmt.Errorf("ibb: open of %q to %s: %w", sid, to, err)
		}
	}
}

// smallerBlock returns the largest power of two below bs, at least
// minRetryBlockSize: 65535 → 32768 → … → 8192 (slixmpp's limit) → 4096
// (QXmpp's).
func smallerBlock(bs int) int {
	return max(1<<(bits.Len(uint(bs-1))-1), minRetryBlockSize)
}

func (m *Manager) add(c *Conn) error {
	k := keyOf(c.sid, c.remote)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conns[k] != nil {
		return fmt.Errorf("%w: %q with %s", ErrSIDInUse, c.sid, c.remote)
	}
	m.conns[k] = c
	return nil
}

// remove unregisters c; later stanzas for its sid get item-not-found. It
// may be called with c.mu held: m.mu is never held while taking c.mu.
func (m *Manager) remove(c *Conn) {
	k := keyOf(c.sid, c.remote)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conns[k] == c {
		delete(m.conns, k)
	}
}

func (m *Manager) lookup(sid, from string) *Conn {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.conns[keyOf(sid, from)]
}

// HandleIQ answers an IBB IQ-set. NewManager registers it; it is exported
// for a session that routes IQs some other way.
func (m *Manager) HandleIQ(ctx context.Context, iq *session.IQ) ([]byte, error) {
	switch iq.PayloadName().Local {
	case "open":
		return nil, m.handleOpen(iq)
	case "data":
		d, err := parseChunk(iq.Payload)
		if err != nil {
			return nil, session.NewError(session.CondBadRequest, err.Error())
		}
		c := m.lookup(d.SID, iq.From)
		if c == nil {
			return nil, session.NewError(session.CondItemNotFound, "no such bytestream")
		}
		return nil, c.handleData(ctx, d)
	case "close":
		cl, err := parseClose(iq.Payload)
		if err != nil {
			return nil, session.NewError(session.CondBadRequest, err.Error())
		}
		c := m.lookup(cl.SID, iq.From)
		if c == nil {
			return nil, session.NewError(session.CondItemNotFound, "no such bytestream")
		}
		return nil, c.handleClose(ctx)
	}
	return nil, session.NewError(session.CondBadRequest, "unknown IBB element")
}

func (m *Manager) handleOpen(iq *session.IQ) error {
	o, err := parseOpen(iq.Payload)
	if err != nil {
		return session.NewError(session.CondBadRequest, err.Error())
	}
	if o.Stanza != "iq" {
		// Message-mode data has no acknowledgement, hence no backpressure
		// and no way to tell a lost chunk; we only do IQ mode.
		return session.NewError(session.CondFeatureNotImpl, "only stanza='iq' is supported")
	}
	k := keyOf(o.SID, iq.From)
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.expected[k]
	if m.conns[k] != nil || e == nil || e.conn != nil {
		return session.NewError(session.CondNotAcceptable, "unexpected bytestream")
	}
	if o.BlockSize > m.opts.MaxBlockSize {
		// The expectation stays: the peer may retry with smaller blocks.
		return session.NewError(session.CondResourceConstraint, fmt.Sprintf("block-size at most %d", m.opts.MaxBlockSize))
	}
	c := newConn(m.s, m, iq.From, o.SID, o.BlockSize, m.opts)
	m.conns[k] = c
	e.conn = c
	close(e.ready)
	return nil
}
