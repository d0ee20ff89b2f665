package transfer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"xfer/internal/session"
)

// cutMeter calls cut once the transfer has moved past at bytes.
type cutMeter struct {
	done atomic.Int64
	at   int64
	cut  func()
}

func (m *cutMeter) Write(p []byte) (int, error) {
	if m.done.Add(int64(len(p))) > m.at && m.cut != nil {
		m.cut()
		m.cut = nil
	}
	return len(p), nil
}
func (m *cutMeter) Finish() {}

// Interrupt a transfer at about half in each way a user meets, then send
// the same file again: it resumes from the part file, and the whole file's
// MD5 matches.
func TestIntegrationResume(t *testing.T) {
	const size = 6 << 20
	for _, tc := range []struct {
		name   string
		method string
		how    string // "cancel": the sender stops (Ctrl-C); "sender-dies": its connection drops; "receiver-dies"
	}{
		{"ibb sender cancels", "ibb", "cancel"},
		{"s5b sender cancels", "si", "cancel"},
		{"ibb sender dies", "ibb", "sender-dies"},
		{"s5b sender dies", "si", "sender-dies"},
		{"ibb receiver dies", "ibb", "receiver-dies"},
		{"s5b receiver dies", "si", "receiver-dies"},
		{"jingle s5b sender cancels", "jingle-s5b", "cancel"},
		{"jingle ibb sender dies", "jingle-ibb", "sender-dies"},
		{"jingle s5b sender dies", "jingle-s5b", "sender-dies"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			baseG, baseFD := runtime.NumGoroutine(), openFDs()
			dir := t.TempDir()
			src, sum := writeRandom(t, t.TempDir(), "big.bin", size)
			ropts := ReceiveOptions{Dir: dir, Allow: []string{"alice@localhost"}, StallTimeout: 2 * time.Second}
			sopts := SendOptions{Method: tc.method, StallTimeout: 2 * time.Second, S5B: S5BOptions{ServerLoopback: true, HostTimeout: 2 * time.Second}}

			// First attempt, interrupted at half.
			rctx, rcancel := context.WithCancel(context.Background())
			defer rcancel()
			bob := login(t, "bob", "resume1-"+session.NewID()[:4])
			meter, rmeter := &cutMeter{at: size / 2}, &cutMeter{at: size / 2}
			r, err := NewReceiver(rctx, bob, ropts, &Observer{Meter: func(string, int64, int64) Meter { return rmeter }})
			if err != nil {
				t.Fatal(err)
			}
			alice := login(t, "alice", "resume1-"+session.NewID()[:4])
			sctx, scancel := context.WithCancel(context.Background())
			defer scancel()
			switch tc.how {
			case "cancel":
				meter.cut = scancel
			case "sender-dies":
				// Its XMPP connection drops first, so no in-band close
				// can be sent; its bytestream goes with the process.
				meter.cut = func() { alice.Close(); scancel() }
			case "receiver-dies":
				// Once half is on the receiver's disk: what the sender has
				// sent may still sit in the socket buffers.
				rmeter.cut = func() { bob.Close(); rcancel() }
			}
			sd := &Sender{S: alice, Opts: sopts, Obs: &Observer{Meter: func(string, int64, int64) Meter { return meter }}}
			_, err = sd.Send(sctx, bob.JID(), src)
			// Over SOCKS5 the rest of the file may fit in the socket
			// buffers before the receiver's death is noticed: XEP-0065 has
			// no acknowledgement, so only the receiver can know. In-band,
			// every chunk is acknowledged.
			if err == nil && !(tc.how == "receiver-dies" && tc.method == "si") {
				t.Fatal("interrupted send succeeded")
			}
			if tc.how != "receiver-dies" {
				if _, err := next(t, r); err == nil {
					t.Fatal("interrupted receive succeeded")
				}
			}
			rcancel()
			bob.Close()
			r.Wait()
			part := partName(dir, "big.bin")
			fi, err := os.Stat(part)
			if err != nil {
				t.Fatalf("no part file kept: %v", err)
			}
			if fi.Size() == 0 || fi.Size() >= size {
				t.Fatalf("part holds %d of %d bytes", fi.Size(), size)
			}
			if _, err := os.Stat(filepath.Join(dir, "big.bin")); !os.IsNotExist(err) {
				t.Fatal("a final file exists after the interruption")
			}

			// Second attempt: a new receiver in the same directory, the
			// same file offered again, no flags.
			bob2 := login(t, "bob", "resume2-"+session.NewID()[:4])
			r2, err := NewReceiver(context.Background(), bob2, ropts, nil)
			if err != nil {
				t.Fatal(err)
			}
			alice2 := login(t, "alice", "resume2-"+session.NewID()[:4])
			res, err := (&Sender{S: alice2, Opts: sopts}).Send(context.Background(), bob2.JID(), src)
			if err != nil {
				t.Fatal(err)
			}
			if res.Offset == 0 || res.Offset > fi.Size() {
				t.Fatalf("resumed at %d; the part held %d", res.Offset, fi.Size())
			}
			got, err := next(t, r2)
			if err != nil {
				t.Fatal(err)
			}
			if got.Offset != res.Offset || md5Of(t, got.Path) != sum {
				t.Fatalf("received %+v", got)
			}
			if _, err := os.Stat(part); !os.IsNotExist(err) {
				t.Fatal("part file left after completion")
			}
			if _, err := os.Stat(sidecarName(part)); !os.IsNotExist(err) {
				t.Fatal("sidecar left after completion")
			}

			// Nothing outlives the sessions: no goroutine, no descriptor.
			for _, s := range []*session.Session{alice, bob, alice2, bob2} {
				s.Close()
			}
			r.Wait()
			r2.Wait()
			checkNoLeaks(t, baseG, baseFD)
		})
	}
}

// --no-resume (no <range/> in the offer) starts over; a part of another
// file under the same name is never resumed.
func TestIntegrationNoResume(t *testing.T) {
	dir := t.TempDir()
	r, bob, _ := receiver(t, ReceiveOptions{Dir: dir, Allow: []string{"alice@localhost"}})
	alice := login(t, "alice", "noresume")
	src, sum := writeRandom(t, t.TempDir(), "x.bin", 100000)
	part := partName(dir, "x.bin")
	// A stale part of the same name and size from another file.
	os.WriteFile(part, make([]byte, 5000), 0o600)
	writeSidecar(part, &Partial{Name: "x.bin", Size: 100000, Hash: "00000000000000000000000000000000", From: "alice@localhost"})
	res, err := (&Sender{S: alice}).Send(context.Background(), bob.JID(), src)
	if err != nil || res.Offset != 0 {
		t.Fatalf("offset %d, err %v", res.Offset, err)
	}
	if got, err := next(t, r); err != nil || md5Of(t, got.Path) != sum {
		t.Fatalf("%v", err)
	}
	// The same file's part, but the sender says --no-resume.
	os.WriteFile(part, make([]byte, 5000), 0o600)
	writeSidecar(part, &Partial{Name: "x.bin", Size: 100000, Hash: sum, From: "alice@localhost"})
	res, err = (&Sender{S: alice, Opts: SendOptions{NoResume: true}}).Send(context.Background(), bob.JID(), src)
	if err != nil || res.Offset != 0 {
		t.Fatalf("offset %d, err %v", res.Offset, err)
	}
	if got, err := next(t, r); err != nil || md5Of(t, got.Path) != sum {
		t.Fatalf("%v", err)
	}
	list, err := ListPartial(dir)
	if err != nil || len(list) != 0 {
		t.Fatalf("partials left: %+v %v", list, err)
	}
}

func TestListAndRemovePartial(t *testing.T) {
	dir := t.TempDir()
	part := partName(dir, "a.iso")
	os.WriteFile(part, make([]byte, 123), 0o600)
	writeSidecar(part, &Partial{Name: "a.iso", Size: 1000, From: "alice@localhost"})
	os.WriteFile(partName(dir, "orphan"), make([]byte, 7), 0o600)
	os.WriteFile(filepath.Join(dir, "normal.txt"), nil, 0o600)
	list, err := ListPartial(dir)
	if err != nil || len(list) != 2 {
		t.Fatalf("%+v %v", list, err)
	}
	for _, p := range list {
		if p.Name == "a.iso" && (p.Have != 123 || p.Size != 1000 || p.From != "alice@localhost") {
			t.Fatalf("%+v", p)
		}
		if err := RemovePartial(p); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "normal.txt" {
		t.Fatalf("left: %v", entries)
	}
	if _, err := ListPartial(filepath.Join(dir, "missing")); !errors.Is(err, ErrFile) {
		t.Fatal(err)
	}
}

func openFDs() int {
	entries, _ := os.ReadDir("/proc/self/fd")
	return len(entries)
}

// checkNoLeaks waits a little for goroutines and descriptors to go back
// to where they were; a few goroutines of the runtime and the test
// framework may come and go.
func checkNoLeaks(t *testing.T, baseG, baseFD int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g, fd := runtime.NumGoroutine(), openFDs()
		if g <= baseG+2 && fd <= baseFD {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("leak: %d goroutines (were %d), %d descriptors (were %d)\n%s", g, baseG, fd, baseFD, buf[:n])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The network stalls: the sender stops moving bytes without closing. The
// receiver gives up after its stall timeout with ErrStalled and keeps the
// part; so does the sender, whose writes stop being taken.
func TestIntegrationStall(t *testing.T) {
	for _, method := range []string{"ibb", "auto"} {
		t.Run(method, func(t *testing.T) {
			const size = 4 << 20
			dir := t.TempDir()
			r, bob, _ := receiver(t, ReceiveOptions{Dir: dir, Allow: []string{"alice@localhost"}, StallTimeout: time.Second})
			alice := login(t, "alice", "stall-"+method)
			src, _ := writeRandom(t, t.TempDir(), "stall.bin", size)
			release := make(chan struct{})
			meter := &cutMeter{at: size / 2, cut: func() { <-release }} // the copy hangs here
			sd := &Sender{S: alice, Opts: SendOptions{Method: method, StallTimeout: time.Second, S5B: S5BOptions{ServerLoopback: true}},
				Obs: &Observer{Meter: func(string, int64, int64) Meter { return meter }}}
			sent := make(chan error, 1)
			go func() {
				_, err := sd.Send(context.Background(), bob.JID(), src)
				sent <- err
			}()
			start := time.Now()
			_, err := next(t, r)
			if !errors.Is(err, ErrStalled) {
				t.Fatalf("receiver: err = %v, want ErrStalled", err)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Fatalf("the stall was noticed after %v", d)
			}
			close(release)
			if err := <-sent; err == nil {
				t.Fatal("the sender finished a stalled transfer")
			}
			if _, err := os.Stat(partName(dir, "stall.bin")); err != nil {
				t.Fatalf("no part kept: %v", err)
			}
		})
	}
}

// blockingMeter stands for a receiver that stops reading: its first write
// blocks until released, so the sender's writes stall once the socket
// buffers are full.
type blockingMeter struct{ release chan struct{} }

func (m blockingMeter) Write(p []byte) (int, error) { <-m.release; return len(p), nil }
func (m blockingMeter) Finish()                     {}

// Ctrl-C on a sender whose write is blocked by a stalled receiver ends the
// send within a second, not at the stall timeout, with the interruption as
// the reason.
func TestIntegrationCancelBlockedSender(t *testing.T) {
	for _, method := range []string{"s5b", "jingle-s5b", "ibb", "jingle-ibb"} {
		t.Run(method, func(t *testing.T) {
			release := make(chan struct{})
			defer close(release)
			bob := login(t, "bob", "stalled-"+session.NewID()[:4])
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			obs := &Observer{Meter: func(string, int64, int64) Meter { return blockingMeter{release} }}
			if _, err := NewReceiver(ctx, bob, ReceiveOptions{Dir: t.TempDir(), Allow: []string{"alice@localhost"}}, obs); err != nil {
				t.Fatal(err)
			}
			alice := login(t, "alice", "stalled-"+session.NewID()[:4])
			size := int64(64 << 20)
			if strings.Contains(method, "ibb") {
				size = 4 << 20 // the window and the receiver's buffer fill long before
			}
			src, _ := writeRandom(t, t.TempDir(), "stall.bin", size)
			sctx, scancel := context.WithCancel(context.Background())
			sd := &Sender{S: alice, Opts: SendOptions{Method: method, StallTimeout: time.Minute, S5B: S5BOptions{ServerLoopback: true}}}
			done := make(chan error, 1)
			go func() {
				_, err := sd.Send(sctx, bob.JID(), src)
				done <- err
			}()
			time.Sleep(3 * time.Second) // the buffers fill and the write blocks
			start := time.Now()
			scancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("send ended with %v, want the interruption", err)
				}
				if d := time.Since(start); d > 2*time.Second {
					t.Fatalf("the send took %v to end after Ctrl-C", d)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the blocked send ignored its cancellation")
			}
		})
	}
}

// A sender that died mid-transfer and is run again at once (before the
// receiver's stall timeout) supersedes its stale transfer: the new offer is
// not refused, it resumes from the part, and the receiver reports only the
// finished file.
func TestIntegrationResendSupersedesStale(t *testing.T) {
	const size = 6 << 20
	for _, method := range []string{"ibb", "jingle-ibb"} {
		t.Run(method, func(t *testing.T) {
			var events []Event
			var mu sync.Mutex
			obs := &Observer{Event: func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() }}
			bob := login(t, "bob", "stale-"+session.NewID()[:4])
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r, err := NewReceiver(ctx, bob, ReceiveOptions{Dir: t.TempDir(), Allow: []string{"alice@localhost"}, StallTimeout: time.Minute}, obs)
			if err != nil {
				t.Fatal(err)
			}
			src, sum := writeRandom(t, t.TempDir(), "stale.bin", size)
			alice := login(t, "alice", "stale1-"+session.NewID()[:4])
			sctx, scancel := context.WithCancel(context.Background())
			defer scancel()
			meter := &cutMeter{at: size / 2}
			meter.cut = func() { alice.Close(); scancel() } // the sender dies
			opts := SendOptions{Method: method, StallTimeout: time.Minute}
			if _, err := (&Sender{S: alice, Opts: opts, Obs: &Observer{Meter: func(string, int64, int64) Meter { return meter }}}).Send(sctx, bob.JID(), src); err == nil {
				t.Fatal("the interrupted send succeeded")
			}
			// Run again at once, long before the receiver's stall timeout.
			alice2 := login(t, "alice", "stale2-"+session.NewID()[:4])
			res, err := (&Sender{S: alice2, Opts: opts}).Send(context.Background(), bob.JID(), src)
			if err != nil {
				t.Fatalf("the sender run again: %v", err)
			}
			if res.Offset == 0 {
				t.Errorf("the new offer started over instead of resuming")
			}
			got, err := next(t, r)
			if err != nil {
				t.Fatalf("the receiver's first result: %v", err)
			}
			if md5Of(t, got.Path) != sum || got.Offset != res.Offset {
				t.Fatalf("received %+v", got)
			}
			mu.Lock()
			defer mu.Unlock()
			found := false
			for _, e := range events {
				found = found || e.Type == "superseded"
			}
			if !found {
				t.Fatalf("no superseded event in %+v", events)
			}
		})
	}
}
