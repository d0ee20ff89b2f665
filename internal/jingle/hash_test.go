package jingle

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"testing"
)

func TestUsableDigests(t *testing.T) {
	sum := sha256.Sum256([]byte("hello"))
	raw := base64.StdEncoding.EncodeToString(sum[:])
	libervia := base64.StdEncoding.EncodeToString([]byte(hex.EncodeToString(sum[:])))
	for _, tc := range []struct {
		name   string
		hashes []Hash
		want   []string // algorithms, strongest first
	}{
		{"XEP-0300 encoding", []Hash{{Algo: "sha-256", Value: raw}}, []string{"sha-256"}},
		{"Libervia: base64 of the hex digest", []Hash{{Algo: "sha-256", Value: libervia}}, []string{"sha-256"}},
		{"Conversations: sha-1 and sha-256, strongest first", []Hash{{Algo: "sha-1", Value: base64.StdEncoding.EncodeToString(make([]byte, 20))}, {Algo: "SHA-256", Value: raw}}, []string{"sha-256", "sha-1"}},
		{"wrong length", []Hash{{Algo: "sha-256", Value: base64.StdEncoding.EncodeToString([]byte("short"))}}, nil},
		{"not base64", []Hash{{Algo: "sha-256", Value: "***"}}, nil},
		{"unknown algorithm", []Hash{{Algo: "blake9", Value: raw}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Usable(tc.hashes)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i, d := range got {
				if d.Algo != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
			if len(got) > 0 && got[0].Algo == "sha-256" && !bytes.Equal(got[0].Sum, sum[:]) {
				t.Fatalf("digest %x, want %x", got[0].Sum, sum)
			}
		})
	}
	d := Digest{Algo: "sha-256", Sum: sum[:]}
	if d.Element().Value != raw || d.HexElement().Value != libervia {
		t.Fatal("encodings differ from XEP-0300's and Libervia's")
	}
}
