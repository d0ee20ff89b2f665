package session

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"
)

// readWrite reads what one write of the session brought (net.Pipe hands
// over one write per read when the buffer is larger).
func readWrite(t *testing.T, peer net.Conn) []byte {
	t.Helper()
	buf := make([]byte, 4*AlignSize)
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := peer.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// While aligned, every write is padded with spaces to records of
// AlignSize, each its own write; calls nest; unaligned, a stanza is
// written as it is.
func TestAlignWrites(t *testing.T) {
	s, peer := inlinePair(t)
	small := "<message to='a@localhost'><body>hi</body></message>"
	large := "<message to='a@localhost'><body>" + strings.Repeat("x", AlignSize) + "</body></message>"
	send := func(st string) {
		go func() {
			if err := s.Send([]byte(st)); err != nil {
				t.Error(err)
			}
		}()
	}
	expectRecords := func(st string, records int) {
		t.Helper()
		var got []byte
		for i := range records {
			w := readWrite(t, peer)
			if len(w) != AlignSize {
				t.Fatalf("record %d: %d bytes, want %d", i, len(w), AlignSize)
			}
			got = append(got, w...)
		}
		if !bytes.HasPrefix(got, []byte(st)) || strings.Trim(string(got[len(st):]), " ") != "" {
			t.Fatalf("records: %.80q…, want the stanza and spaces", got)
		}
	}

	s.AlignWrites(true)
	send(small)
	expectRecords(small, 1)
	send(large)
	expectRecords(large, 2)

	s.AlignWrites(true) // a second stream
	s.AlignWrites(false)
	send(small)
	expectRecords(small, 1)

	s.AlignWrites(false)
	send(small)
	if w := readWrite(t, peer); string(w) != small {
		t.Fatalf("unaligned: %q", w)
	}
}
