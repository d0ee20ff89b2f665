package transfer

// What every sender does with the file, whichever protocol offers it: open
// it, hash it (ahead, while logging in: prehash.go), and copy it to the
// bytestream through the progress meter.

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
	"time"
)

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

// sums returns the file's hashes that the method needs: the early ones
// (Prehash) when the file is unchanged, else computed now.
func (sd *Sender) sums(ctx context.Context, src *source) (fileSums, error) {
	need := hashesFor(sd.Opts.Method)
	if s, ok := sd.takePrehash(ctx, src.path, src.st); ok && s.has(need) {
		return s, nil
	}
	return hashFile(ctx, src.f, need)
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
	// Ctrl-C ends a write blocked on a stalled peer at once, not at the
	// stall timeout; an in-band stream is aborted, so that its close does
	// not wait for acknowledgements either.
	defer context.AfterFunc(ctx, func() {
		_ = conn.SetWriteDeadline(aLongTimeAgo)
		if a, ok := conn.(interface{ Abort() }); ok {
			a.Abort()
		}
	})()
	out := stallWriter{conn, orDefault(sd.Opts.StallTimeout, 2*time.Minute), ctx}
	n, err := io.CopyBuffer(out, io.TeeReader(io.LimitReader(&ctxReader{ctx, src.f}, length), meter), make([]byte, 64<<10))
	if err == nil && n < length {
		err = fmt.Errorf("%w: %s shrank while sending", ErrFile, src.path)
	}
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("interrupted: %w", context.Cause(ctx))
	}
	return n, err
}

// aLongTimeAgo is a deadline in the past, to unblock I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// stallWriter fails a write that cannot move a byte within the timeout,
// and any write once ctx has ended.
type stallWriter struct {
	conn    net.Conn
	timeout time.Duration
	ctx     context.Context
}

func (w stallWriter) Write(p []byte) (int, error) {
	_ = w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
	if w.ctx.Err() != nil {
		// Cancelled between copyOut's AfterFunc and the line above.
		_ = w.conn.SetWriteDeadline(aLongTimeAgo)
	}
	n, err := w.conn.Write(p)
	if err != nil && isTimeout(err) {
		return n, errors.Join(ErrStalled, err)
	}
	return n, err
}

// fileSums are a file's hashes: MD5 (hex) for SI's offer, SHA-256 for
// Jingle's.
type fileSums struct {
	md5    string
	sha256 []byte
}

// hashNeeds says which hashes a method's offers carry.
type hashNeeds struct{ md5, sha256 bool }

// hashesFor is what a method needs: SI's MD5, Jingle's SHA-256, both for
// auto (the peer decides), neither out of band. Each costs a pass of CPU
// over the file (MD5 about 0.6 GB/s here, SHA-256 1.4 GB/s).
func hashesFor(method string) hashNeeds {
	switch method {
	case "si", "s5b", "ibb":
		return hashNeeds{md5: true}
	case "jingle", "jingle-s5b", "jingle-ibb":
		return hashNeeds{sha256: true}
	case "oob", "upload":
		return hashNeeds{}
	}
	return hashNeeds{md5: true, sha256: true}
}

func (s fileSums) has(n hashNeeds) bool {
	return (!n.md5 || s.md5 != "") && (!n.sha256 || s.sha256 != nil)
}

// hashFile hashes the whole file as needed, then rewinds it.
func hashFile(ctx context.Context, f *os.File, need hashNeeds) (fileSums, error) {
	var ws []io.Writer
	m, s := md5.New(), sha256.New()
	if need.md5 {
		ws = append(ws, m)
	}
	if need.sha256 {
		ws = append(ws, s)
	}
	if len(ws) == 0 {
		return fileSums{}, nil
	}
	if _, err := io.CopyBuffer(io.MultiWriter(ws...), &ctxReader{ctx, f}, make([]byte, 64<<10)); err != nil {
		return fileSums{}, fmt.Errorf("%w: hashing %s: %w", ErrFile, f.Name(), err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fileSums{}, fmt.Errorf("%w: %w", ErrFile, err)
	}
	var sums fileSums
	if need.md5 {
		sums.md5 = hex.EncodeToString(m.Sum(nil))
	}
	if need.sha256 {
		sums.sha256 = s.Sum(nil)
	}
	return sums, nil
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
