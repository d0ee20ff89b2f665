package transfer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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

// DefaultIBBBlockSize is the in-band block size offered where the JIDs
// are too long for blocks that fill Prosody's 8 KiB reads (which are
// offered first: ibb.Options.AlignRecords). XEP-0047 recommends 4096;
// through Prosody, stanzas under its 8 KiB read size move fastest, while
// 65535-byte blocks (87 KiB stanzas) moved at about a third of the speed,
// held up by extra read cycles and Nagle's algorithm on its sockets.
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

	discoMu    sync.Mutex
	discoCache map[string]*disco.Info // peers' disco#info (peerInfo)

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
		// The peer's quirks matter only for the offer: ask while the
		// file is hashed and the streams are prepared.
		info := make(chan *disco.Info, 1)
		go func() { info <- sd.peerInfo(ctx, to) }()
		return sd.sendJingle(ctx, to, path, info)
	case "", "auto":
		if info := sd.jinglePeer(ctx, to); info != nil {
			known := make(chan *disco.Info, 1)
			known <- info
			return sd.sendJingle(ctx, to, path, known)
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
	ev := Event{Type: "offer", SID: offer.SID, Direction: "send", Peer: to, File: name, Path: path, Size: st.Size(), Hash: sum, Method: "si"}
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
	if c, ok := st.Conn.(interface{ OnThrottled(func(float64)) }); ok {
		tev := ev
		tev.Type, tev.Method = "throttled", res.Method
		c.OnThrottled(func(rate float64) {
			e := tev
			e.Rate, e.Error = rate, ThrottledMessage(rate)
			sd.Obs.emit(e)
		})
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
		// Chunks that fill Prosody's reads (ibb.Options.AlignRecords),
		// or where the JIDs are too long for that, XEP-0047's size.
		o.BlockSize, o.AlignRecords = DefaultIBBBlockSize, true
	}
	if o.AckTimeout <= 0 {
		// A chunk nobody acknowledges is a stalled transfer.
		o.AckTimeout = orDefault(sd.Opts.StallTimeout, 2*time.Minute)
	}
	return o
}

// ThrottledMessage is what a throttled event says, for a stream whose
// acknowledgements show the server pacing the account at about rate bytes
// per second (stanzas on the wire).
func ThrottledMessage(rate float64) string {
	return fmt.Sprintf("the server limits this account to ~%s kB/s; ask its admin for a proxy65 / upload", strconv.FormatFloat(rate/1000, 'f', kBDigits(rate), 64))
}

// kBDigits shows a rate under 10 kB/s with one decimal: ejabberd's 3 kB/s
// shaper is ~3.0, not ~3.
func kBDigits(rate float64) int {
	if rate < 10_000 {
		return 1
	}
	return 0
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
