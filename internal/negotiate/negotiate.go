// Package negotiate implements XEP-0095: Stream Initiation with the XEP-0096
// SI File Transfer profile, negotiating the stream method with XEP-0020
// Feature Negotiation over an XEP-0004 data form.
//
// Use it to offer a file to a peer and learn which bytestream (XEP-0065
// SOCKS5 or XEP-0047 IBB) and which byte range it accepted, or to answer such
// offers. XEP-0096 is deprecated in favour of Jingle File Transfer, but it is
// what Psi, Pidgin, Spark/Smack, QXmpp and gloox still speak, so it is the
// one xfer uses. The package only builds and parses the <si/> payloads and
// maps refusals to errors; the bytestreams themselves live in s5b and ibb,
// and the negotiated SID becomes their sid.
//
// Offers and accepts are built strictly and parsed leniently: real clients
// omit hash and date (Pidgin), send dates without milliseconds, and old
// Smack put two values into a submit form.
package negotiate

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"xfer/internal/fault"
	"xfer/internal/session"
)

// Namespaces.
const (
	NS             = "http://jabber.org/protocol/si"
	NSFileTransfer = "http://jabber.org/protocol/si/profile/file-transfer"
	NSFeatureNeg   = "http://jabber.org/protocol/feature-neg"
	NSData         = "jabber:x:data"
)

// Stream methods, named by their protocol's namespace as XEP-0095 requires.
const (
	MethodS5B = "http://jabber.org/protocol/bytestreams"
	MethodIBB = "http://jabber.org/protocol/ibb"
)

// Errors a caller may test with errors.Is. Refusals from the peer wrap the
// original *session.StanzaError as well.
var (
	ErrBadOffer       = fault.New(fault.Transfer, "negotiate: malformed offer")
	ErrBadAccept      = fault.New(fault.Transfer, "negotiate: malformed accept")
	ErrBadProfile     = fault.New(fault.Refused, "negotiate: unsupported stream initiation profile")
	ErrNoValidStreams = fault.New(fault.Refused, "negotiate: no stream method in common")
	ErrDeclined       = fault.New(fault.Refused, "negotiate: offer declined")
	ErrUnavailable    = fault.New(fault.Refused, "negotiate: peer does not support file transfer or is unavailable")
)

// IQSender is what Send needs from a session.
type IQSender interface {
	SendIQ(context.Context, *session.IQ) (*session.IQ, error)
}

// Send offers o to the full JID to and waits for the answer. It returns the
// peer's choice of method and range, or a refusal mapped by Refusal.
//
// The returned range is checked against o.File.Size. It is returned even if
// o.File.CanRange was false: sending exactly the range asked for is always
// what the receiver expects.
func Send(ctx context.Context, s IQSender, to string, o *Offer) (*Accept, error) {
	payload, err := o.Marshal()
	if err != nil {
		return nil, err
	}
	res, err := s.SendIQ(ctx, &session.IQ{Type: session.TypeSet, To: to, Payload: payload})
	if err != nil {
		return nil, Refusal(err)
	}
	a, err := ParseAccept(res.Payload, o.Methods)
	if err != nil {
		return nil, err
	}
	if a.Offset > o.File.Size || a.Length > o.File.Size-a.Offset {
		return nil, fmt.Errorf("%w: range offset %d length %d outside a file of %d bytes", ErrBadAccept, a.Offset, a.Length, o.File.Size)
	}
	return a, nil
}

// Handle returns a session handler for incoming offers, to be registered
// for IQ-set in namespace NS. It answers malformed offers itself (bad-request,
// bad-profile, no-valid-streams) and passes the rest to decide with the
// sender's full JID.
//
// decide returns the Accept to send, or a refusal: a *session.StanzaError
// (Declined, NoValidStreams, …) or an error matching ErrDeclined or
// ErrNoValidStreams; any other error is answered internal-server-error by
// the session. A nil Accept declines, and an Accept naming a method that was
// not offered is answered no-valid-streams, so a bug in decide cannot
// produce an answer the sender will reject.
func Handle(decide func(ctx context.Context, from string, o *Offer) (*Accept, error)) session.Handler {
	return func(ctx context.Context, iq *session.IQ) ([]byte, error) {
		o, err := ParseOffer(iq.Payload)
		if err != nil {
			return nil, stanzaError(err)
		}
		a, err := decide(ctx, iq.From, o)
		if err != nil {
			return nil, stanzaError(err)
		}
		if a == nil {
			return nil, Declined("")
		}
		if !slices.Contains(o.Methods, a.Method) {
			return nil, NoValidStreams()
		}
		return a.Marshal(), nil
	}
}

// stanzaError turns one of our sentinels into the refusal XEP-0095 defines
// for it, leaving stanza errors and unknown errors alone.
func stanzaError(err error) error {
	var se *session.StanzaError
	switch {
	case errors.As(err, &se):
		return se
	case errors.Is(err, ErrBadProfile):
		return BadProfile()
	case errors.Is(err, ErrNoValidStreams):
		return NoValidStreams()
	case errors.Is(err, ErrDeclined):
		return Declined("")
	case errors.Is(err, ErrBadOffer):
		return session.NewError(session.CondBadRequest, err.Error())
	}
	return err
}

// Choose returns the first of the receiver's supported methods, in the
// receiver's order of preference, that o offers, or "" if none is.
func (o *Offer) Choose(supported ...string) string {
	for _, m := range supported {
		if slices.Contains(o.Methods, m) {
			return m
		}
	}
	return ""
}
