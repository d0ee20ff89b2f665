package session_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"xfer/internal/ibb"
	"xfer/internal/session"
)

// The receive path of an in-band bytestream, in process: a scripted server
// writes what Prosody forwards from an xfer sender (an open, data IQs of
// benchBlock bytes with at most benchWindow unacknowledged, a close) to a
// session read as a logged-in one is, with an ibb.Manager on it and a
// reader draining the Conn. It reports the CPU time of the whole process
// (the scripted server's share is small: its stanzas are made beforehand)
// per MiB received.

const (
	benchSender   = "alice@localhost/xfer-3f2a9c0d"
	benchReceiver = "bob@localhost/xfer-81be0477"
	benchSID      = "5c1e9a4b7f3d2e60a8b4c1d9"
	benchBlock    = 4096
	benchWindow   = 16
	benchSize     = 4 << 20
)

// benchStanzas returns the stanzas of one stream: the open, the data, the
// close, as Prosody 0.12 routes them (its attribute order, its xml:lang).
func benchStanzas(size int) [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	iq := func(id, payload string) []byte {
		return []byte("<iq to='" + benchReceiver + "' id='" + id + "' type='set' from='" + benchSender + "' xml:lang='en'>" + payload + "</iq>")
	}
	id := func(n int) string { return fmt.Sprintf("%016x%08x", rng.Uint64(), n) }
	out := [][]byte{iq(id(0), "<open xmlns='http://jabber.org/protocol/ibb' sid='"+benchSID+"' stanza='iq' block-size='"+fmt.Sprint(benchBlock)+"'/>")}
	block := make([]byte, benchBlock)
	for seq := 0; size > 0; seq++ {
		n := min(size, benchBlock)
		for i := range block[:n] {
			block[i] = byte(rng.Uint32())
		}
		out = append(out, iq(id(seq+1), "<data seq='"+fmt.Sprint(uint16(seq))+"' sid='"+benchSID+"' xmlns='http://jabber.org/protocol/ibb'>"+base64.StdEncoding.EncodeToString(block[:n])+"</data>"))
		size -= n
	}
	return append(out, iq(id(-1), "<close xmlns='http://jabber.org/protocol/ibb' sid='"+benchSID+"'/>"))
}

// acks counts the session's answers on the server's end of the pipe; an
// error answer fails the benchmark.
func acks(b *testing.B, peer net.Conn, ch chan<- struct{}) {
	var pending []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := peer.Read(buf)
		pending = append(pending, buf[:n]...)
		for {
			i := bytes.Index(pending, []byte("</iq>"))
			if i < 0 {
				break
			}
			if bytes.Contains(pending[:i], []byte("type='error'")) {
				b.Errorf("error answer: %s", pending[:i+5])
			}
			pending = pending[i+5:]
			ch <- struct{}{}
		}
		if err != nil {
			close(ch)
			return
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkReceiveIBB runs over net.Pipe ("pipe"), and over loopback TCP
// with TLS 1.3 ("tls"), as a session to a server runs: that adds the
// decryption of the data and the encryption and system calls of the
// acknowledgements.
func BenchmarkReceiveIBB(b *testing.B) {
	b.Run("pipe", func(b *testing.B) {
		conn, peer := net.Pipe()
		benchReceive(b, conn, peer)
	})
	b.Run("tls", func(b *testing.B) {
		conn, peer := tlsPair(b)
		benchReceive(b, conn, peer)
	})
}

// tlsPair returns both ends of a TLS connection over loopback TCP.
func tlsPair(b *testing.B) (client, server net.Conn) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		sc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
		_ = sc.Handshake()
		accepted <- sc
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	cc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err := cc.Handshake(); err != nil {
		b.Fatal(err)
	}
	sc := <-accepted
	if sc == nil {
		b.Fatal("no TLS server end")
	}
	return cc, sc
}

func benchReceive(b *testing.B, conn, peer net.Conn) {
	stanzas := benchStanzas(benchSize)
	defer peer.Close()
	go func() {
		_, _ = io.WriteString(peer, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='x' from='localhost' version='1.0' xml:lang='en'>")
	}()
	s, err := session.NewServerStream(conn, benchReceiver)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	m := ibb.NewManager(s, ibb.Options{})
	answered := make(chan struct{}, len(stanzas))
	go acks(b, peer, answered)
	buf := make([]byte, 32<<10)

	b.SetBytes(benchSize)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		m.Expect(benchSID, benchSender)
		got := make(chan error, 1)
		go func() {
			c, err := m.Accept(ctx, benchSID, benchSender)
			if err != nil {
				got <- err
				return
			}
			defer c.Close()
			n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, buf)
			if err == nil && n != benchSize {
				err = fmt.Errorf("received %d bytes, want %d", n, benchSize)
			}
			got <- err
		}()
		sent, acked := 0, 0
		for _, st := range stanzas {
			// The open is answered before data may follow; the close
			// after all data (the window drains); data keeps the window.
			for sent-acked >= benchWindow || (acked < sent && (sent == 1 || strings.Contains(string(st[:200]), "<close"))) {
				if _, ok := <-answered; !ok {
					b.Fatal("session ended")
				}
				acked++
			}
			if _, err := peer.Write(st); err != nil {
				b.Fatal(err)
			}
			sent++
		}
		for acked < sent {
			if _, ok := <-answered; !ok {
				b.Fatal("session ended")
			}
			acked++
		}
		if err := <-got; err != nil {
			b.Fatal(err)
		}
		cancel()
	}
	cpu := cpuTime() - cpu0
	b.StopTimer()
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N*benchSize>>20), "cpu-ms/MiB")
}
