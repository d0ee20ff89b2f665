// Package probe checks the SOCKS5 bytestream proxies (XEP-0065) an account
// can use: it finds them by service discovery (XEP-0030), asks each for its
// streamhosts, connects to every streamhost from this machine, and pushes a
// payload through the proxy with this account as both requester and target,
// verifying every byte. It also spots the classic misconfiguration of a
// proxy that advertises a loopback or private address to remote users.
package probe

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"time"

	"xfer/internal/disco"
	"xfer/internal/fault"
	"xfer/internal/s5b"
	"xfer/internal/session"
)

// ErrNoWorkingProxy is returned when no proxy passed the self-test.
var ErrNoWorkingProxy = fault.New(fault.NoProxy, "probe: no proxy passed the self-test")

// Session is what the probe needs from an XMPP session.
type Session interface {
	SendIQ(context.Context, *session.IQ) (*session.IQ, error)
	JID() string
}

// Options configure a probe.
type Options struct {
	Proxies     []string      // proxy JIDs to test; empty means discover them
	Payload     int64         // bytes pushed through each proxy
	HostTimeout time.Duration // per streamhost connect and handshake
	// ServerHost is the host the XMPP session reached; it decides whether
	// a private proxy address deserves a warning.
	ServerHost string
}

// Report is the probe's outcome, shaped for both the table and --json.
type Report struct {
	Account    string        `json:"account"`
	ServerHost string        `json:"server_host"`
	Discovered bool          `json:"discovered"`
	Proxies    []ProxyReport `json:"proxies"`
	Warnings   []string      `json:"warnings,omitempty"`
	OK         bool          `json:"ok"`
}

// ProxyReport is one proxy's result.
type ProxyReport struct {
	JID         string             `json:"jid"`
	Error       string             `json:"error,omitempty"`
	Streamhosts []StreamhostReport `json:"streamhosts"`
	OK          bool               `json:"ok"`
}

// StreamhostReport is one advertised streamhost's result.
type StreamhostReport struct {
	JID         string   `json:"jid"`
	Host        string   `json:"host"`
	Port        int      `json:"port"`
	ConnectMS   float64  `json:"connect_ms,omitempty"`
	HandshakeMS float64  `json:"handshake_ms,omitempty"`
	Bytes       int64    `json:"bytes,omitempty"`
	MBPerSec    float64  `json:"mb_per_s,omitempty"`
	Verified    bool     `json:"verified"`
	Error       string   `json:"error,omitempty"`
	Warnings    []string `json:"warnings,omitempty"`
}

// Run probes the proxies. It returns the report, and ErrNoWorkingProxy
// (wrapped) when no proxy passed.
func Run(ctx context.Context, s Session, opts Options) (*Report, error) {
	if opts.HostTimeout <= 0 {
		opts.HostTimeout = 5 * time.Second
	}
	rep := &Report{Account: s.JID(), ServerHost: opts.ServerHost, Proxies: []ProxyReport{}}
	proxies := opts.Proxies
	if len(proxies) == 0 {
		rep.Discovered = true
		found, err := disco.FindProxies(ctx, s, session.Domain(s.JID()))
		if err != nil {
			return rep, fmt.Errorf("probe: discovering proxies: %w", err)
		}
		proxies = found
		if len(proxies) == 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("the server %s advertises no SOCKS5 proxy (XEP-0065): transfers between two NATed peers will fall back to in-band bytestreams; ask the admin to enable one (Prosody: the proxy65 component; ejabberd: mod_proxy65; Openfire: the file transfer proxy)", session.Domain(s.JID())))
		}
	}
	serverPublic := isPublicHost(ctx, opts.ServerHost)
	for _, p := range proxies {
		pr := probeProxy(ctx, s, p, opts, serverPublic)
		rep.Proxies = append(rep.Proxies, pr)
		rep.OK = rep.OK || pr.OK
		for _, sh := range pr.Streamhosts {
			rep.Warnings = append(rep.Warnings, sh.Warnings...)
		}
	}
	if !rep.OK {
		return rep, ErrNoWorkingProxy
	}
	return rep, nil
}

func probeProxy(ctx context.Context, s Session, proxy string, opts Options, serverPublic bool) ProxyReport {
	pr := ProxyReport{JID: proxy, Streamhosts: []StreamhostReport{}}
	hosts, err := s5b.QueryProxy(ctx, s, proxy)
	if err != nil {
		pr.Error = err.Error()
		return pr
	}
	if len(hosts) == 0 {
		pr.Error = "the proxy advertises no streamhost"
		return pr
	}
	for _, h := range hosts {
		sr := StreamhostReport{JID: h.JID, Host: h.Host, Port: h.Port}
		if w := addressWarning(ctx, proxy, h.Host, serverPublic); w != "" {
			sr.Warnings = append(sr.Warnings, w)
		}
		if err := selfTest(ctx, s, proxy, h, opts, &sr); err != nil {
			sr.Error = err.Error()
		} else {
			pr.OK = true
		}
		pr.Streamhosts = append(pr.Streamhosts, sr)
	}
	return pr
}

// selfTest opens both ends of a bytestream through the proxy, the account
// being requester and target at once, activates it and pushes the payload
// from one end to the other.
func selfTest(ctx context.Context, s Session, proxy string, h s5b.Streamhost, opts Options, sr *StreamhostReport) error {
	sid := session.NewID()
	dst := s5b.DstAddr(sid, s.JID(), s.JID())
	addr := net.JoinHostPort(h.Host, strconv.Itoa(h.Port))

	// The target connects first: proxies pair the first connection for a
	// hash with the target and the second with the requester.
	start := time.Now()
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, opts.HostTimeout)
	raw, err := d.DialContext(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return fmt.Errorf("cannot reach %s: %w", addr, err)
	}
	target := raw
	defer target.Close()
	sr.ConnectMS = ms(time.Since(start))
	start = time.Now()
	hctx, cancel := context.WithTimeout(ctx, opts.HostTimeout)
	err = s5b.ClientHandshake(hctx, target, dst)
	cancel()
	if err != nil {
		return fmt.Errorf("SOCKS5 handshake with %s: %w", addr, err)
	}
	sr.HandshakeMS = ms(time.Since(start))

	requester, err := s5b.Dial(ctx, h, dst, opts.HostTimeout)
	if err != nil {
		return fmt.Errorf("second connection to %s: %w", addr, err)
	}
	defer requester.Close()
	actx, cancel := context.WithTimeout(ctx, opts.HostTimeout)
	err = s5b.Activate(actx, s, h.JID, sid, s.JID())
	cancel()
	if err != nil {
		return fmt.Errorf("activation refused: %w", err)
	}

	// Push pseudo-random bytes and compare digests; the deadline scales
	// with the payload so that a stalled proxy cannot hang the probe.
	deadline := time.Now().Add(opts.HostTimeout + time.Duration(opts.Payload/(256<<10))*time.Second)
	_ = requester.SetDeadline(deadline)
	_ = target.SetDeadline(deadline)
	seed := rand.Uint64()
	sent := make(chan []byte, 1)
	writeErr := make(chan error, 1)
	start = time.Now()
	go func() {
		h := sha256.New()
		_, err := io.Copy(requester, io.TeeReader(io.LimitReader(newPRNG(seed), opts.Payload), h))
		if err == nil {
			err = closeWrite(requester)
		}
		writeErr <- err
		sent <- h.Sum(nil)
	}()
	got := sha256.New()
	n, err := io.Copy(got, io.LimitReader(target, opts.Payload))
	elapsed := time.Since(start)
	if werr := <-writeErr; werr != nil && err == nil {
		err = werr
	}
	want := <-sent
	sr.Bytes = n
	if err != nil {
		return fmt.Errorf("relaying through %s after %d bytes: %w", addr, n, err)
	}
	if n != opts.Payload || string(got.Sum(nil)) != string(want) {
		return fmt.Errorf("the proxy at %s corrupted the payload (%d of %d bytes, digest mismatch)", addr, n, opts.Payload)
	}
	sr.Verified = true
	if secs := elapsed.Seconds(); secs > 0 {
		sr.MBPerSec = float64(n) / secs / 1e6
	}
	return nil
}

func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// addressWarning flags a proxy advertising an address remote users cannot
// reach while the server itself is public: Openfire's
// xmpp.proxy.externalip (or Prosody's proxy65_address) left unset.
func addressWarning(ctx context.Context, proxy, host string, serverPublic bool) string {
	if !serverPublic {
		return ""
	}
	ips := []net.IP{net.ParseIP(host)}
	if ips[0] == nil {
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return fmt.Sprintf("proxy %s advertises %s, which does not resolve from here", proxy, host)
		}
		ips = ips[:0]
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	for _, ip := range ips {
		if ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() || ip.IsLinkLocalUnicast() {
			return fmt.Sprintf("proxy %s advertises %s, a loopback/private address, while the server is reached at a public address: remote users cannot use this proxy; set its public address on the server (Openfire: xmpp.proxy.externalip; Prosody: proxy65_address; ejabberd: mod_proxy65 hostname)", proxy, host)
		}
	}
	return ""
}

func isPublicHost(ctx context.Context, host string) bool {
	if host == "" {
		return false
	}
	ips := []net.IP{net.ParseIP(host)}
	if ips[0] == nil {
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil || len(addrs) == 0 {
			return false
		}
		ips = ips[:0]
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	for _, ip := range ips {
		if ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() || ip.IsLinkLocalUnicast() {
			return false
		}
	}
	return true
}

// prng is a cheap deterministic byte stream for the payload.
type prng struct{ r *rand.ChaCha8 }

func newPRNG(seed uint64) io.Reader {
	var key [32]byte
	for i := 0; i < 8; i++ {
		key[i] = byte(seed >> (8 * i))
	}
	return prng{rand.NewChaCha8(key)}
}

func (p prng) Read(b []byte) (int, error) { return p.r.Read(b) }
