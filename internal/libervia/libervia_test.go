package libervia

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"xfer/internal/testserver"
)

// The package's server and its two Libervia peers, shared by the tests.
var (
	srv        *testserver.Server
	alice, bob *Peer
	skipReason string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		skipReason = "-short: no Libervia backends (they take seconds to start)"
		return m.Run()
	}
	if !Installed() {
		msg := "Libervia is not installed: " + InstallCommand
		if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, "FAIL:", msg)
			return 1
		}
		skipReason = msg
		return m.Run()
	}
	var err error
	// Plain: Libervia logs in through Twisted, which has no SCRAM.
	if srv, err = testserver.Start(testserver.Options{Plain: true}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer srv.Stop()
	if srv.ProxyJID == "" || srv.CAFile == "" {
		fmt.Fprintln(os.Stderr, "want a TLS server with proxy65")
		return 1
	}
	for _, u := range []string{"alice", "bob", "xfer"} {
		if err := srv.Register(u, u+"-pw"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	// Both backends start at once: each takes a few seconds, mostly imports.
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var errA, errB error
	wg.Add(2)
	go func() { defer wg.Done(); alice, errA = StartPeer(ctx, srv, "alice", "alice-pw", Options{}) }()
	go func() { defer wg.Done(); bob, errB = StartPeer(ctx, srv, "bob", "bob-pw", Options{}) }()
	wg.Wait()
	defer func() { // both at once: each takes about a second
		var wg sync.WaitGroup
		for _, p := range []*Peer{alice, bob} {
			if p != nil {
				wg.Add(1)
				go func() { defer wg.Done(); p.Stop() }()
			}
		}
		wg.Wait()
	}()
	if err := errors.Join(errA, errB); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, p := range []*Peer{alice, bob} {
		fmt.Fprintf(os.Stderr, "libervia %s: backend ready in %.1fs, connected in %.1fs\n", p.JID(), p.StartSecs, p.ConnectSecs)
	}
	code := m.Run()
	if code != 0 {
		for _, p := range []*Peer{alice, bob} {
			p.Keep()
			fmt.Fprintf(os.Stderr, "libervia %s: directory kept: %s\n", p.JID(), p.Dir())
		}
	}
	return code
}

func requireLibervia(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// writeRandom writes size random bytes to dir/name and returns the path
// and their SHA-256.
func writeRandom(t *testing.T, dir, name string, size int64) (string, string) {
	t.Helper()
	p, _ := testserver.WriteRandom(t, dir, name, size)
	return p, sha256File(t, p)
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	return testserver.SHA256File(t, p)
}

// Libervia sends to Libervia, alice to bob's full JID, over each path the
// rig can force; the file bob stored must be the one alice sent.
func TestLiberviaToLibervia(t *testing.T) {
	requireLibervia(t)
	modes := []struct {
		name     string
		send     SendOptions
		recv     RecvOptions
		verified bool     // Jingle carries a XEP-0300 checksum, SI none
		wire     []string // in alice's stanzas of the transfer
		notWire  []string
		small    bool // the small size only
		bare     bool // send to bob's bare JID
	}{
		{
			name: "jingle-s5b-direct",
			send: SendOptions{Method: "jingle", Transport: "s5b", S5B: "direct"},
			recv: RecvOptions{S5B: "direct"},
			wire: []string{"<description xmlns='urn:xmpp:jingle:apps:file-transfer:5'>", "<transport xmlns='urn:xmpp:jingle:transports:s5b:1'", "<candidate-used", "<hash xmlns='urn:xmpp:hashes:2' algo='sha-256'>"},
			// no proxy candidate, no fallback to IBB
			notWire:  []string{"<open xmlns='http://jabber.org/protocol/ibb'", "type='proxy'"},
			verified: true,
		},
		{
			name:     "jingle-ibb",
			send:     SendOptions{Method: "jingle", Transport: "ibb"},
			wire:     []string{"<description xmlns='urn:xmpp:jingle:apps:file-transfer:5'>", "<transport xmlns='urn:xmpp:jingle:transports:ibb:1'", "<open xmlns='http://jabber.org/protocol/ibb'", "<hash xmlns='urn:xmpp:hashes:2' algo='sha-256'>"},
			notWire:  []string{"<transport xmlns='urn:xmpp:jingle:transports:s5b:1'"},
			verified: true,
		},
		{
			name:    "si",
			send:    SendOptions{Method: "si"},
			wire:    []string{"<file xmlns='http://jabber.org/protocol/si/profile/file-transfer'", "<query xmlns='http://jabber.org/protocol/bytestreams'", "<streamhost-used"},
			notWire: []string{"<jingle xmlns='urn:xmpp:jingle:1'", "<open xmlns='http://jabber.org/protocol/ibb'"},
		},
		{
			// IBB with 16 KiB blocks instead of Libervia's 4096
			name:     "jingle-ibb-16k-blocks",
			send:     SendOptions{Method: "jingle", Transport: "ibb", BlockSize: 16384},
			wire:     []string{"<transport xmlns='urn:xmpp:jingle:transports:ibb:1'", "<open xmlns='http://jabber.org/protocol/ibb'", "block-size='16384'"},
			notWire:  []string{"block-size='4096'"},
			verified: true,
			small:    true,
		},
		{
			// both offer the proxy only; alice's own proxy candidate wins,
			// and alice activates it (with Libervia's activation bug fixed,
			// else it ends in IBB)
			name:     "jingle-s5b-proxy-fixed",
			send:     SendOptions{Method: "jingle", S5B: "proxy", FixProxyActivate: true},
			recv:     RecvOptions{S5B: "proxy"},
			wire:     []string{"type='proxy'", "<activate>", "<activated"},
			notWire:  []string{"<open xmlns='http://jabber.org/protocol/ibb'", "<proxy-error"},
			verified: true,
			small:    true,
		},
		{
			// no S5B candidates on either side: candidate-error both ways,
			// then transport-replace to IBB
			name:     "jingle-fallback-ibb",
			send:     SendOptions{Method: "jingle", S5B: "none"},
			recv:     RecvOptions{S5B: "none"},
			wire:     []string{"<candidate-error", "action='transport-replace'", "action='transport-accept'", "<open xmlns='http://jabber.org/protocol/ibb'"},
			verified: true,
			small:    true,
		},
		{
			// to the bare JID: Jingle Message Initiation (propose, proceed),
			// and bob's receiver confirms the "not in roster" question
			name:     "jingle-jmi-bare-jid",
			send:     SendOptions{Method: "jingle", S5B: "direct"},
			recv:     RecvOptions{S5B: "direct"},
			wire:     []string{"<propose xmlns='urn:xmpp:jingle-message:0'", "<proceed xmlns='urn:xmpp:jingle-message:0'", "<candidate-used"},
			verified: true,
			small:    true,
			bare:     true,
		},
		{
			// SI with the receiver accepting IBB only: XEP-0047, 100 KiB only
			name:    "si-ibb",
			send:    SendOptions{Method: "si"},
			recv:    RecvOptions{SIMethods: "ibb"},
			wire:    []string{"<file xmlns='http://jabber.org/protocol/si/profile/file-transfer'", "<open xmlns='http://jabber.org/protocol/ibb'"},
			notWire: []string{"<jingle xmlns='urn:xmpp:jingle:1'", "<streamhost-used"},
			small:   true,
		},
	}
	sizes := []struct {
		name string
		size int64
	}{
		{"100KiB", 100 << 10},
		{"5MiB", 5 << 20},
	}
	for _, m := range modes {
		for _, sz := range sizes {
			if m.small && sz.size > 1<<20 {
				continue
			}
			t.Run(m.name+"/"+sz.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
				defer cancel()
				name := fmt.Sprintf("%s-%s.bin", m.name, sz.name)
				src, sum := writeRandom(t, t.TempDir(), name, sz.size)
				dir := t.TempDir()

				r, err := bob.Receive(ctx, dir, alice.Bare(), m.recv)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				mark := alice.LogMark()
				to := bob.JID()
				if m.bare {
					to = bob.Bare()
				}
				sent, err := alice.Send(ctx, src, to, m.send)
				if err != nil {
					t.Fatal(err)
				}
				got, err := r.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if sent.SHA256 != sum || sent.Size != sz.size {
					t.Errorf("alice sent %+v, want size %d sha256 %s", sent, sz.size, sum)
				}
				if got.Path != filepath.Join(dir, name) || got.Size != sz.size || got.SHA256 != sum || got.From != alice.JID() {
					t.Errorf("bob received %+v, want %s (%d bytes, sha256 %s) from %s", got, filepath.Join(dir, name), sz.size, sum, alice.JID())
				}
				if disk := sha256File(t, filepath.Join(dir, name)); disk != sum {
					t.Errorf("sha256 on disk %s, want %s", disk, sum)
				}
				if got.HashVerified != m.verified || (m.verified && got.HashAlgo != "sha-256") {
					t.Errorf("hash_verified=%v hash_algo=%q, want %v", got.HashVerified, got.HashAlgo, m.verified)
				}
				wire := alice.StanzasSince(mark)
				for _, w := range m.wire {
					if !strings.Contains(wire, w) {
						t.Errorf("alice's stanzas lack %q", w)
					}
				}
				for _, w := range m.notWire {
					if strings.Contains(wire, w) {
						t.Errorf("alice's stanzas contain %q", w)
					}
				}
				if t.Failed() {
					t.Logf("alice's stanzas:\n%s", wire)
				}
				t.Logf("%s %s: send %.2fs, receive %.2fs, hash_verified=%v", m.name, sz.name, sent.Secs, got.Secs, got.HashVerified)
			})
		}
	}
}

// A Jingle offer that Libervia's receiver declines ends the sender's
// progress with "declined": Send reports ErrDeclined, and nothing is stored.
func TestLiberviaDeclines(t *testing.T) {
	requireLibervia(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	src, _ := writeRandom(t, t.TempDir(), "unwanted.bin", 1000)
	dir := t.TempDir()
	r, err := bob.Receive(ctx, dir, alice.Bare(), RecvOptions{Decline: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = alice.Send(ctx, src, bob.JID(), SendOptions{Method: "jingle"})
	if !errors.Is(err, ErrDeclined) {
		t.Fatalf("err = %v, want ErrDeclined\n%s", err, r.Output())
	}
	if got, err := r.Next(ctx); err == nil || got.OK || got.Error != "declined" {
		t.Fatalf("receiver: %+v, %v; want a declined result", got, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("declined offer left files: %v", entries)
	}
}

// Start's cleanup stops the backend (by its PID) and removes its directory
// when the test passed.
func TestStartStop(t *testing.T) {
	requireLibervia(t)
	if err := srv.Register("carol", "carol-pw"); err != nil {
		t.Fatal(err)
	}
	var p *Peer
	t.Run("start", func(t *testing.T) {
		p = Start(t, srv, "carol", "carol-pw", Options{Resource: "probe"})
		if p.JID() != "carol@localhost/probe" || p.Bare() != "carol@localhost" {
			t.Fatalf("JID %q, bare %q", p.JID(), p.Bare())
		}
		t.Logf("carol: backend ready in %.1fs, connected in %.1fs", p.StartSecs, p.ConnectSecs)
	})
	if p == nil {
		t.Fatal("no peer")
	}
	select {
	case <-p.exited:
	default:
		t.Fatal("backend still running after the test's cleanup")
	}
	if _, err := os.Stat(p.Dir()); os.Getenv("XFER_KEEP_LIBERVIA_DIR") == "" && !os.IsNotExist(err) {
		t.Fatalf("directory %s still there (%v)", p.Dir(), err)
	}
}

// A second file of the same name: without Overwrite the receiver refuses
// Libervia's overwrite question and then the offer (the sender sees a
// decline, the first file stays); with Overwrite it is replaced.
func TestLiberviaOverwrite(t *testing.T) {
	requireLibervia(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	send := func(size int64, o RecvOptions) (string, Received, error, error) {
		t.Helper()
		src, sum := writeRandom(t, t.TempDir(), "same name.bin", size)
		r, err := bob.Receive(ctx, dir, alice.Bare(), o)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		_, sendErr := alice.Send(ctx, src, bob.JID(), SendOptions{Method: "jingle", S5B: "direct"})
		got, recvErr := r.Next(ctx)
		return sum, got, sendErr, recvErr
	}
	first, got, sendErr, recvErr := send(1000, RecvOptions{})
	if sendErr != nil || recvErr != nil || got.SHA256 != first {
		t.Fatalf("first file: %v / %v / %+v", sendErr, recvErr, got)
	}
	_, got, sendErr, recvErr = send(2000, RecvOptions{})
	if !errors.Is(sendErr, ErrDeclined) || recvErr == nil || got.Error != "refused: file exists" {
		t.Fatalf("second file without Overwrite: send %v, receive %+v %v", sendErr, got, recvErr)
	}
	if disk := sha256File(t, filepath.Join(dir, "same name.bin")); disk != first {
		t.Fatalf("the refused offer changed the file")
	}
	third, got, sendErr, recvErr := send(3000, RecvOptions{Overwrite: true})
	if sendErr != nil || recvErr != nil || got.SHA256 != third || got.Size != 3000 {
		t.Fatalf("third file with Overwrite: %v / %v / %+v", sendErr, recvErr, got)
	}
}
