package transfer

import (
	"context"
	"testing"
	"time"

	"xfer/internal/session"
)

// The reconnection delay doubles from Min, with up to half of it again as
// jitter, and never exceeds Max.
func TestBackoff(t *testing.T) {
	rc := Reconnect{Min: time.Second, Max: 60 * time.Second}
	for _, tc := range []struct {
		attempt  int
		low, top time.Duration
	}{
		{0, time.Second, 1500 * time.Millisecond},
		{1, 2 * time.Second, 3 * time.Second},
		{3, 8 * time.Second, 12 * time.Second},
		{5, 32 * time.Second, 48 * time.Second},
		{6, 60 * time.Second, 60 * time.Second},
		{40, 60 * time.Second, 60 * time.Second},
	} {
		seen := map[time.Duration]bool{}
		for range 50 {
			d := backoff(rc, tc.attempt)
			if d < tc.low || d > tc.top {
				t.Fatalf("attempt %d: %v, want %v..%v", tc.attempt, d, tc.low, tc.top)
			}
			seen[d] = true
		}
		if tc.low != tc.top && len(seen) < 2 {
			t.Errorf("attempt %d: no jitter in 50 draws", tc.attempt)
		}
	}
}

// fakeLink is a session that is up until closed, and that says whether
// its server is on this machine.
type fakeLink struct {
	done     chan struct{}
	loopback bool
}

func (l *fakeLink) SendIQ(context.Context, *session.IQ) (*session.IQ, error) {
	return nil, session.ErrClosed
}
func (l *fakeLink) Handle(string, string, session.Handler) {}
func (l *fakeLink) JID() string                            { return "bob@example.org/svc" }
func (l *fakeLink) Online(string) []session.Presence       { return nil }
func (l *fakeLink) Done() <-chan struct{}                  { return l.done }
func (l *fakeLink) Close() error                           { close(l.done); return nil }
func (l *fakeLink) ServerLoopback() bool                   { return l.loopback }

// Each session's receiver is told whether that session's server is on
// this machine (a Jingle receiver then offers loopback candidates too),
// which the dialer learns only when it logs in.
func TestServiceServerLoopbackPerSession(t *testing.T) {
	for _, loopback := range []bool{true, false} {
		dial := func(context.Context) (Link, error) {
			return &fakeLink{done: make(chan struct{}), loopback: loopback}, nil
		}
		sv, err := NewService(context.Background(), dial, ReceiveOptions{Dir: t.TempDir()}, nil, Reconnect{})
		if err != nil {
			t.Fatal(err)
		}
		if got := sv.recv.opts.S5B.ServerLoopback; got != loopback {
			t.Errorf("server loopback %v: the receiver has %v", loopback, got)
		}
		sv.Close()
	}
}
