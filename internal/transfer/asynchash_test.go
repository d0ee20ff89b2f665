package transfer

import (
	"crypto/md5"
	"crypto/rand"
	"testing"
)

func TestAsyncHashMatchesDirect(t *testing.T) {
	data := make([]byte, 1<<20+123)
	rand.Read(data)
	for _, chunk := range []int{1, 1000, 64 << 10, 200000} {
		want := md5.Sum(data)
		h := md5.New()
		a := newAsyncHash(h, 4, 64<<10)
		for p := data; len(p) > 0; {
			k := min(chunk, len(p))
			buf := append([]byte(nil), p[:k]...)
			a.Write(buf)
			clear(buf) // the caller reuses its buffer at once
			p = p[k:]
		}
		a.Close()
		a.Close()
		if got := h.Sum(nil); string(got) != string(want[:]) {
			t.Fatalf("chunk %d: digest differs", chunk)
		}
	}
}
