package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"
)

// NSPing is XEP-0199 XMPP Ping. The session answers pings, and pings its
// server (Config.PingInterval) to notice a connection that died silently.
const NSPing = "urn:xmpp:ping"

// DefaultPingInterval is how often a session pings its server when
// Config.PingInterval is zero.
const DefaultPingInterval = 30 * time.Second

// ErrPingTimeout says the server did not answer a ping in time: the
// connection is taken for dead (a cable pulled, a NAT that forgot us, a
// server that hangs), which a write alone notices only after TCP gives up,
// many minutes later.
var ErrPingTimeout = fmt.Errorf("%w: the server did not answer a ping", ErrDisconnected)

// answerPing is the XEP-0199 handler: an empty result.
func answerPing(context.Context, *IQ) ([]byte, error) { return nil, nil }

// pingLoop pings the server when nothing has arrived for interval, each
// ping waiting at most timeout for its answer. Any stanza proves the
// connection alive: an answer, even an error (a server without XEP-0199
// says service-unavailable), or anything else that arrived meanwhile (a
// ping's answer may queue behind a throttled in-band transfer, whose
// acknowledgements then keep coming). Silence ends the session, and
// closing the connection unblocks whatever was waiting on it.
func (s *Session) pingLoop(interval, timeout time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-tick.C:
		}
		if time.Since(time.Unix(0, s.heard.Load())) < interval {
			continue
		}
		sent := time.Now().UnixNano()
		ctx, cancel := context.WithTimeout(s.ctx, timeout)
		_, err := s.SendIQ(ctx, &IQ{Type: TypeGet, To: s.domain, Payload: []byte(`<ping xmlns='urn:xmpp:ping'/>`)})
		cancel()
		if errors.Is(err, ErrNoReply) && s.heard.Load() < sent && s.fail(fmt.Errorf("%w within %s", ErrPingTimeout, timeout)) {
			_ = s.tr.close()
			return
		}
	}
}

// pingTimes returns the ping interval and timeout the configuration asks
// for; a zero interval means none.
func (cfg *Config) pingTimes() (every, wait time.Duration) {
	every, wait = cfg.PingInterval, cfg.PingTimeout
	switch {
	case every < 0:
		return 0, 0
	case every == 0:
		every = DefaultPingInterval
	}
	if wait <= 0 {
		wait = min(every, 30*time.Second)
	}
	return every, wait
}

// readFailure says in words why reading the stream failed. The library's
// decoder flattens its errors into text ("NextStart XML syntax error on
// line 1: unexpected EOF" is a server that went away).
func readFailure(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, net.ErrClosed):
		return "connection closed"
	case errors.Is(err, io.EOF), strings.HasSuffix(msg, "EOF"):
		return "the server closed the connection"
	case errors.Is(err, syscall.ECONNRESET), strings.HasSuffix(msg, "connection reset by peer"):
		return "the connection was reset (the server went away)"
	}
	return strings.TrimPrefix(msg, "NextStart ")
}
