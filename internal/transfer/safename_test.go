package transfer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHostileNames(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"photo.jpg", "photo.jpg"},
		{"../x", "x"},
		{"/etc/passwd", "passwd"},
		{`..\..\windows\system32`, "system32"},
		{"a\x1b[2Jb", "a_[2Jb"},
		{"nul\x00byte", "nul_byte"},
		{".bashrc", "bashrc"},
		{"...", ""},
		{"..", ""},
		{"", ""},
		{"dir/", ""},
		{"\u202eexe.txt", "_exe.txt"}, // right-to-left override
		{"bad\xffutf8", "bad_utf8"},
		{"x.part", "x.part"},
		{"  spaced  ", "spaced"},
	} {
		got, err := SafeName(tc.in)
		if tc.want == "" {
			if !errors.Is(err, ErrBadName) {
				t.Errorf("SafeName(%q) = %q, %v; want ErrBadName", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("SafeName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	long, err := SafeName(strings.Repeat("é", 5000) + ".tar.gz")
	if err != nil || len(long) > MaxNameBytes || !strings.HasSuffix(long, ".gz") {
		t.Fatalf("long name: %q (%d bytes), %v", long, len(long), err)
	}
}

func FuzzSafeName(f *testing.F) {
	for _, s := range []string{"../x", "/etc/passwd", "a\x1b[2Jb", strings.Repeat("a", 10000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := SafeName(in)
		if err != nil {
			return
		}
		if got != filepath.Base(got) || strings.ContainsAny(got, "/\\\x00") || strings.HasPrefix(got, ".") || len(got) > MaxNameBytes {
			t.Fatalf("SafeName(%q) = %q", in, got)
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("control character in %q", got)
			}
		}
	})
}

func TestPlaceNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("a.txt", "old")
	final, err := place(write(".a.txt.part", "new"), dir, "a.txt", false)
	if err != nil || filepath.Base(final) != "a (1).txt" {
		t.Fatalf("final %q, %v", final, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a.txt")); string(b) != "old" {
		t.Fatal("existing file changed")
	}
	final, err = place(write(".a.txt.part", "newer"), dir, "a.txt", true)
	if err != nil || filepath.Base(final) != "a.txt" {
		t.Fatalf("overwrite: %q, %v", final, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a.txt")); string(b) != "newer" {
		t.Fatal("overwrite did not replace")
	}
	// A symlink under the final name is never written through.
	os.Symlink("/etc/hostname", filepath.Join(dir, "link"))
	final, err = place(write(".link.part", "x"), dir, "link", false)
	if err != nil || filepath.Base(final) != "link (1)" {
		t.Fatalf("symlink: %q, %v", final, err)
	}
	if _, err := place(write(".link.part", "x"), dir, "link", true); err == nil {
		t.Fatal("overwrite replaced a symlink")
	}
}
