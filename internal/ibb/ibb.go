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
// stays bounded on both sides: the sender keeps at most its window of chunks
// unacknowledged (adaptive, up to MaxInFlight bytes, see window.go), and the
// receiver acknowledges a chunk only once it has room for it, so a slow
// reader slows the sender down.
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

	// DefaultWindow is how many chunks the adaptive window starts with and
	// never goes below unless acknowledgements near AckTimeout. Several
	// chunks in flight hide the per-stanza round trip (Prosody leaves Nagle
	// on: stop-and-wait stalls about 44 ms per block).
	DefaultWindow = 16

	// DefaultMaxInFlight bounds the adaptive window: 1 MiB unacknowledged
	// fills an 80 ms round trip at 13 MB/s, more than a server relays
	// in-band.
	DefaultMaxInFlight = 1 << 20

	// DefaultThrottleAfter and DefaultThrottleRate: a stream whose wire rate
	// stays flat under 50 kB/s for 10 s while chunks queue is taken to be
	// rate-limited by the server (Options.Throttled).
	DefaultThrottleAfter = 10 * time.Second
	DefaultThrottleRate  = 50_000

	// DefaultAckTimeout bounds the wait for each chunk's acknowledgement and
	// for the answer to open and close.
	DefaultAckTimeout = 30 * time.Second

	// maxAheadBytes, minAhead and maxAhead bound how far ahead of the next
	// expected seq a chunk may be (aheadLimit). Chunks arrive out of order
	// only because the session dispatches every IQ on its own goroutine,
	// and they pile up behind the next one while the reader is slow: so a
	// receiver takes a whole window of a sender of ours (DefaultMaxInFlight,
	// twice over); anything further is a protocol error, and the bound caps
	// what waits in memory (a block and a goroutine per chunk).
	maxAheadBytes = 2 * DefaultMaxInFlight
	minAhead      = 64
	maxAhead      = 1024

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
	// AlignRecords makes an opener whose session aligns its writes
	// (session.AlignWrites: Prosody reads a client's stream 8 KiB at a
	// time, and pauses a millisecond after a read that ended inside a TLS
	// record) ask for the block size whose chunk stanzas fill records of
	// session.AlignSize bytes (FillBlockSize, about 5.9 KB) instead of
	// BlockSize, and align the session's writes while it sends. BlockSize
	// stays where the JIDs are too long for it; a peer that asks for
	// smaller blocks gets them, unaligned.
	AlignRecords bool
	// MaxBlockSize is the largest block size an accepting Manager agrees
	// to (default and maximum MaxBlockSize); larger opens are answered
	// resource-constraint.
	MaxBlockSize int
	// Window, if set, fixes how many chunks a writer keeps unacknowledged
	// (at most what a receiver of ours holds ahead: 64 to 1024 chunks,
	// 2 MiB at 4096-byte blocks). Zero, the default, adapts the window to
	// the path: from DefaultWindow chunks up to MaxInFlight bytes.
	Window int
	// MaxInFlight bounds the adaptive window in bytes (default
	// DefaultMaxInFlight, 1 MiB; capped like Window). Ignored with Window.
	MaxInFlight int
	// AckTimeout bounds the wait for each chunk's acknowledgement, for the
	// answer to close, and for a reader to make room for an incoming chunk
	// (default DefaultAckTimeout).
	AckTimeout time.Duration

	// Throttled, if set, is called once per stream, on a goroutine of the
	// stream's, when a writer's stream looks rate-limited by the server
	// (see throttle in window.go): bytesPerSecond is the rate on the wire
	// (stanzas, not payload), about the server's limit. Conn.OnThrottled
	// sets it for one stream.
	Throttled func(bytesPerSecond float64)
	// ThrottleAfter is how long the rate must stay flat before Throttled
	// is called (default DefaultThrottleAfter); ThrottleRate the wire rate
	// in bytes per second under which it counts (default
	// DefaultThrottleRate). Tests shorten them.
	ThrottleAfter time.Duration
	ThrottleRate  int

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
	if o.Window < 0 {
		o.Window = 0
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.ThrottleAfter <= 0 {
		o.ThrottleAfter = DefaultThrottleAfter
	}
	if o.ThrottleRate <= 0 {
		o.ThrottleRate = DefaultThrottleRate
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = DefaultAckTimeout
	}
	return o
}

// aheadLimit is how many chunks past the next expected one a receiver of
// ours holds, for a block size: maxAheadBytes' worth, within minAhead and
// maxAhead chunks. Windows are capped at it, so that a sender of ours never
// trips a receiver of ours.
func aheadLimit(blockSize int) int {
	return min(max(maxAheadBytes/max(blockSize, 1), minAhead), maxAhead)
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

// aligner is a session that can align its writes to records
// (session.Session.AlignWrites).
type aligner interface{ AlignWrites(on bool) }

// FillBlockSize is the largest block size (a multiple of 3: no base64
// padding) whose chunk stanzas to peer for stream sid, with the longest
// sequence number, fit in an aligned record (session.AlignSize bytes); 0
// where that is under 1024 (long JIDs), too little to be worth aligning.
func FillBlockSize(peer, sid string) int {
	empty := session.IQ{Type: session.TypeSet, ID: session.NewID(), To: peer, Payload: marshalData(sid, 65535, nil)}
	room := session.AlignSize - len(empty.Marshal())
	bs := room / 4 * 3
	if bs < 1024 {
		return 0
	}
	return min(bs, MaxBlockSize)
}
