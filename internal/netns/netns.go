// Package netns runs code inside a Linux network namespace made with "ip
// netns add" (a name under /run/netns), for the emulated-link bench
// (tools/bench -wan) and the test server it starts in one
// (testserver.Options.Netns). Sockets opened by the code stay in the
// namespace after it returns.
package netns

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs f on this goroutine's OS thread moved into the network namespace
// ns, and moves the thread back. The thread must survive: a child started
// with Pdeathsig (testserver's Prosody) is killed when the thread that
// started it exits. If it cannot go back, the thread stays locked and
// exits with the goroutine.
func Do(ns string, f func() error) error {
	runtime.LockOSThread()
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: own namespace: %w", err)
	}
	defer unix.Close(self)
	fd, err := unix.Open(filepath.Join("/run/netns", ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: namespace %s: %w", ns, err)
	}
	err = unix.Setns(fd, unix.CLONE_NEWNET)
	unix.Close(fd)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: setns %s: %w", ns, err)
	}
	ferr := f()
	if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
		// Stays locked: the thread is in ns, and ends with the goroutine.
		return errors.Join(ferr, fmt.Errorf("netns: back from %s: %w", ns, err))
	}
	runtime.UnlockOSThread()
	return ferr
}
