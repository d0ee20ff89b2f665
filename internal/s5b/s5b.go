// Package s5b implements XEP-0065: SOCKS5 Bytestreams, the out-of-band
// transport XEP-0096 file transfers prefer: a plain TCP connection, either
// straight to the requester or relayed by a proxy, opened with a minimal
// SOCKS5 handshake whose destination is a hash of the stream id and both
// full JIDs.
//
// Use it whenever the peers can reach each other or share a proxy; fall
// back to in-band bytestreams (XEP-0047) only when no streamhost works.
//
// The package holds the query payloads (ParseQuery and the Marshal
// functions), both sides of the SOCKS5 handshake (ClientHandshake, Dial and
// Server), the proxy exchanges (QueryProxy, Activate) and the requester and
// target flows (Request, Connect, Handle). It sees XMPP only through small
// interfaces over xfer/internal/session's plain stanza values.
package s5b

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"net"
	"strconv"

	"xfer/internal/fault"
)

// NS is the XEP-0065 namespace.
const NS = "http://jabber.org/protocol/bytestreams"

// DefaultPort is the streamhost port XEP-0065 implies when a streamhost
// names none.
const DefaultPort = 1080

// MaxStreamhosts bounds how many streamhosts of a query are kept and tried:
// a streamhost list is chosen by the peer, and each entry costs a dial.
const MaxStreamhosts = 8

// Errors a caller may test with errors.Is.
var (
	// ErrProtocol is a SOCKS5 peer breaking the protocol.
	ErrProtocol = fault.New(fault.Transfer, "s5b: SOCKS5 protocol error")
	// ErrRefused is a SOCKS5 server answering CONNECT with a failure; the
	// error is a *ReplyError carrying the code.
	ErrRefused = fault.New(fault.Transfer, "s5b: SOCKS5 connect refused")
	// ErrAuthRequired is a SOCKS5 server that refuses NO-AUTH (ejabberd's
	// mod_proxy65 with auth_type plain does).
	ErrAuthRequired = fault.New(fault.Transfer, "s5b: SOCKS5 server demands authentication")
	// ErrNoStreamhost means no streamhost could be used.
	ErrNoStreamhost = fault.New(fault.Transfer, "s5b: no usable streamhost")
	// ErrBadStreamhost is a streamhost without a usable host or port.
	ErrBadStreamhost = fault.New(fault.Transfer, "s5b: invalid streamhost")
	// ErrMalformed is a bytestreams payload that cannot be parsed.
	ErrMalformed = fault.New(fault.Transfer, "s5b: malformed bytestreams query")
	// ErrUnexpectedStreamhost is a streamhost-used naming a streamhost that
	// was not offered.
	ErrUnexpectedStreamhost = fault.New(fault.Transfer, "s5b: peer used a streamhost that was not offered")
	// ErrServerClosed is returned by a closed Server.
	ErrServerClosed = errors.New("s5b: server closed")
	// ErrDuplicate is a second expectation for the same destination address.
	ErrDuplicate = errors.New("s5b: destination address already expected")
)

// Streamhost is a host offering a bytestream: the requester itself, or a
// proxy (XEP-0065 §3).
type Streamhost struct {
	JID  string
	Host string // IP literal (v4 or v6, no brackets) or host name
	Port int
}

// Addr returns the streamhost's host:port, bracketing IPv6 literals.
func (h Streamhost) Addr() string {
	return net.JoinHostPort(h.Host, strconv.Itoa(h.Port))
}

// DstAddr returns the SOCKS5 destination address of a bytestream: the
// lower-case hex SHA-1 of the stream id and the requester's and target's
// full JIDs (XEP-0065 §5.3.2). Both sides and the proxy compute it, which is
// how a proxy pairs the two connections.
func DstAddr(sid, requester, target string) string {
	h := sha1.New()
	h.Write([]byte(sid))
	h.Write([]byte(requester))
	h.Write([]byte(target))
	return hex.EncodeToString(h.Sum(nil))
}
