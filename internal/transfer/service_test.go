package transfer

import (
	"testing"
	"time"
)

// The reconnection delay doubles from Min, with up to half of it again as
// jitter, and never exceeds Max.
func TestBackoff(t *testing.T) {
	rc := Reconnect{Min: time.Second, Max: 60 * time.Second}
	for _, tc := range []struct {
		attempt  int
		low, top time.Duration
	}{
		{0, time.Second, 1500 * time.Millisecond},
		{1, 2 * time.Second, 3 * time.Second},
		{3, 8 * time.Second, 12 * time.Second},
		{5, 32 * time.Second, 48 * time.Second},
		{6, 60 * time.Second, 60 * time.Second},
		{40, 60 * time.Second, 60 * time.Second},
	} {
		seen := map[time.Duration]bool{}
		for range 50 {
			d := backoff(rc, tc.attempt)
			if d < tc.low || d > tc.top {
				t.Fatalf("attempt %d: %v, want %v..%v", tc.attempt, d, tc.low, tc.top)
			}
			seen[d] = true
		}
		if tc.low != tc.top && len(seen) < 2 {
			t.Errorf("attempt %d: no jitter in 50 draws", tc.attempt)
		}
	}
}
