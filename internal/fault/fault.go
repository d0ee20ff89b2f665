// Package fault sorts xfer's errors into the kinds that scripts tell apart
// by exit code: each package declares its sentinel errors with New and the
// kind they are, and the command asks Classify once, whatever the package
// an error came from and however it was wrapped.
package fault

import (
	"context"
	"errors"
)

// Kind is a class of failure.
type Kind int

// The kinds, in the order Classify prefers them when an error carries
// several (an interruption explains everything after it; a refusal is more
// telling than the broken stream it led to; a timeout is the least).
const (
	Other       Kind = iota
	Timeout          // a wait ran out (accept, reply)
	Transfer         // the bytes did not arrive, or did not verify
	Refused          // the peer or a service refused, or is not there
	NoProxy          // no SOCKS5 proxy passed the self-test
	Connect          // the server cannot be reached, or TLS failed
	Auth             // the server refused the credentials
	Interrupted      // the user stopped it
)

var names = [...]string{"other", "timeout", "transfer", "refused", "no-proxy", "connect", "auth", "interrupted"}

func (k Kind) String() string {
	if k < 0 || int(k) >= len(names) {
		return "unknown"
	}
	return names[k]
}

// sentinel is an error that knows its kind.
type sentinel struct {
	kind Kind
	text string
}

func (s *sentinel) Error() string { return s.text }

// New returns a sentinel error of a kind, for errors.Is like errors.New.
func New(kind Kind, text string) error { return &sentinel{kind, text} }

// Classify returns the kind of err: the highest-ranked kind of any error in
// its tree (wrapped with %w or joined), Interrupted for context.Canceled,
// Timeout for context.DeadlineExceeded, Other when nothing tells.
func Classify(err error) Kind {
	best := Other
	walk(err, func(e error) {
		k := Other
		var s *sentinel
		switch {
		case errors.As(e, &s) && e == error(s):
			k = s.kind
		case e == context.Canceled:
			k = Interrupted
		case e == context.DeadlineExceeded:
			k = Timeout
		}
		if k > best {
			best = k
		}
	})
	return best
}

// walk calls f for err and every error it wraps, depth first.
func walk(err error, f func(error)) {
	for depth := 0; err != nil && depth < 100; depth++ {
		f(err)
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e, f)
			}
			return
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		default:
			return
		}
	}
}
