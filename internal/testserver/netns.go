package testserver

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// dialIn connects to addr from the network namespace ns (Options.Netns),
// or from this process's own when ns is "". The connection is made on a
// locked OS thread that joins ns and then returns to this process's
// namespace; the socket stays in ns. The thread must survive: Prosody's
// Pdeathsig fires when the thread that started it exits, and that may be
// this one.
func dialIn(ns, addr string, timeout time.Duration) (net.Conn, error) {
	if ns == "" {
		return net.DialTimeout("tcp", addr, timeout)
	}
	var c net.Conn
	err := inNetns(ns, func() (err error) {
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	return c, err
}

// inNetns runs f on this goroutine's OS thread moved into the namespace
// ns, and moves the thread back. If it cannot go back, the thread stays
// locked and exits with the goroutine.
func inNetns(ns string, f func() error) error {
	runtime.LockOSThread()
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("testserver: own namespace: %w", err)
	}
	defer unix.Close(self)
	fd, err := unix.Open(filepath.Join("/run/netns", ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("testserver: namespace %s: %w", ns, err)
	}
	err = unix.Setns(fd, unix.CLONE_NEWNET)
	unix.Close(fd)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("testserver: setns %s: %w", ns, err)
	}
	ferr := f()
	if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
		// Stays locked: the thread is in ns, and ends with the goroutine.
		return errors.Join(ferr, fmt.Errorf("testserver: back from %s: %w", ns, err))
	}
	runtime.UnlockOSThread()
	return ferr
}
