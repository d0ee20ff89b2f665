package ibb

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"xfer/internal/session"
)

// ackingPeer is a raw receiver that answers each chunk rtt after it came
// (a simulated round trip), or with an error condition from chunk failAt
// on, and records the most chunks it held unanswered.
type ackingPeer struct {
	p      *rawPeer
	rtt    time.Duration
	failAt int    // seq from which chunks are refused; 0: never
	cond   string // the refusal's condition

	mu        sync.Mutex
	unacked   int
	maxUnack  int
	got       bytes.Buffer
	wg        sync.WaitGroup
	closeSeen bool
}

func (a *ackingPeer) run(t *testing.T) <-chan error {
	done := make(chan error, 1)
	go func() {
		done <- func() error {
			w, ok := a.p.next(5 * time.Second)
			if !ok {
				return errors.New("no open")
			}
			a.p.result(w)
			for {
				w, ok := a.p.next(10 * time.Second)
				if !ok {
					return errors.New("stream ended before close")
				}
				if strings.Contains(w.Inner, "<close") {
					a.wg.Wait()
					a.mu.Lock()
					a.closeSeen = true
					a.mu.Unlock()
					a.p.result(w)
					return nil
				}
				seq, _ := strconv.Atoi(w.payloadAttr("seq"))
				b64 := w.Inner[strings.Index(w.Inner, ">")+1 : strings.LastIndex(w.Inner, "<")]
				raw, err := base64.StdEncoding.DecodeString(b64)
				if err != nil {
					return err
				}
				a.mu.Lock()
				a.got.Write(raw)
				a.unacked++
				a.maxUnack = max(a.maxUnack, a.unacked)
				a.mu.Unlock()
				refuse := a.failAt > 0 && seq >= a.failAt
				a.wg.Add(1)
				time.AfterFunc(a.rtt, func() { // the round trip, not ordering
					defer a.wg.Done()
					a.mu.Lock()
					a.unacked--
					a.mu.Unlock()
					if refuse {
						a.p.errorReply(w, a.cond)
					} else {
						a.p.result(w)
					}
				})
			}
		}()
	}()
	return done
}

// Over a simulated round trip the adaptive window grows past the 16 chunks
// of the old fixed window, up to MaxInFlight and no further; a fixed Window
// stays what it says.
func TestAdaptiveWindowOverRTT(t *testing.T) {
	const bs = 512
	for _, tc := range []struct {
		name        string
		opts        Options
		atLeast     int
		atMost      int
		dataBlocks  int
		rtt         time.Duration
		exactWindow bool
	}{
		{name: "adaptive", opts: Options{BlockSize: bs, MaxInFlight: 64 << 10}, atLeast: 17, atMost: 128, dataBlocks: 3000, rtt: 30 * time.Millisecond},
		{name: "adaptive, small bound", opts: Options{BlockSize: bs, MaxInFlight: 24 << 10}, atLeast: 17, atMost: 48, dataBlocks: 1500, rtt: 30 * time.Millisecond},
		{name: "fixed", opts: Options{BlockSize: bs, Window: 16}, atLeast: 16, atMost: 16, dataBlocks: 300, rtt: 10 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, p := newRawPeer(t, aliceJID, bobJID)
			peer := &ackingPeer{p: p, rtt: tc.rtt}
			done := peer.run(t)
			c, err := Open(testCtx(t, 5*time.Second), s, bobJID, "grow", tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			data := randomBytes(t, tc.dataBlocks*bs)
			if _, err := c.Write(data); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			peer.mu.Lock()
			defer peer.mu.Unlock()
			t.Logf("most chunks unacknowledged: %d", peer.maxUnack)
			if peer.maxUnack < tc.atLeast || peer.maxUnack > tc.atMost {
				t.Errorf("%d chunks unacknowledged at most, want %d..%d", peer.maxUnack, tc.atLeast, tc.atMost)
			}
			if !bytes.Equal(peer.got.Bytes(), data) {
				t.Error("peer got different data")
			}
		})
	}
}

// A refusal (resource-constraint; policy-violation, as rate limiters
// answer; any other) still fails the stream, as before, and collapses the
// window: nothing more leaves.
func TestRefusalShrinksWindowAndFails(t *testing.T) {
	for _, cond := range []string{"resource-constraint", "policy-violation", "item-not-found"} {
		t.Run(cond, func(t *testing.T) {
			s, p := newRawPeer(t, aliceJID, bobJID)
			peer := &ackingPeer{p: p, rtt: time.Millisecond, failAt: 40, cond: cond}
			go peer.run(t)
			c, err := Open(testCtx(t, 5*time.Second), s, bobJID, "rc", Options{BlockSize: 64})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Write(make([]byte, 64*2000))
			if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), cond) {
				t.Fatalf("Write: %v", err)
			}
			c.mu.Lock()
			size := c.win.size()
			c.mu.Unlock()
			if size != 1 {
				t.Errorf("window %d after a refusal, want 1", size)
			}
			if err := c.Close(); !errors.Is(err, ErrRejected) {
				t.Fatalf("Close: %v", err)
			}
		})
	}
}

// A receiver of ours takes a sender's deepest window: with the reader not
// reading, aheadLimit chunks arrive, each run of 32 newest first (the
// session hands each to its own goroutine, so they may reach the stream in
// any order); it holds them (a block each, no more) and stores them in
// order once the reader reads, and a chunk past the limit is refused.
func TestReceiverDeepWindow(t *testing.T) {
	const bs = 4096
	limit := aheadLimit(bs) // 512 chunks, 2 MiB
	s, p := newRawPeer(t, bobJID, aliceJID)
	m := NewManager(s, Options{})
	c := openRaw(t, m, p, "deep", bs)
	data := randomBytes(t, limit*bs)
	block := func(seq int) string {
		return base64.StdEncoding.EncodeToString(data[seq*bs : (seq+1)*bs])
	}
	const run = 32
	for first := 0; first < limit; first += run {
		for seq := first + run - 1; seq >= first; seq-- {
			p.set(fmt.Sprintf("d%d", seq), bobJID, dataXML("deep", seq, block(seq)))
		}
	}
	// Wait (on the receiver's state) until every chunk is in:
	// the buffer's worth stored, the next one waiting for room, the rest
	// for their turn.
	ctx := testCtx(t, 15*time.Second)
	c.mu.Lock()
	for len(c.waiting)+int(c.next) < limit-1 || !c.headBusy {
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-time.After(10 * time.Millisecond): // a chunk put to wait notifies nobody: poll
		case <-ctx.Done():
			c.mu.Lock()
			t.Fatalf("chunks did not all arrive: next %d, %d waiting, head busy %v, %d buffered, busy %d, err %v", c.next, len(c.waiting), c.headBusy, c.buf.Len(), c.busy, c.rerr)
		}
		c.mu.Lock()
	}
	held, waiting := c.buf.Len(), len(c.waiting)
	c.mu.Unlock()
	if c.rerr != nil {
		t.Fatal(c.rerr)
	}
	if held > c.bufMax || waiting > limit {
		t.Fatalf("holding %d bytes and %d chunks waiting; limits %d, %d", held, waiting, c.bufMax, limit)
	}
	got := make([]byte, 0, len(data))
	buf := make([]byte, 32<<10)
	for len(got) < len(data) {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data differs")
	}
	for seq := 0; seq < limit; seq++ {
		if r := p.reply(fmt.Sprintf("d%d", seq)); r.attr("type") != "result" {
			t.Fatalf("chunk %d answered %s", seq, r.condition())
		}
	}
	// Past the limit: refused, the stream fails.
	p.set("far", bobJID, dataXML("deep", 2*limit, "QUJD"))
	if r := p.reply("far"); r.condition() != "unexpected-request" {
		t.Fatalf("chunk past the limit answered %q", r.condition())
	}
}

// delayedAcks makes every IQ a sender sends take at least rtt to be
// answered: a simulated round trip over net.Pipe.
type delayedAcks struct {
	*session.Session
	rtt time.Duration
}

func (d delayedAcks) SendIQ(ctx context.Context, iq *session.IQ) (*session.IQ, error) {
	start := time.Now()
	r, err := d.Session.SendIQ(ctx, iq)
	time.Sleep(time.Until(start.Add(d.rtt))) // the round trip, not ordering
	return r, err
}

// BenchmarkWindowRTT: 4096-byte blocks over net.Pipe with acknowledgements
// delayed by a simulated round trip, the old fixed window of 16 next to the
// adaptive one. A fixed window moves at most window × block / RTT.
func BenchmarkWindowRTT(b *testing.B) {
	for _, rtt := range []time.Duration{20 * time.Millisecond, 80 * time.Millisecond} {
		for _, win := range []struct {
			name   string
			window int
		}{{"fixed16", 16}, {"adaptive", 0}} {
			b.Run(fmt.Sprintf("rtt%dms/%s", rtt.Milliseconds(), win.name), func(b *testing.B) {
				w := benchStream(b, 5*time.Minute, func(a *session.Session) Session { return delayedAcks{a, rtt} }, Options{BlockSize: 4096, Window: win.window}, 4<<20)
				w.mu.Lock()
				b.ReportMetric(float64(w.win.size()), "window")
				w.mu.Unlock()
			})
		}
	}
}
