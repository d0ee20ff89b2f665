// Package jingle implements XEP-0166: Jingle, with the XEP-0234 Jingle File
// Transfer application (urn:xmpp:jingle:apps:file-transfer:5) over the
// XEP-0260 SOCKS5 and XEP-0261 In-Band Bytestreams transports, and XEP-0300
// hashes.
//
// Use it to send files to, and receive them from, today's clients: Dino,
// Psi, Conversations and Libervia move files only with Jingle. Peers that
// speak only XEP-0096 Stream Initiation are served by package negotiate.
//
// The package holds the wire format (Parse, Marshal), a Manager that routes a
// session's Jingle requests to the session they belong to (by sid and the
// peer's full JID), and the two sides of a file transfer: Offer for the
// initiator that sends, Incoming for the responder that receives. The bytes
// move over package s5b's SOCKS5 connections or package ibb's streams: this
// package only negotiates which, with candidate exchange, nomination, proxy
// activation and transport-replace to in-band when no candidate works.
//
// Peers send Jingle stanzas in any order (the session dispatches every IQ on
// its own goroutine, and Libervia sends candidate-used before its
// session-accept): each side runs one loop over its session's events and
// never depends on their order.
package jingle

import (
	"fmt"

	"xfer/internal/fault"
)

// Namespaces.
const (
	NS             = "urn:xmpp:jingle:1"
	NSErrors       = "urn:xmpp:jingle:errors:1"
	NSFileTransfer = "urn:xmpp:jingle:apps:file-transfer:5"
	NSS5B          = "urn:xmpp:jingle:transports:s5b:1"
	NSIBB          = "urn:xmpp:jingle:transports:ibb:1"
	NSHashes       = "urn:xmpp:hashes:2"
	NSJET          = "urn:xmpp:jingle:jet:0"
)

// Features are what a Jingle file-transfer peer advertises in disco#info.
var Features = []string{NS, NSFileTransfer, NSS5B, NSIBB, NSHashes,
	"urn:xmpp:hash-function-text-names:sha-256", "urn:xmpp:hash-function-text-names:sha-1",
	"urn:xmpp:hash-function-text-names:sha-512", "urn:xmpp:hash-function-text-names:md5"}

// Actions of XEP-0166 §7.2 that xfer uses.
const (
	ActionSessionInitiate  = "session-initiate"
	ActionSessionAccept    = "session-accept"
	ActionSessionTerminate = "session-terminate"
	ActionSessionInfo      = "session-info"
	ActionTransportInfo    = "transport-info"
	ActionTransportReplace = "transport-replace"
	ActionTransportAccept  = "transport-accept"
	ActionTransportReject  = "transport-reject"
	ActionContentAdd       = "content-add"
)

// Reasons of XEP-0166 §7.4 that xfer sends or acts on.
const (
	ReasonSuccess               = "success"
	ReasonDecline               = "decline"
	ReasonBusy                  = "busy"
	ReasonCancel                = "cancel"
	ReasonConnectivityError     = "connectivity-error"
	ReasonFailedApplication     = "failed-application"
	ReasonFailedTransport       = "failed-transport"
	ReasonGeneralError          = "general-error"
	ReasonMediaError            = "media-error"
	ReasonSecurityError         = "security-error"
	ReasonTimeout               = "timeout"
	ReasonUnsupportedApps       = "unsupported-applications"
	ReasonUnsupportedTransports = "unsupported-transports"
)

// Errors a caller may test with errors.Is.
var (
	// ErrMalformed is a Jingle payload that cannot be parsed or breaks
	// XEP-0166's rules.
	ErrMalformed = fault.New(fault.Transfer, "jingle: malformed jingle element")
	// ErrTerminated is a session the peer ended; the error is a
	// *TerminatedError with the reason.
	ErrTerminated = fault.New(fault.Transfer, "jingle: session terminated by the peer")
	// ErrDeclined is a session the peer ended with <decline/> or <busy/>.
	ErrDeclined = fault.New(fault.Refused, "jingle: offer declined")
	// ErrNoTransport means neither SOCKS5 nor in-band could be set up.
	ErrNoTransport = fault.New(fault.Transfer, "jingle: no transport could be established")
	// ErrSessionGone is a session that ended locally or whose XMPP session
	// ended while it waited.
	ErrSessionGone = fault.New(fault.Transfer, "jingle: session ended")
	// ErrSecurity is an offer wrapped in Jingle Encrypted Transports
	// (XEP-0391), which xfer cannot decrypt.
	ErrSecurity = fault.New(fault.Refused, "jingle: encrypted transfer (JET) not supported")
	// ErrUnsupported is an offer of another application or only unknown
	// transports.
	ErrUnsupported = fault.New(fault.Refused, "jingle: unsupported application or transport")
)

// TerminatedError is a session ended by the peer, with its reason.
type TerminatedError struct {
	Reason string
	Text   string
}

func (e *TerminatedError) Error() string {
	s := "jingle: session terminated by the peer: " + e.Reason
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// Unwrap makes errors.Is match ErrTerminated, and ErrDeclined for a decline
// or busy.
func (e *TerminatedError) Unwrap() []error {
	if e.Reason == ReasonDecline || e.Reason == ReasonBusy {
		return []error{ErrTerminated, ErrDeclined}
	}
	return []error{ErrTerminated}
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}
