package s5b

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Server defaults.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultMaxHandshakes    = 16
)

// ServerOptions tune a Server; the zero value gives the defaults.
type ServerOptions struct {
	// HandshakeTimeout bounds each connection's SOCKS5 handshake.
	HandshakeTimeout time.Duration
	// MaxHandshakes bounds the handshakes in progress at once; connections
	// beyond it are closed at once, since anyone on the network may connect.
	MaxHandshakes int
}

// Server is a direct streamhost: the requester's own SOCKS5 listener
// (XEP-0065 §5). It accepts only connections whose destination address was
// announced with Expect, one connection per address, and closes all others.
type Server struct {
	lns     []net.Listener
	timeout time.Duration
	sem     chan struct{}
	wg      sync.WaitGroup

	mu     sync.Mutex
	closed bool
	expect map[string]*expectation
	active map[net.Conn]struct{} // connections in handshake
}

type expState int

const (
	expWaiting   expState = iota
	expBusy               // a connection is being answered
	expDelivered          // the connection is in the channel or taken
)

type expectation struct {
	ch    chan net.Conn
	state expState
}

// Listen starts a Server on each TCP address, such as "127.0.0.1:0" or
// "[::]:0". It fails, closing what it opened, if any address fails: pass
// only the families the host supports.
func Listen(ctx context.Context, addrs []string, opts *ServerOptions) (*Server, error) {
	if len(addrs) == 0 {
		return nil, errors.New("s5b: Listen needs at least one address")
	}
	var lc net.ListenConfig
	var lns []net.Listener
	for _, a := range addrs {
		ln, err := lc.Listen(ctx, "tcp", a)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("s5b: listening on %s: %w", a, err)
		}
		lns = append(lns, ln)
	}
	return NewServer(lns, opts), nil
}

// NewServer starts a Server accepting on the given listeners, which it
// takes over: Close closes them.
func NewServer(lns []net.Listener, opts *ServerOptions) *Server {
	var o ServerOptions
	if opts != nil {
		o = *opts
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.MaxHandshakes <= 0 {
		o.MaxHandshakes = DefaultMaxHandshakes
	}
	s := &Server{
		lns:     lns,
		timeout: o.HandshakeTimeout,
		sem:     make(chan struct{}, o.MaxHandshakes),
		expect:  make(map[string]*expectation),
		active:  make(map[net.Conn]struct{}),
	}
	for _, ln := range lns {
		s.wg.Add(1)
		go s.serve(ln)
	}
	return s
}

// Addrs returns the host:port each listener is bound to, ports resolved.
func (s *Server) Addrs() []string {
	out := make([]string, len(s.lns))
	for i, ln := range s.lns {
		out[i] = ln.Addr().String()
	}
	return out
}

// Expect registers a destination address (DstAddr's hash) and returns the
// channel that will carry the one connection that completes a handshake for
// it; the channel is closed after that, or without a value by Forget or
// Close. Register before sending the streamhost offer: the target connects
// before it answers. The connection is delivered just after the success
// reply is written, so it may arrive a moment after the target's
// streamhost-used: wait for it with a deadline, not a non-blocking receive.
func (s *Server) Expect(dstAddr string) (<-chan net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrServerClosed
	}
	if _, ok := s.expect[dstAddr]; ok {
		return nil, ErrDuplicate
	}
	e := &expectation{ch: make(chan net.Conn, 1)}
	s.expect[dstAddr] = e
	return e.ch, nil
}

// Forget withdraws an expectation. A connection delivered but not yet
// received is closed; one already received is the caller's.
func (s *Server) Forget(dstAddr string) {
	s.mu.Lock()
	e := s.expect[dstAddr]
	delete(s.expect, dstAddr)
	s.mu.Unlock()
	if e != nil {
		e.discard()
	}
}

// discard closes the channel if nobody will, and a connection left in it.
// It runs after the expectation left the map, so no delivery races it.
func (e *expectation) discard() {
	if e.state != expDelivered {
		close(e.ch)
	}
	if c, ok := <-e.ch; ok {
		c.Close()
	}
}

// Close stops listening, aborts handshakes in progress, withdraws every
// expectation and waits for the server's goroutines. Connections already
// received from Expect's channels stay open.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	exp := s.expect
	s.expect = make(map[string]*expectation)
	for c := range s.active {
		c.Close()
	}
	s.mu.Unlock()
	var err error
	for _, ln := range s.lns {
		if cerr := ln.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	s.wg.Wait()
	for _, e := range exp {
		e.discard()
	}
	return err
}

func (s *Server) serve(ln net.Listener) {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and retry, as
			// net/http does, rather than stop serving for good.
			backoff = max(5*time.Millisecond, min(2*backoff, time.Second))
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		select {
		case s.sem <- struct{}{}:
		default:
			c.Close() // too many handshakes at once
			continue
		}
		if !s.track(c) {
			<-s.sem
			c.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.sem }()
			s.handle(c)
		}()
	}
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.active[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.active, c)
	s.mu.Unlock()
}

// handle runs one connection's handshake and, if its address is expected,
// delivers it.
func (s *Server) handle(c net.Conn) {
	delivered := false
	defer func() {
		s.untrack(c)
		if !delivered {
			c.Close()
		}
	}()
	_ = c.SetDeadline(time.Now().Add(s.timeout))
	addr, err := readRequest(c)
	if err != nil {
		return
	}

	s.mu.Lock()
	e := s.expect[addr]
	if e == nil || e.state != expWaiting {
		s.mu.Unlock()
		_ = writeReply(c, ReplyNotAllowed, "")
		return
	}
	e.state = expBusy
	s.mu.Unlock()

	werr := writeReply(c, ReplySucceeded, addr)
	if werr == nil {
		werr = c.SetDeadline(time.Time{})
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.expect[addr] != e {
		// Forgotten or closed while we answered: discard has closed the
		// channel already, since the state was not delivered.
		return
	}
	if werr != nil {
		e.state = expWaiting // the client is gone; let it try again
		return
	}
	e.state = expDelivered
	e.ch <- c // buffered, and this is the only send
	close(e.ch)
	delivered = true
}
