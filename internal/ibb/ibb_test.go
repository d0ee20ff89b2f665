package ibb

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"xfer/internal/session"
)

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// transfer writes data through w and reads it back from r.
func transfer(t *testing.T, w, r *Conn, data []byte) []byte {
	t.Helper()
	var got []byte
	var rerr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		got, rerr = io.ReadAll(r)
	}()
	if n, err := w.Write(data); err != nil || n != len(data) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("writer Close: %v", err)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("reader did not finish")
	}
	if rerr != nil {
		t.Fatalf("ReadAll: %v", rerr)
	}
	if err := r.Close(); err != nil {
		t.Errorf("reader Close: %v", err)
	}
	return got
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name      string
		size      int
		blockSize int
		window    int
	}{
		{"empty", 0, 0, 0},
		{"one byte", 1, 0, 0},
		{"1MiB default blocks", 1 << 20, 0, 0},
		{"1MiB 4096-byte blocks", 1 << 20, 4096, 0},
		{"odd size stop-and-wait", 10_000, 4096, 1},
		{"block-size 1", 300, 1, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, r := openPair(t, "sid-"+strings.ReplaceAll(tc.name, " ", "-"), Options{BlockSize: tc.blockSize, Window: tc.window}, Options{})
			want := tc.blockSize
			if want == 0 {
				want = MaxBlockSize
			}
			if w.BlockSize() != want || r.BlockSize() != want {
				t.Errorf("block sizes %d/%d, want %d", w.BlockSize(), r.BlockSize(), want)
			}
			data := randomBytes(t, tc.size)
			got := transfer(t, w, r, data)
			if md5.Sum(got) != md5.Sum(data) || !bytes.Equal(got, data) {
				t.Fatalf("got %d bytes, want %d; MD5 differs", len(got), len(data))
			}
		})
	}
}

func TestAddrsAndSID(t *testing.T) {
	w, r := openPair(t, "addr", Options{}, Options{})
	for _, tc := range []struct {
		got  net.Addr
		want string
	}{
		{w.LocalAddr(), aliceJID}, {w.RemoteAddr(), bobJID},
		{r.LocalAddr(), bobJID}, {r.RemoteAddr(), aliceJID},
	} {
		if tc.got.Network() != "ibb" || tc.got.String() != tc.want {
			t.Errorf("addr %s %s, want ibb %s", tc.got.Network(), tc.got, tc.want)
		}
	}
	if w.SID() != "addr" || r.SID() != "addr" {
		t.Errorf("SIDs %q %q", w.SID(), r.SID())
	}
}

// The 16-bit seq wraps 65535 → 0 in both directions.
func TestSeqWraps(t *testing.T) {
	opts := Options{BlockSize: 16, firstSeq: 65500}
	w, r := openPair(t, "wrap", opts, opts)
	data := randomBytes(t, 16*100+7) // 101 chunks: 65500 … 65535, 0 … 64
	if got := transfer(t, w, r, data); !bytes.Equal(got, data) {
		t.Fatal("data differs after seq wrap")
	}
}

// Against a raw receiver: data leaves in seq order across the wrap, and the
// window is never exceeded.
func TestSenderWireOrderAndWindow(t *testing.T) {
	const window = 8
	s, p := newRawPeer(t, aliceJID, bobJID)
	data := randomBytes(t, 16*300)
	var got bytes.Buffer
	peerErr := make(chan error, 1)
	go func() {
		peerErr <- func() error {
			w, ok := p.next(5 * time.Second)
			if !ok || w.payloadAttr("block-size") != "16" {
				return fmt.Errorf("no open, got %+v", w)
			}
			p.result(w)
			want := uint16(65530)
			var unacked []wire
			for {
				w, ok := p.next(5 * time.Second)
				if !ok {
					return errors.New("stream ended")
				}
				if strings.Contains(w.Inner, "<close") {
					if len(unacked) > 0 {
						return fmt.Errorf("close with %d chunks unacknowledged", len(unacked))
					}
					p.result(w)
					return nil
				}
				seq, _ := strconv.Atoi(w.payloadAttr("seq"))
				if uint16(seq) != want {
					return fmt.Errorf("seq %d on the wire, want %d", seq, want)
				}
				want++
				b64 := w.Inner[strings.Index(w.Inner, ">")+1 : strings.LastIndex(w.Inner, "<")]
				raw, err := base64.StdEncoding.DecodeString(b64)
				if err != nil {
					return err
				}
				got.Write(raw)
				unacked = append(unacked, w)
				if len(unacked) > window {
					return fmt.Errorf("%d chunks in flight, window %d", len(unacked), window)
				}
				// Ack in bursts, newest first, whenever the window is full or
				// the data is complete.
				if len(unacked) == window || got.Len() == len(data) {
					for i := len(unacked) - 1; i >= 0; i-- {
						p.result(unacked[i])
					}
					unacked = unacked[:0]
				}
			}
		}()
	}()
	c, err := Open(testCtx(t, 5*time.Second), s, bobJID, "order", Options{BlockSize: 16, Window: window, firstSeq: 65530})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-peerErr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatal("peer got different data")
	}
}

// Receivers that refuse big blocks (QXmpp: 4096, slixmpp: 8192) are asked
// again on the same sid with smaller powers of two.
func TestOpenRetriesSmallerBlocks(t *testing.T) {
	t.Run("manager limit", func(t *testing.T) {
		w, r := openPair(t, "rc", Options{BlockSize: 65535}, Options{MaxBlockSize: 4096})
		if w.BlockSize() != 4096 || r.BlockSize() != 4096 {
			t.Fatalf("block sizes %d/%d, want 4096", w.BlockSize(), r.BlockSize())
		}
		data := randomBytes(t, 50_000)
		if got := transfer(t, w, r, data); !bytes.Equal(got, data) {
			t.Fatal("data differs")
		}
	})
	for _, tc := range []struct {
		name  string
		limit int
		tried string
		err   error
	}{
		{"slixmpp", 8192, "65535 32768 16384 8192", nil},
		{"qxmpp", 4096, "65535 32768 16384 8192 4096", nil},
		{"nothing fits", 100, "65535 32768 16384 8192 4096 2048 1024 512", ErrRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, p := newRawPeer(t, aliceJID, bobJID)
			var tried []string
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					w, ok := p.next(5 * time.Second)
					if !ok {
						return
					}
					bs := w.payloadAttr("block-size")
					tried = append(tried, bs)
					if n, _ := strconv.Atoi(bs); n > tc.limit {
						p.errorReply(w, "resource-constraint")
						continue
					}
					p.result(w)
					return
				}
			}()
			c, err := Open(testCtx(t, 5*time.Second), s, bobJID, "rc", Options{})
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("Open: %v, want %v", err, tc.err)
			}
			if tc.err == nil {
				<-done
				if c.BlockSize() != tc.limit {
					t.Errorf("BlockSize %d, want %d", c.BlockSize(), tc.limit)
				}
			}
			s.Close()
			<-done
			if got := strings.Join(tried, " "); got != tc.tried {
				t.Errorf("tried %s, want %s", got, tc.tried)
			}
		})
	}
}

func TestOpenRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, from, open, cond string
	}{
		{"unknown sid", aliceJID, `<open xmlns='` + NS + `' sid='other' block-size='4096'/>`, "not-acceptable"},
		{"another JID", malloryJID, `<open xmlns='` + NS + `' sid='s1' block-size='4096'/>`, "not-acceptable"},
		{"same account, other resource", "alice@example.org/phone", `<open xmlns='` + NS + `' sid='s1' block-size='4096'/>`, "not-acceptable"},
		{"message stanzas", aliceJID, `<open xmlns='` + NS + `' sid='s1' block-size='4096' stanza='message'/>`, "feature-not-implemented"},
		{"block too big", aliceJID, `<open xmlns='` + NS + `' sid='s1' block-size='65536'/>`, "resource-constraint"},
		{"block-size not a number", aliceJID, `<open xmlns='` + NS + `' sid='s1' block-size='4k'/>`, "bad-request"},
		{"no sid", aliceJID, `<open xmlns='` + NS + `' block-size='4096'/>`, "bad-request"},
		{"unknown element", aliceJID, `<nonsense xmlns='` + NS + `'/>`, "bad-request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, p := newRawPeer(t, bobJID, aliceJID)
			m := NewManager(s, Options{})
			m.Expect("s1", aliceJID)
			p.setFrom(tc.from, "o", bobJID, tc.open)
			if got := p.reply("o").condition(); got != tc.cond {
				t.Fatalf("answered %q, want %q", got, tc.cond)
			}
			// The expectation survives a refusal: the real peer can still open.
			p.set("o2", bobJID, `<open xmlns='`+NS+`' sid='s1' block-size='4096'/>`)
			if r := p.reply("o2"); r.attr("type") != "result" {
				t.Fatalf("proper open refused: %s", r.condition())
			}
			if _, err := m.Accept(testCtx(t, time.Second), "s1", aliceJID); err != nil {
				t.Fatal(err)
			}
			p.set("o3", bobJID, `<open xmlns='`+NS+`' sid='s1' block-size='4096'/>`)
			if got := p.reply("o3").condition(); got != "not-acceptable" {
				t.Fatalf("second open answered %q", got)
			}
		})
	}
}

// Incoming data is validated strictly; a bad chunk is refused and ends the
// stream with an error for the reader, after the good data before it.
func TestReceiverRejects(t *testing.T) {
	good := base64.StdEncoding.EncodeToString([]byte("good"))
	for _, tc := range []struct {
		name    string
		from    string
		payload string
		cond    string
		readErr error // nil: the stream is unaffected
	}{
		{"unknown sid", aliceJID, dataXML("nope", 1, "QUJD"), "item-not-found", nil},
		{"another JID", malloryJID, dataXML("s1", 1, "QUJD"), "item-not-found", nil},
		{"bad length", aliceJID, dataXML("s1", 1, "QUJDR"), "bad-request", ErrBadData},
		{"missing padding", aliceJID, dataXML("s1", 1, "QUI"), "bad-request", ErrBadData},
		{"non-zero padding bits", aliceJID, dataXML("s1", 1, "QR=="), "bad-request", ErrBadData},
		{"line break", aliceJID, dataXML("s1", 1, "QUJD\nREVG"), "bad-request", ErrBadData},
		{"escaped line break", aliceJID, dataXML("s1", 1, "QUJD&#13;&#10;REVG"), "bad-request", ErrBadData},
		{"space", aliceJID, dataXML("s1", 1, "QUJD REVG"), "bad-request", ErrBadData},
		{"url alphabet", aliceJID, dataXML("s1", 1, "-_-_"), "bad-request", ErrBadData},
		{"larger than block", aliceJID, dataXML("s1", 1, base64.StdEncoding.EncodeToString(make([]byte, 9))), "bad-request", ErrBadData},
		{"replayed seq", aliceJID, dataXML("s1", 0, "QUJD"), "unexpected-request", ErrUnexpectedSeq},
		{"far ahead", aliceJID, dataXML("s1", 1+maxAhead, "QUJD"), "unexpected-request", ErrUnexpectedSeq},
		{"seq out of range", aliceJID, dataXML("s1", 65536, "QUJD"), "bad-request", nil},
		{"child element", aliceJID, `<data xmlns='` + NS + `' sid='s1' seq='1'>QU<x/>JD</data>`, "bad-request", nil},
		{"close for unknown sid", aliceJID, `<close xmlns='` + NS + `' sid='nope'/>`, "item-not-found", nil},
		{"close from another JID", malloryJID, `<close xmlns='` + NS + `' sid='s1'/>`, "item-not-found", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, p := newRawPeer(t, bobJID, aliceJID)
			m := NewManager(s, Options{})
			c := openRaw(t, m, p, "s1", 8)
			p.set("d0", bobJID, dataXML("s1", 0, good))
			if r := p.reply("d0"); r.attr("type") != "result" {
				t.Fatalf("good chunk answered %s", r.condition())
			}
			p.setFrom(tc.from, "bad", bobJID, tc.payload)
			if got := p.reply("bad").condition(); got != tc.cond {
				t.Fatalf("answered %q, want %q", got, tc.cond)
			}
			buf := make([]byte, 100)
			n, err := c.Read(buf)
			if err != nil || string(buf[:n]) != "good" {
				t.Fatalf("Read = %q, %v", buf[:n], err)
			}
			if tc.readErr != nil {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Read(buf); !errors.Is(err, tc.readErr) {
					t.Fatalf("Read err = %v, want %v", err, tc.readErr)
				}
				// The stream is gone: further data is for an unknown stream.
				p.set("d1", bobJID, dataXML("s1", 1, good))
				if got := p.reply("d1").condition(); got != "item-not-found" {
					t.Fatalf("data after failure answered %q", got)
				}
				return
			}
			// Unaffected: the real peer goes on and closes.
			p.set("d1", bobJID, dataXML("s1", 1, good))
			if r := p.reply("d1"); r.attr("type") != "result" {
				t.Fatalf("next chunk answered %s", r.condition())
			}
			p.set("c", bobJID, `<close xmlns='`+NS+`' sid='s1'/>`)
			if r := p.reply("c"); r.attr("type") != "result" {
				t.Fatalf("close answered %s", r.condition())
			}
			rest, err := io.ReadAll(c)
			if err != nil || string(rest) != "good" {
				t.Fatalf("rest %q, %v", rest, err)
			}
		})
	}
}

// Chunks may reach the handler out of order (and do, on the wire here);
// bytes still come out in seq order. A close sent right after the last
// chunk, without waiting for acknowledgements, loses nothing.
func TestOutOfOrderAndEarlyClose(t *testing.T) {
	s, p := newRawPeer(t, bobJID, aliceJID)
	m := NewManager(s, Options{})
	c := openRaw(t, m, p, "s1", 4096)
	chunks := []string{"zero ", "one ", "two ", "three ", "four ", "five"}
	order := []int{1, 0, 3, 2, 5, 4}
	for _, i := range order {
		p.set("d"+strconv.Itoa(i), bobJID, dataXML("s1", i, base64.StdEncoding.EncodeToString([]byte(chunks[i]))))
	}
	p.set("c", bobJID, `<close xmlns='`+NS+`' sid='s1'/>`)
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(chunks, ""); string(got) != want {
		t.Fatalf("read %q, want %q", got, want)
	}
	for _, i := range order {
		if r := p.reply("d" + strconv.Itoa(i)); r.attr("type") != "result" {
			t.Errorf("chunk %d answered %s", i, r.condition())
		}
	}
	if r := p.reply("c"); r.attr("type") != "result" {
		t.Errorf("close answered %s", r.condition())
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close after remote close: %v", err)
	}
}

// A chunk whose predecessor never comes is refused after reorderGrace.
func TestGapIsUnexpected(t *testing.T) {
	s, p := newRawPeer(t, bobJID, aliceJID)
	m := NewManager(s, Options{})
	c := openRaw(t, m, p, "s1", 4096)
	start := time.Now()
	p.set("d1", bobJID, dataXML("s1", 1, "QUJD"))
	if got := p.reply("d1").condition(); got != "unexpected-request" {
		t.Fatalf("answered %q", got)
	}
	if el := time.Since(start); el < reorderGrace/2 {
		t.Errorf("refused after %v, before the grace period", el)
	}
	if _, err := c.Read(make([]byte, 10)); !errors.Is(err, ErrUnexpectedSeq) {
		t.Fatalf("Read: %v", err)
	}
}

// The reader's pace bounds what the receiver holds: with a stalled reader
// the sender's Write blocks once the window and the buffer are full, and
// resumes when the reader reads.
func TestBackpressure(t *testing.T) {
	const bs, window = 1024, 4
	w, r := openPair(t, "bp", Options{BlockSize: bs, Window: window}, Options{})
	data := randomBytes(t, readBufMax(bs)+32*bs) // more than the buffer and the window hold
	written := make(chan int, 1)
	go func() {
		n, _ := w.Write(data)
		written <- n
	}()
	select {
	case n := <-written:
		t.Fatalf("Write of %d bytes finished with nobody reading", n)
	case <-time.After(300 * time.Millisecond):
	}
	r.mu.Lock()
	held := r.buf.Len()
	r.mu.Unlock()
	if held > r.bufMax {
		t.Fatalf("receiver buffers %d bytes, limit %d", held, r.bufMax)
	}
	got := make([]byte, 0, len(data))
	buf := make([]byte, 4096)
	for len(got) < len(data) {
		r.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := r.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if n := <-written; n != len(data) {
		t.Fatalf("wrote %d", n)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data differs")
	}
}

// A peer that never acknowledges: Write fails within AckTimeout.
func TestWriteFailsWithoutAcks(t *testing.T) {
	s, p := newRawPeer(t, aliceJID, bobJID)
	go func() {
		if w, ok := p.next(5 * time.Second); ok {
			p.result(w) // accept the open, then swallow everything
		}
		for {
			if _, ok := p.next(time.Minute); !ok {
				return
			}
		}
	}()
	const ackTimeout = 300 * time.Millisecond
	c, err := Open(testCtx(t, 5*time.Second), s, bobJID, "bh", Options{BlockSize: 16, Window: 2, AckTimeout: ackTimeout})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Write(make([]byte, 100))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Write: %v, want ErrTimeout", err)
	}
	if el := time.Since(start); el > ackTimeout+time.Second {
		t.Fatalf("Write failed after %v", el)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, ErrTimeout) {
		t.Fatalf("second Write: %v", err)
	}
	if err := c.Close(); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Close: %v", err)
	}
}

// An error reply to a chunk fails the stream for the writer.
func TestWriteFailsOnErrorReply(t *testing.T) {
	s, p := newRawPeer(t, aliceJID, bobJID)
	go func() {
		if w, ok := p.next(5 * time.Second); ok {
			p.result(w)
		}
		if w, ok := p.next(5 * time.Second); ok {
			p.errorReply(w, "item-not-found")
		}
		for {
			if _, ok := p.next(time.Minute); !ok {
				return
			}
		}
	}()
	c, err := Open(testCtx(t, 5*time.Second), s, bobJID, "er", Options{BlockSize: 16, Window: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Write(make([]byte, 64))
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "item-not-found") {
		t.Fatalf("Write: %v", err)
	}
	if err := c.Close(); !errors.Is(err, ErrRejected) {
		t.Fatalf("Close: %v", err)
	}
}

// Close returns only after all chunks were acknowledged, so nil from Close
// means the peer has everything.
func TestCloseWaitsForAcks(t *testing.T) {
	s, p := newRawPeer(t, aliceJID, bobJID)
	var mu sync.Mutex
	acked := 0
	go func() {
		if w, ok := p.next(5 * time.Second); ok {
			p.result(w)
		}
		for {
			w, ok := p.next(5 * time.Second)
			if !ok {
				return
			}
			if strings.Contains(w.Inner, "<close") {
				p.result(w)
				continue
			}
			go func() { // slow acks
				time.Sleep(50 * time.Millisecond)
				mu.Lock()
				acked++
				mu.Unlock()
				p.result(w)
			}()
		}
	}()
	c, err := Open(testCtx(t, 5*time.Second), s, bobJID, "cw", Options{BlockSize: 16, Window: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(make([]byte, 16*10)); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if acked != 10 {
		t.Fatalf("Close returned with %d of 10 chunks acknowledged", acked)
	}
}

// Both directions work over a stream opened through a Manager, and a close
// from either side ends the other's writes.
func TestBidirectionalAndRemoteClose(t *testing.T) {
	alice, bob := sessionPair(t)
	ma := NewManager(alice, Options{})
	mb := NewManager(bob, Options{})
	mb.Expect("bi", aliceJID)
	ctx := testCtx(t, 10*time.Second)
	a, err := ma.Open(ctx, bobJID, "bi")
	if err != nil {
		t.Fatal(err)
	}
	b, err := mb.Accept(ctx, "bi", aliceJID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if n, err := io.ReadAtLeast(b, buf, 4); err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("bob read %q, %v", buf[:n], err)
	}
	if _, err := b.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if n, err := io.ReadAtLeast(a, buf, 4); err != nil || string(buf[:n]) != "pong" {
		t.Fatalf("alice read %q, %v", buf[:n], err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("bob Close: %v", err)
	}
	if _, err := a.Read(buf); err != io.EOF {
		t.Fatalf("alice Read after remote close: %v", err)
	}
	if _, err := a.Write([]byte("more")); !errors.Is(err, ErrClosedByPeer) {
		t.Fatalf("alice Write after remote close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("alice Close: %v", err)
	}
	if err := a.Close(); !errors.Is(err, net.ErrClosed) || !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := a.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	// The sid is free again.
	mb.Expect("bi", aliceJID)
	if _, err := ma.Open(ctx, bobJID, "bi"); err != nil {
		t.Fatalf("reopen: %v", err)
	}
}

func TestDeadlines(t *testing.T) {
	w, r := openPair(t, "dl", Options{BlockSize: 16, Window: 1}, Options{MaxBlockSize: 16})
	r.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err := r.Read(make([]byte, 10))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.Is(err, ErrTimeout) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read: %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("deadline ignored")
	}
	// A cleared deadline lets Read wait again.
	r.SetReadDeadline(time.Time{})
	go w.Write([]byte("hello"))
	buf := make([]byte, 10)
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	// A passed write deadline fails Write at once.
	w.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := w.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write: %v", err)
	}
	w.SetDeadline(time.Time{})
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatalf("Write after clearing: %v", err)
	}
}

func TestAcceptCancelled(t *testing.T) {
	_, bob := sessionPair(t)
	m := NewManager(bob, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	_, err := m.Accept(ctx, "never", aliceJID)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Accept: %v", err)
	}
	_, err = m.Accept(testCtx(t, 50*time.Millisecond), "never", aliceJID)
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Accept with deadline: %v", err)
	}
	// The expectation is gone: an open for it now is refused.
	s, p := newRawPeer(t, bobJID, aliceJID)
	m2 := NewManager(s, Options{})
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	m2.Accept(ctx2, "gone", aliceJID)
	p.set("o", bobJID, `<open xmlns='`+NS+`' sid='gone' block-size='16'/>`)
	if got := p.reply("o").condition(); got != "not-acceptable" {
		t.Fatalf("open after cancelled Accept answered %q", got)
	}
}

func TestSessionEndFailsRead(t *testing.T) {
	alice, bob := sessionPair(t)
	m := NewManager(bob, Options{})
	m.Expect("se", aliceJID)
	ctx := testCtx(t, 5*time.Second)
	if _, err := Open(ctx, alice, bobJID, "se", Options{}); err != nil {
		t.Fatal(err)
	}
	r, err := m.Accept(ctx, "se", aliceJID)
	if err != nil {
		t.Fatal(err)
	}
	alice.Close()
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.Read(make([]byte, 10)); !errors.Is(err, ErrSessionEnded) {
		t.Fatalf("Read: %v", err)
	}
}

func BenchmarkConn(b *testing.B) {
	for _, bs := range []int{4096, MaxBlockSize} {
		b.Run(strconv.Itoa(bs), func(b *testing.B) {
			benchStream(b, time.Minute, func(a *session.Session) Session { return a }, Options{BlockSize: bs}, 1<<20)
		})
	}
}

// Accept may wait before the open arrives; Forget withdraws an expectation
// and closes a stream that was opened but never accepted.
func TestAcceptFirstAndForget(t *testing.T) {
	s, p := newRawPeer(t, bobJID, aliceJID)
	m := NewManager(s, Options{})
	accepted := make(chan *Conn, 1)
	go func() {
		c, err := m.Accept(testCtx(t, 5*time.Second), "first", aliceJID)
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	// Wait until Accept has registered its expectation.
	for {
		m.mu.Lock()
		_, ok := m.expected[keyOf("first", aliceJID)]
		m.mu.Unlock()
		if ok {
			break
		}
		time.Sleep(time.Millisecond)
	}
	p.set("o1", bobJID, `<open xmlns='`+NS+`' sid='first' block-size='16'/>`)
	if r := p.reply("o1"); r.attr("type") != "result" {
		t.Fatalf("open answered %s", r.condition())
	}
	if c := <-accepted; c == nil || c.SID() != "first" {
		t.Fatal("no stream")
	}

	m.Expect("parked", aliceJID)
	p.set("o2", bobJID, `<open xmlns='`+NS+`' sid='parked' block-size='16'/>`)
	if r := p.reply("o2"); r.attr("type") != "result" {
		t.Fatalf("open answered %s", r.condition())
	}
	go func() { // answer the close that Forget sends
		for {
			w, ok := p.next(5 * time.Second)
			if !ok {
				return
			}
			if strings.Contains(w.Inner, "<close") {
				p.result(w)
				return
			}
		}
	}()
	m.Forget("parked", aliceJID)
	p.set("d", bobJID, dataXML("parked", 0, "QUJD"))
	if got := p.reply("d").condition(); got != "item-not-found" {
		t.Fatalf("data after Forget answered %q", got)
	}
}

// Libervia 0.9 wraps its sequence after 65534, never sending 65535: the
// receiver takes 0 once 65535 has not come within the grace period.
func TestSeqWrapsAfter65534(t *testing.T) {
	s, p := newRawPeer(t, bobJID, aliceJID)
	m := NewManager(s, Options{firstSeq: 65533})
	c := openRaw(t, m, p, "lv", 4096)
	chunks := []string{"a", "b", "c", "d"}
	for i, seq := range []int{65533, 65534, 0, 1} {
		id := "d" + strconv.Itoa(i)
		p.set(id, bobJID, dataXML("lv", seq, base64.StdEncoding.EncodeToString([]byte(chunks[i]))))
		if r := p.reply(id); r.attr("type") != "result" {
			t.Fatalf("seq %d answered %s", seq, r.condition())
		}
	}
	p.set("c", bobJID, `<close xmlns='`+NS+`' sid='lv'/>`)
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "abcd" {
		t.Fatalf("read %q, %v", got, err)
	}
}

// benchStream sends size bytes per iteration from alice (as wrap makes
// her session, e.g. with delayed acknowledgements) to bob's reader.
func benchStream(b *testing.B, limit time.Duration, wrap func(*session.Session) Session, opts Options, size int) *Conn {
	alice, bob := sessionPair(b)
	m := NewManager(bob, Options{})
	m.Expect("bench", aliceJID)
	ctx := testCtx(b, limit)
	w, err := Open(ctx, wrap(alice), bobJID, "bench", opts)
	if err != nil {
		b.Fatal(err)
	}
	r, err := m.Accept(ctx, "bench", aliceJID)
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, size)
	b.SetBytes(int64(len(data)))
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, r)
		done <- err
	}()
	b.ResetTimer()
	for range b.N {
		if _, err := w.Write(data); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	return w
}
