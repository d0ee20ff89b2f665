// Package transfer is xfer's orchestrator: it sends and receives files with
// XEP-0096 SI File Transfer, choosing the bytestream, applying the receive
// policy, writing files safely (.part, no overwrite, size and MD5 checked),
// and reporting progress and events. The protocol packages (negotiate, ibb,
// disco) do the wire work; cmd/xfer only wires flags to this package.
package transfer

import (
	"context"
	"errors"
	"io"
	"time"

	"xfer/internal/fault"
	"xfer/internal/session"
)

// Stream methods xfer can use, in order of preference.
const (
	MethodIBB = "http://jabber.org/protocol/ibb"
	MethodS5B = "http://jabber.org/protocol/bytestreams"
)

// Errors a caller may test with errors.Is.
var (
	ErrRefused     = fault.New(fault.Refused, "transfer: refused by the peer")
	ErrIntegrity   = fault.New(fault.Transfer, "transfer: integrity check failed")
	ErrTruncated   = fault.New(fault.Transfer, "transfer: stream ended before all bytes arrived")
	ErrTooLong     = fault.New(fault.Transfer, "transfer: peer sent more bytes than it declared")
	ErrStalled     = fault.New(fault.Transfer, "transfer: no data within the stall timeout")
	ErrNoRecipient = fault.New(fault.Refused, "transfer: no suitable recipient online")
	ErrFile        = errors.New("transfer: file error")
)

// Session is what transfers need from an XMPP session.
type Session interface {
	SendIQ(context.Context, *session.IQ) (*session.IQ, error)
	Handle(typ, ns string, h session.Handler)
	JID() string
	Online(bare string) []session.Presence
	Done() <-chan struct{}
}

// Event reports what happens, for the human summary and for --json. Type is
// one of: offer, accepted, refused, fallback, throttled, superseded,
// progress, done, error, and for a receiving Service online, disconnected
// and reconnected. A throttled event (once per file sent in-band) says the
// server rate-limits the account: Rate is about its limit, Error the
// advice (ThrottledMessage).
type Event struct {
	Type      string    `json:"type"`
	SID       string    `json:"sid,omitempty"`
	Direction string    `json:"direction"` // send or receive
	Peer      string    `json:"peer,omitempty"`
	File      string    `json:"file,omitempty"` // name as offered
	Path      string    `json:"path,omitempty"` // local path
	Size      int64     `json:"size"`
	Bytes     int64     `json:"bytes"`
	Offset    int64     `json:"offset,omitempty"`
	Method    string    `json:"method,omitempty"`
	Via       string    `json:"via,omitempty"` // s5b: "direct" or "proxy JID"
	Hash      string    `json:"md5,omitempty"`
	Digest    string    `json:"digest,omitempty"` // Jingle: "sha-256:HEX"
	URL       string    `json:"url,omitempty"`    // oob and upload: the file's URL
	Seconds   float64   `json:"seconds,omitempty"`
	Rate      float64   `json:"bytes_per_second,omitempty"`
	Renamed   bool      `json:"renamed,omitempty"`
	Error     string    `json:"error,omitempty"`
	ExitCode  int       `json:"exit_code,omitempty"` // filled in by the command for error events
	Err       error     `json:"-"`                   // the error of an error event
	Time      time.Time `json:"time"`
}

// Meter shows the progress of one file: bytes are written to it as they
// move. Finish is called once at the end.
type Meter interface {
	io.Writer
	Finish()
}

// MeterFunc makes a meter for a file of size bytes, starting at offset.
type MeterFunc func(name string, size, offset int64) Meter

type nopMeter struct{}

func (nopMeter) Write(p []byte) (int, error) { return len(p), nil }
func (nopMeter) Finish()                     {}

// Observer receives the events and meters of transfers.
type Observer struct {
	Event func(Event)
	Meter MeterFunc
}

func (o *Observer) emit(e Event) {
	if o != nil && o.Event != nil {
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		o.Event(e)
	}
}

func (o *Observer) meter(name string, size, offset int64) Meter {
	if o == nil || o.Meter == nil {
		return nopMeter{}
	}
	return o.Meter(name, size, offset)
}

// MethodName is the short name of a stream method for humans.
func MethodName(ns string) string {
	switch ns {
	case MethodIBB:
		return "ibb"
	case MethodS5B:
		return "s5b"
	}
	return ns
}

// stallReader fails a read that gets no byte within the timeout.
type stallReader struct {
	conn interface {
		io.Reader
		SetReadDeadline(time.Time) error
	}
	timeout time.Duration
}

func (r stallReader) Read(p []byte) (int, error) {
	if r.timeout > 0 {
		_ = r.conn.SetReadDeadline(time.Now().Add(r.timeout))
	}
	n, err := r.conn.Read(p)
	if err != nil && isTimeout(err) {
		return n, errors.Join(ErrStalled, err)
	}
	return n, err
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
