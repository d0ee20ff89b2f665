package transfer

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"os"
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

// A hash taken ahead is used only while the file is unchanged.
func TestPrehash(t *testing.T) {
	dir := t.TempDir()
	p, sum := writeRandom(t, dir, "p.bin", 100000)
	sd := &Sender{}
	sd.Prehash(context.Background(), []string{p})
	st, _ := os.Stat(p)
	if got, ok := sd.takePrehash(context.Background(), p, st); !ok || got.md5 != sum || len(got.sha256) != 32 {
		t.Fatalf("prehash %q %x, want %q and a sha-256", got.md5, got.sha256, sum)
	}
	if _, ok := sd.takePrehash(context.Background(), p, st); ok {
		t.Fatal("a prehash was used twice")
	}
	sd.Prehash(context.Background(), []string{p})
	<-sd.prehashes[p].done // hashed before the change
	os.WriteFile(p, []byte("changed"), 0o644)
	st, _ = os.Stat(p)
	if _, ok := sd.takePrehash(context.Background(), p, st); ok {
		t.Fatal("the hash of a changed file was used")
	}
}
