package rds

// The RouterOS operations on one disk or file: read a section, write a
// command, and Get, Create, SetExport, Grow, Delete, RemoveFile, Capacity.
// Commands are built in command.go from validated values only.

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// read runs a read command and parses its items.
func (c *SSHClient) read(ctx context.Context, op, slot string, rc readCommands, cmd string) ([]map[string]string, error) {
	out, err := c.run(ctx, op, slot, cmd, false)
	if err != nil {
		return nil, err
	}
	return parseSection(op, slot, cmd, out, rc.json)
}

func parseSection(op, slot, cmd, out string, asJSON bool) ([]map[string]string, error) {
	if line := errorLine(out); line != "" {
		return nil, outputError(op, slot, cmd, line)
	}
	var items []map[string]string
	var err error
	if asJSON {
		items, err = ParseJSON(out)
	} else {
		items, err = ParseDetail(out)
	}
	if err != nil {
		return nil, &Error{Op: op, Slot: slot, Command: cmd, Output: capOutput(out), Err: err}
	}
	return items, nil
}

// write runs a mutating command: any output at all is an error. A command
// carrying a property whose name depends on the release is adapted to the
// RDS's profile first, and a refusal is explained by what the release
// lacks.
func (c *SSHClient) write(ctx context.Context, op, slot, cmd string) error {
	var p Profile
	sent := cmd
	if needsProfile(cmd) {
		var err error
		if p, err = c.profile(ctx); err != nil {
			return err
		}
		sent = p.Adapt(cmd)
	}
	out, err := c.run(ctx, op, slot, sent, true)
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != "" {
		return p.explain(cmd, outputError(op, slot, sent, out))
	}
	return nil
}

// Get returns one disk, or ErrNotFound.
func (c *SSHClient) Get(ctx context.Context, slot string) (*Disk, error) {
	if err := c.v.slot(slot); err != nil {
		return nil, &Error{Op: "get", Slot: slot, Err: err}
	}
	rc, err := c.reads(ctx)
	if err != nil {
		return nil, err
	}
	cmd, err := rc.disk(slot)
	if err != nil {
		return nil, &Error{Op: "get", Slot: slot, Err: err}
	}
	items, err := c.read(ctx, "get", slot, rc, cmd)
	if err != nil {
		return nil, err
	}
	for _, m := range items {
		if m["slot"] != slot {
			continue
		}
		d, err := DiskFromFields(m)
		if err != nil {
			return nil, &Error{Op: "get", Slot: slot, Command: cmd, Err: err}
		}
		return &d, nil
	}
	return nil, &Error{Op: "get", Slot: slot, Command: cmd, Err: ErrNotFound}
}

// Create adds a file-backed disk exported over NVMe/TCP in one command,
// with mount-filesystem=no: RouterOS must never mount the filesystem a host
// formats inside the disk.
func (c *SSHClient) Create(ctx context.Context, r CreateRequest) error {
	const op = "create"
	if err := c.v.slot(r.Slot); err != nil {
		return &Error{Op: op, Slot: r.Slot, Err: err}
	}
	fp, err := c.v.filePath(r.FilePath, r.Slot)
	if err != nil {
		return &Error{Op: op, Slot: r.Slot, Err: err}
	}
	r.FilePath = fp
	if err := firstErr(validSize(r.Size), validPort(r.Port), validNQN(r.NQN)); err != nil {
		return &Error{Op: op, Slot: r.Slot, Err: err}
	}
	cmd, err := cmdAdd(r)
	if err != nil {
		return &Error{Op: op, Slot: r.Slot, Err: err}
	}
	return c.write(ctx, op, r.Slot, cmd)
}

// SetExport (re)sets a disk's NVMe/TCP export: export on, port and NQN,
// and mount-filesystem=no (see Create).
func (c *SSHClient) SetExport(ctx context.Context, r ExportRequest) error {
	const op = "set-export"
	if err := firstErr(c.v.slot(r.Slot), validPort(r.Port), validNQN(r.NQN)); err != nil {
		return &Error{Op: op, Slot: r.Slot, Err: err}
	}
	cmd, err := cmdSetExport(r)
	if err != nil {
		return &Error{Op: op, Slot: r.Slot, Err: err}
	}
	return c.write(ctx, op, r.Slot, cmd)
}

// Grow sets a larger file size. It reads the current size first and refuses
// to shrink (ErrShrink) without sending anything; equal size is a no-op.
func (c *SSHClient) Grow(ctx context.Context, slot string, size int64) error {
	const op = "grow"
	if err := firstErr(c.v.slot(slot), validSize(size)); err != nil {
		return &Error{Op: op, Slot: slot, Err: err}
	}
	d, err := c.Get(ctx, slot)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			relabelled := *e
			relabelled.Op = op
			return &relabelled
		}
		return err
	}
	switch {
	case size < d.Size:
		return &Error{Op: op, Slot: slot, Err: fmt.Errorf("%w: %d bytes is less than the current %d", ErrShrink, size, d.Size)}
	case size == d.Size:
		return nil
	}
	cmd, err := cmdGrow(slot, size)
	if err != nil {
		return &Error{Op: op, Slot: slot, Err: err}
	}
	return c.write(ctx, op, slot, cmd)
}

// Delete removes the disk, then its file (RouterOS keeps the file when a
// disk is removed). A missing disk or file is not an error.
func (c *SSHClient) Delete(ctx context.Context, slot, filePath string) error {
	const op = "delete"
	if err := c.v.slot(slot); err != nil {
		return &Error{Op: op, Slot: slot, Err: err}
	}
	fp, err := c.v.filePath(filePath, slot)
	if err != nil {
		return &Error{Op: op, Slot: slot, Err: err}
	}
	cmd, err := cmdRemoveDisk(slot)
	if err != nil {
		return &Error{Op: op, Slot: slot, Err: err}
	}
	if err := c.write(ctx, op, slot, cmd); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return c.removeFile(ctx, op, slot, fp)
}

// RemoveFile removes a leftover <BasePath>/<slot>.img file. A missing file
// is not an error.
func (c *SSHClient) RemoveFile(ctx context.Context, path string) error {
	const op = "remove-file"
	fp, err := c.v.leftoverFile(path)
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	return c.removeFile(ctx, op, "", fp)
}

func (c *SSHClient) removeFile(ctx context.Context, op, slot, fp string) error {
	cmd, err := cmdRemoveFile(fp)
	if err != nil {
		return &Error{Op: op, Slot: slot, Err: err}
	}
	if err := c.write(ctx, op, slot, cmd); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// Capacity returns the size and free space of the pool holding BasePath.
func (c *SSHClient) Capacity(ctx context.Context) (Capacity, error) {
	rc, err := c.reads(ctx)
	if err != nil {
		return Capacity{}, err
	}
	cmd := rc.pool()
	items, err := c.read(ctx, "capacity", "", rc, cmd)
	if err != nil {
		return Capacity{}, err
	}
	if len(items) == 0 {
		return Capacity{}, &Error{Op: "capacity", Command: cmd, Err: fmt.Errorf("%w: no disk mounted at the pool of %q", ErrNotFound, c.v.base)}
	}
	p, err := CapacityFromFields(items[0])
	if err != nil {
		return Capacity{}, &Error{Op: "capacity", Command: cmd, Err: err}
	}
	return p, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
