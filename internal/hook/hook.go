// Package hook runs the user's command for each received file (xfer
// receive --exec), the way mail tools run a delivery command: the command
// line is the user's own and runs under sh -c, and everything about the
// file reaches it through environment variables only, so a hostile file
// name is never part of a shell string.
package hook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// File is what the command is told about a received file.
type File struct {
	Path string // where it was stored
	Name string // the name it was offered under
	From string // the sender's JID
	Size int64
	MD5  string
	Via  string // the bytestream that carried it
}

// Env returns the variables the command receives.
func (f File) Env() []string {
	return []string{
		"XFER_PATH=" + f.Path,
		"XFER_NAME=" + f.Name,
		"XFER_FROM=" + f.From,
		"XFER_SIZE=" + strconv.FormatInt(f.Size, 10),
		"XFER_MD5=" + f.MD5,
		"XFER_METHOD=" + f.Via,
	}
}

// Run runs command for f with a time limit, its output going to out, and
// returns its exit status (or -1 and an error when it could not run or
// was stopped).
func Run(ctx context.Context, command string, f File, timeout time.Duration, out io.Writer) (int, error) {
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Env = append(os.Environ(), f.Env()...)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case ctx.Err() != nil:
		return -1, fmt.Errorf("hook: %q stopped: %w", command, ctx.Err())
	case errors.As(err, &ee) && ee.Exited():
		return ee.ExitCode(), nil
	default:
		return -1, fmt.Errorf("hook: %q: %w", command, err)
	}
}
