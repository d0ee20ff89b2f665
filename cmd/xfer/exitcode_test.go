package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"xfer/internal/ibb"
	"xfer/internal/jingle"
	"xfer/internal/negotiate"
	"xfer/internal/probe"
	"xfer/internal/s5b"
	"xfer/internal/session"
	"xfer/internal/transfer"
	"xfer/internal/upload"
)

// The documented exit codes, decided in one place, for every kind of
// failure a script may meet.
func TestExitCodes(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("transfer: x.bin: %w", err) }
	for _, tc := range []struct {
		err  error
		want ExitCode
	}{
		{nil, ExitOK},
		{usageError{errors.New("bad flag")}, ExitUsage},
		{wrap(session.ErrConnect), ExitConnect},
		{wrap(session.ErrTLS), ExitConnect},
		{wrap(session.ErrDisconnected), ExitConnect},
		{wrap(session.ErrAuth), ExitAuth},
		{wrap(transfer.ErrRefused), ExitRefused},
		{wrap(negotiate.ErrDeclined), ExitRefused},
		{wrap(negotiate.ErrUnavailable), ExitRefused},
		{wrap(transfer.ErrNoRecipient), ExitRefused},
		{wrap(context.DeadlineExceeded), ExitTimeout},
		{wrap(session.ErrNoReply), ExitTimeout},
		{wrap(transfer.ErrIntegrity), ExitTransfer},
		{wrap(transfer.ErrTruncated), ExitTransfer},
		{wrap(transfer.ErrTooLong), ExitTransfer},
		{wrap(errors.Join(transfer.ErrStalled, context.DeadlineExceeded)), ExitTransfer},
		{wrap(ibb.ErrUnexpectedSeq), ExitTransfer},
		{wrap(s5b.ErrNoStreamhost), ExitTransfer},
		{wrap(probe.ErrNoWorkingProxy), ExitNoProxy},
		// Once fell to exit 1: every sentinel now says its kind.
		{wrap(s5b.ErrAuthRequired), ExitTransfer},
		{wrap(negotiate.ErrBadAccept), ExitTransfer},
		{wrap(upload.ErrMalformed), ExitTransfer},
		{wrap(session.ErrServerProof), ExitAuth},
		{wrap(fmt.Errorf("%w: %w", transfer.ErrRefused, &jingle.TerminatedError{Reason: jingle.ReasonDecline})), ExitRefused},
		{wrap(&jingle.TerminatedError{Reason: jingle.ReasonMediaError}), ExitTransfer},
		{wrap(jingle.ErrSecurity), ExitRefused},
		{wrap(jingle.ErrNoTransport), ExitTransfer},
		{wrap(fmt.Errorf("%w (%w)", ibb.ErrClosedByPeer, context.Canceled)), ExitInterrupted},
		{wrap(context.Canceled), ExitInterrupted},
		{errors.New("something else"), ExitError},
	} {
		if got := exitCodeFor(tc.err); got != tc.want {
			t.Errorf("exitCodeFor(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
