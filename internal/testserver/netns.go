package testserver

import (
	"net"
	"time"

	"xfer/internal/netns"
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
	err := netns.Do(ns, func() (err error) {
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	return c, err
}
