// Package wanlink emulates wide-area links between Linux network
// namespaces in user space, for benchmarks on a machine whose kernel has no
// netem qdisc: each namespace gets a TUN device, and this process forwards
// every IP packet from one namespace's TUN to its destination's after a
// one-way delay, dropping it with a loss probability.
//
// The topology is a star: every node (namespace) has one link to a core,
// with its own delay and loss, so a packet from A to B crosses A's link and
// B's link (their one-way delays add, and each may drop it), as on the
// internet. The kernels' TCP stacks in the namespaces are real; only the
// wire is emulated. Packets of one direction (source node to destination
// node) leave in the order they came, each when its delay has passed: one
// timer queue per direction, so a delay never blocks the reader.
//
// Everything is created under a name prefix and removed by Close: the
// namespaces (ip netns add / delete), and with them the TUN devices and
// their addresses, which exist only inside them. Nothing here touches the
// machine's own interfaces. It needs root, /dev/net/tun and the ip command
// (iproute2); Available says whether they are there.
package wanlink

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"xfer/internal/netns"
)

// MTU is the TUN devices' MTU, an Ethernet's.
const MTU = 1500

// queueLen bounds the packets in flight in one direction (tail drop
// beyond): 16384 full-size packets, 24 MB, are 1.2 s at 20 MB/s.
const queueLen = 16384

// tunName is every node's TUN device, inside its own namespace.
const tunName = "wan0"

// ErrUnavailable says the machine cannot run the emulator (not root, no
// /dev/net/tun, no ip command, no network namespaces).
var ErrUnavailable = errors.New("wanlink: needs root, /dev/net/tun, iproute2's ip and network namespaces")

// Link is one node's link to the core.
type Link struct {
	// Delay is the one-way delay; the node's round trip to a node with a
	// zero-delay link (the server, say) is twice as long.
	Delay time.Duration
	// Loss is the probability that a packet crossing the link, in either
	// direction, is dropped (0.005 for 0.5 %).
	Loss float64
	// Rate limits the bytes per second leaving the link's queue in each
	// direction (0: no limit).
	Rate int64
}

// Available reports why the emulator cannot run here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: not root", ErrUnavailable)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	f.Close()
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// Node is one namespace on the emulated network.
type Node struct {
	Name string     // as given to New, e.g. "S"
	NS   string     // the namespace's name (ip netns), prefix + "-" + Name
	IP   netip.Addr // its address, on its TUN device

	n    *Net
	tun  *os.File
	link atomic.Pointer[Link]
}

// Net is a running emulated network.
type Net struct {
	Nodes []*Node

	byIP    map[netip.Addr]*Node
	mu      sync.Mutex
	queues  map[[2]*Node]chan packet
	done    chan struct{}
	wg      sync.WaitGroup
	closed  bool
	created []string // namespaces to delete

	Forwarded, Dropped, QueueDrops atomic.Uint64
}

type packet struct {
	b   []byte
	due time.Time
}

// New creates one namespace per name, named prefix-NAME, each with a TUN
// device wan0 (MTU 1500) holding 10.S.T.(i+1)/24 for subnet "10.S.T" and
// the i-th name, and its loopback up, and starts forwarding between them.
// Links start with no delay and no loss. Close removes it all.
func New(prefix, subnet string, names ...string) (_ *Net, err error) {
	if err := Available(); err != nil {
		return nil, err
	}
	n := &Net{byIP: map[netip.Addr]*Node{}, queues: map[[2]*Node]chan packet{}, done: make(chan struct{})}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	for i, name := range names {
		ip, err := netip.ParseAddr(subnet + "." + strconv.Itoa(i+1))
		if err != nil || !ip.Is4() || !ip.IsPrivate() {
			return nil, fmt.Errorf("wanlink: subnet %q: want three octets of a private IPv4 /24, e.g. 10.77.0", subnet)
		}
		nd := &Node{Name: name, NS: prefix + "-" + name, IP: ip, n: n}
		nd.link.Store(&Link{})
		if out, err := exec.Command("ip", "netns", "add", nd.NS).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("wanlink: ip netns add %s: %v: %s", nd.NS, err, out)
		}
		n.created = append(n.created, nd.NS)
		if nd.tun, err = openTUN(nd.NS); err != nil {
			return nil, err
		}
		for _, args := range [][]string{
			{"link", "set", "dev", "lo", "up"},
			{"link", "set", "dev", tunName, "mtu", strconv.Itoa(MTU), "txqueuelen", "1000", "up"},
			{"addr", "add", ip.String() + "/24", "dev", tunName},
		} {
			if out, err := exec.Command("ip", append([]string{"-n", nd.NS}, args...)...).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("wanlink: ip -n %s %s: %v: %s", nd.NS, strings.Join(args, " "), err, out)
			}
		}
		n.Nodes = append(n.Nodes, nd)
		n.byIP[ip] = nd
	}
	for _, nd := range n.Nodes {
		n.wg.Add(1)
		go n.read(nd)
	}
	return n, nil
}

// Node returns the node of that name, or nil.
func (n *Net) Node(name string) *Node {
	for _, nd := range n.Nodes {
		if nd.Name == name {
			return nd
		}
	}
	return nil
}

// SetLink changes a node's link; packets already queued keep their times.
func (nd *Node) SetLink(l Link) { nd.link.Store(&l) }

// Link returns the node's link.
func (nd *Node) Link() Link { return *nd.link.Load() }

// Command runs name in the node's namespace (ip netns exec, which execs
// it: the process's PID is the command's own).
func (nd *Node) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", nd.NS, name}, args...)...)
}

// Do runs f in the node's namespace: sockets f opens belong to it (and
// stay there, on any thread, once opened). f must not start goroutines
// that open sockets.
func (nd *Node) Do(f func() error) error { return netns.Do(nd.NS, f) }

// openTUN creates the TUN device wan0 in namespace ns: a TUN device
// belongs to the namespace of the thread that opened /dev/net/tun.
func openTUN(ns string) (*os.File, error) {
	var tun *os.File
	err := netns.Do(ns, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq(tunName)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF: %w", err)
		}
		// Non-blocking, so that the runtime's poller waits for packets
		// and Close wakes a reader.
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fd)
			return err
		}
		tun = os.NewFile(uintptr(fd), "/dev/net/tun:"+ns)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("wanlink: TUN in %s: %w", ns, err)
	}
	return tun, nil
}

// read forwards the packets that leave src's TUN device.
func (n *Net) read(src *Node) {
	defer n.wg.Done()
	buf := make([]byte, 65536)
	for {
		k, err := src.tun.Read(buf)
		if err != nil {
			return // closed
		}
		p := buf[:k]
		if k < 20 || p[0]>>4 != 4 {
			continue // IPv4 only (router solicitations and the like)
		}
		dst := n.byIP[netip.AddrFrom4([4]byte(p[16:20]))]
		if dst == nil || dst == src {
			continue
		}
		sl, dl := src.link.Load(), dst.link.Load()
		if lost(sl.Loss) || lost(dl.Loss) {
			n.Dropped.Add(1)
			continue
		}
		q := n.queue(src, dst)
		if q == nil {
			return
		}
		select {
		case q <- packet{b: append([]byte(nil), p...), due: time.Now().Add(sl.Delay + dl.Delay)}:
		default:
			n.QueueDrops.Add(1)
		}
	}
}

func lost(p float64) bool { return p > 0 && rand.Float64() < p }

// queue returns the timer queue from src to dst, starting it at first use.
func (n *Net) queue(src, dst *Node) chan packet {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	k := [2]*Node{src, dst}
	q := n.queues[k]
	if q == nil {
		q = make(chan packet, queueLen)
		n.queues[k] = q
		n.wg.Add(1)
		go n.deliver(src, dst, q)
	}
	return q
}

// deliver writes one direction's packets to dst's TUN device in order,
// each at its due time, or later under a rate limit.
func (n *Net) deliver(src, dst *Node, q chan packet) {
	defer n.wg.Done()
	t := time.NewTimer(time.Hour)
	t.Stop()
	var free time.Time // rate limit: when the link is next free
	for {
		var p packet
		select {
		case p = <-q:
		case <-n.done:
			return
		}
		due := p.due
		if rate := minRate(src.link.Load().Rate, dst.link.Load().Rate); rate > 0 {
			if now := time.Now(); free.Before(now) {
				free = now
			}
			free = free.Add(time.Duration(float64(len(p.b)) / float64(rate) * float64(time.Second)))
			if free.After(due) {
				due = free
			}
		}
		if d := time.Until(due); d > 0 {
			t.Reset(d)
			select {
			case <-t.C:
			case <-n.done:
				return
			}
		}
		if _, err := dst.tun.Write(p.b); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			// The kernel refused the packet (the device is down, say):
			// the wire lost it.
			n.Dropped.Add(1)
			continue
		}
		n.Forwarded.Add(1)
	}
}

func minRate(a, b int64) int64 {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	}
	return min(a, b)
}

// Close stops forwarding, closes the TUN devices and deletes the
// namespaces (the kernel removes a namespace once its last process has
// left it). Safe to call twice.
func (n *Net) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	close(n.done)
	n.mu.Unlock()
	for _, nd := range n.Nodes {
		if nd.tun != nil {
			nd.tun.Close()
		}
	}
	n.wg.Wait()
	var errs []error
	for _, ns := range n.created {
		if out, err := exec.Command("ip", "netns", "delete", ns).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("wanlink: ip netns delete %s: %v: %s", ns, err, out))
		}
	}
	return errors.Join(errs...)
}

// RemoveStale deletes the namespaces that an earlier run left behind (it
// was killed before its Close ran): those named prefix + PID + "-…" whose
// PID no longer runs. prefix is the part before the creator's PID.
func RemoveStale(prefix string) {
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			exec.Command("ip", "netns", "delete", e.Name()).Run()
		}
	}
}
