package jingle

import (
	"context"
	"encoding/xml"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"xfer/internal/bytestream"
	"xfer/internal/session"
)

// Session is what the flows need from an XMPP session.
type Session = bytestream.Session

// iqTimeout bounds every Jingle request's wait for its answer.
const iqTimeout = 30 * time.Second

// maxEvents bounds what waits, per session, for its loop to read it. A peer
// that floods one session with requests gets resource-constraint.
const maxEvents = 64

// Manager routes a session's incoming Jingle requests: a session-initiate
// to the Listen callback, everything else to the session it names, by sid
// and the peer's full JID. Register one per XMPP session with NewManager.
type Manager struct {
	s Session

	mu       sync.Mutex
	sessions map[sessKey]*call
	listen   func(*Incoming)
}

type sessKey struct{ sid, peer string }

func keyOf(sid, jid string) sessKey {
	k := strings.ToLower(session.Bare(jid))
	if r := session.Resource(jid); r != "" {
		k += "/" + r
	}
	return sessKey{sid: sid, peer: k}
}

// NewManager registers Jingle handling on s. Until Listen is called, offers
// are answered service-unavailable.
func NewManager(s Session) *Manager {
	m := &Manager{s: s, sessions: map[sessKey]*call{}}
	s.Handle(session.TypeSet, NS, m.handleIQ)
	return m
}

// Listen makes f see every new session-initiate for a file, on a goroutine
// of its own, after the request was acknowledged. f must end the offer:
// Accept it or Decline it. A nil f stops listening.
func (m *Manager) Listen(f func(*Incoming)) {
	m.mu.Lock()
	m.listen = f
	m.mu.Unlock()
}

var condUnknownSession = xml.Name{Space: NSErrors, Local: "unknown-session"}

func (m *Manager) handleIQ(_ context.Context, iq *session.IQ) ([]byte, error) {
	j, err := Parse(iq.Payload)
	if err != nil {
		return nil, session.NewError(session.CondBadRequest, err.Error())
	}
	if j.Action == ActionSessionInitiate {
		return nil, m.initiated(iq.From, j)
	}
	m.mu.Lock()
	c := m.sessions[keyOf(j.SID, iq.From)]
	m.mu.Unlock()
	if c == nil {
		return nil, &session.StanzaError{Type: "cancel", Condition: session.CondItemNotFound, App: condUnknownSession}
	}
	select {
	case c.events <- j:
		return nil, nil
	case <-c.done:
		return nil, &session.StanzaError{Type: "cancel", Condition: session.CondItemNotFound, App: condUnknownSession}
	default:
		return nil, session.NewError(session.CondResourceConstraint, "too many requests")
	}
}

func (m *Manager) initiated(from string, j *Jingle) error {
	if j.Initiator != "" && !session.EqualJID(j.Initiator, from) {
		return session.NewError(session.CondBadRequest, "initiator is not the sender")
	}
	m.mu.Lock()
	f := m.listen
	m.mu.Unlock()
	if f == nil {
		return session.NewError(session.CondServiceUnavailable, "")
	}
	c, err := m.register(j.SID, from, false)
	if err != nil {
		return err
	}
	in := &Incoming{c: c, offer: j}
	go f(in)
	return nil
}

// register adds a session; a sid already in use with that peer is a
// conflict (XEP-0166 §7.2.10 says tie-break, but a sid collision between a
// peer and us is a peer reusing its own sid).
func (m *Manager) register(sid, peer string, initiator bool) (*call, error) {
	k := keyOf(sid, peer)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sessions[k] != nil {
		return nil, &session.StanzaError{Type: "cancel", Condition: "conflict", Text: "sid in use"}
	}
	c := &call{m: m, key: k, sid: sid, peer: peer, initiator: initiator,
		events: make(chan *Jingle, maxEvents), done: make(chan struct{})}
	if initiator {
		c.initiatorJID, c.responderJID = m.s.JID(), peer
	} else {
		c.initiatorJID, c.responderJID = peer, m.s.JID()
	}
	m.sessions[k] = c
	return c, nil
}

// call is one Jingle session, from either side.
type call struct {
	m                          *Manager
	key                        sessKey
	sid, peer                  string
	initiator                  bool // we initiated it
	initiatorJID, responderJID string
	events                     chan *Jingle
	done                       chan struct{}
	once                       sync.Once
	terminated                 atomic.Bool // a session-terminate was sent or received
	pending                    []*Jingle
	// The session's one content, as its creator named it.
	contentCreator, contentName string
}

// send sends one Jingle request in this session and waits for its answer.
func (c *call) send(ctx context.Context, j *Jingle) error {
	j.SID = c.sid
	if j.Action == ActionSessionInitiate {
		j.Initiator = c.initiatorJID
	}
	if j.Action == ActionSessionAccept {
		j.Responder = c.responderJID
	}
	ctx, cancel := context.WithTimeout(ctx, iqTimeout)
	defer cancel()
	_, err := c.m.s.SendIQ(ctx, &session.IQ{Type: session.TypeSet, To: c.peer, Payload: j.Marshal()})
	if err != nil {
		return fmt.Errorf("jingle: %s to %s: %w", j.Action, c.peer, err)
	}
	return nil
}

// terminate ends the session with a reason, once, and unregisters it.
func (c *call) terminate(ctx context.Context, reason, text string) error {
	if c.terminated.Swap(true) {
		c.close()
		return nil
	}
	err := c.send(ctx, &Jingle{Action: ActionSessionTerminate, Reason: &Reason{Condition: reason, Text: text}})
	c.close()
	return err
}

// close unregisters the session; requests for it get unknown-session.
func (c *call) close() {
	c.once.Do(func() {
		close(c.done)
		c.m.mu.Lock()
		if c.m.sessions[c.key] == c {
			delete(c.m.sessions, c.key)
		}
		c.m.mu.Unlock()
	})
}

// observe ends the session on a session-terminate from the peer, returned
// as a *TerminatedError; other requests are nil.
func (c *call) observe(j *Jingle) error {
	if j.Action != ActionSessionTerminate {
		return nil
	}
	c.terminated.Store(true)
	c.close()
	te := &TerminatedError{Reason: "unknown"}
	if j.Reason != nil {
		te.Reason, te.Text = j.Reason.Condition, j.Reason.Text
	}
	return te
}

// keep saves a request that arrived before the step that uses it.
func (c *call) keep(j *Jingle) { c.pending = append(c.pending, j) }

// takePending returns the kept requests, oldest first, and forgets them.
func (c *call) takePending() []*Jingle {
	p := c.pending
	c.pending = nil
	return p
}

// await returns the session's first request with one of the actions,
// looking at the kept ones first; the others are kept.
func (c *call) await(ctx context.Context, actions ...string) (*Jingle, error) {
	for i, j := range c.pending {
		if slices.Contains(actions, j.Action) {
			c.pending = slices.Delete(c.pending, i, i+1)
			return j, nil
		}
	}
	for {
		j, err := c.next(ctx)
		if err != nil {
			return nil, err
		}
		if slices.Contains(actions, j.Action) {
			return j, nil
		}
		if j.Action != ActionTransportInfo || len(c.pending) < maxEvents {
			c.keep(j)
		}
	}
}

// next returns the session's next new request (kept ones stay kept for
// the step that uses them), or an error when ctx ends or the peer
// terminated the session.
func (c *call) next(ctx context.Context) (*Jingle, error) {
	select {
	case j := <-c.events:
		return j, c.observe(j)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
