package transfer

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// TestOpenPart: which offset a part resumes from, and that the returned
// hash state covers exactly the bytes before it.
func TestOpenPart(t *testing.T) {
	content := []byte("0123456789")
	sum := md5.Sum(content)
	offer := Partial{Name: "f.bin", Size: int64(len(content)), Hash: hex.EncodeToString(sum[:]), From: "alice@localhost"}
	tests := []struct {
		name     string
		have     int     // bytes in the part
		sidecar  Partial // what the part belongs to
		canRange bool
		size     int64 // the offer's size, when not len(content)
		want     int64
	}{
		{"a prefix resumes", 4, offer, true, 0, 4},
		{"every byte but the end: the last byte again", 10, offer, true, 0, 9},
		{"the sender has no ranges", 4, offer, false, 0, 0},
		{"another file", 4, Partial{Name: "f.bin", Size: 10, Hash: "00", From: "alice@localhost"}, true, 0, 0},
		{"another sender", 4, Partial{Name: "f.bin", Size: 10, Hash: offer.Hash, From: "eve@localhost"}, true, 0, 0},
		{"longer than the offer", 10, Partial{Name: "f.bin", Size: 5, From: "alice@localhost"}, true, 5, 0},
		{"empty part", 0, offer, true, 0, 0},
		{"one-byte file", 1, Partial{Name: "f.bin", Size: 1, From: "alice@localhost"}, true, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			part := filepath.Join(t.TempDir(), ".f.bin.part")
			if err := os.WriteFile(part, content[:tt.have], 0o600); err != nil {
				t.Fatal(err)
			}
			if err := writeSidecar(part, &tt.sidecar); err != nil {
				t.Fatal(err)
			}
			want := offer
			if tt.size != 0 {
				want = Partial{Name: "f.bin", Size: tt.size, From: "alice@localhost"}
			}
			f, offset, h, err := openPart(context.Background(), part, &want, tt.canRange)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if offset != tt.want {
				t.Fatalf("offset %d, want %d", offset, tt.want)
			}
			// What follows the offset completes the file and its hash.
			rest := content[offset:want.Size]
			if _, err := f.Write(rest); err != nil {
				t.Fatal(err)
			}
			h.Write(rest)
			got, err := os.ReadFile(part)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(content[:want.Size]) {
				t.Errorf("part holds %q, want %q", got, content[:want.Size])
			}
			if wantSum := md5.Sum(content[:want.Size]); hex.EncodeToString(h.Sum(nil)) != hex.EncodeToString(wantSum[:]) {
				t.Error("the hash state does not cover the bytes before the offset")
			}
			if offset == 0 {
				p, err := readPartial(part)
				if err != nil || !p.matches(&want) {
					t.Errorf("starting over did not describe the new offer: %+v, %v", p, err)
				}
			}
		})
	}
}
