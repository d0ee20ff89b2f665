package transfer

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"xfer/internal/jingle"
)

// checksumWait is how long a receiver waits, after the last byte, for a
// Jingle sender's checksum when the offer carried none (Conversations and
// Dino send it after the bytes, Libervia right after the in-band close).
const checksumWait = 10 * time.Second

// jingleOffer applies the receive policy to a Jingle session-initiate and,
// when the offer is accepted, receives the file (it runs on a goroutine of
// its own).
func (r *Receiver) jingleOffer(in *jingle.Incoming) {
	r.wg.Add(1)
	defer r.wg.Done()
	from := in.Peer()
	f, err := in.File()
	ev := Event{Type: "offer", SID: in.SID(), Direction: "receive", Peer: from, File: f.Name, Size: f.Size, Method: "jingle"}
	r.obs.emit(ev)
	ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
	defer cancel()
	if err != nil {
		var oe *jingle.OfferError
		if errors.As(err, &oe) {
			_ = in.Decline(ctx, oe.Reason, oe.Text)
		} else {
			_ = in.Decline(ctx, jingle.ReasonFailedApplication, err.Error())
		}
		ev.Type, ev.Error = "refused", fmt.Sprintf("offer from %s refused: %v", from, err)
		r.obs.emit(ev)
		return
	}
	facts := offerFacts{SID: in.SID(), From: from, Name: f.Name, Size: f.Size, Date: f.Date, Algo: "sha-256", CanRange: f.CanRange}
	switch {
	case f.Hash != nil:
		facts.Algo, facts.Hash = f.Hash.Algo, f.Hash.Hex()
	case f.HashUsed != "":
		facts.Algo = f.HashUsed
	}
	a, no := r.admitOffer(facts)
	if no != nil {
		text := "declined"
		if no.se != nil && no.se.Text != "" {
			text = no.se.Text
		}
		_ = in.Decline(ctx, no.reason, text)
		ev.Type, ev.Error = "refused", no.why
		r.obs.emit(ev)
		return
	}
	ev.Type, ev.Path, ev.Offset = "accepted", a.part, a.offset
	r.obs.emit(ev)
	res, err := r.storeJingle(in, a, facts)
	r.finished(a, facts, res, err)
}

// storeJingle receives an accepted Jingle file, checks it against the
// offer's hash or the sender's later checksum, and moves it into place;
// the session ends with success, or with the reason it failed.
func (r *Receiver) storeJingle(in *jingle.Incoming, a *admitted, o offerFacts) (res *Result, err error) {
	res = &Result{SID: o.SID, Peer: o.From, Name: a.name, Size: o.Size, Offset: a.offset, Method: "jingle"}
	reason := jingle.ReasonFailedTransport
	defer func() {
		a.abandon(err)
		if err != nil {
			if errors.Is(err, ErrIntegrity) || errors.Is(err, ErrTooLong) {
				reason = jingle.ReasonMediaError
			}
			if errors.Is(err, context.Canceled) {
				reason = jingle.ReasonCancel
			}
			_ = in.Finish(context.WithoutCancel(r.ctx), reason, err.Error())
		}
	}()
	tr := r.streams
	// Candidates of our own (XEP-0260 lets the responder offer them) only
	// where they cannot expose this machine's interface addresses by
	// surprise: a loopback server, or addresses the user gave.
	if o := &r.opts.S5B; !o.NoDirect && (o.ServerLoopback || len(o.DirectAddrs) > 0) {
		if srv, hosts, err := listenDirect(r.ctx, o); err == nil {
			defer srv.Close()
			tr.Server, tr.Direct = srv, hosts
		}
	}
	octx, cancel := context.WithTimeout(a.ctx, orDefault(r.opts.OpenTimeout, 2*time.Minute))
	st, err := in.Accept(octx, &tr, a.offset)
	cancel()
	if err != nil {
		return res, fmt.Errorf("transfer: %s accepted but no bytestream came from %s: %w", a.name, o.From, err)
	}
	defer st.Close()
	res.Method, res.Via, res.Fallback = "jingle-"+st.Method, st.Via, st.Fallback
	start := time.Now()
	if _, err := r.readFile(st, a, o); err != nil {
		if errors.Is(err, ErrTooLong) && a.offset > 0 {
			err = fmt.Errorf("%w; it was asked to resume from byte %d and seems to have sent the whole file instead (Libervia 0.9 never resumes): the partial file was removed, send it again", err, a.offset)
		}
		select {
		case te := <-in.Ended():
			err = fmt.Errorf("%w (%w)", err, te)
		default:
		}
		return res, err
	}
	if err := r.verifyJingle(in, a, o, res); err != nil {
		return res, err
	}
	if err := r.commit(a, o, res, start); err != nil {
		reason = jingle.ReasonFailedApplication
		return res, err
	}
	_ = in.Finish(context.WithoutCancel(r.ctx), jingle.ReasonSuccess, "")
	return res, nil
}

// verifyJingle compares the received bytes with the sender's digest: the
// one computed while receiving when the algorithms match, else the part
// file hashed again. A sender that gives no usable hash at all (allowed by
// XEP-0234) leaves the file unverified, which the result says.
func (r *Receiver) verifyJingle(in *jingle.Incoming, a *admitted, o offerFacts, res *Result) error {
	sums := in.Checksums(r.ctx, checksumWait)
	if len(sums) == 0 {
		res.Unverified = true
		return nil
	}
	want := sums[0]
	for _, d := range sums {
		if d.Algo == algoName(o.Algo) {
			want = d
		}
	}
	var got []byte
	if want.Algo == algoName(o.Algo) {
		got = a.h.Sum(nil)
	} else {
		h := jingle.NewHash(want.Algo)
		f, err := os.Open(a.part)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrFile, err)
		}
		_, err = io.CopyBuffer(h, &ctxReader{r.ctx, f}, make([]byte, 64<<10))
		f.Close()
		if err != nil {
			return fmt.Errorf("%w: hashing %s: %w", ErrFile, a.part, err)
		}
		got = h.Sum(nil)
	}
	if !bytes.Equal(got, want.Sum) {
		return fmt.Errorf("%w: %s: %s %s, the sender declared %s", ErrIntegrity, a.name, want.Algo, hex.EncodeToString(got), want.Hex())
	}
	res.Digest = want.Algo + ":" + want.Hex()
	return nil
}
