package transfer

// HTTP File Upload, XEP-0363: the sender uploads the file to its server's
// upload service and sends the recipient the GET URL in a message, as a
// body and a jabber:x:oob link (XEP-0066), the way chat clients share
// files. Method "auto" uses it for a recipient that does not advertise SI
// file transfer.

import (
	"context"
	"fmt"
	"mime"
	"path/filepath"
	"time"

	"xfer/internal/negotiate"
	"xfer/internal/oob"
	"xfer/internal/session"
	"xfer/internal/upload"
)

// messageSender is the optional part of a Session that sends messages.
type messageSender interface {
	SendMessage(to, typ string, payload []byte) error
}

// uploadService finds the server's upload service, once per Sender.
func (sd *Sender) uploadService(ctx context.Context) (*upload.Service, error) {
	sd.uploadOnce.Do(func() {
		sd.uploadSvc, sd.uploadErr = upload.Discover(ctx, sd.S, session.Domain(sd.S.JID()))
	})
	return sd.uploadSvc, sd.uploadErr
}

// autoUpload decides method "auto" once Jingle was ruled out: SI when the
// recipient advertises SI file transfer, else HTTP File Upload when the
// server offers it. It
// returns why upload was chosen, or "" for SI. Only a recipient that is
// there gets an upload: a full JID that answers disco without SI, or a
// bare JID with online resources (known from presence), none of which
// takes SI. A recipient whose disco cannot be had, or a bare JID with
// nobody online, gets SI, which fails as before: a file is never uploaded
// for someone who is not there to take the link.
func (sd *Sender) autoUpload(ctx context.Context, to string) string {
	bare := session.Resource(to) == ""
	if bare {
		online := false
		for _, p := range sd.S.Online(to) {
			online = online || p.From != sd.S.JID()
		}
		if !online {
			return ""
		}
	} else {
		info := sd.peerInfo(ctx, to) // asked once: auto looked for Jingle first
		if info == nil || (info.HasFeature(negotiate.NS) && info.HasFeature(negotiate.NSFileTransfer)) {
			return ""
		}
	}
	svc, err := sd.uploadService(ctx)
	if err != nil {
		return ""
	}
	if bare {
		return fmt.Sprintf("%s is a bare JID (its online resources take no SI file transfers): uploading to %s (HTTP File Upload) and sending the link", to, svc.JID)
	}
	return fmt.Sprintf("%s does not advertise SI or Jingle file transfer: uploading to %s (HTTP File Upload) and sending the link", to, svc.JID)
}

// sendUpload uploads the file to the server's upload service and sends
// its URL to the recipient in a message. A file over the service's
// max-file-size is refused before anything is uploaded.
func (sd *Sender) sendUpload(ctx context.Context, to, path, why string) (*Result, error) {
	ms, ok := sd.S.(messageSender)
	if !ok {
		return nil, fmt.Errorf("transfer: this session cannot send messages: no upload")
	}
	src, err := openSource(path, sd.Opts.Name)
	if err != nil {
		return nil, err
	}
	defer src.f.Close()
	f, st, name := src.f, src.st, src.name
	sid := session.NewID()
	res := &Result{SID: sid, Peer: to, Name: name, Path: path, Size: st.Size(), Method: "upload"}
	ev := Event{Type: "offer", SID: sid, Direction: "send", Peer: to, File: name, Path: path, Size: st.Size(), Method: "upload"}
	sd.Obs.emit(ev)
	if why != "" {
		ev.Type, ev.Error = "fallback", why
		sd.Obs.emit(ev)
		ev.Error = ""
	}
	fail := func(err error) (*Result, error) {
		ev.Type, ev.Error, ev.Err = "error", err.Error(), err
		sd.Obs.emit(ev)
		return res, err
	}
	svc, err := sd.uploadService(ctx)
	if err != nil {
		return fail(err)
	}
	res.Via, ev.Via = svc.JID, svc.JID
	if svc.MaxFileSize > 0 && st.Size() > svc.MaxFileSize {
		return fail(fmt.Errorf("%w: %s is %d bytes, %s accepts at most %d (send it with --method s5b, ibb or oob instead)", upload.ErrTooLarge, name, st.Size(), svc.JID, svc.MaxFileSize))
	}
	ctype := mime.TypeByExtension(filepath.Ext(name))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	slot, err := upload.RequestSlot(ctx, sd.S, svc, name, st.Size(), ctype)
	if err != nil {
		return fail(err)
	}
	ev.Type = "accepted"
	sd.Obs.emit(ev)
	start := time.Now()
	meter := sd.Obs.meter(name, st.Size(), 0)
	err = upload.Put(ctx, nil, slot, &ctxReader{ctx, f}, st.Size(), ctype, meter)
	meter.Finish()
	if err != nil {
		return fail(fmt.Errorf("transfer: uploading %s to %s: %w", name, svc.JID, err))
	}
	res.URL, ev.URL = slot.GetURL, slot.GetURL
	if err := ms.SendMessage(to, "chat", oob.MessagePayload(oob.Link{URL: slot.GetURL, Desc: sd.Opts.Desc})); err != nil {
		return fail(fmt.Errorf("transfer: %s is uploaded to %s, but the message to %s failed: %w", name, slot.GetURL, to, err))
	}
	res.Elapsed = time.Since(start)
	ev.Type, ev.Bytes, ev.Seconds = "done", st.Size(), res.Elapsed.Seconds()
	if s := res.Elapsed.Seconds(); s > 0 {
		ev.Rate = float64(st.Size()) / s
	}
	sd.Obs.emit(ev)
	return res, nil
}
