package fault

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestClassify(t *testing.T) {
	refused, broken, auth := New(Refused, "x: refused"), New(Transfer, "x: broken"), New(Auth, "x: auth")
	for _, tc := range []struct {
		err  error
		want Kind
	}{
		{nil, Other},
		{errors.New("plain"), Other},
		{refused, Refused},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", broken)), Transfer},
		{fmt.Errorf("%w: %w", broken, refused), Refused},          // the more telling one
		{errors.Join(broken, context.DeadlineExceeded), Transfer}, // a stall is a transfer failure
		{fmt.Errorf("x: %w", context.DeadlineExceeded), Timeout},  // a bare deadline
		{fmt.Errorf("x: %w (%w)", refused, context.Canceled), Interrupted},
		{fmt.Errorf("login: %w", auth), Auth},
	} {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if !errors.Is(fmt.Errorf("w: %w", refused), refused) {
		t.Fatal("a sentinel is not found by errors.Is")
	}
}
