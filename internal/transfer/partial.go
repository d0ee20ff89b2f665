package transfer

import (
	"context"
	"crypto/md5"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"xfer/internal/jingle"
)

// A partial download is DIR/.NAME.part with the sidecar DIR/.NAME.part.json
// describing the offer it belongs to, so that the same offer made again
// resumes with an XEP-0096 <range offset=…/> instead of starting over.
// Received names never start with a dot (SafeName), so these never clash
// with a received file.

// Partial describes a partial download.
type Partial struct {
	Name     string    `json:"name"`           // the safe name it will get
	Size     int64     `json:"size"`           // declared size
	Algo     string    `json:"algo,omitempty"` // Hash's algorithm; "" is md5 (SI)
	Hash     string    `json:"md5,omitempty"`  // declared digest in hex, if any (the key predates Algo)
	From     string    `json:"from"`           // sender's bare JID
	Date     time.Time `json:"date,omitzero"`  // declared modification date
	Have     int64     `json:"have"`           // bytes on disk (not stored)
	Path     string    `json:"path"`           // the .part file (not stored)
	Modified time.Time `json:"modified"`       // last write (not stored)
}

func sidecarName(part string) string { return part + ".json" }

// matches tells whether an offer is the same file as the partial one.
// Without a hash on either side, name, size and sender must do.
func (p *Partial) matches(want *Partial) bool {
	return p.Name == want.Name && p.Size == want.Size && algoName(p.Algo) == algoName(want.Algo) &&
		strings.EqualFold(p.Hash, want.Hash) && strings.EqualFold(p.From, want.From)
}

// algoName is an XEP-0300 algorithm name; "" (sidecars written before
// Jingle) is md5, SI's.
func algoName(a string) string {
	if a == "" {
		return "md5"
	}
	return strings.ToLower(a)
}

// newHash returns the hash of an algorithm name, md5 for "".
func newHash(algo string) hash.Hash {
	if h := jingle.NewHash(algoName(algo)); h != nil {
		return h
	}
	return md5.New()
}

// readPartial loads the sidecar of part and the part's size.
func readPartial(part string) (*Partial, error) {
	b, err := os.ReadFile(sidecarName(part))
	if err != nil {
		return nil, err
	}
	var p Partial
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("transfer: %s: %w", sidecarName(part), err)
	}
	fi, err := os.Lstat(part)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("transfer: %s is not a regular file", part)
	}
	p.Have, p.Path, p.Modified = fi.Size(), part, fi.ModTime()
	return &p, nil
}

func writeSidecar(part string, p *Partial) error {
	b, err := json.Marshal(struct {
		Name string    `json:"name"`
		Size int64     `json:"size"`
		Algo string    `json:"algo,omitempty"`
		Hash string    `json:"md5,omitempty"`
		From string    `json:"from"`
		Date time.Time `json:"date,omitzero"`
	}{p.Name, p.Size, p.Algo, p.Hash, p.From, p.Date})
	if err != nil {
		return err
	}
	f, err := os.OpenFile(sidecarName(part), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|noFollow, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func removePartial(part string) {
	os.Remove(part)
	os.Remove(sidecarName(part))
}

// ListPartial lists the partial downloads in dir.
func ListPartial(dir string) ([]Partial, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFile, err)
	}
	var out []Partial
	for _, e := range entries {
		n := e.Name()
		if !strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".part") {
			continue
		}
		part := filepath.Join(dir, n)
		p, err := readPartial(part)
		if err != nil {
			// A part without a readable sidecar still takes space: list
			// what can be known.
			fi, serr := os.Lstat(part)
			if serr != nil || !fi.Mode().IsRegular() {
				continue
			}
			p = &Partial{Name: strings.TrimSuffix(strings.TrimPrefix(n, "."), ".part"), Have: fi.Size(), Path: part, Modified: fi.ModTime()}
		}
		out = append(out, *p)
	}
	return out, nil
}

// RemovePartial deletes a partial download listed by ListPartial.
func RemovePartial(p Partial) error {
	if err := os.Remove(p.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	os.Remove(sidecarName(p.Path))
	return nil
}

// openPart opens the part file for an offer: resuming it when it holds a
// prefix of the same file and the sender can send a range, else starting
// over. It returns the file positioned for writing, the offset to ask for,
// and the hash state of the bytes already there.
func openPart(ctx context.Context, part string, want *Partial, canRange bool) (*os.File, int64, hash.Hash, error) {
	h := newHash(want.Algo)
	if canRange {
		// A part that holds every byte lost only the stream's end: it asks
		// for the last byte again, since a range of nothing is not
		// something every sender can send.
		if p, err := readPartial(part); err == nil && p.matches(want) && p.Have > 0 && p.Have <= p.Size && p.Size > 1 {
			p.Have = min(p.Have, p.Size-1)
			// O_NOFOLLOW: a symlink planted at the part name is never
			// written through.
			f, err := os.OpenFile(part, os.O_RDWR|noFollow, 0o600)
			if err == nil {
				// The final check covers the whole file: hash what is
				// already there.
				n, err := io.Copy(h, io.LimitReader(&ctxReader{ctx, f}, p.Have))
				if err == nil && n == p.Have {
					return f, n, h, nil
				}
				f.Close()
				h.Reset()
			}
		}
	}
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|noFollow, 0o600)
	if err != nil {
		return nil, 0, nil, err
	}
	if err := writeSidecar(part, want); err != nil {
		f.Close()
		return nil, 0, nil, err
	}
	return f, 0, h, nil
}
