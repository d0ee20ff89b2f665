package negotiate

import (
	"encoding/xml"
	"errors"
	"fmt"

	"xfer/internal/session"
)

// Application-specific error conditions of XEP-0095 §4.
var (
	condNoValidStreams = xml.Name{Space: NS, Local: "no-valid-streams"}
	condBadProfile     = xml.Name{Space: NS, Local: "bad-profile"}
)

// Declined is the refusal of an offer the user or policy does not want
// (XEP-0095 Example 8). An empty text becomes "Offer Declined", which is
// what clients show.
func Declined(text string) *session.StanzaError {
	if text == "" {
		text = "Offer Declined"
	}
	return &session.StanzaError{Type: "cancel", Condition: session.CondForbidden, Text: text}
}

// NoValidStreams is the refusal of an offer whose stream methods the
// receiver supports none of (XEP-0095 Example 9).
func NoValidStreams() *session.StanzaError {
	return &session.StanzaError{Type: "cancel", Condition: session.CondBadRequest, App: condNoValidStreams}
}

// BadProfile is the refusal of an offer in a profile other than file
// transfer (XEP-0095 Example 10).
func BadProfile() *session.StanzaError {
	return &session.StanzaError{Type: "modify", Condition: session.CondBadRequest, App: condBadProfile}
}

// Refusal classifies the error session.SendIQ returned for an offer. Stanza
// errors become ErrDeclined, ErrNoValidStreams, ErrBadProfile or
// ErrUnavailable, still wrapping the original; other errors (no reply,
// disconnection) and unknown conditions are returned unchanged.
func Refusal(err error) error {
	var se *session.StanzaError
	if !errors.As(err, &se) {
		return err
	}
	var kind error
	hint := ""
	switch {
	case se.App == condNoValidStreams:
		kind = ErrNoValidStreams
	case se.App == condBadProfile:
		kind = ErrBadProfile
	case se.Condition == session.CondForbidden, se.Condition == session.CondNotAcceptable:
		kind = ErrDeclined
	case se.Condition == session.CondBadRequest:
		// gosrc.io/xmpp drops application conditions, so a real
		// no-valid-streams arrives as a bare bad-request. Our offers are
		// always file transfer, so a bad profile is the unlikely reading.
		kind, hint = ErrNoValidStreams, " (probably: the peer answered bad-request without saying why)"
	case se.Condition == session.CondServiceUnavailable,
		se.Condition == session.CondFeatureNotImpl,
		se.Condition == session.CondRecipientUnavailable,
		se.Condition == session.CondItemNotFound,
		se.Condition == session.CondRemoteServerNotFound:
		kind = ErrUnavailable
	default:
		return err
	}
	return fmt.Errorf("%w%s: %w", kind, hint, err)
}
