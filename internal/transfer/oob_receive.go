package transfer

// The receiving side of out-of-band transfers (XEP-0066): jabber:iq:oob
// offers and jabber:x:oob links in messages, fetched over HTTP into a part
// file and moved into place like every other incoming file.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"xfer/internal/oob"
	"xfer/internal/session"
)

// messageSource is the optional part of a Session that delivers messages.
type messageSource interface {
	OnMessage(func(session.Message))
}

// registerOOB adds the XEP-0066 handlers to a new receiver.
func (r *Receiver) registerOOB() error {
	r.s.Handle(session.TypeSet, oob.NSIQ, r.oobRequest)
	if !r.opts.AcceptLinks {
		return nil
	}
	ms, ok := r.s.(messageSource)
	if !ok {
		return errors.New("transfer: this session cannot deliver messages: links cannot be accepted")
	}
	ms.OnMessage(r.oobMessage)
	return nil
}

// oobRequest answers a jabber:iq:oob offer once the file is on disk: an
// empty result, item-not-found when the fetch failed, not-acceptable when
// the offer was refused. It blocks for the download (handlers run on
// their own goroutine), bounded by FetchTimeout.
func (r *Receiver) oobRequest(ctx context.Context, iq *session.IQ) ([]byte, error) {
	q, err := oob.ParseQuery(iq.Payload)
	if err != nil {
		return nil, session.NewError(session.CondBadRequest, "malformed jabber:iq:oob query")
	}
	sid := q.SID
	if sid == "" {
		sid = iq.ID
	}
	_, err = r.fetch(ctx, iq.From, q.URL, sid, "")
	var ref *refusal
	switch {
	case err == nil:
		return nil, nil
	case errors.As(err, &ref):
		return nil, ref.se
	default:
		return nil, session.NewError(session.CondItemNotFound, "the URL could not be fetched")
	}
}

// oobMessage fetches the links of a message from an allowed sender, fire
// and forget: nothing is answered.
func (r *Receiver) oobMessage(m session.Message) {
	if m.Type == "error" || m.Type == "groupchat" || r.closed.Load() {
		return
	}
	links, _ := oob.ParseLinks(m.Payload)
	if len(links) == 0 {
		return
	}
	if !r.allowed(m.From) {
		// Said once per message, not per link; nothing is fetched.
		r.obs.emit(Event{Type: "refused", SID: m.ID, Direction: "receive", Peer: m.From, Method: "oob", URL: links[0].URL,
			Error: fmt.Sprintf("link from %s ignored: not an allowed sender (use --from %s or --accept-all)", m.From, session.Bare(m.From))})
		return
	}
	for i, l := range links {
		sid := m.ID
		if sid == "" {
			sid = session.NewID()
		}
		if i > 0 {
			sid = fmt.Sprintf("%s-%d", sid, i)
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			_, _ = r.fetch(r.ctx, m.From, l.URL, sid, "link")
		}()
	}
}

// oobPartial is the sidecar of an out-of-band .part file: Partial's fields
// (so ListPartial shows it) plus what a Range request needs.
type oobPartial struct {
	Name      string `json:"name"`
	Size      int64  `json:"size"`
	From      string `json:"from"`
	URL       string `json:"url"`
	Validator string `json:"validator,omitempty"` // ETag or Last-Modified, for If-Range
}

// fetch applies the receive policy to a URL from a peer, downloads it
// into a part file and moves it into place. A policy refusal is a
// *refusal; a started transfer's outcome also goes to Next.
func (r *Receiver) fetch(hctx context.Context, from, rawURL, sid, via string) (*Result, error) {
	ev := Event{Type: "offer", SID: sid, Direction: "receive", Peer: from, Method: "oob", Via: via, URL: rawURL}
	refuse := func(cond, text, why string) (*Result, error) {
		ev.Type, ev.Error = "refused", why
		r.obs.emit(ev)
		return nil, &refusal{se: session.NewError(cond, text), why: why}
	}
	u, urlErr := oob.CheckURL(rawURL)
	if urlErr == nil {
		ev.File = oob.NameFromURL(u)
	}
	r.obs.emit(ev)
	if !r.allowed(from) {
		return refuse(session.CondNotAcceptable, "not an allowed sender", fmt.Sprintf("%s is not an allowed sender (use --from %s or --accept-all)", from, session.Bare(from)))
	}
	if urlErr != nil {
		return refuse(session.CondNotAcceptable, "only http and https URLs are fetched", urlErr.Error())
	}
	name, err := SafeName(ev.File)
	if err != nil {
		name = "download"
	}
	part, peer := partName(r.opts.Dir, name), strings.ToLower(session.Bare(from))
	if se, why := r.admit(part, peer, name, nil, func() {}); se != nil {
		return refuse(se.Condition, se.Text, why)
	}
	defer r.release(part, peer)

	ctx, cancel := context.WithTimeout(r.ctx, orDefault(r.opts.FetchTimeout, DefaultFetchTimeout))
	defer cancel()
	defer context.AfterFunc(hctx, cancel)()
	offset, validator := resumableOOB(part, rawURL, name, from)
	dl, err := oob.Get(ctx, rawURL, oob.GetOptions{Offset: offset, IfRange: validator, MaxSize: r.opts.MaxSize, StallTimeout: r.opts.StallTimeout})
	if errors.Is(err, oob.ErrTooLarge) {
		return refuse(session.CondNotAcceptable, "file larger than the receiver's limit", fmt.Sprintf("%v (--max-size)", err))
	}
	res := &Result{SID: sid, Peer: from, Name: name, Method: "oob", Via: via, URL: rawURL, Size: -1}
	fail := func(err error) (*Result, error) {
		ev.Type, ev.Error, ev.Err = "error", err.Error(), err
		r.obs.emit(ev)
		select {
		case r.results <- outcome{res, err}:
		case <-r.ctx.Done():
		}
		return res, err
	}
	if err != nil {
		return fail(fmt.Errorf("%w: %w", ErrFetch, err))
	}
	defer dl.Close()
	res.Size, res.Offset, ev.Size = dl.Size, dl.Offset, dl.Size
	if r.opts.MinFree >= 0 && dl.Size > 0 {
		if free, ok := freeSpace(r.opts.Dir); ok && uint64(dl.Size-dl.Offset)+uint64(r.opts.MinFree) > free {
			return refuse(session.CondNotAcceptable, "not enough free space", fmt.Sprintf("%d bytes do not fit: %d free in %s", dl.Size, free, r.opts.Dir))
		}
	}
	res, err = r.download(dl, part, peer, name, ev, res)
	if err != nil {
		return fail(err)
	}
	select {
	case r.results <- outcome{res, nil}:
	case <-r.ctx.Done():
	}
	return res, nil
}

// resumableOOB says where a download of rawURL from the peer may resume:
// a part of the same URL from the same sender is resumed with a Range
// request, and If-Range makes the server send the whole file instead when
// it has changed since.
func resumableOOB(part, rawURL, name, from string) (int64, string) {
	p, have, ok := readOOBPartial(part)
	if ok && p.URL == rawURL && p.Name == name && strings.EqualFold(p.From, session.Bare(from)) && have > 0 && (p.Size < 0 || have < p.Size) && p.Validator != "" {
		return have, p.Validator
	}
	return 0, ""
}

// download writes the fetched body into the part file and commits it.
func (r *Receiver) download(dl *oob.Download, part, peer, name string, ev Event, res *Result) (*Result, error) {
	f, err := openOOBPart(part, dl.Offset, &oobPartial{Name: name, Size: dl.Size, From: session.Bare(ev.Peer), URL: ev.URL, Validator: strongValidator(dl)})
	if err != nil {
		return res, fmt.Errorf("%w: %w", ErrFile, err)
	}
	ev.Type, ev.Path, ev.Offset = "accepted", part, dl.Offset
	r.obs.emit(ev)
	a := &admitted{r: r, f: f, part: part, name: name, peer: peer, offset: dl.Offset}
	start := time.Now()
	meter := r.obs.meter(name, dl.Size, dl.Offset)
	n, err := dl.WriteTo(&multiWriter{f, meter})
	meter.Finish()
	if err != nil {
		if errors.Is(err, oob.ErrTooLarge) {
			err = fmt.Errorf("%w: %w", ErrTooLong, err) // bytes past the limit: the part goes
		}
		a.abandon(err)
		return res, fmt.Errorf("%w: %s: %w (kept for resuming when the server allows ranges)", ErrFetch, name, err)
	}
	if res.Size < 0 {
		res.Size = dl.Offset + n
	}
	err = r.commit(a, offerFacts{SID: ev.SID, From: ev.Peer, Name: ev.File, Size: res.Size}, res, start)
	a.abandon(err)
	return res, err
}

// strongValidator is what If-Range may carry: an ETag unless weak, else
// Last-Modified (RFC 9110 §13.1.5).
func strongValidator(dl *oob.Download) string {
	if dl.ETag != "" && !strings.HasPrefix(dl.ETag, "W/") {
		return dl.ETag
	}
	return dl.LastModified
}

func readOOBPartial(part string) (*oobPartial, int64, bool) {
	b, err := os.ReadFile(sidecarName(part))
	if err != nil {
		return nil, 0, false
	}
	var p oobPartial
	if json.Unmarshal(b, &p) != nil || p.URL == "" {
		return nil, 0, false
	}
	fi, err := os.Lstat(part)
	if err != nil || !fi.Mode().IsRegular() {
		return nil, 0, false
	}
	return &p, fi.Size(), true
}

// openOOBPart opens the part file at offset (resuming: the bytes before it
// are kept, anything after is cut) or anew with a fresh sidecar.
func openOOBPart(part string, offset int64, p *oobPartial) (*os.File, error) {
	if offset > 0 {
		f, err := os.OpenFile(part, os.O_RDWR|noFollow, 0o600)
		if err != nil {
			return nil, err
		}
		if err := f.Truncate(offset); err != nil {
			f.Close()
			return nil, err
		}
		if _, err := f.Seek(offset, 0); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|noFollow, 0o600)
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(p)
	sc, err := os.OpenFile(sidecarName(part), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|noFollow, 0o600)
	if err == nil {
		_, err = sc.Write(b)
		if cerr := sc.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// multiWriter writes to the file, then shows the bytes on the meter.
type multiWriter struct {
	f     *os.File
	meter Meter
}

func (w *multiWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	_, _ = w.meter.Write(p[:n])
	return n, err
}
