package oob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"xfer/internal/fault"
)

// ErrStalled is returned when no byte arrives within the stall timeout.
var ErrStalled = fault.New(fault.Transfer, "oob: no data within the stall timeout")

// MaxRedirects bounds the redirects Get follows.
const MaxRedirects = 5

// NewClient returns the HTTP client Get uses by default: bounded connect,
// TLS and response-header waits, no overall limit (a large file may take
// long; Get bounds silence instead), no transparent decompression (the
// bytes on disk are the bytes served, and Content-Length means them), and
// redirects only to http or https, never from https down to http, and no
// connection kept after the response.
func NewClient() *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ExpectContinueTimeout: 5 * time.Second,
		// One client per download or upload: a connection kept for
		// reuse would only linger, an open file and two goroutines each,
		// in a receiver that runs for months (the soak test saw them).
		DisableKeepAlives:  true,
		DisableCompression: true,
		ForceAttemptHTTP2:  true,
	}
	return &http.Client{Transport: tr, CheckRedirect: CheckRedirect}
}

// CheckRedirect is an http.Client redirect policy: at most MaxRedirects,
// http and https only, and no downgrade from https to http.
func CheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= MaxRedirects {
		return fmt.Errorf("%w: more than %d redirects", ErrFetch, MaxRedirects)
	}
	if _, err := CheckURL(req.URL.String()); err != nil {
		return fmt.Errorf("redirect to %s: %w", req.URL.Redacted(), err)
	}
	if len(via) > 0 && via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("%w: redirect from https down to %s", ErrScheme, req.URL.Scheme)
	}
	return nil
}

// GetOptions shape a download.
type GetOptions struct {
	// Offset is how many bytes of the file the caller already holds: the
	// rest is asked for with a Range request. The server may ignore it and
	// send the whole file; Download.Offset says which it did.
	Offset int64
	// IfRange is the ETag or Last-Modified value of the held bytes: the
	// range is honoured only when the file has not changed since.
	IfRange string
	// MaxSize refuses a file larger than this many bytes; 0 means no limit.
	MaxSize int64
	// StallTimeout fails the download when no byte arrives for this long;
	// 0 means 2 minutes.
	StallTimeout time.Duration
	// Client does the requests; nil means NewClient().
	Client *http.Client
}

// Download is a response being received.
type Download struct {
	Size         int64  // the whole file's size, -1 when the server does not say
	Offset       int64  // where the body starts in the file
	ETag         string // the server's validators, for a later IfRange
	LastModified string
	ContentType  string

	ctx     context.Context
	body    io.ReadCloser
	cancel  context.CancelCauseFunc
	timer   *time.Timer
	stall   time.Duration
	maxSize int64
}

// Get requests rawURL (http or https only) and returns once the response
// headers are in: the caller checks Size, then calls WriteTo and Close.
// A status other than 200 or 206, or a size over MaxSize, is an error
// (wrapping ErrFetch or ErrTooLarge).
func Get(ctx context.Context, rawURL string, o GetOptions) (*Download, error) {
	u, err := CheckURL(rawURL)
	if err != nil {
		return nil, err
	}
	client := o.Client
	if client == nil {
		client = NewClient()
	}
	if o.Offset < 0 {
		o.Offset = 0
	}
	stall := o.StallTimeout
	if stall <= 0 {
		stall = 2 * time.Minute
	}
	rctx, cancel := context.WithCancelCause(ctx)
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		cancel(nil)
		return nil, fmt.Errorf("%w: %v", ErrFetch, err)
	}
	req.Header.Set("User-Agent", "xfer")
	req.Header.Set("Accept-Encoding", "identity")
	if o.Offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(o.Offset, 10)+"-")
		if o.IfRange != "" {
			req.Header.Set("If-Range", o.IfRange)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel(nil)
		return nil, fmt.Errorf("%w: %s: %w", ErrFetch, u.Redacted(), err)
	}
	d := &Download{
		Size: -1, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified"),
		ContentType: resp.Header.Get("Content-Type"),
		body:        resp.Body, ctx: rctx, cancel: cancel, stall: stall, maxSize: o.MaxSize,
	}
	fail := func(err error) (*Download, error) {
		d.Close()
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		d.Size = resp.ContentLength
	case http.StatusPartialContent:
		if o.Offset == 0 {
			return fail(fmt.Errorf("%w: %s: 206 Partial Content to a request without a range", ErrFetch, u.Redacted()))
		}
		start, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil || start != o.Offset {
			return fail(fmt.Errorf("%w: %s: unusable Content-Range %q for offset %d", ErrFetch, u.Redacted(), resp.Header.Get("Content-Range"), o.Offset))
		}
		d.Offset, d.Size = start, total
		if total >= 0 && resp.ContentLength >= 0 && start+resp.ContentLength != total {
			return fail(fmt.Errorf("%w: %s: Content-Range %q and Content-Length %d disagree", ErrFetch, u.Redacted(), resp.Header.Get("Content-Range"), resp.ContentLength))
		}
	case http.StatusRequestedRangeNotSatisfiable:
		if o.Offset > 0 {
			// The held bytes are not a prefix of this file any more:
			// start over.
			d.Close()
			o.Offset, o.IfRange = 0, ""
			return Get(ctx, rawURL, o)
		}
		fallthrough
	default:
		return fail(fmt.Errorf("%w: %s: HTTP %s", ErrFetch, u.Redacted(), resp.Status))
	}
	if o.MaxSize > 0 && d.Size > o.MaxSize {
		return fail(fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, d.Size, o.MaxSize))
	}
	d.timer = time.AfterFunc(stall, func() { cancel(ErrStalled) })
	return d, nil
}

// parseContentRange reads "bytes START-END/TOTAL"; TOTAL may be "*" (-1).
func parseContentRange(h string) (start, total int64, err error) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, 0, errors.New("not a byte range")
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, errors.New("no total")
	}
	s, e, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, errors.New("no range")
	}
	start, err1 := strconv.ParseInt(s, 10, 64)
	end, err2 := strconv.ParseInt(e, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, errors.New("bad range")
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil || total <= end {
			return 0, 0, errors.New("bad total")
		}
		if end != total-1 {
			return 0, 0, errors.New("range does not reach the end")
		}
	}
	return start, total, nil
}

// WriteTo copies the body to w through one fixed buffer: exactly
// Size-Offset bytes when the size is known (fewer is an ErrFetch error,
// the bytes written so far stay with the caller for resuming), and never
// more than MaxSize in all (ErrTooLarge). Silence longer than the stall
// timeout ends it with ErrStalled.
func (d *Download) WriteTo(w io.Writer) (int64, error) {
	var limit int64 = -1
	switch {
	case d.Size >= 0:
		limit = d.Size - d.Offset
	case d.maxSize > 0:
		limit = d.maxSize - d.Offset + 1 // one more shows it is too large
	}
	var r io.Reader = &stallBody{d}
	if limit >= 0 {
		r = io.LimitReader(r, limit)
	}
	n, err := io.CopyBuffer(w, r, make([]byte, 64<<10))
	if err != nil {
		return n, d.cause(fmt.Errorf("%w after %d bytes: %w", ErrFetch, d.Offset+n, err))
	}
	if d.Size >= 0 && n < limit {
		return n, fmt.Errorf("%w: the response ended after %d of %d bytes", ErrFetch, d.Offset+n, d.Size)
	}
	if d.Size < 0 && d.maxSize > 0 && d.Offset+n > d.maxSize {
		return n, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, d.maxSize)
	}
	return n, nil
}

func (d *Download) cause(err error) error {
	if errors.Is(context.Cause(d.ctx), ErrStalled) {
		return errors.Join(ErrStalled, err)
	}
	return err
}

// Close releases the response.
func (d *Download) Close() error {
	if d.timer != nil {
		d.timer.Stop()
	}
	err := d.body.Close()
	d.cancel(nil)
	return err
}

// stallBody restarts the stall timer on every read that moves a byte.
type stallBody struct{ d *Download }

func (s *stallBody) Read(p []byte) (int, error) {
	n, err := s.d.body.Read(p)
	if n > 0 && s.d.timer != nil {
		s.d.timer.Reset(s.d.stall)
	}
	return n, err
}
