package jingle

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"strings"
)

// Hash algorithms of XEP-0300, strongest first: what a receiver verifies
// when a peer sends several.
var hashAlgos = []struct {
	name string
	new  func() hash.Hash
}{
	{"sha-512", sha512.New},
	{"sha-256", sha256.New},
	{"sha-1", sha1.New},
	{"md5", md5.New},
}

// NewHash returns a hash for an XEP-0300 algorithm name, or nil.
func NewHash(algo string) hash.Hash {
	for _, a := range hashAlgos {
		if strings.EqualFold(a.name, algo) {
			return a.new()
		}
	}
	return nil
}

// Digest is a hash value: an XEP-0300 algorithm and the raw digest.
type Digest struct {
	Algo string
	Sum  []byte
}

// Best picks the strongest digest xfer can verify from hashes, decoding
// each as XEP-0300 says (base64 of the raw digest) or, for Libervia 0.9, as
// base64 of the hex digest. ok is false when none is usable.
func Best(hashes []Hash) (Digest, bool) {
	if u := Usable(hashes); len(u) > 0 {
		return u[0], true
	}
	return Digest{}, false
}

// Usable decodes the digests xfer can verify, strongest first.
func Usable(hashes []Hash) []Digest {
	var out []Digest
	for _, a := range hashAlgos {
		for _, h := range hashes {
			if !strings.EqualFold(h.Algo, a.name) {
				continue
			}
			if sum, ok := decodeDigest(h.Value, a.new().Size()); ok {
				out = append(out, Digest{Algo: a.name, Sum: sum})
				break
			}
		}
	}
	return out
}

func decodeDigest(value string, size int) ([]byte, bool) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(value))
	if err != nil {
		return nil, false
	}
	if len(raw) == size {
		return raw, true
	}
	// Libervia 0.9 sends base64 of the lower-case hex digest.
	if len(raw) == 2*size {
		if sum, err := hex.DecodeString(string(bytes.ToLower(raw))); err == nil {
			return sum, true
		}
	}
	return nil, false
}

// Element renders the digest as an XEP-0300 <hash/>.
func (d Digest) Element() Hash {
	return Hash{Algo: d.Algo, Value: base64.StdEncoding.EncodeToString(d.Sum)}
}

// HexElement renders the digest as base64 of its hex form: what Libervia
// 0.9 expects and verifies (it rejects the XEP-0300 encoding).
func (d Digest) HexElement() Hash {
	return Hash{Algo: d.Algo, Value: base64.StdEncoding.EncodeToString([]byte(hex.EncodeToString(d.Sum)))}
}

// Hex is the digest in lower-case hex, for humans and logs.
func (d Digest) Hex() string { return hex.EncodeToString(d.Sum) }
