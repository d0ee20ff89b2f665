package ibb

import (
	"testing"
	"time"
)

// link is a simulated path for the window, in virtual time: every
// acknowledgement comes rtt after its chunk left, and no sooner than gap
// after the one before (a bottleneck of 1/gap chunks per second: a
// rate-limited server, a slow link, a slow reader).
type link struct {
	rtt time.Duration
	gap time.Duration
	// slowFrom makes the round trip slowRTT and the gap slowGap from that
	// chunk on.
	slowFrom         int
	slowRTT, slowGap time.Duration
	// think is how long the writer takes between chunks (app-limited).
	think time.Duration
	// nagle is the round trip of the server's link to us, with Nagle's
	// algorithm on the server's side: an acknowledgement due while an
	// earlier burst is unacknowledged waits for that, nagle after it.
	nagle time.Duration
}

type simResult struct {
	maxCwnd, lastCwnd int
	maxFlight         int
	reports           []float64
	elapsed           time.Duration
	fullAt            time.Duration // when the window first reached its largest
}

// simulate sends chunks over l, as Write and sendChunk drive the window,
// and returns what the window did.
func simulate(w *window, l link, chunks, wire int) simResult {
	var res simResult
	t0 := time.Unix(1_000_000, 0)
	now := t0
	type pending struct {
		at  time.Time
		rec chunkSend
	}
	var queue []pending
	var lastAck, lastBurst time.Time
	sent, waited := 0, false
	nextSend := now
	for sent < chunks || len(queue) > 0 {
		canSend := sent < chunks && len(queue) < w.size()
		if canSend && !nextSend.After(now) {
			rec := w.sent(now, waited, wire)
			waited = false
			rtt, gap := l.rtt, l.gap
			if l.slowFrom > 0 && sent >= l.slowFrom {
				rtt, gap = max(l.slowRTT, rtt), max(l.slowGap, gap)
			}
			at := now.Add(rtt)
			if !lastAck.IsZero() && at.Before(lastAck.Add(gap)) {
				at = lastAck.Add(gap)
			}
			lastAck = at
			if l.nagle > 0 {
				switch {
				case lastBurst.IsZero() || !at.Before(lastBurst.Add(l.nagle)):
					lastBurst = at // nothing unacknowledged: it goes at once
				case at.After(lastBurst):
					lastBurst = lastBurst.Add(l.nagle) // the next burst
					at = lastBurst
				default:
					at = lastBurst // joins the burst under way
				}
			}
			queue = append(queue, pending{at, rec})
			sent++
			nextSend = now.Add(l.think)
			res.maxFlight = max(res.maxFlight, len(queue))
			continue
		}
		if sent < chunks && len(queue) >= w.size() {
			waited = true
		}
		// Advance to the next event: an acknowledgement, or the writer.
		if len(queue) > 0 && (!canSend || !queue[0].at.After(nextSend)) {
			now = queue[0].at
			if r := w.acked(now, queue[0].rec); r > 0 {
				res.reports = append(res.reports, r)
			}
			queue = queue[1:]
		} else {
			now = nextSend
		}
		if w.size() > res.maxCwnd {
			res.maxCwnd, res.fullAt = w.size(), now.Sub(t0)
		}
	}
	res.lastCwnd = w.size()
	res.elapsed = now.Sub(t0)
	return res
}

func TestWindowAdapts(t *testing.T) {
	const bs = 4096
	noThrottle := throttle{}
	for _, tc := range []struct {
		name          string
		fixed, maxIn  int
		ackTimeout    time.Duration
		l             link
		chunks        int
		minMax        int // the window reached at least this
		maxMax        int // and never more
		lastLo, lastH int // where it ended
	}{
		// An 80 ms round trip and nothing else in the way: the window is
		// the bound, so it grows to MaxInFlight (256 chunks of 4096).
		{name: "long RTT grows to the byte bound", l: link{rtt: 80 * time.Millisecond}, chunks: 4000,
			minMax: 256, maxMax: 256, lastLo: 256, lastH: 256},
		{name: "20 ms RTT grows too", l: link{rtt: 20 * time.Millisecond}, chunks: 4000,
			minMax: 256, maxMax: 256, lastLo: 256, lastH: 256},
		{name: "a smaller MaxInFlight bounds it", maxIn: 128 << 10, l: link{rtt: 80 * time.Millisecond}, chunks: 2000,
			minMax: 32, maxMax: 32, lastLo: 32, lastH: 32},
		// 1000 chunks/s over 80 ms: the path holds 80 chunks; the window
		// settles near twice that, not at the bound (startup, which
		// learns of the queue a round trip late, may overshoot to it).
		{name: "a bottleneck holds it near 2×BDP", l: link{rtt: 80 * time.Millisecond, gap: time.Millisecond}, chunks: 6000,
			minMax: 100, maxMax: 256, lastLo: 120, lastH: 200},
		// A server relaying 4 chunks/s: the window is not the bound, it
		// stays at the floor (as the fixed window was).
		{name: "a rate-limited server keeps the floor", l: link{rtt: 5 * time.Millisecond, gap: 250 * time.Millisecond}, chunks: 200,
			minMax: 16, maxMax: 16, lastLo: 16, lastH: 16},
		// The path narrows to 10 chunks/s under a full window: chunks
		// queue, and acknowledgements slower than AckTimeout/4 halve the
		// window (below the floor) until they are quick enough again.
		{name: "queueing acks shrink it", ackTimeout: 8 * time.Second,
			l: link{rtt: 20 * time.Millisecond, slowFrom: 2000, slowGap: 100 * time.Millisecond}, chunks: 3000,
			minMax: 256, maxMax: 256, lastLo: 1, lastH: 24},
		// A long round trip is distance, not a queue: no cut.
		{name: "a long round trip is not a queue", ackTimeout: 4 * time.Second,
			l: link{rtt: 1500 * time.Millisecond}, chunks: 3000,
			minMax: 256, maxMax: 256, lastLo: 256, lastH: 256},
		{name: "fixed window stays fixed", fixed: 16, l: link{rtt: 80 * time.Millisecond}, chunks: 1000,
			minMax: 16, maxMax: 16, lastLo: 16, lastH: 16},
		{name: "fixed window beyond what a receiver holds is capped", fixed: 5000, l: link{rtt: 80 * time.Millisecond}, chunks: 2000,
			minMax: 512, maxMax: 512, lastLo: 512, lastH: 512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			maxIn := tc.maxIn
			if maxIn == 0 {
				maxIn = DefaultMaxInFlight
			}
			at := tc.ackTimeout
			if at == 0 {
				at = DefaultAckTimeout
			}
			w := newWindow(tc.fixed, maxIn, bs, at, noThrottle)
			res := simulate(w, tc.l, tc.chunks, bs)
			t.Logf("max window %d, last %d, most in flight %d, %.2f MB/s", res.maxCwnd, res.lastCwnd, res.maxFlight,
				float64(tc.chunks*bs)/res.elapsed.Seconds()/1e6)
			if res.maxCwnd < tc.minMax || res.maxCwnd > tc.maxMax {
				t.Errorf("window reached %d, want %d..%d", res.maxCwnd, tc.minMax, tc.maxMax)
			}
			if res.maxFlight > res.maxCwnd || res.maxFlight*bs > max(maxIn, aheadLimit(bs)*bs) {
				t.Errorf("%d chunks in flight, window at most %d", res.maxFlight, res.maxCwnd)
			}
			if res.lastCwnd < tc.lastLo || res.lastCwnd > tc.lastH {
				t.Errorf("window ended at %d, want %d..%d", res.lastCwnd, tc.lastLo, tc.lastH)
			}
		})
	}
}

// Startup triples the window per round trip, on the bench's 80 ms links:
// at least 165 ms from chunk to acknowledgement, which Prosody's Nagle
// sends in bursts once per 80 ms. (The bench's trace took eight round
// trips to 256 chunks without startup; this path, without the TCP slow
// start of a real one, lets the estimate alone keep up.)
func TestWindowStartup(t *testing.T) {
	rounds := func(startup bool) float64 {
		const rtt = 165 * time.Millisecond
		w := newWindow(0, DefaultMaxInFlight, 4096, DefaultAckTimeout, throttle{})
		w.startup = startup
		res := simulate(w, link{rtt: rtt, nagle: 80 * time.Millisecond}, 4000, 4096)
		if res.maxCwnd != 256 {
			t.Fatalf("startup %v: the window reached %d, want 256", startup, res.maxCwnd)
		}
		return float64(res.fullAt) / float64(rtt)
	}
	with, without := rounds(true), rounds(false)
	t.Logf("256 chunks after %.1f round trips (%.1f without startup)", with, without)
	if with > 3.5 || with > without {
		t.Errorf("startup took %.1f round trips to 256 chunks, want at most 3.5 and no more than without it (%.1f)", with, without)
	}
}

// An error answer collapses the window: nothing more should leave.
func TestWindowCollapsesOnError(t *testing.T) {
	for _, fixed := range []int{0, 16} {
		w := newWindow(fixed, DefaultMaxInFlight, 4096, DefaultAckTimeout, throttle{})
		simulate(w, link{rtt: 20 * time.Millisecond}, 1000, 4096)
		w.failed()
		if w.size() != 1 {
			t.Errorf("fixed %d: window %d after an error, want 1", fixed, w.size())
		}
	}
}

func TestAheadLimit(t *testing.T) {
	for _, tc := range []struct{ bs, want int }{
		{1, maxAhead}, {512, maxAhead}, {2048, 1024}, {4096, 512}, {8192, 256}, {32768, 64}, {MaxBlockSize, minAhead},
	} {
		if got := aheadLimit(tc.bs); got != tc.want {
			t.Errorf("aheadLimit(%d) = %d, want %d", tc.bs, got, tc.want)
		}
		// Our sender never exceeds what our receiver takes.
		if w := newWindow(0, DefaultMaxInFlight, tc.bs, DefaultAckTimeout, throttle{}); w.max > aheadLimit(tc.bs) {
			t.Errorf("block %d: window bound %d beyond %d", tc.bs, w.max, aheadLimit(tc.bs))
		}
	}
}

// The throttle report: once, for a server that paces the account, and
// never when something else is slow.
func TestThrottleDetection(t *testing.T) {
	const bs, wire = 4096, 5600 // a 4096-byte chunk is about 5.6 kB on the wire
	th := throttle{After: 5 * time.Second, Rate: DefaultThrottleRate}
	for _, tc := range []struct {
		name    string
		fixed   int
		l       link
		chunks  int
		reports int
		lo, hi  float64 // the reported rate
	}{
		// 20 kB/s: a chunk every 280 ms.
		{name: "20 kB/s limit", l: link{rtt: 2 * time.Millisecond, gap: 280 * time.Millisecond}, chunks: 100,
			reports: 1, lo: 18e3, hi: 22e3},
		{name: "20 kB/s limit, fixed window", fixed: 16, l: link{rtt: 2 * time.Millisecond, gap: 280 * time.Millisecond}, chunks: 100,
			reports: 1, lo: 18e3, hi: 22e3},
		// ejabberd's default shaper: 3000 B/s.
		{name: "3 kB/s limit", l: link{rtt: 2 * time.Millisecond, gap: 1867 * time.Millisecond}, chunks: 30,
			reports: 1, lo: 2.7e3, hi: 3.3e3},
		{name: "fast path", l: link{rtt: 80 * time.Millisecond}, chunks: 5000},
		{name: "a limit above the threshold", l: link{rtt: 2 * time.Millisecond, gap: 50 * time.Millisecond}, chunks: 1000},
		// The writer is the slow one: acknowledgements are quick and the
		// window never fills.
		{name: "slow writer", l: link{rtt: 2 * time.Millisecond, think: 280 * time.Millisecond}, chunks: 100},
		{name: "too short to tell", l: link{rtt: 2 * time.Millisecond, gap: 280 * time.Millisecond}, chunks: 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWindow(tc.fixed, DefaultMaxInFlight, bs, 10*time.Minute, th)
			res := simulate(w, tc.l, tc.chunks, wire)
			if len(res.reports) != tc.reports {
				t.Fatalf("%d reports %v, want %d", len(res.reports), res.reports, tc.reports)
			}
			for _, r := range res.reports {
				if r < tc.lo || r > tc.hi {
					t.Errorf("reported %.0f B/s, want %.0f..%.0f", r, tc.lo, tc.hi)
				}
			}
		})
	}
}
