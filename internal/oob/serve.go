package oob

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ServeOptions shape the one-file server.
type ServeOptions struct {
	// Host is the host, or host:port, to put in the URL, as a peer can
	// reach it; empty means the listener's own address. Without a port the
	// listener's port is used.
	Host string
	// Progress receives the bytes served (their count is what matters),
	// for a progress meter. Writes are serialised.
	Progress io.Writer
}

// Server serves one file at one unguessable URL until Close or until the
// context given to Serve ends. Any other path gets 404, any method but GET
// and HEAD 405; Range requests are honoured, so a receiver can resume.
type Server struct {
	URL string

	srv      *http.Server
	ln       net.Listener
	token    string
	name     string
	path     string
	progress io.Writer
	mu       sync.Mutex // serialises progress writes
	served   atomic.Int64
	last     atomic.Int64 // unix nanoseconds of the last request or byte served
	stop     func() bool
	done     chan struct{}
}

// Serve starts serving the regular file at path under the given name on
// listenAddr (host:port; port 0 picks a free one). The URL's path is a
// random 128-bit token in hex followed by the escaped name, so that only
// whoever was told the URL can fetch the file.
func Serve(ctx context.Context, listenAddr, path, name string, o *ServeOptions) (*Server, error) {
	if o == nil {
		o = &ServeOptions{}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("oob: %s is not a regular file", path)
	}
	if name == "" || strings.ContainsAny(name, "/\x00") {
		return nil, fmt.Errorf("oob: unusable name %q for the URL", name)
	}
	var tok [16]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return nil, fmt.Errorf("oob: listening on %s: %w", listenAddr, err)
	}
	host := o.Host
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	if host == "" {
		host = ln.Addr().String()
	} else if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(strings.Trim(host, "[]"), port)
	}
	s := &Server{
		ln: ln, token: hex.EncodeToString(tok[:]), name: name, path: path,
		progress: o.Progress, done: make(chan struct{}),
	}
	s.URL = (&url.URL{Scheme: "http", Host: host, Path: "/" + s.token + "/" + name}).String()
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	s.stop = context.AfterFunc(ctx, func() { s.srv.Close() })
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Served is the number of file bytes sent so far, over all requests.
func (s *Server) Served() int64 { return s.served.Load() }

// LastActivity is when a request last arrived or a byte last left; zero
// before the first request.
func (s *Server) LastActivity() time.Time {
	if n := s.last.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Close stops the server and closes its connections, downloads in
// progress included.
func (s *Server) Close() error {
	s.stop()
	err := s.srv.Close()
	<-s.done
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (s *Server) touch() { s.last.Store(time.Now().UnixNano()) }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.touch()
	tok, name, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(s.token)) != 1 || name != s.name {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	f, err := os.Open(s.path)
	if err != nil {
		http.Error(w, "gone", http.StatusGone)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.Error(w, "gone", http.StatusGone)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Disposition", "attachment; filename*=UTF-8''"+url.PathEscape(s.name))
	http.ServeContent(w, r, s.name, fi.ModTime(), &countingFile{f, s})
}

// countingFile counts (and reports) the bytes ServeContent reads to send.
type countingFile struct {
	f *os.File
	s *Server
}

func (c *countingFile) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	if n > 0 {
		c.s.served.Add(int64(n))
		c.s.touch()
		if c.s.progress != nil {
			c.s.mu.Lock()
			_, _ = c.s.progress.Write(p[:n])
			c.s.mu.Unlock()
		}
	}
	return n, err
}

func (c *countingFile) Seek(off int64, whence int) (int64, error) { return c.f.Seek(off, whence) }
