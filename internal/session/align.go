package session

// Record alignment, for a client sending in-band data to Prosody.
//
// Prosody 0.12 (net/server_epoll) reads a client's stream read_size bytes
// at a time (8192 by default). When its TLS layer still holds data after
// such a read (the read ended inside a TLS record), it takes the
// connection out of its poll and reads it again from a timer of 1 µs, and
// its loop sleeps at least min_wait (1 ms) for that timer: a client that
// streams gets about 8 KiB read per millisecond and a half, whatever its
// link, unless other traffic wakes the loop sooner. On an emulated 80 ms
// link that held in-band transfers at 3.6-4.5 MB/s; with Prosody's min_wait
// at 10 µs, 5.9 (tools/bench -wan). A client can keep every read whole: if
// each TLS record it sends holds exactly AlignSize bytes, each of Prosody's
// reads takes whole records and leaves nothing behind. So while an in-band
// sender asks for it (AlignWrites), the session pads every write with
// whitespace, which RFC 6120 allows between stanzas (§4.6.1), to a multiple
// of AlignSize, and writes it as records of AlignSize bytes (the TLS
// configuration sends a record per write: no dynamic record sizing). The
// sender sizes its chunks to fill a record (ibb.Options.AlignRecords), so
// the padding is a few bytes per chunk. Other servers read as they read;
// the padding costs them little.

// AlignSize is the record size aligned writes are made of: Prosody's
// read_size.
const AlignSize = 8192

// AlignWrites turns aligned writes on (or, with false, off again) for the
// session's writes; calls nest, and writes are aligned while more calls
// turned them on than off.
func (s *Session) AlignWrites(on bool) {
	if on {
		s.aligned.Add(1)
	} else {
		s.aligned.Add(-1)
	}
}

// alignLocked returns out padded with spaces to a multiple of AlignSize,
// in the session's padding buffer (out itself is not changed). The caller
// holds sendMu.
func (s *Session) alignLocked(out []byte) []byte {
	n := (len(out) + AlignSize - 1) / AlignSize * AlignSize
	b := append(s.padBuf[:0], out...)
	for len(b) < n {
		b = append(b, spaces[:min(len(spaces), n-len(b))]...)
	}
	if cap(b) <= 4*AlignSize {
		s.padBuf = b
	}
	return b
}

var spaces = func() []byte {
	b := make([]byte, 1024)
	for i := range b {
		b[i] = ' '
	}
	return b
}()

// recordSender is a transport that can write b, a multiple of size long,
// as writes of size bytes each, one after the other (TLS records, with
// the login's configuration). Transports without it (the pipes of tests)
// are not aligned.
type recordSender interface {
	sendRecords(b []byte, size int) error
}

// sendAlignedLocked writes out padded to records of AlignSize, where the
// transport can; the caller holds sendMu.
func (s *Session) sendAlignedLocked(out []byte) error {
	rs, ok := s.tr.(recordSender)
	if !ok {
		return s.tr.send(out)
	}
	return rs.sendRecords(s.alignLocked(out), AlignSize)
}
