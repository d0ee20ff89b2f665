package session

import (
	"bytes"
	"fmt"
	"time"
)

// Inline handling. An in-band transfer brings thousands of data IQs a
// second; a goroutine for each (dispatch) and a write for each answer cost
// a receiver most of its CPU in scheduling and system calls. So a request
// whose handler can take it at once is answered on the read loop itself,
// and the answers to what one read brought go out in one write, just
// before the loop reads again. Replies to our own requests are routed on
// the read loop too: that is a map lookup and a buffered send.

// InlineHandler takes an incoming get or set IQ on the session's read
// loop. It must neither block nor send: it answers at once (handled true),
// with the result payload or an error as a Handler returns them, or leaves
// the IQ to the Handler registered for the same type and namespace, which
// runs on its own goroutine. iq.Payload is valid only during the call.
type InlineHandler func(iq *IQ) (payload []byte, handled bool, err error)

// HandleInline registers h to be tried first for incoming IQs of type typ
// whose payload is in namespace ns; a nil h removes it.
func (s *Session) HandleInline(typ, ns string, h InlineHandler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h == nil {
		delete(s.inline, handlerKey{typ, ns})
		return
	}
	s.inline[handlerKey{typ, ns}] = h
}

// maxDeferred bounds the answers queued for one write.
const maxDeferred = 16 << 10

// route hands on an IQ the read loop has read. aliased: its payload is a
// slice of the reader's buffer, valid until the next read. deferred: the
// transport flushes queued answers before each read (flushAnswers), so
// inline answers may wait for it.
func (s *Session) route(iq *IQ, aliased, deferred bool) {
	switch iq.Type {
	case TypeResult, TypeError:
		if aliased && len(iq.Payload) > 0 {
			iq.Payload = bytes.Clone(iq.Payload)
		}
		s.dispatch(iq) // never blocks
		return
	case TypeGet, TypeSet:
		if s.tryInline(iq, deferred) {
			return
		}
	}
	if aliased {
		iq.Payload = bytes.Clone(iq.Payload)
	}
	go s.dispatch(iq)
}

func (s *Session) tryInline(iq *IQ, deferred bool) bool {
	s.mu.Lock()
	h := s.inline[handlerKey{iq.Type, iq.PayloadName().Space}]
	s.mu.Unlock()
	if h == nil {
		return false
	}
	payload, handled, err := h(iq)
	if !handled {
		return false
	}
	s.heard.Store(time.Now().UnixNano())
	if s.debug != nil {
		fmt.Fprintf(s.debug, "RECV %s\n", iq.Marshal())
	}
	answer := s.answer(iq, payload, err).Marshal()
	if !deferred {
		_ = s.Send(answer)
		return true
	}
	if s.debug != nil {
		fmt.Fprintf(s.debug, "SEND %s\n", answer)
	}
	s.deferMu.Lock()
	s.deferred = append(s.deferred, answer...)
	full := len(s.deferred) >= maxDeferred
	s.deferMu.Unlock()
	if full {
		s.flushAnswers()
	}
	return true
}

// flushAnswers writes the queued inline answers: at once when no other
// write is under way, else from a goroutine that waits for it, since the
// read loop must never wait on a writer (which may be waiting for the
// server, which may be waiting for us to read).
func (s *Session) flushAnswers() {
	s.deferMu.Lock()
	empty := len(s.deferred) == 0
	s.deferMu.Unlock()
	if empty {
		return
	}
	if s.sendMu.TryLock() {
		_ = s.writeLocked(nil)
		s.sendMu.Unlock()
		return
	}
	if s.flushing.CompareAndSwap(false, true) {
		go func() {
			s.sendMu.Lock()
			defer s.sendMu.Unlock()
			// Cleared before the queue is taken: answers queued after
			// this point get a flusher of their own.
			s.flushing.Store(false)
			_ = s.writeLocked(nil)
		}()
	}
}

// writeLocked writes the queued inline answers and then stanza (either
// may be empty) in one write. The caller holds sendMu.
func (s *Session) writeLocked(stanza []byte) error {
	s.deferMu.Lock()
	queued := s.deferred
	if len(queued) > 0 {
		s.deferred = s.spare[:0] // the two buffers take turns
	}
	s.deferMu.Unlock()
	out := stanza
	if len(queued) > 0 {
		out = append(queued, stanza...)
	}
	if len(out) == 0 {
		return nil
	}
	var err error
	if s.aligned.Load() > 0 {
		err = s.sendAlignedLocked(out)
	} else {
		err = s.tr.send(out)
	}
	if len(queued) > 0 {
		s.spare = nil
		if cap(out) <= 4*maxDeferred {
			s.spare = out[:0]
		}
	}
	if err != nil {
		err = fmt.Errorf("%w: %v", ErrDisconnected, err)
		s.fail(err)
	}
	return err
}
