package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// buildVariants builds the xfer of every -compare REV into dir (which
// run removes at the end) and sets its name and path. The source comes from
// git archive, not a worktree: nothing is added to the repository, so an
// interrupted bench leaves nothing there to clean up.
func buildVariants(ctx context.Context, vs []variant, dir string) error {
	for i := range vs {
		v := &vs[i]
		if v.rev == "" {
			continue
		}
		commit, err := gitOut(ctx, "rev-parse", "--verify", "--quiet", v.rev+"^{commit}")
		if err != nil {
			return fmt.Errorf("-compare %s: not a git revision here: %w", v.rev, err)
		}
		short, err := gitOut(ctx, "rev-parse", "--short", commit)
		if err != nil {
			return err
		}
		v.name = v.rev
		if !strings.HasPrefix(commit, v.rev) {
			v.name += " " + short
		}
		fmt.Fprintf(os.Stderr, "bench: building xfer at %s (%s) for -compare\n", v.rev, short)
		src, err := os.MkdirTemp(dir, "src-"+short+"-")
		if err != nil {
			return err
		}
		archive := exec.CommandContext(ctx, "git", "archive", "--format=tar", commit)
		untar := exec.CommandContext(ctx, "tar", "-x", "-C", src)
		if untar.Stdin, err = archive.StdoutPipe(); err != nil {
			return err
		}
		archive.Stderr, untar.Stderr = os.Stderr, os.Stderr
		if err := untar.Start(); err != nil {
			return err
		}
		aerr := archive.Run()
		if err := untar.Wait(); err != nil || aerr != nil {
			return fmt.Errorf("-compare %s: git archive | tar: %v, %v", v.rev, aerr, err)
		}
		bin := filepath.Join(dir, "xfer-"+short)
		build := exec.CommandContext(ctx, "go", "build", "-ldflags", "-X main.version="+short, "-o", bin, "./cmd/xfer")
		build.Dir, build.Stdout, build.Stderr = src, os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("-compare %s: go build: %w", v.rev, err)
		}
		os.RemoveAll(src)
		v.path = bin
	}
	return nil
}

// gitOut runs git in the current directory and returns its trimmed output.
func gitOut(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "git", args...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
			return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, ee.Stderr)
		}
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}
