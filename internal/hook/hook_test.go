package hook

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Hostile names reach the command as data, never as shell code.
func TestHostileNamesAreOnlyData(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"$(touch pwned)", "; rm -rf x", "`touch pwned`", "a\nb; touch pwned", "'\"$XFER_PATH"} {
		var out bytes.Buffer
		f := File{Path: filepath.Join(dir, name), Name: name, From: "eve@example.org/x", Size: 3, MD5: "abc"}
		code, err := Run(context.Background(), `printf '%s|%s' "$XFER_NAME" "$XFER_SIZE"`, f, 5*time.Second, &out)
		if err != nil || code != 0 {
			t.Fatalf("%q: code %d, err %v", name, code, err)
		}
		if out.String() != name+"|3" {
			t.Fatalf("%q: command saw %q", name, out.String())
		}
	}
	entries, _ := os.ReadDir(".")
	for _, e := range entries {
		if strings.Contains(e.Name(), "pwned") {
			t.Fatal("a file name was run as a command")
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Fatal("a file name was run as a command")
	}
}

func TestExitStatusAndTimeout(t *testing.T) {
	var out bytes.Buffer
	if code, err := Run(context.Background(), "exit 3", File{}, time.Second, &out); code != 3 || err != nil {
		t.Fatalf("code %d, err %v", code, err)
	}
	start := time.Now()
	if code, err := Run(context.Background(), "sleep 10", File{}, 200*time.Millisecond, &out); code != -1 || err == nil {
		t.Fatalf("code %d, err %v", code, err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("timeout not applied")
	}
}
