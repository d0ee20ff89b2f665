package jingle

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"xfer/internal/ibb"
	"xfer/internal/session"
)

// FileInfo describes an XEP-0234 file, as offered.
type FileInfo struct {
	Name      string
	Size      int64
	Date      time.Time
	Desc      string
	MediaType string
	// Hash is the digest in the offer, if any.
	Hash *Digest
	// HashUsed names the algorithm of a checksum announced for later.
	HashUsed string
	// CanRange says the sender can send part of the file (resume).
	CanRange bool
}

// contentName is the name xfer gives its one content.
const contentName = "a-file-offer"

// The data phase: how long a side waits, after the last byte, for the
// other's checksum or confirmation.
const finishTimeout = 30 * time.Second

// terminateGrace is how long a stream stays open after the peer ended the
// session, for the bytes already on their way to be read.
const terminateGrace = 2 * time.Second

// receivedGrace is how long a sender waits, after the receiver said it has
// the file, for the receiver to end the session.
const receivedGrace = 2 * time.Second

func fileElem(f FileInfo, hashLater bool) *File {
	desc := f.Desc // Libervia 0.9 refuses an offer without <desc/>
	el := &File{Name: f.Name, Size: strconv.FormatInt(f.Size, 10), Desc: &desc, MediaType: f.MediaType}
	if !f.Date.IsZero() {
		el.Date = f.Date.UTC().Format(time.RFC3339)
	}
	if f.CanRange {
		el.Range = &Range{}
	}
	if f.Hash != nil {
		if hashLater {
			el.HashUsed = []HashUsed{{Algo: f.Hash.Algo}}
		} else {
			el.Hashes = []Hash{f.Hash.Element()}
		}
	}
	return el
}

// OfferOptions shape an outgoing session.
type OfferOptions struct {
	Transports Transports
	// HashLater announces the hash with <hash-used/> and sends it in a
	// checksum after the bytes, instead of putting it in the offer.
	// Libervia 0.9 refuses a hash in the offer.
	HashLater bool
	// HexChecksum encodes the checksum as base64 of the hex digest, the
	// only form Libervia 0.9 verifies.
	HexChecksum bool
}

// Outgoing is a file offer this side initiated.
type Outgoing struct {
	c    *call
	n    *negotiation
	file FileInfo
	opts OfferOptions
	// Offset and Length are the part of the file the receiver asked for
	// (Length 0: to the end).
	Offset, Length int64
	watch          *watcher
}

// Offer sends a session-initiate offering f to the full JID to and waits
// until the peer accepts (or ctx ends). A decline is an error matching
// ErrDeclined.
func Offer(ctx context.Context, m *Manager, to string, f FileInfo, opts OfferOptions) (*Outgoing, error) {
	c, err := m.register(session.NewID(), to, true)
	if err != nil {
		return nil, err
	}
	c.contentCreator, c.contentName = "initiator", contentName
	o := &Outgoing{c: c, file: f, opts: opts}
	o.n = &negotiation{c: c, t: &o.opts.Transports}
	if err := o.n.prepare(); err != nil {
		c.close()
		return nil, err
	}
	content := Content{Creator: "initiator", Name: contentName, Senders: "initiator", Description: &Description{File: fileElem(f, opts.HashLater)}}
	o.n.transportElem(&content)
	if err := c.send(ctx, &Jingle{Action: ActionSessionInitiate, Contents: []Content{content}}); err != nil {
		o.n.release()
		c.close()
		return nil, err
	}
	if err := o.awaitAccept(ctx); err != nil {
		o.n.release()
		if !c.terminated.Load() {
			_ = c.terminate(context.WithoutCancel(ctx), ReasonCancel, "")
		}
		return nil, err
	}
	return o, nil
}

// SID is the session's id.
func (o *Outgoing) SID() string { return o.c.sid }

// awaitAccept waits for the session-accept; what comes before it (e.g.
// Libervia's candidate-used) is kept for later.
func (o *Outgoing) awaitAccept(ctx context.Context) error {
	j, err := o.c.await(ctx, ActionSessionAccept)
	if err != nil {
		return err
	}
	return o.accepted(j)
}

func (o *Outgoing) accepted(j *Jingle) error {
	if len(j.Contents) == 0 {
		return malformed("session-accept without content")
	}
	ct := j.Contents[0]
	if ct.Description != nil && ct.Description.File != nil && ct.Description.File.Range != nil {
		r := ct.Description.File.Range
		off, ok := ParseSize(r.Offset)
		if r.Offset == "" {
			off, ok = 0, true
		}
		if !ok || off > o.file.Size || (off > 0 && !o.file.CanRange) {
			return malformed("the peer asked for offset %q of a %d-byte file", r.Offset, o.file.Size)
		}
		o.Offset = off
		if r.Length != "" {
			if l, ok := ParseSize(r.Length); ok && l > 0 && l < o.file.Size-off {
				o.Length = l
			}
		}
	}
	switch {
	case o.n.ibbSID != "":
		if ct.IBB != nil && ct.IBB.BlockSize > 0 && ct.IBB.BlockSize < o.n.blockSize {
			o.n.blockSize = ct.IBB.BlockSize
		}
	case ct.S5B != nil:
		o.n.remote = ct.S5B.Candidates
	}
	return nil
}

// Stream establishes the bytestream to write the file to: SOCKS5 when a
// candidate works, else in-band after a transport-replace.
func (o *Outgoing) Stream(ctx context.Context) (*Stream, error) {
	st, err := o.stream(ctx)
	if err != nil {
		if !o.c.terminated.Load() {
			_ = o.c.terminate(context.WithoutCancel(ctx), ReasonFailedTransport, err.Error())
		}
		return nil, err
	}
	o.watch = startWatcher(o.c, st)
	return st, nil
}

func (o *Outgoing) stream(ctx context.Context) (*Stream, error) {
	var fallback string
	if o.n.ibbSID == "" {
		st, err := o.n.establishS5B(ctx)
		if err == nil {
			return st, nil
		}
		if !errors.Is(err, errNoCandidate) || o.opts.Transports.NoIBB {
			return nil, err
		}
		fallback = err.Error()
		if err := o.replace(ctx); err != nil {
			return nil, fmt.Errorf("jingle: moving to in-band after %s: %w", fallback, err)
		}
	}
	opts := o.opts.Transports.IBB
	opts.BlockSize = o.n.blockSize
	if opts.AlignRecords && ibb.FillBlockSize(o.c.peer, o.n.ibbSID) != opts.BlockSize {
		opts.AlignRecords = false // the peer asked for smaller blocks
	}
	conn, err := ibb.Open(ctx, o.c.m.s, o.c.peer, o.n.ibbSID, opts)
	if err != nil {
		return nil, err
	}
	return &Stream{Conn: conn, Method: "ibb", Fallback: fallback}, nil
}

// replace asks the peer to move the content to XEP-0261 (XEP-0260 §3).
func (o *Outgoing) replace(ctx context.Context) error {
	o.n.useIBB("")
	content := Content{Creator: o.c.contentCreator, Name: o.c.contentName}
	o.n.transportElem(&content)
	if err := o.c.send(ctx, &Jingle{Action: ActionTransportReplace, Contents: []Content{content}}); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, iqTimeout)
	defer cancel()
	j, err := o.c.await(ctx, ActionTransportAccept, ActionTransportReject)
	if err != nil {
		return err
	}
	if j.Action == ActionTransportReject {
		return fmt.Errorf("%w: the peer rejected in-band", ErrNoTransport)
	}
	if len(j.Contents) > 0 && j.Contents[0].IBB != nil {
		if bs := j.Contents[0].IBB.BlockSize; bs > 0 && bs < o.n.blockSize {
			o.n.blockSize = bs
		}
	}
	return nil
}

// Finish ends the session after the bytes were written and the stream
// closed: it sends the checksum when it was not in the offer, then waits
// for the receiver to confirm (received, or session-terminate success).
func (o *Outgoing) Finish(ctx context.Context) error {
	if o.opts.HashLater && o.file.Hash != nil {
		h := o.file.Hash.Element()
		if o.opts.HexChecksum {
			h = o.file.Hash.HexElement()
		}
		sum := &Checksum{Creator: o.c.contentCreator, Name: o.c.contentName, File: &File{Hashes: []Hash{h}}}
		if err := o.c.send(ctx, &Jingle{Action: ActionSessionInfo, Checksum: sum}); err != nil {
			o.Abort(ReasonCancel, "")
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, finishTimeout)
	defer cancel()
	select {
	case err := <-o.watch.ended:
		if te := new(TerminatedError); errors.As(err, &te) && te.Reason == ReasonSuccess {
			return nil
		}
		return err
	case <-o.watch.received:
		// The receiver has the file. It usually terminates next (xfer,
		// Libervia); end the session ourselves only if it does not.
		select {
		case <-o.watch.ended:
		case <-time.After(receivedGrace):
			_ = o.c.terminate(context.WithoutCancel(ctx), ReasonSuccess, "")
		}
		return nil
	case <-ctx.Done():
		_ = o.c.terminate(context.WithoutCancel(ctx), ReasonTimeout, "no confirmation")
		return fmt.Errorf("jingle: %s did not confirm the file: %w", o.c.peer, ctx.Err())
	}
}

// Abort ends the session with a reason (cancel, failed-transport…).
func (o *Outgoing) Abort(reason, text string) {
	o.n.release()
	_ = o.c.terminate(context.Background(), reason, text)
}

// Ended is closed with the peer's termination while the bytes move (nil
// before Stream).
func (o *Outgoing) Ended() <-chan error {
	if o.watch == nil {
		return nil
	}
	return o.watch.ended
}

// watcher reads a session's requests while the bytes move: a
// session-terminate closes the stream at once (so a blocked read or write
// ends), a checksum or received is passed on.
type watcher struct {
	ended    chan error // the peer's termination, once
	sums     chan []Hash
	received chan struct{}
}

func startWatcher(c *call, st *Stream) *watcher {
	w := &watcher{ended: make(chan error, 1), sums: make(chan []Hash, 4), received: make(chan struct{}, 1)}
	go func() {
		for {
			var j *Jingle
			if p := c.takePending(); len(p) > 0 {
				for _, k := range p[1:] {
					c.keep(k)
				}
				j = p[0]
			} else {
				select {
				case j = <-c.events:
				case <-c.done:
					return
				}
			}
			if err := c.observe(j); err != nil {
				w.ended <- err
				// What already arrived is still read (and kept for a
				// resume); a blocked read or write ends soon after.
				time.AfterFunc(terminateGrace, func() { st.Close() })
				return
			}
			switch {
			case j.Action == ActionSessionInfo && j.Checksum != nil && j.Checksum.File != nil:
				select {
				case w.sums <- j.Checksum.File.Hashes:
				default:
				}
			case j.Action == ActionSessionInfo && j.Received != nil:
				select {
				case w.received <- struct{}{}:
				default:
				}
			}
		}
	}()
	return w
}
