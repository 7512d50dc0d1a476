//go:build !linux

package sim

import (
	"context"
	"os"
)

// copyFile makes out (new, empty) a copy of in, leaving holes where the
// source reads as zeros. Reflinks are Linux-only here.
func copyFile(ctx context.Context, in, out *os.File) error {
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	if err := out.Truncate(fi.Size()); err != nil {
		return err
	}
	return copyRange(ctx, in, out, 0, fi.Size())
}

// allocated is the file's size where its allocation is not portable.
func allocated(fi os.FileInfo) int64 { return fi.Size() }
