package transfer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"xfer/internal/disco"
	"xfer/internal/jingle"
)

// speaksJingle tells whether a peer takes XEP-0234 file-transfer:5 offers.
func speaksJingle(info *disco.Info) bool {
	return info.HasFeature(jingle.NS) && info.HasFeature(jingle.NSFileTransfer)
}

// jinglePeer decides method "auto" for a full JID: the peer's disco#info
// when it speaks Jingle file transfer (preferred over SI), else nil.
func (sd *Sender) jinglePeer(ctx context.Context, to string) *disco.Info {
	if info := sd.peerInfo(ctx, to); info != nil && speaksJingle(info) {
		return info
	}
	return nil
}

// peerInfo is a full JID's disco#info, or nil when it cannot be had: what
// auto decides with, and what Jingle learns the peer's quirks from. An
// answer is kept for the Sender's life, so that choosing the method and
// sending several files ask once.
func (sd *Sender) peerInfo(ctx context.Context, to string) *disco.Info {
	if !strings.Contains(to, "/") {
		return nil
	}
	sd.discoMu.Lock()
	info := sd.discoCache[to]
	sd.discoMu.Unlock()
	if info != nil {
		return info
	}
	ctx, cancel := context.WithTimeout(ctx, discoAttemptTimeout)
	defer cancel()
	info, err := disco.GetInfo(ctx, sd.S, to)
	if err != nil {
		return nil
	}
	sd.discoMu.Lock()
	if sd.discoCache == nil {
		sd.discoCache = map[string]*disco.Info{}
	}
	sd.discoCache[to] = info
	sd.discoMu.Unlock()
	return info
}

// isLibervia recognises Libervia (formerly Salut à Toi) by its identity:
// version 0.9 refuses a hash in the offer and verifies only a checksum
// encoded as base64 of the hex digest.
func isLibervia(info *disco.Info) bool {
	for _, id := range info.Identities {
		if n := strings.ToLower(id.Name); strings.Contains(n, "libervia") || strings.Contains(n, "salut") {
			return true
		}
	}
	return false
}

func (sd *Sender) jingleManager() *jingle.Manager {
	sd.jingleOnce.Do(func() { sd.jingle = jingle.NewManager(sd.S) })
	return sd.jingle
}

// sendJingle offers the file in a Jingle session (XEP-0234) and sends it
// over the transport the session settles on. peer brings the peer's
// disco#info (nil if it has none), awaited just before the offer.
func (sd *Sender) sendJingle(ctx context.Context, to, path string, peer <-chan *disco.Info) (*Result, error) {
	src, err := openSource(path, sd.Opts.Name)
	if err != nil {
		return nil, err
	}
	defer src.f.Close()
	sums, err := sd.sums(ctx, src)
	if err != nil {
		return nil, err
	}
	size := src.st.Size()
	digest := &jingle.Digest{Algo: "sha-256", Sum: sums.sha256}
	file := jingle.FileInfo{Name: src.name, Size: size, Date: src.st.ModTime(), Desc: sd.Opts.Desc,
		MediaType: "application/octet-stream", Hash: digest, CanRange: !sd.Opts.NoResume}
	tr, release := sd.streams(ctx, sd.Opts.Method == "jingle-ibb", sd.Opts.Method == "jingle-s5b")
	defer release()
	var info *disco.Info
	select {
	case info = <-peer:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	quirks := info != nil && isLibervia(info)
	res := &Result{Peer: to, Name: src.name, Path: path, Size: size, Method: "jingle", Digest: "sha-256:" + digest.Hex()}
	ev := Event{Type: "offer", Direction: "send", Peer: to, File: src.name, Path: path, Size: size, Method: "jingle", Digest: res.Digest}
	sd.Obs.emit(ev)

	acceptTimeout := orDefault(sd.Opts.AcceptTimeout, 5*time.Minute)
	actx, cancel := context.WithTimeout(ctx, acceptTimeout)
	o, err := jingle.Offer(actx, sd.jingleManager(), to, file, jingle.OfferOptions{Transports: tr, HashLater: quirks, HexChecksum: quirks})
	cancel()
	if err != nil {
		switch {
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			err = fmt.Errorf("%s did not answer the offer within %v: %w", to, acceptTimeout, err)
		case errors.Is(err, jingle.ErrDeclined), errors.Is(err, jingle.ErrTerminated):
			err = fmt.Errorf("%w: %w", ErrRefused, err)
		}
		return res, err
	}
	res.SID, ev.SID = o.SID(), o.SID()
	length := size - o.Offset
	if o.Length > 0 {
		length = o.Length
	}
	res.Offset, ev.Type, ev.Offset = o.Offset, "accepted", o.Offset
	sd.Obs.emit(ev)

	start := time.Now()
	st, err := o.Stream(ctx)
	if err != nil {
		return res, fmt.Errorf("transfer: no bytestream to %s: %w", to, err)
	}
	res.Method = "jingle-" + st.Method
	return sd.deliver(ctx, st, src, o.Offset, length, start, res, ev, func(err error) error {
		if err == nil {
			err = o.Finish(ctx)
		} else {
			st.Close() // the receiver keeps what it got, then learns why
			select {
			case te := <-o.Ended():
				err = fmt.Errorf("%w (%w)", err, te)
			default:
				o.Abort(jingle.ReasonCancel, "")
			}
		}
		var te *jingle.TerminatedError
		if errors.As(err, &te) && te.Reason == jingle.ReasonMediaError {
			err = fmt.Errorf("%w: %w", ErrIntegrity, err)
		}
		return err
	})
}
