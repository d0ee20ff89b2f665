package ibb

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"xfer/internal/session"
)

var _ net.Conn = (*Conn)(nil)

// Conn is one in-band bytestream. Reads return the peer's data in sequence
// order; writes are split into blocks and sent as acknowledged IQs.
//
// Write returns once its chunks are on the wire, not once they are
// acknowledged: Close waits for the outstanding acknowledgements and
// reports whether everything written arrived, so a sender must check
// Close's error.
type Conn struct {
	s          Session
	m          *Manager // routes incoming data to us; nil if opened without one
	local      string
	remote     string
	sid        string
	opts       Options // for the window's bounds once the block size is known
	ackTimeout time.Duration

	mu           sync.Mutex
	changed      chan struct{} // closed and replaced on every state change
	blockSize    int
	closed       bool  // Close was called
	remoteClosed bool  // the peer sent <close/>
	rerr         error // the stream failed; Read returns it after the buffer
	werr         error // a chunk was refused or never acknowledged

	// Read half.
	buf        bytes.Buffer // data in order, waiting for Read
	bufMax     int
	next       uint16          // seq the next chunk must carry
	waiting    map[uint16]bool // chunks that arrived early and wait their turn
	headBusy   bool            // the chunk with seq next is being stored
	wrapsAtMax bool            // the peer wraps its seq after 65534 (Libervia 0.9)
	busy       int             // data handlers between validation and reply

	// Write half.
	writeMu   sync.Mutex // one Write at a time keeps chunks in order
	wseq      uint16
	win       *window // how many chunks may be unacknowledged (window.go)
	flight    int     // chunks sent and not yet answered
	throttled func(bytesPerSecond float64)
	inflight  sync.WaitGroup

	rdl, wdl deadline
	done     chan struct{} // closed by Close
	unalign  func()        // ends the session's aligned writes, if this stream began them
}

// alignWrites aligns the session's writes (chunks that fill a record
// each, see Options.AlignRecords) until the stream's write half is done.
func (c *Conn) alignWrites(a aligner) {
	a.AlignWrites(true)
	var once sync.Once
	c.mu.Lock()
	c.unalign = func() { once.Do(func() { a.AlignWrites(false) }) }
	c.mu.Unlock()
}

func (c *Conn) endAlign() {
	c.mu.Lock()
	f := c.unalign
	c.mu.Unlock()
	if f != nil {
		f()
	}
}

func newConn(s Session, m *Manager, remote, sid string, blockSize int, opts Options) *Conn {
	c := &Conn{
		s:          s,
		m:          m,
		local:      s.JID(),
		remote:     remote,
		sid:        sid,
		opts:       opts,
		ackTimeout: opts.AckTimeout,
		changed:    make(chan struct{}),
		blockSize:  blockSize,
		bufMax:     readBufMax(blockSize),
		next:       opts.firstSeq,
		waiting:    make(map[uint16]bool),
		wseq:       opts.firstSeq,
		win: newWindow(opts.Window, opts.MaxInFlight, blockSize, opts.AckTimeout,
			throttle{After: opts.ThrottleAfter, Rate: float64(opts.ThrottleRate)}),
		throttled: opts.Throttled,
		rdl:       makeDeadline(),
		wdl:       makeDeadline(),
		done:      make(chan struct{}),
	}
	if d := sessionDone(s); d != nil {
		go func() {
			select {
			case <-d:
				c.mu.Lock()
				c.failLocked(ErrSessionEnded)
				c.mu.Unlock()
			case <-c.done:
			}
		}()
	}
	return c
}

// SID returns the stream's session id.
func (c *Conn) SID() string { return c.sid }

// BlockSize returns the negotiated block size in bytes.
func (c *Conn) BlockSize() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blockSize
}

// OnThrottled sets the function called once if this stream's writes look
// rate-limited by the server (Options.Throttled, for one stream). Set it
// before writing.
func (c *Conn) OnThrottled(f func(bytesPerSecond float64)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.throttled = f
}

// setBlockSizeLocked sets the block size agreed with the peer, and what
// depends on it.
func (c *Conn) setBlockSizeLocked(bs int) {
	c.blockSize, c.bufMax = bs, readBufMax(bs)
	c.win.configure(c.opts.Window, c.opts.MaxInFlight, bs)
}

// readBufMax is how much data a stream holds for its reader: some slack
// lets acknowledgements run ahead of a bursty reader (a file write, a
// hash) without letting a stalled one grow memory. With less than 64 KiB
// the session's read loop, which stores chunks faster than a reader
// takes them, would hand every other chunk to a goroutine that waits for
// room (takeData).
func readBufMax(blockSize int) int { return max(4*blockSize, 64<<10) }

// LocalAddr returns our full JID.
func (c *Conn) LocalAddr() net.Addr { return Addr{JID: c.local} }

// RemoteAddr returns the peer's full JID.
func (c *Conn) RemoteAddr() net.Addr { return Addr{JID: c.remote} }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.rdl.set(t)
	c.wdl.set(t)
	return nil
}

// SetReadDeadline bounds Read. A receiver should use it as an idle timeout:
// a peer that vanishes without closing leaves Read waiting otherwise.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.rdl.set(t)
	return nil
}

// SetWriteDeadline bounds Write's wait for a free slot in the window.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.wdl.set(t)
	return nil
}

func (c *Conn) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// failLocked ends the stream with err: Read returns it once the buffer is
// drained, Write returns it at once, and the peer's further data for this
// sid is answered item-not-found.
func (c *Conn) failLocked(err error) {
	if c.rerr == nil {
		c.rerr = err
	}
	c.notifyLocked()
	if c.m != nil {
		c.m.remove(c)
	}
}

// Read reads data in sequence order. After the peer closes the stream it
// returns the buffered data, then io.EOF.
func (c *Conn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		dl := c.rdl.wait()
		switch {
		case c.closed:
			return 0, errConnClosed
		case isClosed(dl):
			return 0, &timeoutError{op: "read"}
		case c.buf.Len() > 0:
			n, _ := c.buf.Read(p)
			c.notifyLocked() // there is room for the next chunk now
			return n, nil
		case len(p) == 0:
			return 0, nil
		case c.rerr != nil:
			return 0, c.rerr
		case c.remoteClosed && c.busy == 0:
			return 0, io.EOF
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-dl:
		}
		c.mu.Lock()
	}
}

// writeErrLocked says why nothing more may be written, if so.
func (c *Conn) writeErrLocked() error {
	switch {
	case c.closed:
		return errConnClosed
	case c.werr != nil:
		return c.werr
	case c.rerr != nil:
		return c.rerr
	case c.remoteClosed:
		return ErrClosedByPeer
	}
	return nil
}

// Write sends p in chunks of at most BlockSize bytes, blocking while the
// window is full (see window.go). It fails once any chunk was refused or
// not acknowledged within AckTimeout; a chunk already handed to the network
// may still fail afterwards, which the next Write or Close reports.
func (c *Conn) Write(p []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	n := 0
	waited := false
	for {
		c.mu.Lock()
		err := c.writeErrLocked()
		ch, bs := c.changed, c.blockSize
		room := c.flight < c.win.size()
		var rec chunkSend
		if err == nil && len(p) > 0 && room {
			// Only Write adds to flight, so the room is ours.
			c.flight++
			k := min(bs, len(p))
			rec = c.win.sent(time.Now(), waited, k*4/3+len(c.remote)+len(c.sid)+120)
		}
		c.mu.Unlock()
		if err != nil {
			return n, err
		}
		if len(p) == 0 {
			return n, nil
		}
		dl := c.wdl.wait()
		if !room {
			waited = true
			select {
			case <-ch:
				continue // an acknowledgement, or closed or failed meanwhile
			case <-dl:
				return n, &timeoutError{op: "write"}
			}
		}
		if isClosed(dl) {
			c.chunkDone(rec, nil, false)
			return n, &timeoutError{op: "write"}
		}
		waited = false
		k := min(bs, len(p))
		payload := marshalData(c.sid, c.wseq, p[:k])
		sent := make(chan struct{})
		c.inflight.Add(1)
		go c.sendChunk(c.wseq, payload, sent, rec)
		// Chunks must leave in seq order: strict receivers (QXmpp) close
		// the stream on a gap. Wait until this one is on the wire before
		// the next may go.
		<-sent
		c.wseq++
		n += k
		p = p[k:]
	}
}

// sendChunk sends one data IQ and waits for its acknowledgement, holding a
// place in the window meanwhile.
func (c *Conn) sendChunk(seq uint16, payload []byte, sent chan struct{}, rec chunkSend) {
	defer c.inflight.Done()
	ctx, cancel := context.WithTimeout(context.Background(), c.ackTimeout)
	defer cancel()
	sc := &sentContext{Context: ctx, sent: sent}
	defer sc.signal()
	_, err := c.s.SendIQ(sc, &session.IQ{Type: session.TypeSet, To: c.remote, Payload: payload})
	if err != nil {
		var se *session.StanzaError
		switch {
		case errors.As(err, &se):
			err = fmt.Errorf("%w: chunk %d: %w", ErrRejected, seq, err)
		case errors.Is(err, context.DeadlineExceeded):
			err = fmt.Errorf("%w: chunk %d not acknowledged within %v", ErrTimeout, seq, c.ackTimeout)
		default:
			err = fmt.Errorf("ibb: sending chunk %d: %w", seq, err)
		}
	}
	c.chunkDone(rec, err, true)
}

// chunkDone gives back a chunk's place in the window: answered (or failed
// with err) if sent, else never sent.
func (c *Conn) chunkDone(rec chunkSend, err error, sent bool) {
	c.mu.Lock()
	c.flight--
	var rate float64
	switch {
	case err != nil:
		c.win.failed()
		if c.werr == nil {
			c.werr = err
		}
	case sent:
		rate = c.win.acked(time.Now(), rec)
	}
	f := c.throttled
	c.notifyLocked()
	c.mu.Unlock()
	if rate > 0 && f != nil {
		f(rate)
	}
}

// sentContext tells when SendIQ has written the stanza. SendIQ returns only
// with the reply, yet several chunks must be in flight and leave in order.
// SendIQ writes the stanza before it first waits on ctx.Done (and, given a
// deadline, calls Done nowhere earlier), so the first Done call marks the
// write; returning marks it too. An implementation that called Done before
// writing would only loosen the ordering, never block.
type sentContext struct {
	context.Context
	once sync.Once
	sent chan struct{}
}

func (c *sentContext) Done() <-chan struct{} {
	c.signal()
	return c.Context.Done()
}

func (c *sentContext) signal() { c.once.Do(func() { close(c.sent) }) }

// Close waits (bounded by AckTimeout) for every written chunk to be
// acknowledged, then sends <close/> and waits for its answer. It returns the
// first failure of any chunk, so nil means the peer acknowledged everything
// written; a failed close exchange after complete data is reported too.
// Unread data is discarded.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errConnClosed
	}
	c.closed = true
	c.notifyLocked() // wakes Read, Write and waiting data handlers
	c.mu.Unlock()
	close(c.done)

	// A Write in progress returns promptly now; its chunks and earlier ones
	// are acknowledged or fail within AckTimeout.
	c.writeMu.Lock()
	c.inflight.Wait()
	c.writeMu.Unlock()
	c.endAlign()
	if c.m != nil {
		c.m.remove(c)
	}

	c.mu.Lock()
	werr, rerr, remoteClosed := c.werr, c.rerr, c.remoteClosed
	c.buf = bytes.Buffer{}
	c.mu.Unlock()
	// The peer knows the stream is over if it closed it, if it refused our
	// data, or if we refused its data; the session may be gone, too.
	var se *session.StanzaError
	if remoteClosed || rerr != nil || errors.As(werr, &se) {
		return werr
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.ackTimeout)
	defer cancel()
	_, err := c.s.SendIQ(ctx, &session.IQ{Type: session.TypeSet, To: c.remote, Payload: closeElem{SID: c.sid}.marshal()})
	switch {
	case werr != nil:
		return werr
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: close of %s not answered: %w", ErrTimeout, c.sid, err)
	default:
		return fmt.Errorf("ibb: close of %s: %w", c.sid, err)
	}
}

// abort drops a stream that never opened.
// Abort ends the stream at once (Ctrl-C): it does not wait for chunks in
// flight to be acknowledged, and tells the peer with a close it does not
// wait for either. Read and Write fail from then on; Close returns at once.
func (c *Conn) Abort() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.abort()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.ackTimeout)
		defer cancel()
		_, _ = c.s.SendIQ(ctx, &session.IQ{Type: session.TypeSet, To: c.remote, Payload: closeElem{SID: c.sid}.marshal()})
	}()
}

func (c *Conn) abort() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.notifyLocked()
	c.mu.Unlock()
	close(c.done)
	c.endAlign()
	if c.m != nil {
		c.m.remove(c)
	}
}

// handleData stores one incoming chunk, in sequence order. Chunk IQs reach
// us on goroutines of their own, so they may come in any order: each waits
// for its predecessors, then for room in the buffer, and is acknowledged
// (by returning nil) only once stored. That makes the sender's window the
// bound on what this side holds.
func (c *Conn) handleData(ctx context.Context, d dataChunk) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.remoteClosed || c.rerr != nil {
		return session.NewError(session.CondItemNotFound, "bytestream closed")
	}
	scratch := blockPool.Get().(*[]byte)
	defer blockPool.Put(scratch)
	payload, err := decodeBlockBytes(*scratch, d.Text, c.blockSize)
	if err != nil {
		c.failLocked(fmt.Errorf("%w: chunk %d: %v", ErrBadData, d.Seq, err))
		return session.NewError(session.CondBadRequest, err.Error())
	}
	// uint16 arithmetic: a replayed seq is "65535 ahead", so it fails here.
	ahead := d.Seq - c.next
	if int(ahead) >= aheadLimit(c.blockSize) || c.waiting[d.Seq] || (ahead == 0 && c.headBusy) {
		c.failLocked(fmt.Errorf("%w: got %d, expected %d", ErrUnexpectedSeq, d.Seq, c.next))
		return session.NewError(session.CondUnexpectedRequest, fmt.Sprintf("seq %d, expected %d", d.Seq, c.next))
	}
	c.busy++
	defer func() {
		c.busy--
		c.notifyLocked()
	}()
	if ahead == 1 && d.Seq == 0 && c.wrapsAtMax {
		c.next = 0 // this peer's sequence goes 65534, 0 (seen before)
		ahead = 0
	}
	if ahead > 0 {
		c.waiting[d.Seq] = true
		err := c.awaitTurnLocked(ctx, d.Seq)
		delete(c.waiting, d.Seq)
		if err != nil {
			return err
		}
	}
	c.headBusy = true
	defer func() { c.headBusy = false }()
	if err := c.awaitRoomLocked(ctx, len(payload)); err != nil {
		return err
	}
	c.buf.Write(payload)
	c.next++
	return nil
}

// takeData is handleData for the session's read loop: it takes the chunk
// only if that needs no waiting (the next in sequence, with room in the
// buffer) and reports whether it did; a chunk it leaves goes to handleData.
func (c *Conn) takeData(d dataChunk) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.remoteClosed || c.rerr != nil {
		return true, session.NewError(session.CondItemNotFound, "bytestream closed")
	}
	if d.Seq != c.next || c.headBusy {
		return false, nil
	}
	n := base64.StdEncoding.DecodedLen(len(d.Text))
	if c.buf.Len() > 0 && c.buf.Len()+n > c.bufMax {
		return false, nil
	}
	c.buf.Grow(min(n, c.blockSize+3))
	payload, err := decodeBlockBytes(c.buf.AvailableBuffer(), d.Text, c.blockSize)
	if err != nil {
		c.failLocked(fmt.Errorf("%w: chunk %d: %v", ErrBadData, d.Seq, err))
		return true, session.NewError(session.CondBadRequest, err.Error())
	}
	c.buf.Write(payload) // in place: payload is the buffer's own free space
	c.next++
	c.notifyLocked()
	return true, nil
}

// blockPool holds the buffers incoming chunks are decoded into before they
// are copied to a Conn's read buffer: one per data handler at work.
var blockPool = sync.Pool{New: func() any {
	b := make([]byte, MaxBlockSize+3) // DecodedLen of the largest chunk
	return &b
}}

// awaitTurnLocked waits until seq is the next expected. A predecessor that
// has not arrived within reorderGrace is taken as missing.
func (c *Conn) awaitTurnLocked(ctx context.Context, seq uint16) error {
	t := time.NewTimer(reorderGrace)
	defer t.Stop()
	for c.next != seq {
		if c.closed || c.rerr != nil {
			return session.NewError(session.CondItemNotFound, "bytestream closed")
		}
		ch := c.changed
		c.mu.Unlock()
		var expired bool
		select {
		case <-ch:
		case <-t.C:
			expired = true
		case <-ctx.Done():
			c.mu.Lock()
			return session.NewError(session.CondItemNotFound, "session ending")
		}
		c.mu.Lock()
		if expired && c.next != seq {
			if c.headBusy || c.waiting[c.next] {
				t.Reset(reorderGrace) // the gap is filling, just slowly
				continue
			}
			if c.next == 65535 && seq == 0 {
				// Libervia 0.9 wraps after 65534: 65535 never comes.
				c.next, c.wrapsAtMax = 0, true
				continue
			}
			c.failLocked(fmt.Errorf("%w: chunk %d never arrived", ErrUnexpectedSeq, c.next))
			return session.NewError(session.CondUnexpectedRequest, fmt.Sprintf("seq %d, but %d is missing", seq, c.next))
		}
	}
	return nil
}

// awaitRoomLocked waits until n more bytes fit in the buffer (a chunk always
// fits an empty one). A reader that takes nothing for AckTimeout fails the
// stream: the sender has given up on this chunk by then.
func (c *Conn) awaitRoomLocked(ctx context.Context, n int) error {
	var t *time.Timer
	for c.buf.Len() > 0 && c.buf.Len()+n > c.bufMax {
		if c.closed || c.rerr != nil {
			return session.NewError(session.CondItemNotFound, "bytestream closed")
		}
		if t == nil {
			t = time.NewTimer(c.ackTimeout)
			defer t.Stop()
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
			c.mu.Lock()
		case <-ctx.Done():
			c.mu.Lock()
			return session.NewError(session.CondItemNotFound, "session ending")
		case <-t.C:
			c.mu.Lock()
			c.failLocked(fmt.Errorf("%w: reader took no data for %v", ErrTimeout, c.ackTimeout))
			return session.NewError(session.CondResourceConstraint, "receiver stalled")
		}
	}
	if c.closed || c.rerr != nil {
		return session.NewError(session.CondItemNotFound, "bytestream closed")
	}
	return nil
}

// handleClose takes the peer's <close/>. Data sent before it may still be
// on its way to handleData (each IQ has its own goroutine, possibly not yet
// started), so the close takes effect once no chunk is being handled and
// nothing has happened for closeSettle, or after reorderGrace at most. A
// chunk later still is answered item-not-found, so its sender knows.
func (c *Conn) handleClose(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.remoteClosed {
		return nil // crossing closes: both sides agree already
	}
	grace := time.NewTimer(reorderGrace)
	defer grace.Stop()
	settle := time.NewTimer(closeSettle)
	defer settle.Stop()
wait:
	for c.rerr == nil {
		ch := c.changed
		idle := c.busy == 0
		c.mu.Unlock()
		select {
		case <-ch:
			c.mu.Lock()
			settle.Reset(closeSettle)
		case <-settle.C:
			c.mu.Lock()
			if idle && c.busy == 0 {
				break wait
			}
			settle.Reset(closeSettle)
		case <-grace.C:
			c.mu.Lock()
			break wait
		case <-ctx.Done():
			c.mu.Lock()
			break wait
		}
	}
	c.remoteClosed = true
	c.notifyLocked()
	if c.m != nil {
		c.m.remove(c)
	}
	return nil
}

// deadline is a resettable deadline whose channel is closed when it passes.
type deadline struct {
	mu    sync.Mutex
	timer *time.Timer
	c     chan struct{}
}

func makeDeadline() deadline { return deadline{c: make(chan struct{})} }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.c // the timer fired: wait until its func closed c
	}
	d.timer = nil
	passed := isClosed(d.c)
	if t.IsZero() {
		if passed {
			d.c = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if passed {
			d.c = make(chan struct{})
		}
		c := d.c
		d.timer = time.AfterFunc(dur, func() { close(c) })
		return
	}
	if !passed {
		close(d.c)
	}
}

func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.c
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
