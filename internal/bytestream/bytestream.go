// Package bytestream holds what xfer's two file-transfer negotiators share
// about the bytestreams they set up: XEP-0065/XEP-0260 SOCKS5 (through
// package s5b) and XEP-0047/XEP-0261 in-band (through package ibb). Package
// si (XEP-0096 Stream Initiation) and package jingle (XEP-0234 Jingle File
// Transfer) take the same Options and settle on the same Stream, so that
// the orchestrator treats both generations alike.
package bytestream

import (
	"context"
	"net"
	"time"

	"xfer/internal/ibb"
	"xfer/internal/s5b"
	"xfer/internal/session"
)

// Session is what the negotiators need from an XMPP session: send an IQ
// and wait for its answer, route incoming IQs to a handler, and know our
// own JID. *session.Session implements it.
type Session interface {
	SendIQ(ctx context.Context, iq *session.IQ) (*session.IQ, error)
	Handle(typ, ns string, h session.Handler)
	JID() string
}

// Options say which bytestreams a transfer may use, and how.
type Options struct {
	// NoS5B offers and accepts no SOCKS5: in-band only.
	NoS5B bool
	// Server is our own SOCKS5 streamhost, or nil; Direct lists the
	// addresses to advertise for it (their JIDs are ignored).
	Server *s5b.Server
	Direct []s5b.Streamhost
	// Proxies are the streamhosts of the proxies to offer (JID = proxy).
	Proxies []s5b.Streamhost
	// NoDirect dials none of the peer's direct streamhosts: proxies only.
	NoDirect bool
	// HostTimeout bounds each streamhost's connect and handshake, and each
	// wait for a peer's connection or activation (default 5 s).
	HostTimeout time.Duration

	// NoIBB offers and accepts no in-band fallback.
	NoIBB bool
	// IBB options for the streams this side opens (block size, window…).
	IBB ibb.Options
	// InBand accepts the in-band streams a peer opens; needed to receive.
	InBand *ibb.Manager
}

// HostTimeoutOrDefault is HostTimeout, or 5 s when unset.
func (o *Options) HostTimeoutOrDefault() time.Duration {
	if o.HostTimeout > 0 {
		return o.HostTimeout
	}
	return 5 * time.Second
}

// Stream is an established bytestream of a transfer.
type Stream struct {
	net.Conn
	Method   string // "s5b" or "ibb"
	Via      string // for s5b: "direct" or "proxy JID"
	Fallback string // why the transfer moved to in-band, if it did
}

// Abort ends the stream at once, without the orderly close an in-band
// stream does (waiting for its chunks' acknowledgements): for Ctrl-C.
func (s *Stream) Abort() {
	if a, ok := s.Conn.(interface{ Abort() }); ok {
		a.Abort()
		return
	}
	_ = s.Conn.Close()
}
