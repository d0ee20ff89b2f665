package transfer

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"xfer/internal/bytestream"
	"xfer/internal/disco"
	"xfer/internal/ibb"
	"xfer/internal/jingle"
	"xfer/internal/negotiate"
	"xfer/internal/s5b"
	"xfer/internal/session"
	"xfer/internal/si"
	"xfer/internal/upload"
)

// Methods are the values of SendOptions.Method: auto picks Jingle when the
// peer speaks it, else SI, else HTTP upload; si is XEP-0096 over SOCKS5 then
// in-band, s5b and ibb are SI over one bytestream only; jingle is XEP-0234
// over SOCKS5 then in-band, jingle-s5b and jingle-ibb over one only.
var Methods = []string{"auto", "jingle", "jingle-s5b", "jingle-ibb", "si", "s5b", "ibb", "oob", "upload"}

// SendOptions shape how files are offered and sent.
type SendOptions struct {
	Method        string        // one of Methods; "" is auto
	Name          string        // send under this name instead of the file's own
	Desc          string        // description shown to the receiver
	NoResume      bool          // offer no <range/>: the receiver starts over
	AcceptTimeout time.Duration // how long the human on the other side may take
	StallTimeout  time.Duration // no progress for this long fails the transfer
	IBB           ibb.Options
	S5B           S5BOptions
	OOB           OOBOptions // Method "oob" (oob.go)
}

// DefaultIBBBlockSize is the in-band block size offered first. XEP-0047
// recommends 4096, and it is also the fastest through Prosody, measured:
// stanzas under its 8 KiB read size move at about 8.6 MB/s on loopback,
// while 65535-byte blocks (87 KiB stanzas) move at about 2.6 MB/s, held up
// by extra read cycles and Nagle's algorithm on the server's sockets.
const DefaultIBBBlockSize = 4096

// Sender sends files over one session.
type Sender struct {
	S    Session
	Opts SendOptions
	Obs  *Observer

	preMu     sync.Mutex
	prehashes map[string]*prehash // files hashed ahead (Prehash)

	proxyOnce sync.Once // proxies are discovered once per Sender
	proxies   []s5b.Streamhost
	proxyErr  error

	jingleOnce sync.Once // one Jingle manager per session (jingle_send.go)
	jingle     *jingle.Manager

	uploadOnce sync.Once // the upload service is discovered once (upload.go)
	uploadSvc  *upload.Service
	uploadErr  error
}

// methods lists the stream methods to offer, best first.
func (o *SendOptions) methods() ([]string, error) {
	switch o.Method {
	case "", "auto", "si":
		return []string{MethodS5B, MethodIBB}, nil
	case "ibb":
		return []string{MethodIBB}, nil
	case "s5b":
		return []string{MethodS5B}, nil
	}
	return nil, fmt.Errorf("transfer: unknown method %q (want %s)", o.Method, strings.Join(Methods, ", "))
}

// Result describes a finished transfer.
type Result struct {
	SID     string
	Peer    string
	Name    string
	Path    string
	Size    int64
	Offset  int64
	Method  string
	Hash    string
	Via     string // for s5b: "direct" or "proxy JID"
	Elapsed time.Duration
	Renamed bool
	// Fallback says why the transfer fell back from S5B to IBB, if it did.
	Fallback string
	URL      string // oob and upload: the URL the file was offered at
	// Digest is the Jingle hash the file was checked with ("sha-256:HEX");
	// Unverified says a Jingle sender gave none.
	Digest     string
	Unverified bool
}

// Send offers the file at path to the full JID to and sends it.
func (sd *Sender) Send(ctx context.Context, to, path string) (*Result, error) {
	// Out-of-band methods (oob.go, upload.go).
	switch sd.Opts.Method {
	case "oob":
		return sd.sendOOB(ctx, to, path)
	case "upload":
		return sd.sendUpload(ctx, to, path, "")
	case "jingle", "jingle-s5b", "jingle-ibb":
		return sd.sendJingle(ctx, to, path, sd.peerInfo(ctx, to))
	case "", "auto":
		if info := sd.jinglePeer(ctx, to); info != nil {
			return sd.sendJingle(ctx, to, path, info)
		}
		if why := sd.autoUpload(ctx, to); why != "" {
			return sd.sendUpload(ctx, to, path, why)
		}
	}
	methods, err := sd.Opts.methods()
	if err != nil {
		return nil, err
	}
	src, err := openSource(path, sd.Opts.Name)
	if err != nil {
		return nil, err
	}
	defer src.f.Close()
	st, name := src.st, src.name
	sums, err := sd.sums(ctx, src)
	if err != nil {
		return nil, err
	}
	sum := sums.md5
	offer := &negotiate.Offer{
		SID:      session.NewID(),
		MimeType: "application/octet-stream",
		File:     negotiate.File{Name: name, Size: st.Size(), Hash: sum, Date: st.ModTime().UTC(), Desc: sd.Opts.Desc, CanRange: !sd.Opts.NoResume},
		Methods:  methods,
	}
	res := &Result{SID: offer.SID, Peer: to, Name: name, Path: path, Size: st.Size(), Hash: sum}
	ev := Event{SID: offer.SID, Direction: "send", Peer: to, File: name, Path: path, Size: st.Size(), Hash: sum}
	ev.Type = "offer"
	sd.Obs.emit(ev)

	actx, cancel := context.WithTimeout(ctx, orDefault(sd.Opts.AcceptTimeout, 5*time.Minute))
	acc, err := negotiate.Send(actx, sd.S, to, offer)
	cancel()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("%s did not answer the offer within %v: %w", to, orDefault(sd.Opts.AcceptTimeout, 5*time.Minute), err)
		} else if isRefusal(err) {
			err = fmt.Errorf("%w: %w", ErrRefused, err)
		}
		return res, err
	}
	length := st.Size() - acc.Offset
	if acc.Offset < 0 || acc.Offset > st.Size() {
		return res, fmt.Errorf("transfer: %s asked for offset %d of a %d-byte file", to, acc.Offset, st.Size())
	}
	if acc.Length > 0 && acc.Length < length {
		length = acc.Length
	}
	res.Offset, res.Method = acc.Offset, MethodName(acc.Method)
	ev.Type, ev.Method, ev.Offset = "accepted", res.Method, acc.Offset
	sd.Obs.emit(ev)

	start := time.Now()
	o, release := sd.streams(ctx, acc.Method != MethodS5B, false)
	defer release()
	bs, err := si.Open(ctx, sd.S, to, offer, acc, &o)
	if err != nil {
		return res, fmt.Errorf("transfer: %w", err)
	}
	res.Method = bs.Method
	return sd.deliver(ctx, bs, src, acc.Offset, length, start, res, ev, func(err error) error { return err })
}

// deliver writes the file to the stream, lets the protocol finish (SI has
// nothing to add; Jingle waits for the receiver's word) and reports the
// outcome.
func (sd *Sender) deliver(ctx context.Context, st *bytestream.Stream, src *source, offset, length int64, start time.Time, res *Result, ev Event, finish func(error) error) (*Result, error) {
	defer st.Close()
	res.Via, res.Fallback = st.Via, st.Fallback
	if st.Fallback != "" {
		ev.Type, ev.Method, ev.Error = "fallback", res.Method, "SOCKS5 failed, falling back to in-band: "+st.Fallback
		sd.Obs.emit(ev)
		ev.Error = ""
	}
	n, err := sd.copyOut(ctx, st, src, offset, length)
	if err == nil {
		err = st.Close()
	}
	err = finish(err)
	res.Elapsed = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("transfer: sending %s after %d bytes: %w", src.name, n, err)
	}
	ev.Type, ev.Bytes, ev.Seconds, ev.Method, ev.Via = "done", n, res.Elapsed.Seconds(), res.Method, res.Via
	if s := res.Elapsed.Seconds(); s > 0 {
		ev.Rate = float64(n) / s
	}
	sd.Obs.emit(ev)
	return res, nil
}

// streams gathers the bytestreams a transfer may use: our own streamhost
// and the server's proxies unless noS5B, in-band unless noIBB. The
// returned func releases them.
func (sd *Sender) streams(ctx context.Context, noS5B, noIBB bool) (bytestream.Options, func()) {
	// NoDirect: no direct connection either way, ours or the peer's.
	o := bytestream.Options{NoS5B: noS5B, NoIBB: noIBB, NoDirect: sd.Opts.S5B.NoDirect, HostTimeout: sd.Opts.S5B.hostTimeout(), IBB: sd.ibbOptions()}
	release := func() {}
	if noS5B {
		return o, release
	}
	if !sd.Opts.S5B.NoDirect {
		if srv, hosts, err := listenDirect(ctx, &sd.Opts.S5B); err == nil {
			o.Server, o.Direct = srv, hosts
			release = func() { srv.Close() }
		}
	}
	o.Proxies, _ = sd.proxyHosts(ctx)
	return o, release
}

// ibbOptions are the options of the in-band streams the sender opens.
func (sd *Sender) ibbOptions() ibb.Options {
	o := sd.Opts.IBB
	if o.BlockSize <= 0 {
		o.BlockSize = DefaultIBBBlockSize
	}
	if o.AckTimeout <= 0 {
		// A chunk nobody acknowledges is a stalled transfer.
		o.AckTimeout = orDefault(sd.Opts.StallTimeout, 2*time.Minute)
	}
	return o
}

// source is a file being sent.
type source struct {
	f    *os.File
	st   os.FileInfo
	name string // the name it is offered under
	path string
}

// openSource opens a regular file to send, under name or its own.
func openSource(path, name string) (*source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFile, err)
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %w", ErrFile, err)
	}
	if name == "" {
		name = filepath.Base(path)
	}
	return &source{f: f, st: st, name: name, path: path}, nil
}

// sums returns the file's hashes: the early ones (Prehash) when the file
// is unchanged, else computed now.
func (sd *Sender) sums(ctx context.Context, src *source) (fileSums, error) {
	if s, ok := sd.takePrehash(ctx, src.path, src.st); ok {
		return s, nil
	}
	return hashFile(ctx, src.f)
}

// copyOut writes length bytes of the file from offset to the bytestream,
// through the progress meter; a write that cannot move a byte within the
// stall timeout fails.
func (sd *Sender) copyOut(ctx context.Context, conn net.Conn, src *source, offset, length int64) (int64, error) {
	if _, err := src.f.Seek(offset, io.SeekStart); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrFile, err)
	}
	meter := sd.Obs.meter(src.name, src.st.Size(), offset)
	defer meter.Finish()
	out := stallWriter{conn, orDefault(sd.Opts.StallTimeout, 2*time.Minute)}
	n, err := io.CopyBuffer(out, io.TeeReader(io.LimitReader(&ctxReader{ctx, src.f}, length), meter), make([]byte, 64<<10))
	if err == nil && n < length {
		err = fmt.Errorf("%w: %s shrank while sending", ErrFile, src.path)
	}
	return n, err
}

// stallWriter fails a write that cannot move a byte within the timeout.
type stallWriter struct {
	conn    net.Conn
	timeout time.Duration
}

func (w stallWriter) Write(p []byte) (int, error) {
	_ = w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
	n, err := w.conn.Write(p)
	if err != nil && isTimeout(err) {
		return n, errors.Join(ErrStalled, err)
	}
	return n, err
}

func isRefusal(err error) bool {
	for _, e := range []error{negotiate.ErrDeclined, negotiate.ErrNoValidStreams, negotiate.ErrBadProfile, negotiate.ErrUnavailable} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// fileSums are a file's hashes: MD5 (hex) for SI's offer, SHA-256 for
// Jingle's.
type fileSums struct {
	md5    string
	sha256 []byte
}

// hashFile hashes the whole file, then rewinds it.
func hashFile(ctx context.Context, f *os.File) (fileSums, error) {
	m, s := md5.New(), sha256.New()
	if _, err := io.CopyBuffer(io.MultiWriter(m, s), &ctxReader{ctx, f}, make([]byte, 64<<10)); err != nil {
		return fileSums{}, fmt.Errorf("%w: hashing %s: %w", ErrFile, f.Name(), err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fileSums{}, fmt.Errorf("%w: %w", ErrFile, err)
	}
	return fileSums{md5: hex.EncodeToString(m.Sum(nil)), sha256: s.Sum(nil)}, nil
}

// ctxReader stops a copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// ResolveRecipient finds whom to send to. A bare JID becomes the full JID
// of an available resource that accepts SI file transfer (known from
// presence, so the contact needs a subscription); a full JID is taken as
// it is. With wait > 0 it waits that long for such a resource to appear: for
// a full JID, until it answers service discovery with SI file transfer.
func ResolveRecipient(ctx context.Context, s Session, jid string, wait time.Duration) (string, error) {
	full := session.Resource(jid) != ""
	if full && wait <= 0 {
		return jid, nil
	}
	if !full && wait < presenceGrace {
		// Contacts' presence arrives just after login: give it a moment.
		wait = presenceGrace
	}
	deadline := time.Now().Add(wait)
	for {
		candidates := []string{jid}
		if !full {
			online := s.Online(jid)
			sort.Slice(online, func(i, j int) bool { return online[i].Priority > online[j].Priority })
			candidates = candidates[:0]
			for _, p := range online {
				if p.From != s.JID() {
					candidates = append(candidates, p.From)
				}
			}
		}
		// Asked again on every round: a receiver announces itself
		// before it has registered its handlers.
		for _, c := range candidates {
			if acceptsFiles(ctx, s, c) {
				return c, nil
			}
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	if full {
		return "", fmt.Errorf("%w: %s did not come online with file transfer support within %v", ErrNoRecipient, jid, wait)
	}
	return "", fmt.Errorf("%w: %s has no online resource that accepts file transfers (is it in your roster with a presence subscription, and online?); give a full JID such as %s/RESOURCE", ErrNoRecipient, jid, jid)
}

// presenceGrace is how long a bare JID waits at least for presence.
const presenceGrace = 3 * time.Second

// discoAttemptTimeout bounds one disco#info query of ResolveRecipient.
const discoAttemptTimeout = 5 * time.Second

func acceptsFiles(ctx context.Context, s Session, jid string) bool {
	// Each query is bounded on its own so that one lost query (an IQ that
	// reaches a client while its XMPP library is still setting up the
	// session can go unanswered) is asked again instead of using up the
	// whole wait.
	ctx, cancel := context.WithTimeout(ctx, discoAttemptTimeout)
	defer cancel()
	info, err := disco.GetInfo(ctx, s, jid)
	return err == nil && (info.HasFeature(negotiate.NS) && info.HasFeature(negotiate.NSFileTransfer) || speaksJingle(info))
}
