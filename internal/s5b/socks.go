package s5b

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// SOCKS5 wire values (RFC 1928) used by XEP-0065.
const (
	socksVersion = 5

	methodNoAuth       = 0x00
	methodNoAcceptable = 0xff

	cmdConnect = 0x01

	atypIPv4   = 0x01
	atypDomain = 0x03
	atypIPv6   = 0x04
)

// Reply is a SOCKS5 reply code (RFC 1928 §6).
type Reply byte

// Reply codes.
const (
	ReplySucceeded           Reply = 0x00
	ReplyGeneralFailure      Reply = 0x01
	ReplyNotAllowed          Reply = 0x02
	ReplyNetworkUnreachable  Reply = 0x03
	ReplyHostUnreachable     Reply = 0x04
	ReplyConnectionRefused   Reply = 0x05
	ReplyTTLExpired          Reply = 0x06
	ReplyCommandNotSupported Reply = 0x07
	ReplyAddressNotSupported Reply = 0x08
)

var replyText = [...]string{
	"succeeded",
	"general SOCKS server failure",
	"connection not allowed by ruleset",
	"network unreachable",
	"host unreachable",
	"connection refused",
	"TTL expired",
	"command not supported",
	"address type not supported",
}

func (r Reply) String() string {
	if int(r) < len(replyText) {
		return replyText[r]
	}
	return "unknown reply " + strconv.Itoa(int(r))
}

// ReplyError is a SOCKS5 CONNECT answered with a failure code. It matches
// ErrRefused with errors.Is.
type ReplyError struct {
	Code Reply
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("%v: %v (%d)", ErrRefused, e.Code, byte(e.Code))
}

func (e *ReplyError) Unwrap() error { return ErrRefused }

// ClientHandshake runs the client side of the XEP-0065 SOCKS5 handshake on
// conn: NO-AUTH, then CONNECT to dstAddr (normally DstAddr's hash) port 0.
// The greeting and the CONNECT go out as separate writes, each after the
// previous reply, because Prosody's proxy65 handles one message per read.
//
// ctx's deadline is set on conn and its cancellation unblocks the I/O; the
// conn's deadline is cleared on return. On success conn carries the
// bytestream; on failure the caller closes it.
func ClientHandshake(ctx context.Context, conn net.Conn, dstAddr string) error {
	if err := checkDstAddr(dstAddr); err != nil {
		return err
	}
	if err := clientGreeting(ctx, conn); err != nil {
		return err
	}
	return ClientConnect(ctx, conn, dstAddr)
}

func checkDstAddr(dstAddr string) error {
	if len(dstAddr) == 0 || len(dstAddr) > 255 {
		return fmt.Errorf("s5b: destination address of %d bytes (want 1 to 255)", len(dstAddr))
	}
	return nil
}

// clientGreeting offers NO-AUTH and reads the method the server chose.
func clientGreeting(ctx context.Context, conn net.Conn) (err error) {
	stop, err := watchContext(ctx, conn)
	if err != nil {
		return err
	}
	defer func() { err = stop(err) }()
	if _, err := conn.Write([]byte{socksVersion, 1, methodNoAuth}); err != nil {
		return fmt.Errorf("s5b: sending SOCKS5 greeting: %w", err)
	}
	var b [4]byte
	if _, err := io.ReadFull(conn, b[:2]); err != nil {
		return fmt.Errorf("%w: reading method selection: %w", ErrProtocol, err)
	}
	if b[0] != socksVersion {
		return fmt.Errorf("%w: method selection has version %d", ErrProtocol, b[0])
	}
	switch b[1] {
	case methodNoAuth:
	case methodNoAcceptable:
		return ErrAuthRequired
	default:
		return fmt.Errorf("%w: server chose method %#x, which was not offered", ErrProtocol, b[1])
	}
	return nil
}

// ClientConnect is the second half of ClientHandshake, on a conn whose
// greeting is done (Greet): the CONNECT to dstAddr and its reply.
func ClientConnect(ctx context.Context, conn net.Conn, dstAddr string) (err error) {
	if err := checkDstAddr(dstAddr); err != nil {
		return err
	}
	stop, err := watchContext(ctx, conn)
	if err != nil {
		return err
	}
	defer func() { err = stop(err) }()
	var b [4]byte
	req := make([]byte, 0, 7+len(dstAddr))
	req = append(req, socksVersion, cmdConnect, 0, atypDomain, byte(len(dstAddr)))
	req = append(req, dstAddr...)
	req = append(req, 0, 0) // DST.PORT 0, as XEP-0065 requires
	if _, err := conn.Write(req); err != nil {
		return fmt.Errorf("s5b: sending SOCKS5 CONNECT: %w", err)
	}
	if _, err := io.ReadFull(conn, b[:4]); err != nil {
		return fmt.Errorf("%w: reading CONNECT reply: %w", ErrProtocol, err)
	}
	if b[0] != socksVersion {
		return fmt.Errorf("%w: CONNECT reply has version %d", ErrProtocol, b[0])
	}
	if code := Reply(b[1]); code != ReplySucceeded {
		return &ReplyError{Code: code}
	}
	// The bound address is read whole so that no byte of it is taken for
	// stream data. XEP-0065 has the streamhost echo our hash: a different
	// hash means it paired us with another stream, so it is refused. An IP
	// address instead of a name (some proxies) carries no such claim.
	var n int
	switch b[3] {
	case atypIPv4:
		n = 4
	case atypIPv6:
		n = 16
	case atypDomain:
		if _, err := io.ReadFull(conn, b[:1]); err != nil {
			return fmt.Errorf("%w: reading CONNECT reply: %w", ErrProtocol, err)
		}
		n = int(b[0])
	default:
		return fmt.Errorf("%w: CONNECT reply has address type %d", ErrProtocol, b[3])
	}
	bound := make([]byte, n+2)
	if _, err := io.ReadFull(conn, bound); err != nil {
		return fmt.Errorf("%w: reading CONNECT reply: %w", ErrProtocol, err)
	}
	if b[3] == atypDomain && !strings.EqualFold(string(bound[:n]), dstAddr) {
		return fmt.Errorf("%w: the streamhost answered for another destination (%q)", ErrProtocol, bound[:n])
	}
	return nil
}

// Dial connects to a streamhost and runs the client handshake, the whole
// within timeout (when positive) and ctx. The returned conn is the dialer's
// own (a *net.TCPConn), so CloseWrite is available.
func Dial(ctx context.Context, h Streamhost, dstAddr string, timeout time.Duration) (net.Conn, error) {
	if err := checkDstAddr(dstAddr); err != nil {
		return nil, err
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	conn, err := Greet(ctx, h, 0)
	if err != nil {
		return nil, err
	}
	if err := ClientConnect(ctx, conn, dstAddr); err != nil {
		conn.Close()
		return nil, fmt.Errorf("s5b: streamhost %s (%s): %w", h.JID, h.Addr(), err)
	}
	return conn, nil
}

// Greet connects to a streamhost and runs the SOCKS5 greeting, within
// timeout (when positive) and ctx, leaving the CONNECT, which names the
// stream, to ClientConnect. A requester greets its proxies while the
// target is still connecting, so that the round trips of the TCP and
// SOCKS5 handshakes overlap the target's; it names the stream only once
// the target reported the proxy it used, as XEP-0065 orders it: some
// proxies take the first connection of a stream for the target's.
func Greet(ctx context.Context, h Streamhost, timeout time.Duration) (net.Conn, error) {
	if h.Host == "" || h.Port < 1 || h.Port > 65535 {
		return nil, fmt.Errorf("%w: %q port %d", ErrBadStreamhost, h.Host, h.Port)
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", h.Addr())
	if err != nil {
		return nil, fmt.Errorf("s5b: connecting to streamhost %s (%s): %w", h.JID, h.Addr(), err)
	}
	if err := clientGreeting(ctx, conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("s5b: streamhost %s (%s): %w", h.JID, h.Addr(), err)
	}
	return conn, nil
}

// aLongTimeAgo is a deadline in the past, to unblock I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// watchContext applies ctx to conn's I/O for the length of a handshake: its
// deadline becomes conn's, and cancellation sets a past deadline. The
// returned stop ends the watch, clears the deadline and, when ctx ended the
// I/O, turns the I/O error into one that matches ctx.Err().
func watchContext(ctx context.Context, conn net.Conn) (stop func(error) error, err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("s5b: SOCKS5 handshake: %w", err)
	}
	deadline, hasDeadline := ctx.Deadline()
	if hasDeadline {
		if err := conn.SetDeadline(deadline); err != nil {
			return nil, fmt.Errorf("s5b: setting deadline: %w", err)
		}
	}
	if ctx.Done() == nil { // never cancelled: nothing to watch
		return func(err error) error {
			_ = conn.SetDeadline(time.Time{})
			return err
		}, nil
	}
	done := make(chan struct{})
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		select {
		case <-ctx.Done():
			_ = conn.SetDeadline(aLongTimeAgo)
		case <-done:
		}
	}()
	return func(err error) error {
		close(done)
		<-watcherDone // no SetDeadline from the watcher after this point
		_ = conn.SetDeadline(time.Time{})
		if err == nil {
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("s5b: SOCKS5 handshake: %w (%w)", cerr, err)
		}
		// The conn's deadline may fire a hair before ctx's timer does.
		if hasDeadline && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(deadline) {
			return fmt.Errorf("s5b: SOCKS5 handshake: %w (%w)", context.DeadlineExceeded, err)
		}
		return err
	}, nil
}

// readRequest runs the server side of the handshake up to the CONNECT
// request and returns its destination address. It reads exactly the
// handshake's bytes, so a client that sends greeting and CONNECT in one
// write is served as well as one that waits. Bad requests get a failure
// reply where SOCKS5 has one; the caller closes the conn on error, and
// answers a good request with writeReply.
func readRequest(conn net.Conn) (string, error) {
	var b [257]byte
	if _, err := io.ReadFull(conn, b[:2]); err != nil {
		return "", fmt.Errorf("%w: reading greeting: %w", ErrProtocol, err)
	}
	if b[0] != socksVersion {
		return "", fmt.Errorf("%w: greeting has version %d", ErrProtocol, b[0])
	}
	nmethods := int(b[1])
	if _, err := io.ReadFull(conn, b[:nmethods]); err != nil {
		return "", fmt.Errorf("%w: reading greeting: %w", ErrProtocol, err)
	}
	noAuth := false
	for _, m := range b[:nmethods] {
		noAuth = noAuth || m == methodNoAuth
	}
	if !noAuth {
		_, _ = conn.Write([]byte{socksVersion, methodNoAcceptable})
		return "", fmt.Errorf("%w: client does not offer NO-AUTH", ErrProtocol)
	}
	if _, err := conn.Write([]byte{socksVersion, methodNoAuth}); err != nil {
		return "", fmt.Errorf("s5b: sending method selection: %w", err)
	}

	if _, err := io.ReadFull(conn, b[:4]); err != nil {
		return "", fmt.Errorf("%w: reading CONNECT: %w", ErrProtocol, err)
	}
	switch {
	case b[0] != socksVersion:
		return "", fmt.Errorf("%w: request has version %d", ErrProtocol, b[0])
	case b[1] != cmdConnect:
		_ = writeReply(conn, ReplyCommandNotSupported, "")
		return "", fmt.Errorf("%w: command %d is not CONNECT", ErrProtocol, b[1])
	case b[3] != atypDomain:
		_ = writeReply(conn, ReplyAddressNotSupported, "")
		return "", fmt.Errorf("%w: address type %d is not a domain name", ErrProtocol, b[3])
	}
	if _, err := io.ReadFull(conn, b[:1]); err != nil {
		return "", fmt.Errorf("%w: reading CONNECT: %w", ErrProtocol, err)
	}
	n := int(b[0])
	if _, err := io.ReadFull(conn, b[:n+2]); err != nil {
		return "", fmt.Errorf("%w: reading CONNECT: %w", ErrProtocol, err)
	}
	addr := string(b[:n])
	if b[n] != 0 || b[n+1] != 0 {
		_ = writeReply(conn, ReplyNotAllowed, "")
		return "", fmt.Errorf("%w: destination port %d, not 0", ErrProtocol, int(b[n])<<8|int(b[n+1]))
	}
	return addr, nil
}

// writeReply sends a CONNECT reply. A success echoes the destination
// address, as XEP-0065 asks; a failure carries an empty IPv4 address.
func writeReply(conn net.Conn, code Reply, addr string) error {
	var msg []byte
	if code == ReplySucceeded {
		msg = append([]byte{socksVersion, byte(code), 0, atypDomain, byte(len(addr))}, addr...)
	} else {
		msg = []byte{socksVersion, byte(code), 0, atypIPv4, 0, 0, 0, 0}
	}
	msg = append(msg, 0, 0)
	_, err := conn.Write(msg)
	return err
}
