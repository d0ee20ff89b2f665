// Package ibb implements XEP-0047: In-Band Bytestreams, a bidirectional
// bytestream carried inside the XMPP stream itself as base64 chunks in IQ
// stanzas.
//
// IBB is the fallback of last resort: every chunk crosses the server, grows
// by a third in base64 and waits for an acknowledgement, and servers apply
// stanza-size limits and rate shapers to it. Use it only when no SOCKS5
// bytestream (XEP-0065) can be set up.
//
// A Conn is a net.Conn. The opening side calls Open (or Manager.Open); the
// accepting side registers a Manager on its session once, names the stream it
// expects with Expect before the peer may open it, then calls Accept. Memory
// stays bounded on both sides: the sender keeps at most Window chunks
// unacknowledged, and the receiver acknowledges a chunk only once it has
// room for it, so a slow reader slows the sender down.
//
// Only IQ mode is implemented; opens asking for message stanzas are refused,
// since messages carry no acknowledgement and so no backpressure.
package ibb

import (
	"context"
	"errors"
	"net"
	"os"
	"time"

	"xfer/internal/fault"
	"xfer/internal/session"
)

// NS is the XEP-0047 namespace.
const NS = "http://jabber.org/protocol/ibb"

const (
	// MaxBlockSize is the largest block size XEP-0047 allows (bytes before
	// base64). It is also safe under Prosody's and ejabberd's default
	// stanza-size limits.
	MaxBlockSize = 65535

	// minRetryBlockSize is the floor for block sizes tried after a
	// resource-constraint answer; below it IBB is too slow to be worth it.
	minRetryBlockSize = 512

	// DefaultWindow is how many chunks a sender keeps unacknowledged. Several
	// chunks in flight hide the per-stanza round trip (Prosody leaves Nagle
	// on: stop-and-wait stalls about 44 ms per block).
	DefaultWindow = 16

	// DefaultAckTimeout bounds the wait for each chunk's acknowledgement and
	// for the answer to open and close.
	DefaultAckTimeout = 30 * time.Second

	// maxAhead bounds how far ahead of the next expected seq a chunk may be.
	// Chunks arrive out of order only because the session dispatches every
	// IQ on its own goroutine, so a few windows' worth is plenty; anything
	// further is a protocol error, and the bound caps what waits in memory.
	maxAhead = 64

	// reorderGrace is how long a chunk waits for a missing predecessor, and
	// how long a close waits for data that arrived before it, before the
	// gap is taken to be real.
	reorderGrace = 2 * time.Second

	// closeSettle is how long a close waits for quiet before taking effect,
	// so that data IQs dispatched just before it are stored first.
	closeSettle = 50 * time.Millisecond
)

// Errors a caller may test with errors.Is. Stream failures seen by Read or
// Write wrap one of them.
var (
	ErrClosed        = errors.New("ibb: use of closed bytestream")
	ErrClosedByPeer  = fault.New(fault.Transfer, "ibb: bytestream closed by peer")
	ErrRefused       = fault.New(fault.Transfer, "ibb: peer refused the bytestream")
	ErrRejected      = fault.New(fault.Transfer, "ibb: peer rejected data")
	ErrUnexpectedSeq = fault.New(fault.Transfer, "ibb: unexpected sequence number")
	ErrBadData       = fault.New(fault.Transfer, "ibb: malformed data")
	ErrTimeout       = fault.New(fault.Timeout, "ibb: timed out")
	ErrSessionEnded  = fault.New(fault.Transfer, "ibb: XMPP session ended")
	ErrSIDInUse      = errors.New("ibb: sid already in use")
)

// Session is what IBB needs from an XMPP session: send an IQ and wait for
// its answer, route incoming IQs to a handler, and know our own JID.
// *session.Session implements it. If the value also has a
// Done() <-chan struct{} method, streams fail with ErrSessionEnded when it
// is closed.
type Session interface {
	SendIQ(ctx context.Context, iq *session.IQ) (*session.IQ, error)
	Handle(typ, ns string, h session.Handler)
	JID() string
}

// Options tune a bytestream. The zero value gives the defaults.
type Options struct {
	// BlockSize is the block size an opener asks for (default and maximum
	// MaxBlockSize). If the peer answers resource-constraint, Open retries
	// with smaller powers of two down to 512.
	BlockSize int
	// MaxBlockSize is the largest block size an accepting Manager agrees
	// to (default and maximum MaxBlockSize); larger opens are answered
	// resource-constraint.
	MaxBlockSize int
	// Window is how many chunks a writer keeps unacknowledged (default
	// DefaultWindow, at most 64).
	Window int
	// AckTimeout bounds the wait for each chunk's acknowledgement, for the
	// answer to close, and for a reader to make room for an incoming chunk
	// (default DefaultAckTimeout).
	AckTimeout time.Duration

	// firstSeq is where both directions' sequence numbers start; tests set
	// it near 65535 to cross the wrap quickly. XEP-0047 says 0.
	firstSeq uint16
}

func (o Options) withDefaults() Options {
	if o.BlockSize <= 0 || o.BlockSize > MaxBlockSize {
		o.BlockSize = MaxBlockSize
	}
	if o.MaxBlockSize <= 0 || o.MaxBlockSize > MaxBlockSize {
		o.MaxBlockSize = MaxBlockSize
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.Window > maxAhead {
		o.Window = maxAhead // a larger window would trip our own receiver
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = DefaultAckTimeout
	}
	return o
}

// Addr is the address of one end of a bytestream: a full JID.
type Addr struct {
	JID string
}

// Network returns "ibb".
func (a Addr) Network() string { return "ibb" }

func (a Addr) String() string { return a.JID }

var _ net.Addr = Addr{}

// multiError carries a package-prefixed message while matching several
// targets with errors.Is, e.g. ErrClosed and net.ErrClosed.
type multiError struct {
	msg  string
	errs []error
}

func (e *multiError) Error() string   { return e.msg }
func (e *multiError) Unwrap() []error { return e.errs }

// errConnClosed is what I/O on a closed Conn returns; it matches
// net.ErrClosed as net.Conn users expect.
var errConnClosed = &multiError{msg: ErrClosed.Error(), errs: []error{ErrClosed, net.ErrClosed}}

// timeoutError reports a passed read or write deadline. It is a net.Error
// with Timeout() true and matches os.ErrDeadlineExceeded and ErrTimeout.
type timeoutError struct{ op string }

func (e *timeoutError) Error() string   { return "ibb: " + e.op + " deadline exceeded" }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }
func (e *timeoutError) Unwrap() []error { return []error{ErrTimeout, os.ErrDeadlineExceeded} }

var _ net.Error = (*timeoutError)(nil)

// sessionDone returns the session's Done channel if it has one.
func sessionDone(s Session) <-chan struct{} {
	if d, ok := s.(interface{ Done() <-chan struct{} }); ok {
		return d.Done()
	}
	return nil
}
