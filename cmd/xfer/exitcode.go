package main

import (
	"context"
	"errors"

	"xfer/internal/ibb"
	"xfer/internal/jingle"
	"xfer/internal/negotiate"
	"xfer/internal/oob"
	"xfer/internal/probe"
	"xfer/internal/s5b"
	"xfer/internal/session"
	"xfer/internal/transfer"
	"xfer/internal/upload"
)

// ExitCode is the process status; the values are documented in the README
// and stable for scripts.
type ExitCode int

const (
	ExitOK          ExitCode = 0
	ExitError       ExitCode = 1 // anything not listed below
	ExitUsage       ExitCode = 2 // bad flags or arguments
	ExitConnect     ExitCode = 3 // cannot reach the server, or TLS failed
	ExitAuth        ExitCode = 4 // the server refused the JID or password
	ExitRefused     ExitCode = 5 // the peer refused the transfer, or is not there to take it
	ExitTimeout     ExitCode = 6 // a wait ran out (accept, reply, stall)
	ExitTransfer    ExitCode = 7 // the transfer failed or did not verify
	ExitNoProxy     ExitCode = 8 // probe-proxy: no proxy passed the self-test
	ExitInterrupted ExitCode = 130
)

// usageError marks errors in flags and arguments.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// exitCodeFor decides the exit code of an error: the one place that does.
func exitCodeFor(err error) ExitCode {
	var ue usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		return ExitUsage
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.Is(err, session.ErrAuth):
		return ExitAuth
	case errors.Is(err, session.ErrConnect), errors.Is(err, session.ErrTLS), errors.Is(err, session.ErrDisconnected):
		return ExitConnect
	case errors.Is(err, probe.ErrNoWorkingProxy):
		return ExitNoProxy
	case errors.Is(err, transfer.ErrRefused), errors.Is(err, transfer.ErrNoRecipient),
		errors.Is(err, negotiate.ErrDeclined), errors.Is(err, negotiate.ErrNoValidStreams),
		errors.Is(err, negotiate.ErrBadProfile), errors.Is(err, negotiate.ErrUnavailable),
		errors.Is(err, jingle.ErrDeclined),
		// Out of band: over the upload service's max-file-size (refused
		// before any upload), no upload service, a file over --max-size.
		errors.Is(err, upload.ErrTooLarge), errors.Is(err, upload.ErrNoService),
		errors.Is(err, oob.ErrTooLarge), errors.Is(err, oob.ErrScheme):
		return ExitRefused
	case errors.Is(err, transfer.ErrIntegrity), errors.Is(err, transfer.ErrTruncated),
		errors.Is(err, transfer.ErrTooLong), errors.Is(err, transfer.ErrStalled),
		errors.Is(err, ibb.ErrClosedByPeer), errors.Is(err, ibb.ErrUnexpectedSeq), errors.Is(err, ibb.ErrBadData),
		errors.Is(err, ibb.ErrRefused), errors.Is(err, ibb.ErrRejected), errors.Is(err, ibb.ErrSessionEnded),
		errors.Is(err, s5b.ErrNoStreamhost), errors.Is(err, s5b.ErrProtocol), errors.Is(err, s5b.ErrRefused),
		errors.Is(err, jingle.ErrNoTransport), errors.Is(err, jingle.ErrTerminated), errors.Is(err, jingle.ErrMalformed),
		// Out of band: the URL could not be fetched (by the peer: it
		// answered item-not-found; or by us), the upload PUT failed.
		errors.Is(err, transfer.ErrFetch), errors.Is(err, oob.ErrFetch), errors.Is(err, oob.ErrStalled),
		errors.Is(err, upload.ErrPut):
		return ExitTransfer
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, session.ErrNoReply), errors.Is(err, ibb.ErrTimeout):
		return ExitTimeout
	}
	return ExitError
}
