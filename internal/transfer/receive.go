package transfer

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"xfer/internal/bytestream"
	"xfer/internal/disco"
	"xfer/internal/ibb"
	"xfer/internal/jingle"
	"xfer/internal/negotiate"
	"xfer/internal/oob"
	"xfer/internal/s5b"
	"xfer/internal/session"
	"xfer/internal/si"
)

// ReceiveOptions shape what is accepted and how it is stored.
type ReceiveOptions struct {
	Dir          string
	Allow        []string // bare JIDs allowed to send, besides the account's own
	AcceptAll    bool     // accept from anyone
	Overwrite    bool     // replace an existing file instead of choosing a new name
	MaxSize      int64    // refuse offers above this size; 0 means no limit
	MinFree      int64    // keep this much disk free after a file; -1 skips the check
	MaxPerPeer   int      // transfers one sender may have in progress; default DefaultMaxPerPeer
	OpenTimeout  time.Duration
	StallTimeout time.Duration
	IBB          ibb.Options
	S5B          S5BOptions
	// Out-of-band (oob.go): AcceptLinks also fetches jabber:x:oob links
	// in messages from allowed senders; FetchTimeout bounds one download
	// (default DefaultFetchTimeout).
	AcceptLinks  bool
	FetchTimeout time.Duration
}

// Receiver accepts offers on a session and stores the files.
type Receiver struct {
	s    Session
	opts ReceiveOptions
	obs  *Observer
	ibb  *ibb.Manager
	si   *si.Target
	// streams are the bytestreams incoming transfers may use.
	streams bytestream.Options

	ctx     context.Context // ends with the session: transfers in flight stop, their parts kept
	cancel  context.CancelFunc
	wg      sync.WaitGroup // transfers in progress
	mu      sync.Mutex
	active  map[string]*inFlight // part files being written
	perPeer map[string]int       // transfers in progress by sender's bare JID
	results chan outcome
	dropped []outcome   // ended after the receiver did (unreported)
	closed  atomic.Bool // Close was called: links in messages are ignored
}

type outcome struct {
	res *Result
	err error
}

// DefaultMaxPerPeer bounds the transfers one sender may have in progress
// at once, so that no peer can hold an unbounded number of files and
// streams open.
const DefaultMaxPerPeer = 32

// Features are what a receiver advertises in disco#info.
var Features = append([]string{disco.NSInfo, negotiate.NS, negotiate.NSFileTransfer, MethodS5B, MethodIBB, oob.NSIQ}, jingle.Features...)

// NewReceiver registers the receiver's handlers on the session: disco#info,
// SI offers and in-band bytestreams. Offers are handled until ctx ends.
func NewReceiver(ctx context.Context, s Session, opts ReceiveOptions, obs *Observer) (*Receiver, error) {
	st, err := os.Stat(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("%w: download directory: %w", ErrFile, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrFile, opts.Dir)
	}
	r := &Receiver{
		s: s, opts: opts, obs: obs,
		active:  map[string]*inFlight{},
		perPeer: map[string]int{},
		results: make(chan outcome, 16),
	}
	// A transfer cannot outlive its session: in-band data and Jingle's
	// terminate need it, and a direct SOCKS5 stream that went on would
	// finish a file nobody can be told about. It ends, keeping its part
	// for the resumed offer a reconnected receiver gets.
	r.ctx, r.cancel = context.WithCancel(ctx)
	go func() {
		select {
		case <-s.Done():
			r.cancel()
		case <-r.ctx.Done():
		}
	}()
	r.ibb = ibb.NewManager(s, opts.IBB)
	r.streams = bytestream.Options{NoDirect: opts.S5B.NoDirect, HostTimeout: opts.S5B.hostTimeout(), IBB: opts.IBB, InBand: r.ibb}
	// Out-of-band handlers (oob.go), before disco announces us.
	if err := r.registerOOB(); err != nil {
		return nil, err
	}
	s.Handle(session.TypeGet, disco.NSInfo, disco.Handler(&disco.Info{
		Identities: []disco.Identity{{Category: "client", Type: "pc", Name: "xfer"}},
		Features:   Features,
	}))
	s.Handle(session.TypeSet, negotiate.NS, negotiate.Handle(r.decide))
	r.si = si.NewTarget(s, &r.streams)
	jingle.NewManager(s).Listen(r.jingleOffer)
	return r, nil
}

// Next waits for the next transfer to end and returns its result.
func (r *Receiver) Next(ctx context.Context) (*Result, error) {
	select {
	case o := <-r.results:
		return o.res, o.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-r.s.Done():
		return nil, fmt.Errorf("transfer: session ended: %w", sessionErr(r.s))
	}
}

// Wait waits until the transfers in progress have ended; after the
// receiver's context is cancelled they end promptly, their part files
// closed and kept.
func (r *Receiver) Wait() { r.wg.Wait() }

// handled lists the requests a Receiver answers, for Close.
var handled = []struct{ typ, ns string }{
	{session.TypeGet, disco.NSInfo}, {session.TypeSet, negotiate.NS}, {session.TypeSet, s5b.NS},
	{session.TypeSet, ibb.NS}, {session.TypeSet, jingle.NS}, {session.TypeSet, oob.NSIQ},
}

// closeWait bounds Close's wait for answers still on their way.
const closeWait = 2 * time.Second

// Close ends the receiver before its session closes: it waits for the
// transfers in progress, stops taking requests (they are answered
// service-unavailable from then on) and waits, briefly, for the answers of
// requests still being handled, such as an out-of-band fetch whose result
// is what tells the sender the file arrived. Close the session after it.
func (r *Receiver) Close() {
	r.wg.Wait()
	r.closed.Store(true)
	for _, h := range handled {
		r.s.Handle(h.typ, h.ns, nil)
	}
	if q, ok := r.s.(interface{ Quiesce(context.Context) error }); ok {
		ctx, cancel := context.WithTimeout(context.Background(), closeWait)
		defer cancel()
		_ = q.Quiesce(ctx)
	}
	r.cancel()
}

func (r *Receiver) unreport(o outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropped = append(r.dropped, o)
}

// unreported returns the outcomes no Next returned: those waiting, and
// those of transfers that ended with the receiver (its session lost).
// Call it after Close.
func (r *Receiver) unreported() []outcome {
	var out []outcome
	for len(r.results) > 0 { // Close has waited for every transfer: nothing more comes
		out = append(out, <-r.results)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append(out, r.dropped...)
}

func sessionErr(s Session) error {
	if e, ok := s.(interface{ Err() error }); ok && e.Err() != nil {
		return e.Err()
	}
	return session.ErrDisconnected
}

func (r *Receiver) allowed(from string) bool {
	if r.opts.AcceptAll || session.EqualJID(session.Bare(from), session.Bare(r.s.JID())) {
		return true
	}
	for _, a := range r.opts.Allow {
		if session.EqualJID(session.Bare(from), session.Bare(a)) {
			return true
		}
	}
	return false
}

// decide applies the receive policy to an SI offer; an accepted offer gets
// a goroutine that waits for the bytestream and stores the file.
func (r *Receiver) decide(_ context.Context, from string, o *negotiate.Offer) (*negotiate.Accept, error) {
	facts := offerFacts{SID: o.SID, From: from, Name: o.File.Name, Size: o.File.Size, Date: o.File.Date, Algo: "md5", Hash: o.File.Hash, CanRange: o.File.CanRange}
	ev := Event{Type: "offer", SID: o.SID, Direction: "receive", Peer: from, File: o.File.Name, Size: o.File.Size, Hash: o.File.Hash}
	r.obs.emit(ev)
	method := o.Choose(MethodS5B, MethodIBB)
	if method == "" && r.allowed(from) {
		ev.Type, ev.Error = "refused", "no stream method in common"
		r.obs.emit(ev)
		return nil, negotiate.NoValidStreams()
	}
	a, no := r.admitOffer(facts)
	if no != nil {
		ev.Type, ev.Error = "refused", no.why
		r.obs.emit(ev)
		if no.se == nil {
			return nil, negotiate.Declined("Offer Declined")
		}
		return nil, no.se
	}
	// Expect the bytestream before the accept leaves, so a request that
	// follows it at once is not turned away.
	pending := r.si.Expect(o.SID, from, method == MethodS5B, o.Choose(MethodIBB) != "")
	ev.Type, ev.Method, ev.Path, ev.Offset = "accepted", MethodName(method), a.part, a.offset
	r.obs.emit(ev)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		res, err := r.store(a, facts, pending)
		r.finished(a, facts, res, err)
	}()
	return &negotiate.Accept{Method: method, Offset: a.offset}, nil
}

// inFlight is a part file being written, and what can end its transfer.
type inFlight struct {
	peer       string
	facts      *offerFacts // nil for out-of-band fetches
	cancel     context.CancelFunc
	done       chan struct{} // closed by release
	superseded bool
}

// supersedeWait bounds how long a new offer waits for the stale transfer
// it replaces to let go of the part file.
const supersedeWait = 10 * time.Second

// admit reserves the part file and a place among the sender's transfers
// in progress, or says why not; release gives them back. A new offer of
// the same file from the same sender (a sender run again after it died)
// ends the stale transfer, which keeps its part, and takes its place: the
// part then resumes. o is nil for out-of-band fetches, which never
// supersede.
func (r *Receiver) admit(part, peer, name string, o *offerFacts, cancel context.CancelFunc) (*session.StanzaError, string) {
	maxPeer := r.opts.MaxPerPeer
	if maxPeer <= 0 {
		maxPeer = DefaultMaxPerPeer
	}
	busy := func() (*session.StanzaError, string) {
		return session.NewError(session.CondResourceConstraint, "a file of that name is already arriving"), "a file named " + name + " is already arriving"
	}
	r.mu.Lock()
	if old := r.active[part]; old != nil {
		if o == nil || old.facts == nil || !sameFile(old.facts, o) || old.peer != peer {
			r.mu.Unlock()
			return busy()
		}
		old.superseded = true
		old.cancel()
		r.mu.Unlock()
		select {
		case <-old.done:
		case <-time.After(supersedeWait):
			return busy()
		}
		r.mu.Lock()
		if r.active[part] != nil {
			r.mu.Unlock()
			return busy()
		}
	}
	defer r.mu.Unlock()
	if r.perPeer[peer] >= maxPeer {
		return session.NewError(session.CondResourceConstraint, "too many transfers in progress"), fmt.Sprintf("%s already has %d transfers in progress", peer, maxPeer)
	}
	r.active[part] = &inFlight{peer: peer, facts: o, cancel: cancel, done: make(chan struct{})}
	r.perPeer[peer]++
	return nil, ""
}

// sameFile tells whether two offers are of the same file.
func sameFile(a, b *offerFacts) bool {
	return a.Name == b.Name && a.Size == b.Size && algoName(a.Algo) == algoName(b.Algo) && strings.EqualFold(a.Hash, b.Hash)
}

// release gives back what admit reserved; it reports whether a newer
// offer superseded the transfer.
func (r *Receiver) release(part, peer string) (superseded bool) {
	r.mu.Lock()
	if f := r.active[part]; f != nil {
		superseded = f.superseded
		close(f.done)
	}
	delete(r.active, part)
	if r.perPeer[peer]--; r.perPeer[peer] <= 0 {
		delete(r.perPeer, peer)
	}
	r.mu.Unlock()
	return superseded
}

// store receives an SI file's bytes into the part file, checks them and
// moves the file into place. On failure no file is left under the final
// name.
func (r *Receiver) store(a *admitted, o offerFacts, pending *si.Pending) (res *Result, err error) {
	res = &Result{SID: o.SID, Peer: o.From, Name: a.name, Size: o.Size, Hash: o.Hash, Offset: a.offset}
	defer func() { a.abandon(err) }()
	octx, cancel := context.WithTimeout(a.ctx, orDefault(r.opts.OpenTimeout, 2*time.Minute))
	conn, err := pending.Await(octx, o.Size-a.offset)
	cancel()
	if err != nil {
		return res, fmt.Errorf("transfer: %s accepted but no bytestream came from %s: %w", a.name, o.From, err)
	}
	defer conn.Close()
	res.Method, res.Via, res.Fallback = conn.Method, conn.Via, conn.Fallback
	start := time.Now()
	if _, err := r.readFile(conn, a, o); err != nil {
		return res, err
	}
	if got := hex.EncodeToString(a.h.Sum(nil)); o.Hash != "" && got != o.Hash {
		return res, fmt.Errorf("%w: %s: MD5 %s, the sender declared %s", ErrIntegrity, a.name, got, o.Hash)
	}
	return res, r.commit(a, o, res, start)
}
