package session

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

const nsTestIBB = "http://jabber.org/protocol/ibb"

// inlinePair is a session read as a logged-in one is (the fast path, the
// answers queued and written before each read) with a scripted server on
// the other end of a pipe.
func inlinePair(t *testing.T) (*Session, net.Conn) {
	t.Helper()
	conn, peer := net.Pipe()
	go func() {
		_, _ = io.WriteString(peer, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='x' from='localhost' version='1.0'>")
	}()
	s, err := NewServerStream(conn, "bob@localhost/r")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close(); s.Close() })
	return s, peer
}

func chunkIQ(id, text string) string {
	return fmt.Sprintf("<iq type='set' id='%s' from='alice@localhost/s' to='bob@localhost/r'><data xmlns='%s' seq='0' sid='s1'>%s</data></iq>", id, nsTestIBB, text)
}

// readAnswers reads until n answers (</iq> or />-closed iqs) have come.
func readAnswers(t *testing.T, peer net.Conn, n int) string {
	t.Helper()
	var got bytes.Buffer
	buf := make([]byte, 4096)
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	for strings.Count(got.String(), "<iq") < n {
		k, err := peer.Read(buf)
		got.Write(buf[:k])
		if err != nil {
			t.Fatalf("after %q: %v", got.String(), err)
		}
	}
	return got.String()
}

// An inline handler answers what it takes on the read loop; what it
// leaves goes to the Handler, whose payload is its own copy although the
// reader's buffer moved on; every request is answered once.
func TestInlineHandling(t *testing.T) {
	s, peer := inlinePair(t)
	release := make(chan struct{})
	s.Handle(TypeSet, nsTestIBB, func(ctx context.Context, iq *IQ) ([]byte, error) {
		<-release // the read loop reads on meanwhile
		if !bytes.Contains(iq.Payload, []byte("U0xPVw==")) {
			return nil, NewError(CondBadRequest, "payload changed under the handler: "+string(iq.Payload))
		}
		return []byte("<slow xmlns='urn:test'/>"), nil
	})
	var inlineCalls int
	s.HandleInline(TypeSet, nsTestIBB, func(iq *IQ) ([]byte, bool, error) {
		inlineCalls++ // the read loop only: no lock needed
		switch {
		case bytes.Contains(iq.Payload, []byte("U0xPVw==")): // "SLOW"
			return nil, false, nil
		case bytes.Contains(iq.Payload, []byte("QkFE")): // "BAD"
			return nil, true, NewError(CondNotAcceptable, "")
		}
		return nil, true, nil
	})
	// One write: the slow one first, then inline ones that overwrite the
	// buffer it was read from.
	in := chunkIQ("slow", "U0xPVw==")
	for i := range 20 {
		in += chunkIQ(fmt.Sprint("fast", i), strings.Repeat("QUJD", 200))
	}
	in += chunkIQ("bad", "QkFE")
	go func() { _, _ = io.WriteString(peer, in) }()
	got := readAnswers(t, peer, 21)
	for i := range 20 {
		if !strings.Contains(got, fmt.Sprintf("id=\"fast%d\"", i)) && !strings.Contains(got, fmt.Sprintf("id='fast%d'", i)) {
			t.Errorf("fast%d not answered: %s", i, got)
		}
	}
	if !strings.Contains(got, "not-acceptable") {
		t.Errorf("the inline error was not sent: %s", got)
	}
	close(release)
	got = readAnswers(t, peer, 1)
	if !strings.Contains(got, "slow") || !strings.Contains(got, "<slow xmlns") {
		t.Errorf("the Handler's answer: %s", got)
	}
	if inlineCalls != 22 {
		t.Errorf("inline handler called %d times, want 22", inlineCalls)
	}
}

// Answers queued while another write holds the connection still go out
// without the read loop waiting for that write: a goroutine flushes them.
func TestInlineAnswersWhileAWriteIsUnderWay(t *testing.T) {
	s, peer := inlinePair(t)
	s.HandleInline(TypeSet, nsTestIBB, func(iq *IQ) ([]byte, bool, error) { return nil, true, nil })
	s.sendMu.Lock() // a writer is under way
	go func() { _, _ = io.WriteString(peer, chunkIQ("a", "QUJD")+chunkIQ("b", "QUJD")) }()
	// The read loop must come back for more input while the lock is held.
	read := make(chan struct{})
	go func() {
		_, _ = io.WriteString(peer, chunkIQ("c", "QUJD"))
		close(read)
	}()
	select {
	case <-read:
	case <-time.After(5 * time.Second):
		t.Fatal("the read loop waited for the writer")
	}
	s.sendMu.Unlock()
	got := readAnswers(t, peer, 3)
	for _, id := range []string{"a", "b", "c"} {
		if !strings.Contains(got, "id=\""+id+"\"") && !strings.Contains(got, "id='"+id+"'") {
			t.Errorf("%s not answered: %s", id, got)
		}
	}
}
