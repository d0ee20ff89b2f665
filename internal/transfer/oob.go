package transfer

// Out-of-band transfers, XEP-0066: the receiver side of jabber:iq:oob
// offers and jabber:x:oob links, and the sender side of an iq:oob offer
// served by our own one-file HTTP server (or an existing URL).

import (
	"context"
	"errors"
	"fmt"
	"net"
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

// sendOOB offers the file with a jabber:iq:oob IQ and waits until the
// receiver says it has it (or could not fetch it).
func (sd *Sender) sendOOB(ctx context.Context, to, path string) (*Result, error) {
	src, err := openSource(path, sd.Opts.Name)
	if err != nil {
		return nil, err
	}
	src.f.Close()
	st, name := src.st, src.name
	sid := session.NewID()
	res := &Result{SID: sid, Peer: to, Name: name, Path: path, Size: st.Size(), Method: "oob"}
	ev := Event{SID: sid, Direction: "send", Peer: to, File: name, Path: path, Size: st.Size(), Method: "oob"}
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

	start := time.Now()
	wctx, cancel := sd.oobWatchdog(ctx, srv, to, start)
	defer cancel()
	q := &oob.Query{SID: sid, URL: rawURL, Desc: sd.Opts.Desc}
	_, err = sd.S.SendIQ(wctx, &session.IQ{Type: session.TypeSet, To: to, Payload: q.Marshal()})
	res.Elapsed = time.Since(start)
	if err != nil {
		err = oobSendError(ctx, wctx, err, to, rawURL)
		ev.Type, ev.Error, ev.Err = "error", err.Error(), err
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

// oobWatchdog bounds the wait for the answer to an oob offer. The IQ stays
// unanswered while the receiver downloads: instead of a fixed deadline, the
// wait ends when nobody fetches within the accept timeout or the download
// stalls (what our server sees).
func (sd *Sender) oobWatchdog(ctx context.Context, srv *oob.Server, to string, start time.Time) (context.Context, func()) {
	acceptTimeout := orDefault(sd.Opts.AcceptTimeout, 5*time.Minute)
	wctx, cancel := context.WithCancelCause(ctx)
	wctx, cancelDeadline := context.WithTimeout(wctx, 7*24*time.Hour) // SendIQ's default would be 30s
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
	return wctx, func() { cancelDeadline(); cancel(nil) }
}

// oobSendError says why an oob offer failed: the watchdog's reason, or the
// receiver's answer (item-not-found: it could not fetch the URL).
func oobSendError(ctx, wctx context.Context, err error, to, rawURL string) error {
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
	return err
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
