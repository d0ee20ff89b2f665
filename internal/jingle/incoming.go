package jingle

import (
	"context"
	"fmt"
	"strings"
	"time"

	"xfer/internal/ibb"
)

// Incoming is a session-initiate this side received.
type Incoming struct {
	c     *call
	offer *Jingle
	n     *negotiation
	watch *watcher
	file  *FileInfo
}

// Peer is the initiator's full JID.
func (in *Incoming) Peer() string { return in.c.peer }

// SID is the session's id.
func (in *Incoming) SID() string { return in.c.sid }

// OfferError is an offer xfer cannot take, with the reason to decline it
// with.
type OfferError struct {
	Reason string
	Text   string
	Err    error
}

func (e *OfferError) Error() string { return e.Text }
func (e *OfferError) Unwrap() error { return e.Err }

// File reads the offer. An offer xfer cannot take (encrypted, another
// application, no known transport, no size) is an *OfferError: Decline it
// with its reason.
func (in *Incoming) File() (FileInfo, error) {
	if in.file != nil {
		return *in.file, nil
	}
	if len(in.offer.Contents) != 1 {
		return FileInfo{}, &OfferError{ReasonFailedApplication, fmt.Sprintf("%d contents: xfer takes one file per session", len(in.offer.Contents)), ErrUnsupported}
	}
	ct := in.offer.Contents[0]
	in.c.contentCreator, in.c.contentName = ct.Creator, ct.Name
	switch {
	case ct.Security != nil:
		return FileInfo{}, &OfferError{ReasonSecurityError, "the file is encrypted with Jingle Encrypted Transports (OMEMO), which xfer cannot decrypt", ErrSecurity}
	case ct.Description == nil || ct.Description.File == nil:
		return FileInfo{}, &OfferError{ReasonUnsupportedApps, "not an XEP-0234 file-transfer:5 offer", ErrUnsupported}
	case ct.S5B == nil && ct.IBB == nil:
		return FileInfo{}, &OfferError{ReasonUnsupportedTransports, "no SOCKS5 or in-band transport offered", ErrUnsupported}
	}
	el := ct.Description.File
	size, ok := ParseSize(el.Size)
	if !ok {
		return FileInfo{}, &OfferError{ReasonFailedApplication, fmt.Sprintf("offer without a valid size (%q)", el.Size), ErrMalformed}
	}
	f := FileInfo{Name: el.Name, Size: size, Date: ParseDate(el.Date), MediaType: el.MediaType, CanRange: el.Range != nil}
	if f.MediaType == "" {
		f.MediaType = el.MediaTypeCamel
	}
	if el.Desc != nil {
		f.Desc = strings.TrimSpace(*el.Desc)
	}
	if d, ok := Best(el.Hashes); ok {
		f.Hash = &d
	}
	for _, u := range el.HashUsed {
		if NewHash(u.Algo) != nil {
			f.HashUsed = strings.ToLower(u.Algo)
			break
		}
	}
	in.file = &f
	return f, nil
}

// Decline ends the session with a reason: decline for a refusal, or the
// reason of an *OfferError. Nothing is dialled or opened.
func (in *Incoming) Decline(ctx context.Context, reason, text string) error {
	if reason == "" {
		reason = ReasonDecline
	}
	return in.c.terminate(ctx, reason, text)
}

// Accept accepts the offer from offset (0, or what a partial file already
// holds when the offer can range) and establishes the bytestream to read:
// SOCKS5 with the initiator's candidates (and ours, when t has a server), or
// in-band as offered or after the initiator's transport-replace.
func (in *Incoming) Accept(ctx context.Context, t *Transports, offset int64) (*Stream, error) {
	st, err := in.accept(ctx, t, offset)
	if err != nil {
		if in.n != nil {
			in.n.release()
		}
		if !in.c.terminated.Load() {
			_ = in.c.terminate(context.WithoutCancel(ctx), ReasonFailedTransport, err.Error())
		}
		return nil, err
	}
	in.watch = startWatcher(in.c, st)
	return st, nil
}

func (in *Incoming) accept(ctx context.Context, t *Transports, offset int64) (*Stream, error) {
	if _, err := in.File(); err != nil {
		return nil, err
	}
	ct := in.offer.Contents[0]
	n := &negotiation{c: in.c, t: t}
	in.n = n
	switch {
	case ct.S5B != nil && !t.NoS5B:
		n.s5bSID, n.remote = ct.S5B.SID, ct.S5B.Candidates
		local := *t
		local.Proxies = nil // the initiator's proxies are enough
		n.t = &local
		if err := n.prepareS5B(); err != nil {
			// No candidate of our own: an empty list, the peer's may work.
			n.local, n.directCh = nil, nil
		}
	case ct.IBB != nil && !t.NoIBB && t.InBand != nil:
		n.blockSize = ct.IBB.BlockSize
		if max := ibbMax(t); n.blockSize <= 0 || n.blockSize > max {
			n.blockSize = max
		}
		n.ibbSID = ct.IBB.SID
		t.InBand.Expect(n.ibbSID, in.c.peer)
	default:
		return nil, &OfferError{ReasonUnsupportedTransports, "no transport in common", ErrNoTransport}
	}
	acc := Content{Creator: ct.Creator, Name: ct.Name, Senders: ct.Senders, Description: &Description{File: &File{}}}
	if offset > 0 {
		acc.Description.File.Range = &Range{Offset: fmt.Sprint(offset)}
	}
	n.transportElem(&acc)
	if err := in.c.send(ctx, &Jingle{Action: ActionSessionAccept, Contents: []Content{acc}}); err != nil {
		return nil, err
	}
	if n.ibbSID != "" {
		return in.awaitIBB(ctx, "")
	}
	st, err := n.establishS5B(ctx)
	if err == nil {
		return st, nil
	}
	if !isNoCandidate(err) || t.NoIBB || t.InBand == nil {
		return nil, err
	}
	return in.awaitReplace(ctx, err.Error())
}

func ibbMax(t *Transports) int {
	if m := t.IBB.MaxBlockSize; m > 0 && m <= ibb.MaxBlockSize {
		return m
	}
	return ibb.MaxBlockSize
}

// awaitReplace waits for the initiator to move the content to in-band after
// the SOCKS5 candidates failed, and accepts.
func (in *Incoming) awaitReplace(ctx context.Context, why string) (*Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, iqTimeout)
	defer cancel()
	for {
		j, err := in.c.await(ctx, ActionTransportReplace)
		if err != nil {
			return nil, fmt.Errorf("jingle: waiting for in-band after %s: %w", why, err)
		}
		if len(j.Contents) == 0 || j.Contents[0].IBB == nil {
			rej := Content{Creator: in.c.contentCreator, Name: in.c.contentName}
			_ = in.c.send(ctx, &Jingle{Action: ActionTransportReject, Contents: []Content{rej}})
			continue
		}
		in.n.blockSize = j.Contents[0].IBB.BlockSize
		if max := ibbMax(in.n.t); in.n.blockSize <= 0 || in.n.blockSize > max {
			in.n.blockSize = max
		}
		in.n.ibbSID = j.Contents[0].IBB.SID
		in.n.t.InBand.Expect(in.n.ibbSID, in.c.peer)
		acc := Content{Creator: in.c.contentCreator, Name: in.c.contentName}
		in.n.transportElem(&acc)
		if err := in.c.send(ctx, &Jingle{Action: ActionTransportAccept, Contents: []Content{acc}}); err != nil {
			in.n.t.InBand.Forget(in.n.ibbSID, in.c.peer)
			return nil, err
		}
		return in.awaitIBB(ctx, why)
	}
}

// awaitIBB waits for the initiator's in-band open, ending early if the
// session is terminated.
func (in *Incoming) awaitIBB(ctx context.Context, fallback string) (*Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, iqTimeout)
	defer cancel()
	type result struct {
		conn *ibb.Conn
		err  error
	}
	got := make(chan result, 1)
	go func() {
		c, err := in.n.t.InBand.Accept(ctx, in.n.ibbSID, in.c.peer)
		got <- result{c, err}
	}()
	for {
		select {
		case r := <-got:
			if r.err != nil {
				return nil, r.err
			}
			return &Stream{Conn: r.conn, Method: "ibb", Fallback: fallback}, nil
		case j := <-in.c.events:
			if err := in.c.observe(j); err != nil {
				cancel()
				if r := <-got; r.conn != nil {
					r.conn.Close()
				}
				return nil, err
			}
			if j.Action != ActionTransportInfo {
				in.c.keep(j)
			}
		}
	}
}

// Checksums returns the digests to verify the file against, strongest
// first: the one in the offer, else those the initiator sends in a
// session-info checksum, waiting up to wait for it (Libervia sends it right
// after the bytes). It is empty when none usable came.
func (in *Incoming) Checksums(ctx context.Context, wait time.Duration) []Digest {
	if in.file != nil && in.file.Hash != nil {
		return []Digest{*in.file.Hash}
	}
	if in.watch == nil {
		return nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case hs := <-in.watch.sums:
			if u := Usable(hs); len(u) > 0 {
				return u
			}
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// Ended is closed with the initiator's termination while the bytes move.
func (in *Incoming) Ended() <-chan error {
	if in.watch == nil {
		return nil
	}
	return in.watch.ended
}

// Finish ends the session: with a nil err it confirms the file (received,
// then session-terminate success); otherwise it terminates with reason
// (media-error for a file that failed its checks, cancel…).
func (in *Incoming) Finish(ctx context.Context, reason, text string) error {
	if in.n != nil {
		in.n.release()
	}
	if in.c.terminated.Load() {
		in.c.close()
		return nil
	}
	if reason == ReasonSuccess {
		rec := &Received{Creator: in.c.contentCreator, Name: in.c.contentName}
		_ = in.c.send(ctx, &Jingle{Action: ActionSessionInfo, Received: rec})
	}
	return in.c.terminate(ctx, reason, text)
}
