package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"time"
)

// PasswordCmdTimeout is how long a password command may take: long enough
// to type a GPG passphrase into pinentry, short enough that a script does
// not hang on a command that waits for nothing.
const PasswordCmdTimeout = 30 * time.Second

// ErrPassword marks a password source that gave no password.
var ErrPassword = errors.New("no password")

// maxPasswordOutput bounds what is kept of a password command's stdout.
const maxPasswordOutput = 64 << 10

// RunPasswordCmd runs the user's command line with "sh -c", as msmtp's
// passwordeval and isync's PassCmd do, and returns the first line of its
// standard output. Its stdin is /dev/null (it must not eat the input of
// xfer), its stderr is stderr (so that gpg or pass can say what is wrong),
// and it is killed after timeout. The password is never part of an error.
func RunPasswordCmd(ctx context.Context, line string, stderr io.Writer, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out capped
	c := exec.CommandContext(ctx, "sh", "-c", line)
	c.Stdin = nil // /dev/null
	c.Stdout = &out
	c.Stderr = stderr
	// A child of sh that keeps stdout open must not keep us waiting.
	c.WaitDelay = time.Second
	err := c.Run()
	if errors.Is(err, exec.ErrWaitDelay) {
		err = nil // sh succeeded; something it started still holds stdout
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return "", fmt.Errorf("%w: password command %q did not finish within %v", ErrPassword, line, timeout)
	case ctx.Err() != nil:
		return "", ctx.Err()
	case err != nil:
		return "", fmt.Errorf("%w: password command %q failed: %v", ErrPassword, line, err)
	}
	pw := firstLine(out.Bytes())
	if pw == "" {
		return "", fmt.Errorf("%w: password command %q printed nothing on its first line", ErrPassword, line)
	}
	return pw, nil
}

// ReadPasswordFile returns the first line of the file at path, and the
// file's permission bits so that the caller can warn about them.
func ReadPasswordFile(path string) (string, fs.FileMode, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("%w: password file: %w", ErrPassword, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", 0, fmt.Errorf("%w: password file: %w", ErrPassword, err)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPasswordOutput))
	if err != nil {
		return "", 0, fmt.Errorf("%w: password file: %w", ErrPassword, err)
	}
	return firstLine(b), st.Mode().Perm(), nil
}

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSuffix(line, "\r")
}

// capped is a buffer that keeps the first maxPasswordOutput bytes written
// and discards the rest without failing the writer.
type capped struct{ bytes.Buffer }

func (c *capped) Write(p []byte) (int, error) {
	if room := maxPasswordOutput - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
