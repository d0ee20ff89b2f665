package transfer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"xfer/internal/fault"
)

// Link is a logged-in session a Service owns: it closes it. A Link that
// also has ServerLoopback() bool says whether its server is on this
// machine, which sets S5BOptions.ServerLoopback for that session's
// receiver (the endpoint reached can differ from one login to the next).
type Link interface {
	Session
	Close() error
}

// Dialer logs in anew; a Service calls it once at the start and again
// after each loss of the connection.
type Dialer func(ctx context.Context) (Link, error)

// Reconnect says whether and how a Service comes back after losing its
// server: exponential backoff with jitter between Min and Max.
type Reconnect struct {
	Enabled bool
	Min     time.Duration // first delay; default 1s
	Max     time.Duration // ceiling; default 60s
}

// Service is a receiver that outlives its connections, for a receiver run
// as a service. When the session ends (the server restarts, the network
// drops, a ping goes unanswered), the transfers in flight end with their
// parts kept, and the service logs in again after a backoff, with a new
// session that announces itself with presence as the first did. A sender
// that re-offers an interrupted file resumes it.
type Service struct {
	dial Dialer
	opts ReceiveOptions
	obs  *Observer
	rc   Reconnect

	link    Link
	recv    *Receiver
	backlog []outcome // results of the lost session's receiver, still to return
	lost    error     // why the session ended, until a new one is up
}

// NewService logs in once and starts receiving. A failure to log in here
// is returned as is: a receiver that cannot start (a wrong password, a
// mistyped server) should say so at once, not retry.
func NewService(ctx context.Context, dial Dialer, opts ReceiveOptions, obs *Observer, rc Reconnect) (*Service, error) {
	if rc.Min <= 0 {
		rc.Min = time.Second
	}
	if rc.Max <= 0 {
		rc.Max = 60 * time.Second
	}
	rc.Max = max(rc.Max, rc.Min)
	sv := &Service{dial: dial, opts: opts, obs: obs, rc: rc}
	link, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	if err := sv.start(ctx, link); err != nil {
		return nil, err
	}
	sv.obs.emit(Event{Type: "online", Direction: "receive", Peer: link.JID()})
	return sv, nil
}

func (sv *Service) start(ctx context.Context, link Link) error {
	opts := sv.opts
	if l, ok := link.(interface{ ServerLoopback() bool }); ok {
		opts.S5B.ServerLoopback = l.ServerLoopback()
	}
	r, err := NewReceiver(ctx, link, opts, sv.obs)
	if err != nil {
		_ = link.Close()
		return err
	}
	sv.link, sv.recv = link, r
	return nil
}

// JID is the full JID of the current session.
func (sv *Service) JID() string { return sv.link.JID() }

// Next waits for the next transfer to end and returns its result, as
// Receiver.Next does. A lost session is reported (a "disconnected" event)
// and, with Reconnect.Enabled, replaced, after the transfers it cut have
// been returned; otherwise, or when logging in again fails for good
// (authentication), its error is returned with a nil result.
func (sv *Service) Next(ctx context.Context) (*Result, error) {
	for {
		if len(sv.backlog) > 0 {
			o := sv.backlog[0]
			sv.backlog = sv.backlog[1:]
			return o.res, o.err
		}
		if sv.lost != nil {
			if err := sv.relogin(ctx); err != nil {
				return nil, err
			}
		}
		res, err := sv.recv.Next(ctx)
		if res != nil || err == nil || ctx.Err() != nil || !sv.rc.Enabled {
			return res, err
		}
		sv.recv.Close()
		_ = sv.link.Close()
		sv.backlog, sv.lost = sv.recv.unreported(), sessionErr(sv.link)
	}
}

// relogin logs in again until it succeeds, the context ends, or the
// server refuses the account.
func (sv *Service) relogin(ctx context.Context) error {
	why := sv.lost
	for attempt := 0; ; attempt++ {
		wait := backoff(sv.rc, attempt)
		sv.obs.emit(Event{Type: "disconnected", Direction: "receive", Error: why.Error(), Seconds: wait.Seconds()})
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		link, err := sv.dial(ctx)
		if err == nil {
			if err := sv.start(ctx, link); err != nil {
				return err
			}
			sv.lost = nil
			sv.obs.emit(Event{Type: "reconnected", Direction: "receive", Peer: link.JID()})
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if fault.Classify(err) == fault.Auth {
			// Retrying a refused password every minute would only get the
			// account locked: the admin has to act.
			return fmt.Errorf("transfer: logging in again failed: %w", err)
		}
		why = err
	}
}

// backoff is the delay before reconnection attempt n (0 first): Min
// doubled per attempt up to Max, plus up to half of it again at random so
// that receivers a restarted server dropped together do not return
// together; never above Max.
func backoff(rc Reconnect, n int) time.Duration {
	d := rc.Max
	if n < 30 && rc.Min<<n < rc.Max {
		d = rc.Min << n
	}
	d += rand.N(d/2 + 1)
	return min(d, rc.Max)
}

// Close ends the receiver and its session, after the transfers in
// progress (see Receiver.Close).
func (sv *Service) Close() {
	if sv.lost == nil {
		sv.recv.Close()
		_ = sv.link.Close()
	}
}
