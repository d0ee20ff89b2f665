package transfer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameBytes bounds a received file's name: most file systems allow 255
// bytes, and the ".NAME.part" form needs room.
const MaxNameBytes = 200

// ErrBadName is returned for a name that leaves nothing usable.
var ErrBadName = errors.New("transfer: unusable file name")

// SafeName turns a name chosen by the peer into a plain file name for the
// download directory: the last path element only (either slash), no NUL,
// control, format or terminal-escape characters, no leading dots (no hidden
// files, no "..", no clash with our ".NAME.part" files), at most
// MaxNameBytes of valid UTF-8, keeping the extension when shortening.
func SafeName(name string) (string, error) {
	name = strings.ToValidUTF8(name, "_")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case r == 0 || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError:
			b.WriteRune('_')
		case r == ':' || r == '*' || r == '?' || r == '"' || r == '<' || r == '>' || r == '|':
			// Harmless here, but a trap when the directory is shared with Windows.
			b.WriteRune('_')
		default:
			b.WriteRune(r)
		}
	}
	name = strings.TrimSpace(strings.TrimLeft(b.String(), ". "))
	name = strings.TrimRight(name, ". ")
	if name == "" {
		return "", fmt.Errorf("%w: nothing is left of it", ErrBadName)
	}
	if len(name) > MaxNameBytes {
		ext := filepath.Ext(name)
		if len(ext) > 16 || !utf8.ValidString(ext) {
			ext = ""
		}
		stem := name[:MaxNameBytes-len(ext)]
		for !utf8.ValidString(stem) {
			stem = stem[:len(stem)-1]
		}
		name = stem + ext
	}
	return name, nil
}

// partName is where a file is written while it arrives.
func partName(dir, name string) string { return filepath.Join(dir, "."+name+".part") }

// numbered returns "NAME (n).ext".
func numbered(name string, n int) string {
	ext := filepath.Ext(name)
	if ext == name {
		ext = ""
	}
	return fmt.Sprintf("%s (%d)%s", strings.TrimSuffix(name, ext), n, ext)
}

// place moves a verified part file to its final name in dir without ever
// replacing an existing file (unless overwrite): a hard link fails when the
// name is taken, so the check and the move are one step. It returns the
// final path.
func place(part, dir, name string, overwrite bool) (string, error) {
	if overwrite {
		final := filepath.Join(dir, name)
		if fi, err := os.Lstat(final); err == nil && !fi.Mode().IsRegular() {
			return "", fmt.Errorf("transfer: %s exists and is not a regular file; not replacing it", final)
		}
		return final, os.Rename(part, final)
	}
	for n := 0; n < 1000; n++ {
		candidate := name
		if n > 0 {
			candidate = numbered(name, n)
		}
		final := filepath.Join(dir, candidate)
		err := os.Link(part, final)
		if err == nil {
			return final, os.Remove(part)
		}
		if !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("transfer: placing %s: %w", final, err)
		}
	}
	return "", fmt.Errorf("transfer: no free name for %s in %s", name, dir)
}
