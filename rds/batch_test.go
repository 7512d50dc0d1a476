package rds

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// TestParseBatch: an item is ok or failed only on its own mark with this
// batch's nonce, in order and with no stray text before it; everything
// else is unknown, never guessed.
func TestParseBatch(t *testing.T) {
	const nonce = "0123456789abcdef"
	m := batchMark(nonce)
	U, O, F := BatchUnknown, BatchOK, BatchFailed
	cases := []struct {
		name  string
		out   string
		first int
		n     int
		want  []BatchStatus
		read  string
		whole bool
	}{
		{name: "all ok", out: m + " ok 0\n" + m + " ok 1\n" + m + " ok 2\n", n: 3, want: []BatchStatus{O, O, O}},
		{name: "one err in the middle", out: m + " ok 0\n" + m + " err 1\n" + m + " ok 2\n", n: 3, want: []BatchStatus{O, F, O}},
		{name: "cut after item 1", out: m + " ok 0\n" + m + " ok 1\n", n: 4, want: []BatchStatus{O, O, U, U}},
		{name: "cut mid-line", out: m + " ok 0\n" + m + " o", n: 2, want: []BatchStatus{O, U}},
		{name: "forged mark without the nonce", out: "##rds-reconcile:batch: ok 0\n##rds-reconcile:batch:ffffffffffffffff ok 1\n", n: 2, want: []BatchStatus{U, U}},
		{name: "empty output", out: "", n: 2, want: []BatchStatus{U, U}},
		{name: "script refused at parse time", out: "syntax error (line 1 column 9)\n", n: 2, want: []BatchStatus{U, U}},
		{name: "stray text before a mark", out: m + " ok 0\nwarning: something\n" + m + " ok 1\n" + m + " ok 2\n", n: 3, want: []BatchStatus{O, U, O}},
		{name: "repeated mark", out: m + " ok 0\n" + m + " ok 0\n" + m + " ok 1\n", n: 2, want: []BatchStatus{U, U}},
		{name: "out of order", out: m + " ok 1\n" + m + " ok 0\n", n: 2, want: []BatchStatus{U, O}},
		{name: "index out of range", out: m + " ok 0\n" + m + " ok 7\n", n: 2, want: []BatchStatus{O, U}},
		{name: "second chunk numbers from first", out: m + " ok 3\n" + m + " err 4\n", first: 3, n: 2, want: []BatchStatus{O, F}},
		{name: "CRLF", out: m + " ok 0\r\n" + m + " err 1\r\n", n: 2, want: []BatchStatus{O, F}},
		{name: "read between marks", out: m + " ok 0\n" + m + " read\n[{\"slot\":\"a\"}]\n" + m + " files\n[]\n" + m + " end\n", n: 1,
			want: []BatchStatus{O}, read: "[{\"slot\":\"a\"}]\n", whole: true},
		{name: "read cut before its end", out: m + " ok 0\n" + m + " read\n[{\"slot\":\"a\"}]\n" + m + " files\n[", n: 1,
			want: []BatchStatus{O}, read: "[{\"slot\":\"a\"}]\n", whole: false},
		{name: "end without files is not whole", out: m + " ok 0\n" + m + " read\n[]\n" + m + " end\n", n: 1,
			want: []BatchStatus{O}, read: "[]\n", whole: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, sections, whole := parseBatch(tc.out, nonce, tc.first, tc.n)
			read := sections["read"]
			if len(st) != len(tc.want) {
				t.Fatalf("statuses %v, want %v", st, tc.want)
			}
			for i := range st {
				if st[i] != tc.want[i] {
					t.Errorf("item %d: %v, want %v (all: %v)", i, st[i], tc.want[i], st)
				}
			}
			if read != tc.read || whole != tc.whole {
				t.Errorf("read %q whole=%v, want %q whole=%v", read, whole, tc.read, tc.whole)
			}
		})
	}
}

// TestChunkBatch: lines stay within MaxBatchBytes, numbering runs across
// chunks, each chunk reads its own slots and the last the rest.
func TestChunkBatch(t *testing.T) {
	v := validator{prefix: "pvc-", base: "pool/v"}
	c := &SSHClient{v: v}
	var ops []BatchOp
	for i := range 400 {
		slot := fmt.Sprintf("pvc-%s-%05d", strings.Repeat("x", 40), i)
		op, err := c.CreateOp(CreateRequest{Slot: slot, FilePath: "pool/v/" + slot + ".img", Size: 1 << 20, Port: 4420, NQN: "nqn.2000-02.com.mikrotik:" + slot})
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, op)
	}
	read := []string{ops[0].Slot, ops[399].Slot, "pvc-other"}
	chunks := chunkBatch(ops, read, Profile{}, "n", readCommands{json: true, v: v})
	if len(chunks) < 2 {
		t.Fatalf("%d chunks for 400 creates", len(chunks))
	}
	next := 0
	for i, ch := range chunks {
		if len(ch.script) > MaxBatchBytes {
			t.Errorf("chunk %d: %d bytes", i, len(ch.script))
		}
		if ch.first != next {
			t.Errorf("chunk %d starts at %d, want %d", i, ch.first, next)
		}
		next += len(ch.ops)
		if !strings.Contains(ch.script, `:put "##rds-reconcile:batch:n ok `+strconv.Itoa(ch.first)+`"`) {
			t.Errorf("chunk %d does not number from %d", i, ch.first)
		}
	}
	if next != 400 {
		t.Errorf("chunks hold %d items", next)
	}
	if got := chunks[0].read; len(got) != 1 || got[0] != read[0] {
		t.Errorf("first chunk reads %v", got)
	}
	if got := chunks[len(chunks)-1].read; len(got) != 2 || got[0] != read[1] || got[1] != "pvc-other" {
		t.Errorf("last chunk reads %v", got)
	}
}
