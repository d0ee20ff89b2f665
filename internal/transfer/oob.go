package transfer

// Out-of-band transfers, XEP-0066: the receiver side of jabber:iq:oob
// offers and jabber:x:oob links, and the sender side of an iq:oob offer
// served by our own one-file HTTP server (or an existing URL).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"xfer/internal/fault"
	"xfer/internal/oob"
	"xfer/internal/session"
)

// ErrFetch says the receiver could not fetch an out-of-band URL (it
// answered item-not-found), or that we could not.
var ErrFetch = fault.New(fault.Transfer, "transfer: the URL could not be fetched")

// OOBOptions shape out-of-band offers (Method "oob").
type OOBOptions struct {
	// Listen is the host:port our one-file HTTP server listens on; empty
	// means 127.0.0.1:0 when the XMPP server is on loopback
	// (S5BOptions.ServerLoopback), else every address on a free port. The
	// URL names S5BOptions.DirectAddrs' first address when given, else
	// 127.0.0.1 on loopback, else this machine's first interface address.
	Listen string
	// URL offers an existing http or https URL instead of serving the file.
	URL string
}

// DefaultFetchTimeout bounds one out-of-band download on the receiver,
// and so how long its IQ handler may block.
const DefaultFetchTimeout = time.Hour

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
	if se, why := r.admit(part, peer, name); se != nil {
		return refuse(se.Condition, se.Text, why)
	}
	defer r.release(part, peer)

	ctx, cancel := context.WithTimeout(r.ctx, orDefault(r.opts.FetchTimeout, DefaultFetchTimeout))
	defer cancel()
	defer context.AfterFunc(hctx, cancel)()

	// A part of the same URL from the same sender is resumed with a
	// Range request; If-Range makes the server send the whole file
	// instead when it has changed since.
	var offset int64
	var validator string
	if p, have, ok := readOOBPartial(part); ok && p.URL == rawURL && p.Name == name && strings.EqualFold(p.From, session.Bare(from)) && have > 0 && (p.Size < 0 || have < p.Size) && p.Validator != "" {
		offset, validator = have, p.Validator
	}
	dl, err := oob.Get(ctx, rawURL, oob.GetOptions{Offset: offset, IfRange: validator, MaxSize: r.opts.MaxSize, StallTimeout: r.opts.StallTimeout})
	if errors.Is(err, oob.ErrTooLarge) {
		return refuse(session.CondNotAcceptable, "file larger than the receiver's limit", fmt.Sprintf("%v (--max-size)", err))
	}
	res := &Result{SID: sid, Peer: from, Name: name, Method: "oob", Via: via, URL: rawURL, Size: -1}
	fail := func(err error) (*Result, error) {
		ev.Type, ev.Error = "error", err.Error()
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
	res.Size, res.Offset = dl.Size, dl.Offset
	ev.Size = dl.Size
	if r.opts.MinFree >= 0 && dl.Size > 0 {
		if free, ok := freeSpace(r.opts.Dir); ok && uint64(dl.Size-dl.Offset)+uint64(r.opts.MinFree) > free {
			return refuse(session.CondNotAcceptable, "not enough free space", fmt.Sprintf("%d bytes do not fit: %d free in %s", dl.Size, free, r.opts.Dir))
		}
	}
	f, err := openOOBPart(part, dl.Offset, &oobPartial{Name: name, Size: dl.Size, From: session.Bare(from), URL: rawURL, Validator: strongValidator(dl)})
	if err != nil {
		return fail(fmt.Errorf("%w: %w", ErrFile, err))
	}
	ev.Type, ev.Path, ev.Offset = "accepted", part, dl.Offset
	r.obs.emit(ev)

	start := time.Now()
	meter := r.obs.meter(name, dl.Size, dl.Offset)
	n, err := dl.WriteTo(&multiWriter{f, meter})
	meter.Finish()
	if err != nil {
		f.Close()
		if errors.Is(err, oob.ErrTooLarge) {
			removePartial(part)
		}
		return fail(fmt.Errorf("%w: %s: %w (kept for resuming when the server allows ranges)", ErrFetch, name, err))
	}
	if res.Size < 0 {
		res.Size = dl.Offset + n
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fail(fmt.Errorf("%w: %w", ErrFile, err))
	}
	if err := f.Close(); err != nil {
		return fail(fmt.Errorf("%w: %w", ErrFile, err))
	}
	final, err := place(part, r.opts.Dir, name, r.opts.Overwrite)
	if err != nil {
		return fail(err)
	}
	os.Remove(sidecarName(part))
	res.Path, res.Elapsed = final, time.Since(start)
	res.Renamed = final != filepath.Join(r.opts.Dir, name)
	done := Event{Type: "done", SID: sid, Direction: "receive", Peer: from, File: ev.File, Path: final, Size: res.Size, Bytes: n, Offset: res.Offset,
		Method: "oob", Via: via, URL: rawURL, Seconds: res.Elapsed.Seconds(), Renamed: res.Renamed}
	if s := res.Elapsed.Seconds(); s > 0 {
		done.Rate = float64(n) / s
	}
	r.obs.emit(done)
	select {
	case r.results <- outcome{res, nil}:
	case <-r.ctx.Done():
	}
	return res, nil
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
		f, err := os.OpenFile(part, os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
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
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(p)
	sc, err := os.OpenFile(sidecarName(part), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
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

// sendOOB offers the file with a jabber:iq:oob IQ and waits until the
// receiver says it has it (or could not fetch it).
func (sd *Sender) sendOOB(ctx context.Context, to, path string) (*Result, error) {
	f, st, name, err := openToSend(path, sd.Opts.Name)
	if err != nil {
		return nil, err
	}
	f.Close()
	sid := session.NewID()
	res := &Result{SID: sid, Peer: to, Name: name, Path: path, Size: st.Size(), Method: "oob"}
	ev := Event{SID: sid, Direction: "send", Peer: to, File: name, Path: path, Size: st.Size(), Method: "oob"}
	acceptTimeout := orDefault(sd.Opts.AcceptTimeout, 5*time.Minute)

	var srv *oob.Server
	rawURL := sd.Opts.OOB.URL
	var meter Meter = nopMeter{}
	if rawURL != "" {
		if _, err := oob.CheckURL(rawURL); err != nil {
			return nil, err
		}
	} else {
		listen, host, err := sd.oobAddrs()
		if err != nil {
			return nil, err
		}
		meter = sd.Obs.meter(name, st.Size(), 0)
		defer meter.Finish()
		srv, err = oob.Serve(ctx, listen, path, name, &oob.ServeOptions{Host: host, Progress: meter})
		if err != nil {
			return nil, err
		}
		defer srv.Close()
		rawURL = srv.URL
	}
	res.URL, ev.URL = rawURL, rawURL
	ev.Type = "offer"
	sd.Obs.emit(ev)

	// The IQ stays unanswered while the receiver downloads: instead of a
	// fixed deadline, a watchdog ends the wait when nobody fetches within
	// the accept timeout or the download stalls (what our server sees).
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wctx, cancelDeadline := context.WithTimeout(wctx, 7*24*time.Hour) // SendIQ's default would be 30s
	defer cancelDeadline()
	start := time.Now()
	go func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
			}
			var last time.Time
			if srv != nil {
				last = srv.LastActivity()
			}
			switch {
			case last.IsZero() && time.Since(start) > acceptTimeout:
				cancel(fmt.Errorf("%s did not fetch the file within %v: %w", to, acceptTimeout, context.DeadlineExceeded))
				return
			case !last.IsZero() && time.Since(last) > orDefault(sd.Opts.StallTimeout, 2*time.Minute):
				cancel(fmt.Errorf("%w: %s stopped fetching after %d bytes", ErrStalled, to, srv.Served()))
				return
			}
		}
	}()
	q := &oob.Query{SID: sid, URL: rawURL, Desc: sd.Opts.Desc}
	_, err = sd.S.SendIQ(wctx, &session.IQ{Type: session.TypeSet, To: to, Payload: q.Marshal()})
	res.Elapsed = time.Since(start)
	if err != nil {
		if cause := context.Cause(wctx); cause != nil && ctx.Err() == nil && !errors.Is(cause, context.Canceled) {
			err = cause
		}
		var se *session.StanzaError
		if errors.As(err, &se) {
			switch se.Condition {
			case session.CondItemNotFound:
				err = fmt.Errorf("%w: %s could not fetch %s: %w", ErrFetch, to, rawURL, err)
			case session.CondNotAcceptable, session.CondForbidden, session.CondNotAllowed, session.CondServiceUnavailable, session.CondFeatureNotImpl:
				err = fmt.Errorf("%w: %w", ErrRefused, err)
			}
		}
		ev.Type, ev.Error = "error", err.Error()
		sd.Obs.emit(ev)
		return res, err
	}
	ev.Type, ev.Seconds = "done", res.Elapsed.Seconds()
	if srv != nil {
		ev.Bytes = srv.Served()
		if s := res.Elapsed.Seconds(); s > 0 {
			ev.Rate = float64(ev.Bytes) / s
		}
	}
	sd.Obs.emit(ev)
	return res, nil
}

// oobAddrs chooses where our HTTP server listens and the host its URL
// names, with the same rules as our SOCKS5 streamhost: on a loopback XMPP
// server only 127.0.0.1, so a local setup never exposes this machine.
func (sd *Sender) oobAddrs() (listen, host string, err error) {
	o, s5 := sd.Opts.OOB, sd.Opts.S5B
	listen = o.Listen
	if listen == "" {
		listen = ":0"
		if s5.ServerLoopback {
			listen = "127.0.0.1:0"
		}
	} else if _, _, err := net.SplitHostPort(listen); err != nil {
		return "", "", fmt.Errorf("transfer: --listen %q: want HOST:PORT (e.g. :8080 or 127.0.0.1:0)", listen)
	}
	lh, _, _ := net.SplitHostPort(listen)
	switch {
	case len(s5.DirectAddrs) > 0:
		host = s5.DirectAddrs[0]
	case s5.ServerLoopback:
		host = "127.0.0.1"
	case lh != "" && !net.ParseIP(lh).IsUnspecified():
		host = lh
	default:
		ips := interfaceIPs()
		if len(ips) == 0 {
			return "", "", errors.New("transfer: no network address to put in the URL: give --direct-addr HOST")
		}
		host = ips[0].String()
	}
	return listen, host, nil
}

// openToSend opens a regular file to send and decides its offered name.
func openToSend(path, name string) (*os.File, os.FileInfo, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, "", fmt.Errorf("%w: %w", ErrFile, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, "", fmt.Errorf("%w: %w", ErrFile, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, "", fmt.Errorf("%w: %s is not a regular file", ErrFile, path)
	}
	if name == "" {
		name = filepath.Base(path)
	}
	return f, st, name, nil
}
