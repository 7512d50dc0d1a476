package sim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// copyFile makes out (new, empty) a copy of in. First a reflink (FICLONE):
// on Btrfs or XFS the copy shares every extent and is a point-in-time image
// of the source, as RouterOS's copy-from on a Btrfs pool is. Elsewhere
// (ext4, tmpfs) the data extents are copied one by one (SEEK_DATA /
// SEEK_HOLE), holes stay holes; that copy reads the source while it may be
// written to, so it is not a point-in-time image (docs/sim.md).
func copyFile(ctx context.Context, in, out *os.File) error {
	if err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd())); err == nil {
		return nil
	}
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if err := out.Truncate(size); err != nil {
		return err
	}
	fd := int(in.Fd())
	var off int64
	for off < size {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		switch {
		case errors.Is(err, syscall.ENXIO):
			return nil // only a hole is left
		case errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EOPNOTSUPP):
			// No SEEK_DATA here: copy the rest, still skipping zeros.
			return copyRange(ctx, in, out, off, size)
		case err != nil:
			return fmt.Errorf("seek data: %w", err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("seek hole: %w", err)
		}
		if hole > size {
			hole = size
		}
		if err := copyRange(ctx, in, out, data, hole); err != nil {
			return err
		}
		off = hole
	}
	return nil
}

// allocated is the bytes a file's data takes on disk.
func allocated(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}
