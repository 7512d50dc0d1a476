package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// copyChunk is how much copyRange reads at a time; the context is checked
// between chunks, so a cancelled script stops a long copy soon.
const copyChunk = 1 << 20

// copyRange copies in's bytes [off, end) to the same offsets of out, leaving
// a hole where a whole chunk reads as zeros: a copy of a sparse image costs
// the space its data takes, not its size. out must already have its final
// size (holes read as zeros).
func copyRange(ctx context.Context, in, out *os.File, off, end int64) error {
	buf := make([]byte, copyChunk)
	zero := make([]byte, copyChunk)
	for off < end {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("copy cancelled: %w", err)
		}
		n := int64(len(buf))
		if end-off < n {
			n = end - off
		}
		got, err := in.ReadAt(buf[:n], off)
		if got > 0 && !bytes.Equal(buf[:got], zero[:got]) {
			if _, werr := out.WriteAt(buf[:got], off); werr != nil {
				return fmt.Errorf("write at %d: %w", off, werr)
			}
		}
		if errors.Is(err, io.EOF) {
			// The source ended early (shrunk under us): the rest reads as zeros.
			return nil
		}
		if err != nil {
			return fmt.Errorf("read at %d: %w", off, err)
		}
		off += int64(got)
	}
	return nil
}
