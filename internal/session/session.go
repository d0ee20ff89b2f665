// Package session is xfer's XMPP client session (RFC 6120): it logs into an
// account, sends IQs and waits for their replies, routes incoming IQs to
// handlers by type and namespace, and answers the rest with
// service-unavailable.
//
// It logs in itself (login.go: STARTTLS or Direct TLS, SASL with SCRAM and
// channel binding through mellium.im/sasl, resource binding) and reads the
// stanzas with gosrc.io/xmpp's stanza decoder, but for the IQs of in-band
// transfers, which a fast path slices out of the input as they are
// (fastread.go). It is the only package that imports gosrc.io/xmpp. Protocol packages see stanzas as plain values with
// raw XML payloads, so they can be tested over net.Pipe with NewStream and
// never depend on the library's quirks.
package session

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"xfer/internal/fault"
)

// Errors a caller may test with errors.Is.
var (
	ErrClosed       = errors.New("session: closed")
	ErrDisconnected = fault.New(fault.Connect, "session: disconnected from server")
	ErrAuth         = fault.New(fault.Auth, "session: authentication failed")
	ErrConnect      = fault.New(fault.Connect, "session: cannot connect to server")
	ErrTLS          = fault.New(fault.Connect, "session: TLS negotiation failed")
	ErrNoReply      = fault.New(fault.Timeout, "session: no reply")
)

// DefaultIQTimeout bounds the wait for an IQ reply when the caller's context
// has no deadline of its own.
const DefaultIQTimeout = 30 * time.Second

// Handler answers an incoming get or set IQ. It runs on its own goroutine, so
// it may block and send IQs of its own; incoming IQs may therefore reach
// handlers in a different order than they arrived. It returns the raw XML of
// the result payload (nil for an empty result), or an error: a *StanzaError
// is sent as is, anything else as internal-server-error.
type Handler func(ctx context.Context, iq *IQ) ([]byte, error)

type handlerKey struct{ typ, ns string }

type pendingIQ struct {
	to    string
	reply chan *IQ
}

// transport is what a Session sends through: the XMPP library's client, or a
// raw XML stream over a net.Conn.
type transport interface {
	send(stanza []byte) error
	close() error
}

// Session is a logged-in XMPP client stream.
type Session struct {
	jid       string // our full JID
	domain    string
	tr        transport
	info      ConnInfo
	iqTimeout time.Duration
	debug     io.Writer

	ctx    context.Context // cancelled when the session ends
	cancel context.CancelFunc

	sendMu   sync.Mutex   // one stanza per write, never interleaved
	deferMu  sync.Mutex   // guards deferred
	deferred []byte       // inline answers not yet written (inline.go)
	spare    []byte       // the other buffer, under sendMu
	flushing atomic.Bool  // a goroutine waits to write deferred
	aligned  atomic.Int32 // writes padded to records of AlignSize (align.go) while > 0
	padBuf   []byte       // under sendMu

	mu        sync.Mutex
	pending   map[string]pendingIQ
	handlers  map[handlerKey]Handler
	inline    map[handlerKey]InlineHandler
	presences []func(Presence)
	online    map[string]Presence // full JID → latest available presence
	messages  []func(Message)
	err       error // why the session ended
	done      chan struct{}
	inflight  int           // requests being handled and answered
	idle      chan struct{} // closed when inflight drops to 0 (Quiesce)

	heard atomic.Int64 // when the last stanza arrived (UnixNano), for pingLoop
}

func newSession(jid string, tr transport, iqTimeout time.Duration, debug io.Writer) *Session {
	if iqTimeout <= 0 {
		iqTimeout = DefaultIQTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Session{
		jid:       jid,
		domain:    Domain(jid),
		tr:        tr,
		iqTimeout: iqTimeout,
		debug:     debug,
		ctx:       ctx,
		cancel:    cancel,
		pending:   make(map[string]pendingIQ),
		handlers:  map[handlerKey]Handler{{TypeGet, NSPing}: answerPing},
		inline:    make(map[handlerKey]InlineHandler),
		online:    make(map[string]Presence),
		done:      make(chan struct{}),
	}
}

// JID returns the session's full JID, as bound by the server.
func (s *Session) JID() string { return s.jid }

// Info says how the session reached its server: the endpoint, TLS, the
// SASL mechanism. It is zero for a session made by NewStream.
func (s *Session) Info() ConnInfo { return s.info }

// Domain returns the domain of the session's account.
func (s *Session) Domain() string { return s.domain }

// Done is closed when the session has ended; Err then says why.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session ended, or nil while it is up.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Quiesce waits, within ctx, until the requests being handled have been
// answered: call it after removing the handlers (Handle with nil) and
// before Close, so that no answer is lost with the connection.
func (s *Session) Quiesce(ctx context.Context) error {
	s.flushAnswers()
	s.mu.Lock()
	if s.inflight == 0 {
		s.mu.Unlock()
		return nil
	}
	if s.idle == nil {
		s.idle = make(chan struct{})
	}
	idle := s.idle
	s.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handled ends one request's handling, waking Quiesce after the last.
func (s *Session) handled() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight--; s.inflight == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

// Close ends the session. It is safe to call more than once.
func (s *Session) Close() error {
	s.flushAnswers()
	if s.fail(ErrClosed) {
		return s.tr.close()
	}
	return nil
}

// fail ends the session with err; it reports whether this call ended it.
func (s *Session) fail(err error) bool {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return false
	}
	s.err = err
	pending := s.pending
	s.pending = make(map[string]pendingIQ)
	s.mu.Unlock()
	s.cancel()
	close(s.done)
	for _, p := range pending {
		close(p.reply)
	}
	return true
}

// Handle registers h for incoming IQs of type typ ("get" or "set") whose
// payload is in namespace ns. A later registration replaces an earlier one;
// a nil h removes it, and the InlineHandler of the same type and namespace.
func (s *Session) Handle(typ, ns string, h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h == nil {
		delete(s.handlers, handlerKey{typ, ns})
		delete(s.inline, handlerKey{typ, ns})
		return
	}
	s.handlers[handlerKey{typ, ns}] = h
}

// OnPresence registers f to be called for every incoming presence stanza.
func (s *Session) OnPresence(f func(Presence)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.presences = append(s.presences, f)
}

// OnMessage registers f to be called for every incoming message stanza.
func (s *Session) OnMessage(f func(Message)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages = append(s.messages, f)
}

// NewID returns a fresh random stanza or stream id.
func NewID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Send writes a raw stanza.
func (s *Session) Send(stanza []byte) error {
	select {
	case <-s.done:
		return s.Err()
	default:
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if s.debug != nil {
		fmt.Fprintf(s.debug, "SEND %s\n", stanza)
	}
	return s.writeLocked(stanza)
}

// SendPresence sends a presence stanza of the given type ("" is available)
// to a JID, or to the server when to is empty.
func (s *Session) SendPresence(to, typ string) error {
	iq := IQ{To: to, Type: typ} // reuse the attribute writer
	raw := iq.Marshal()
	raw = append([]byte("<presence"), raw[len("<iq"):len(raw)-len("></iq>")]...)
	return s.Send(append(raw, "/>"...))
}

// SendMessage sends a message stanza of type typ ("chat", "normal", …)
// with the given raw XML children.
func (s *Session) SendMessage(to, typ string, payload []byte) error {
	var b bytes.Buffer
	b.WriteString("<message")
	writeAttr(&b, "type", typ)
	writeAttr(&b, "id", NewID())
	writeAttr(&b, "to", to)
	b.WriteString(">")
	b.Write(payload)
	b.WriteString("</message>")
	return s.Send(b.Bytes())
}

// SendIQ sends a get or set IQ and waits for its result. The reply is
// registered before the request leaves, and it is accepted only from the
// entity the request was sent to. An error reply is returned as a
// *StanzaError (wrapped). Without a deadline on ctx, DefaultIQTimeout applies.
func (s *Session) SendIQ(ctx context.Context, iq *IQ) (*IQ, error) {
	if iq.Type != TypeGet && iq.Type != TypeSet {
		return nil, fmt.Errorf("session: SendIQ needs a get or set IQ, not %q", iq.Type)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.iqTimeout)
		defer cancel()
	}
	if iq.ID == "" {
		iq.ID = NewID()
	}
	reply := make(chan *IQ, 1)
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return nil, err
	}
	s.pending[iq.ID] = pendingIQ{to: iq.To, reply: reply}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, iq.ID)
		s.mu.Unlock()
	}()

	if err := s.Send(iq.Marshal()); err != nil {
		return nil, err
	}
	select {
	case r, ok := <-reply:
		if !ok {
			return nil, s.Err()
		}
		if r.Type == TypeError {
			se := r.Error
			if se == nil {
				se = NewError(CondUndefinedCondition, "error reply without an error element")
			}
			return r, fmt.Errorf("%s answered %s: %w", displayJID(iq.To, s.domain), se.Condition, se)
		}
		return r, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w from %s: %w", ErrNoReply, displayJID(iq.To, s.domain), ctx.Err())
	}
}

func displayJID(to, domain string) string {
	if to == "" {
		return domain
	}
	return to
}

// Reply sends a result (or, with a non-nil err, an error) answering req.
func (s *Session) Reply(req *IQ, payload []byte, err error) error {
	return s.Send(s.answer(req, payload, err).Marshal())
}

// answer is the result, or with a non-nil err the error, answering req.
func (s *Session) answer(req *IQ, payload []byte, err error) *IQ {
	res := &IQ{ID: req.ID, To: req.From, Type: TypeResult, Payload: payload}
	if err != nil {
		var se *StanzaError
		if !errors.As(err, &se) {
			se = NewError(CondInternalServerError, "")
		}
		res.Type, res.Payload, res.Error = TypeError, nil, se
	}
	return res
}

// dispatch routes one incoming IQ. It is called on a goroutine of its own.
func (s *Session) dispatch(iq *IQ) {
	s.heard.Store(time.Now().UnixNano())
	if s.debug != nil {
		fmt.Fprintf(s.debug, "RECV %s\n", iq.Marshal())
	}
	switch iq.Type {
	case TypeResult, TypeError:
		s.mu.Lock()
		p, ok := s.pending[iq.ID]
		if ok && s.replyFromExpected(iq.From, p.to) {
			delete(s.pending, iq.ID)
		} else {
			ok = false
		}
		s.mu.Unlock()
		if ok {
			p.reply <- iq // buffered: never blocks
		}
	case TypeGet, TypeSet:
		s.mu.Lock()
		s.inflight++
		s.mu.Unlock()
		defer s.handled()
		ns := iq.PayloadName().Space
		s.mu.Lock()
		h := s.handlers[handlerKey{iq.Type, ns}]
		s.mu.Unlock()
		if h == nil {
			_ = s.Reply(iq, nil, NewError(CondServiceUnavailable, ""))
			return
		}
		payload, err := h(s.ctx, iq)
		_ = s.Reply(iq, payload, err)
	default:
		// RFC 6120 §8.2.3: an IQ without a valid type is a bad request.
		if iq.ID != "" {
			_ = s.Reply(iq, nil, NewError(CondBadRequest, "invalid IQ type"))
		}
	}
}

// replyFromExpected tells whether a reply from "from" answers a request sent
// to "to". A request to no one (the account) is answered by the server, as
// the bare JID, the domain, or no from at all.
func (s *Session) replyFromExpected(from, to string) bool {
	if to == "" || EqualJID(to, Bare(s.jid)) || EqualJID(to, s.domain) {
		return from == "" || EqualJID(from, Bare(s.jid)) || EqualJID(from, s.domain) || EqualJID(from, s.jid)
	}
	return EqualJID(from, to)
}

// Online returns the resources of the bare JID that are available now, as
// far as this session has been told by presence (the server sends it for
// contacts with a subscription, and for the account's own resources).
func (s *Session) Online(bare string) []Presence {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Presence
	for jid, p := range s.online {
		if EqualJID(Bare(jid), bare) {
			out = append(out, p)
		}
	}
	return out
}

func (s *Session) dispatchPresence(p Presence) {
	s.heard.Store(time.Now().UnixNano())
	s.mu.Lock()
	if Resource(p.From) != "" {
		switch p.Type {
		case "":
			s.online[p.From] = p
		case "unavailable", "error":
			delete(s.online, p.From)
		}
	}
	fs := append([]func(Presence){}, s.presences...)
	s.mu.Unlock()
	for _, f := range fs {
		f(p)
	}
}

func (s *Session) dispatchMessage(m Message) {
	s.heard.Store(time.Now().UnixNano())
	s.mu.Lock()
	fs := append([]func(Message){}, s.messages...)
	s.mu.Unlock()
	for _, f := range fs {
		f(m)
	}
}
