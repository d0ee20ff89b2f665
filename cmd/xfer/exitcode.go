package main

import (
	"errors"

	"xfer/internal/fault"
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
// Each package declares its errors' kinds (internal/fault); this only maps
// kinds to the documented codes.
func exitCodeFor(err error) ExitCode {
	var ue usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		return ExitUsage
	}
	return exitCodes[fault.Classify(err)]
}

var exitCodes = map[fault.Kind]ExitCode{
	fault.Other:       ExitError,
	fault.Timeout:     ExitTimeout,
	fault.Transfer:    ExitTransfer,
	fault.Refused:     ExitRefused,
	fault.NoProxy:     ExitNoProxy,
	fault.Connect:     ExitConnect,
	fault.Auth:        ExitAuth,
	fault.Interrupted: ExitInterrupted,
}
