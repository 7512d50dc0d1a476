package retryable

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestMarkAndIs(t *testing.T) {
	base := errors.New("target refused")
	marked := Mark(base)
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"unmarked", base, false},
		{"unmarked wrapped", fmt.Errorf("connect: %w", io.EOF), false},
		{"marked", marked, true},
		{"marked wrapped", fmt.Errorf("apply: %w", marked), true},
		{"marked joined", errors.Join(base, marked), true},
	} {
		if got := Is(tc.err); got != tc.want {
			t.Errorf("%s: Is(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestMarkKeepsTheChain(t *testing.T) {
	if Mark(nil) != nil {
		t.Fatal("Mark(nil) is not nil")
	}
	base := fmt.Errorf("read: %w", io.ErrUnexpectedEOF)
	m := Mark(base)
	if m.Error() != base.Error() {
		t.Errorf("text %q, want %q", m.Error(), base.Error())
	}
	if !errors.Is(m, io.ErrUnexpectedEOF) {
		t.Error("the marked error lost its chain")
	}
	// Marking twice adds nothing.
	if Mark(m) != m {
		t.Error("Mark wrapped a marked error again")
	}
	var e *Error
	if !errors.As(fmt.Errorf("x: %w", m), &e) || e.Err != base {
		t.Errorf("As found %v", e)
	}
}
