package transfer

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// 20 transfers at once into one receiver, from 2 senders: all complete and
// verify, and memory stays bounded by buffers, not by file sizes.
func TestIntegrationConcurrentTransfers(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	for _, tc := range []struct {
		method string
		size   int64
	}{
		{"auto", 8 << 20}, // S5B, direct
		{"ibb", 1 << 20},  // in-band through the server: slower, smaller files
	} {
		t.Run(tc.method, func(t *testing.T) {
			const perSender = 10
			r, bob, _ := receiver(t, ReceiveOptions{Allow: []string{"alice@localhost", "carol@localhost"}})
			src := t.TempDir()
			sums := map[string]string{}
			var files []string
			for i := 0; i < 2*perSender; i++ {
				name := fmt.Sprintf("c%02d.bin", i)
				p, sum := writeRandom(t, src, name, tc.size)
				sums[name] = sum
				files = append(files, p)
			}
			var peak atomic.Uint64
			stop := make(chan struct{})
			var sampler sync.WaitGroup
			sampler.Add(1)
			go func() {
				defer sampler.Done()
				var ms runtime.MemStats
				for {
					runtime.ReadMemStats(&ms)
					if ms.HeapInuse > peak.Load() {
						peak.Store(ms.HeapInuse)
					}
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			}()
			runtime.GC()
			var base runtime.MemStats
			runtime.ReadMemStats(&base)

			var wg sync.WaitGroup
			errs := make(chan error, len(files))
			for i, user := range []string{"alice", "carol"} {
				sd := &Sender{S: login(t, user, "conc-"+tc.method), Opts: SendOptions{Method: tc.method, S5B: S5BOptions{ServerLoopback: true}}}
				for _, f := range files[i*perSender : (i+1)*perSender] {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, err := sd.Send(context.Background(), bob.JID(), f); err != nil {
							errs <- fmt.Errorf("%s: %w", f, err)
						}
					}()
				}
			}
			for range files {
				got, err := next(t, r)
				if err != nil {
					t.Fatal(err)
				}
				if md5Of(t, got.Path) != sums[got.Name] {
					t.Fatalf("%s: MD5 differs", got.Name)
				}
				delete(sums, got.Name)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			close(stop)
			sampler.Wait()
			if len(sums) != 0 {
				t.Fatalf("not received: %v", sums)
			}
			grown := int64(peak.Load()) - int64(base.HeapInuse)
			total := tc.size * int64(len(files))
			t.Logf("%d × %d bytes: heap grew by at most %d KiB", len(files), tc.size, grown>>10)
			// Both ends of 20 streams live in this process: fixed buffers
			// (64 KiB copies, IBB windows and XML garbage) take some MiB;
			// holding the S5B files (160 MiB) would not fit. In-band, each
			// adaptive window may have 1 MiB in flight, all of which the
			// receiving end may hold while its reader catches up (the
			// stanza's text and the decoded chunk, about 2.5 MiB a stream),
			// and the heap counts the garbage until the next GC: 20 such
			// streams may take about 100 MiB (measured: 30-74 MiB); the
			// guard is against growth beyond the windows.
			limit := int64(48 << 20)
			if tc.method == "ibb" {
				limit = 128 << 20
			}
			if grown > limit {
				t.Fatalf("heap grew by %d bytes for %d bytes moved", grown, total)
			}
		})
	}
}
