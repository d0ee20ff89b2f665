package testserver

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"xfer/internal/session"
)

// RootCAs returns a pool that trusts the server's certificate, or nil
// when it serves plaintext.
func (s *Server) RootCAs() (*x509.CertPool, error) {
	if s.CAFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("testserver: no certificate in %s", s.CAFile)
	}
	return pool, nil
}

// Login logs jid in with password, trusting the server's certificate, and
// closes the session when the test ends.
func (s *Server) Login(tb testing.TB, jid, password string) *session.Session {
	tb.Helper()
	roots, err := s.RootCAs()
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sess, err := session.Dial(ctx, session.Config{
		JID: jid, Password: password, Server: s.Addr, RootCAs: roots,
		AllowPlaintext: s.CAFile == "", Timeout: 10 * time.Second,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sess.Close() })
	return sess
}

// WriteRandom writes size random bytes to dir/name and returns the path
// and their MD5.
func WriteRandom(tb testing.TB, dir, name string, size int64) (string, string) {
	tb.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		tb.Fatal(err)
	}
	return p, hex.EncodeToString(h.Sum(nil))
}

// MD5File returns the MD5 of the file at p, in hex.
func MD5File(tb testing.TB, p string) string {
	tb.Helper()
	return hashFile(tb, p, md5.New())
}

// SHA256File returns the SHA-256 of the file at p, in hex.
func SHA256File(tb testing.TB, p string) string {
	tb.Helper()
	return hashFile(tb, p, sha256.New())
}

func hashFile(tb testing.TB, p string, h hash.Hash) string {
	tb.Helper()
	f, err := os.Open(p)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// LockedBuffer is a bytes.Buffer safe for a process's output and a test
// that reads it meanwhile.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
