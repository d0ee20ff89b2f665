package ibb

import (
	"math"
	"time"
)

// The sender's window: how many chunks may be unacknowledged at once.
//
// A fixed window (Options.Window) is that many chunks, always. The adaptive
// window (the default) follows the path's bandwidth-delay product, in the
// manner of BBR: it keeps the best delivery rate (chunks acknowledged per
// second) of the last rateRounds round trips and the smallest
// acknowledgement round trip seen, and allows windowGain times their
// product in flight. Where the window is what limits the transfer (a long
// round trip, an idle link), every round trip delivers about the whole
// window, so the estimate and the window double each round; where
// something else limits it (a rate-limited server, a slow reader, a busy
// link), the delivery rate stays flat and so does the window. Either way it
// stays between DefaultWindow chunks (what the window was before it
// adapted, so never slower than that) and MaxInFlight bytes, but for the
// cuts below.
//
// Shrinking: an acknowledgement slower than a quarter of AckTimeout, and
// twice the quickest round trip (chunks queue somewhere), halves a cap on
// the window (at most once per round trip) that then grows back by one
// chunk per round trip whose acknowledgements were all quick, so that
// a queue building up somewhere never lets chunks time out; this may go
// below DefaultWindow. An error answer collapses the window to one chunk,
// though the stream fails with it anyway, as it always did: a chunk is
// never sent twice, since the peer may already hold the chunks after it.
//
// The window also watches for a server that rate-limits the account: see
// throttle.
type window struct {
	fixed      bool
	floor, max int // chunks, adaptive only
	cwnd       int // chunks allowed in flight now
	limit      int // cap lowered by slow acknowledgements and errors

	slowAck time.Duration // an acknowledgement this slow halves limit

	delivered   int64     // chunks acknowledged
	deliveredAt time.Time // when the latest was (or the first chunk left)
	minRTT      time.Duration

	round        int64 // round trips so far
	nextRound    int64 // delivered count that ends the current round
	rates        [rateRounds]float64
	roundSlow    bool  // an acknowledgement of this round was slow
	lastCutRound int64 // limit is cut at most once per round

	// Startup, as BBR's: the window grows by startupStep chunks per
	// acknowledgement (tripling per round trip) from the second round
	// trip on, instead of by the rate estimate alone, whose samples lag a
	// round behind (and which a server's Nagle, holding acknowledgements
	// for a round trip of its own, slows further), until the delivery rate
	// stops growing (by a quarter within startupRounds round trips). An
	// acknowledgement that queued (over twice the quickest round trip, and
	// minQueueDelay over it: Nagle and delayed ACKs add less) adds
	// nothing: a fresh TCP connection's own slow start queues chunks for a
	// few of its round trips, a rate-limited server all the time.
	startup    bool
	fullRate   float64 // best rate when startup last saw it grow
	flatRounds int     // round trips since

	th throttle
}

const (
	// windowGain is how many bandwidth-delay products the adaptive window
	// keeps in flight: 2 leaves room for acknowledgements that arrive in
	// bursts, and lets the window double per round trip while that raises
	// the delivery rate.
	windowGain = 2
	// rateRounds is how many round trips the best delivery rate is kept.
	rateRounds = 10
	// startupRounds round trips without a quarter more delivery rate end
	// startup.
	startupRounds = 3
	// startupStep is how many chunks the window grows by per
	// acknowledgement in startup: 2 triples it per round trip (BBR's
	// startup gain is 2.89), keeping up with the TCP slow start of the two
	// links a chunk and its acknowledgement cross (each of which doubles
	// per round trip of its own, twice within ours).
	startupStep = 2
)

// chunkSend is what the window records about one chunk when it leaves.
type chunkSend struct {
	at          time.Time
	delivered   int64     // chunks acknowledged when it left
	deliveredAt time.Time // when the latest of those was acknowledged
	waited      bool      // the writer had waited for room in the window
	wire        int       // about how many bytes it takes on the wire
}

// newWindow returns a window for chunks of blockSize bytes. fixed > 0 makes
// it fixed at that many chunks; otherwise it adapts up to maxInFlight
// bytes. Both are capped at what a receiver of ours holds ahead.
func newWindow(fixed, maxInFlight, blockSize int, ackTimeout time.Duration, th throttle) *window {
	w := &window{slowAck: ackTimeout / 4, th: th}
	w.configure(fixed, maxInFlight, blockSize)
	return w
}

// configure sets the bounds for a block size; open calls it again when the
// peer asks for smaller blocks.
func (w *window) configure(fixed, maxInFlight, blockSize int) {
	ahead := aheadLimit(blockSize)
	if fixed > 0 {
		w.fixed, w.cwnd = true, min(fixed, ahead)
		w.floor, w.max, w.limit = w.cwnd, w.cwnd, w.cwnd
		return
	}
	w.max = min(max(maxInFlight/blockSize, 1), ahead)
	w.floor = min(DefaultWindow, w.max)
	w.cwnd, w.limit = w.floor, w.max
	w.startup = true
}

// size is how many chunks may be unacknowledged now.
func (w *window) size() int { return w.cwnd }

// sent records a chunk leaving at now.
func (w *window) sent(now time.Time, waited bool, wire int) chunkSend {
	if w.deliveredAt.IsZero() {
		w.deliveredAt = now // the first rate sample runs from here
	}
	return chunkSend{at: now, delivered: w.delivered, deliveredAt: w.deliveredAt, waited: waited, wire: wire}
}

// acked records the acknowledgement of chunk s at now. It returns the
// throttle rate to report (wire bytes per second) once, else 0.
func (w *window) acked(now time.Time, s chunkSend) float64 {
	w.delivered++
	w.deliveredAt = now
	rtt := now.Sub(s.at)
	if w.minRTT == 0 || rtt < w.minRTT {
		w.minRTT = max(rtt, time.Microsecond)
	}
	if !w.fixed {
		w.adapt(now, rtt, s)
	}
	return w.th.observe(now, rtt, w.minRTT, s)
}

// adapt updates the adaptive window with an acknowledgement.
func (w *window) adapt(now time.Time, rtt time.Duration, s chunkSend) {
	// Delivery rate over the chunk's round trip: what was acknowledged
	// between the acknowledgement before it left and its own.
	elapsed := max(now.Sub(s.deliveredAt), w.minRTT)
	rate := float64(w.delivered-s.delivered) / elapsed.Seconds()

	if s.delivered >= w.nextRound { // the first chunk of a new round trip
		w.endStartupIfFlat()
		w.round++
		w.nextRound = w.delivered
		w.rates[w.round%rateRounds] = 0
		if !w.roundSlow && w.limit < w.max {
			w.limit++
		}
		w.roundSlow = false
	}
	slot := &w.rates[w.round%rateRounds]
	*slot = max(*slot, rate)
	if w.slowAck > 0 && rtt > w.slowAck && rtt > 2*w.minRTT { // queueing, not distance
		w.roundSlow = true
		if w.round > w.lastCutRound {
			w.lastCutRound = w.round
			w.limit = max(w.cwnd/2, 1)
		}
	}
	best := 0.0
	for _, r := range w.rates {
		best = max(best, r)
	}
	target := int(math.Ceil(windowGain * best * w.minRTT.Seconds()))
	queued := rtt > 2*w.minRTT && rtt-w.minRTT > minQueueDelay
	if w.startup && w.round > 1 && !queued {
		target = max(target, w.cwnd+startupStep)
	}
	w.cwnd = min(max(target, w.floor), w.max, w.limit)
	if w.cwnd == w.max {
		w.startup = false
	}
}

// endStartupIfFlat ends startup, at the start of a round trip, once the
// best delivery rate has not grown by a quarter for startupRounds.
func (w *window) endStartupIfFlat() {
	if !w.startup {
		return
	}
	best := 0.0
	for _, r := range w.rates {
		best = max(best, r)
	}
	if best >= 1.25*w.fullRate {
		w.fullRate, w.flatRounds = best, 0
		return
	}
	if w.flatRounds++; w.flatRounds >= startupRounds {
		w.startup = false
	}
}

// failed records an error answer or a missing acknowledgement: the stream
// fails, so nothing more should leave.
func (w *window) failed() {
	w.limit, w.cwnd = 1, 1
}

// throttle tells a server's rate limit from the acknowledgements: for
// After, the writer kept waiting for room in the window, every
// acknowledgement took four times the quickest round trip or more (so
// chunks queue somewhere: the window is not what limits the transfer),
// acknowledgements kept coming (no gap of half of After: a stall is not a
// limit), and the wire rate stayed under Rate and about the same in both
// halves of the period. Prosody's mod_limits and ejabberd's shapers look
// exactly like that: the server reads from our socket at a fixed pace.
type throttle struct {
	After time.Duration
	Rate  float64 // wire bytes per second

	reported         bool
	start, mid, last time.Time
	bytes, midBytes  float64
	acks             int
}

// minQueueDelay is the least extra delay taken for queueing rather than
// jitter.
const minQueueDelay = 200 * time.Millisecond

func (t *throttle) observe(now time.Time, rtt, minRTT time.Duration, s chunkSend) float64 {
	if t.reported || t.After <= 0 {
		return 0
	}
	queued := s.waited && rtt >= 4*minRTT && rtt-minRTT >= minQueueDelay
	if !queued || (!t.start.IsZero() && now.Sub(t.last) > t.After/2) {
		t.start = time.Time{}
		if !queued {
			return 0
		}
	}
	if t.start.IsZero() {
		t.start, t.last, t.mid = now, now, time.Time{}
		t.bytes, t.midBytes, t.acks = 0, 0, 0
		return 0
	}
	t.last = now
	t.bytes += float64(s.wire)
	t.acks++
	elapsed := now.Sub(t.start)
	if t.mid.IsZero() && elapsed >= t.After/2 {
		t.mid, t.midBytes = now, t.bytes
	}
	if elapsed < t.After || t.mid.IsZero() {
		return 0
	}
	rate := t.bytes / elapsed.Seconds()
	first := t.midBytes / t.mid.Sub(t.start).Seconds()
	second := (t.bytes - t.midBytes) / max(now.Sub(t.mid), time.Millisecond).Seconds()
	flat := first <= 2*second && second <= 2*first
	if rate < t.Rate && flat && t.acks >= 3 {
		t.reported = true
		return rate
	}
	t.start = time.Time{} // not a limit: look again from the next one
	return 0
}
