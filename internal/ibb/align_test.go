package ibb

import (
	"bytes"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"xfer/internal/session"
)

// The block size that fills a record: its chunk stanzas, with the
// longest sequence number, fit and the next size up would not; JIDs too
// long for a useful block give 0.
func TestFillBlockSize(t *testing.T) {
	for _, peer := range []string{bobJID, "someone.with.a.long.name@conference.example.org/" + strings.Repeat("r", 200)} {
		sid := session.NewID()
		bs := FillBlockSize(peer, sid)
		size := func(n int) int {
			iq := session.IQ{Type: session.TypeSet, ID: session.NewID(), To: peer, Payload: marshalData(sid, 65535, make([]byte, n))}
			return len(iq.Marshal())
		}
		if bs%3 != 0 || size(bs) > session.AlignSize || size(bs+3) <= session.AlignSize {
			t.Errorf("%s: block %d, stanza %d bytes (next %d), record %d", peer[:10], bs, size(bs), size(bs+3), session.AlignSize)
		}
	}
	if bs := FillBlockSize(strings.Repeat("x", 7000)+"@example.org", "s"); bs != 0 {
		t.Errorf("a 7000-byte JID: block %d, want 0", bs)
	}
}

// aligningSession counts how many streams want its writes aligned.
type aligningSession struct {
	*session.Session
	aligned atomic.Int32
}

func (a *aligningSession) AlignWrites(on bool) {
	if on {
		a.aligned.Add(1)
	} else {
		a.aligned.Add(-1)
	}
}

// An opener with AlignRecords asks for the block size that fills a record
// and has its session's writes aligned until the stream is closed or
// aborted; a peer that wants smaller blocks gets them, unaligned.
func TestOpenAligned(t *testing.T) {
	for _, tc := range []struct {
		name      string
		recvMax   int
		abort     bool
		wantAlign bool
	}{
		{name: "filled", wantAlign: true},
		{name: "aborted", abort: true, wantAlign: true},
		{name: "peer wants smaller", recvMax: 4096},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alice, bob := sessionPair(t)
			a := &aligningSession{Session: alice}
			m := NewManager(bob, Options{MaxBlockSize: tc.recvMax})
			sid := session.NewID()
			m.Expect(sid, aliceJID)
			ctx := testCtx(t, 10*time.Second)
			w, err := Open(ctx, a, bobJID, sid, Options{BlockSize: 4096, AlignRecords: true})
			if err != nil {
				t.Fatal(err)
			}
			r, err := m.Accept(ctx, sid, aliceJID)
			if err != nil {
				t.Fatal(err)
			}
			want := FillBlockSize(bobJID, sid)
			if tc.recvMax > 0 {
				want = tc.recvMax
			}
			if w.blockSize != want {
				t.Errorf("block size %d, want %d", w.blockSize, want)
			}
			if got := a.aligned.Load() == 1; got != tc.wantAlign {
				t.Errorf("aligned while open: %v, want %v", got, tc.wantAlign)
			}
			if tc.abort {
				w.Abort()
			} else {
				data := bytes.Repeat([]byte("0123456789"), 5000)
				go func() {
					w.Write(data)
					w.Close()
				}()
				got, err := io.ReadAll(r)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("read %d bytes, %v", len(got), err)
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			for a.aligned.Load() != 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond) // Close returns after the reader's EOF
			}
			if n := a.aligned.Load(); n != 0 {
				t.Errorf("aligned after the stream ended: %d", n)
			}
		})
	}
}
