package rds

// List: the whole inventory in one command, split at its section markers,
// read in pages when it is large (see listPageThreshold).

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// List reads managed disks, the other exported disks (Exports), .img files
// under BasePath and pool capacity in one round trip (plus, once per
// connection, the format probe).
//
// A large inventory is read in pages (see listPageThreshold): still one
// command, one :put per page, so a cap RouterOS may put on the string one
// :put prints cuts no JSON.
func (c *SSHClient) List(ctx context.Context) (Inventory, error) {
	rc, err := c.reads(ctx)
	if err != nil {
		return Inventory{}, err
	}
	paged := rc.json && (c.bigList.Load() || c.cutJSON.Load())
	inv, err := c.list(ctx, rc, paged)
	if err != nil && rc.json && !paged && errors.Is(err, ErrRejected) {
		// RouterOS may cap the length of a string :put prints, which
		// would cut the JSON of a large inventory: read it in pages from
		// now on.
		c.log.Warn("rds JSON listing unusable; listing in pages for this client", "err", err)
		c.cutJSON.Store(true)
		paged = true
		inv, err = c.list(ctx, rc, paged)
	}
	if err != nil && rc.json && errors.Is(err, ErrRejected) {
		// Even a page is unusable. `print detail` has no such limit: use
		// it from now on.
		c.log.Warn("rds JSON listing unusable; falling back to print detail for this client", "err", err)
		c.jsonOff.Store(true)
		rc.json = false
		return c.list(ctx, rc, false)
	}
	return inv, err
}

// pageItems parses the section mark, or its pages mark:0, mark:1, ... in
// order, and merges the pages' items, dropping repeats (by .id, else slot
// and name).
func pageItems(op, cmd string, sections map[string]string, mark string, asJSON bool) ([]map[string]string, error) {
	if text, ok := sections[mark]; ok {
		return parseSection(op, "", cmd, text, asJSON)
	}
	var all []map[string]string
	seen := map[string]bool{}
	for i := 0; ; i++ {
		text, ok := sections[mark+":"+strconv.Itoa(i)]
		if !ok {
			break
		}
		items, err := parseSection(op, "", cmd, text, asJSON)
		if err != nil {
			return nil, err
		}
		for _, m := range items {
			key := m[".id"]
			if key == "" {
				key = m["slot"] + "\x00" + m["name"] + "\x00" + m["file-path"]
			}
			if seen[key] {
				continue
			}
			seen[key] = true
			all = append(all, m)
		}
	}
	// Back to RouterOS's order (.id "*1A" counts up), as one print gives.
	slices.SortStableFunc(all, func(a, b map[string]string) int {
		x, okx := itemNumber(a)
		y, oky := itemNumber(b)
		switch {
		case okx && oky:
			return cmp.Compare(x, y)
		case okx:
			return -1
		case oky:
			return 1
		}
		return 0
	})
	return all, nil
}

// itemNumber is the number of a RouterOS item id ("*1A" = 26).
func itemNumber(m map[string]string) (uint64, bool) {
	id, ok := strings.CutPrefix(m[".id"], "*")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(id, 16, 64)
	return n, err == nil
}

func (c *SSHClient) list(ctx context.Context, rc readCommands, paged bool) (Inventory, error) {
	cmd := rc.list()
	if paged {
		cmd = rc.listPaged()
	}
	out, err := c.run(ctx, "list", "", cmd, false)
	if err != nil {
		return Inventory{}, err
	}
	sections, err := splitSections(out)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Command = cmd
			return Inventory{}, e
		}
		return Inventory{}, &Error{Op: "list", Command: cmd, Output: capOutput(out), Err: markIf(transportRetryable(err), err)}
	}
	var inv Inventory
	var disks, exports int
	var snapExports []Disk
	if inv.Disks, inv.Snapshots, snapExports, disks, err = c.listDisks(cmd, sections, rc.json); err != nil {
		return Inventory{}, err
	}
	if inv.Files, err = c.listFiles(cmd, sections, rc.json); err != nil {
		return Inventory{}, err
	}
	if inv.Exports, exports, err = c.listExports(cmd, sections, rc.json); err != nil {
		return Inventory{}, err
	}
	// The paged exports section skips the managed prefix: an exported disk
	// in the snapshot name space is taken from the disks section then.
	for _, d := range snapExports {
		if !slices.ContainsFunc(inv.Exports, func(e Disk) bool { return e.Slot == d.Slot }) {
			inv.Exports = append(inv.Exports, d)
		}
	}
	poolItems, err := parseSection("list pool", "", cmd, sections[markPool], rc.json)
	if err != nil {
		return Inventory{}, err
	}
	if rc.json {
		c.bigList.Store(max(disks, exports) > listPageThreshold)
	}
	if len(poolItems) > 0 {
		p, err := CapacityFromFields(poolItems[0])
		if err != nil {
			return Inventory{}, &Error{Op: "list pool", Command: cmd, Err: err}
		}
		inv.Pool = &p
	}
	return inv, nil
}

// listDisks returns the managed disks of the disks section, the snapshots
// among them apart (a snapshot slot, not exported), the disks in the
// snapshot name space that are exported (not ours: someone else's
// exports), and how many items it held (which decides paging next time).
func (c *SSHClient) listDisks(cmd string, sections map[string]string, asJSON bool) (disks, snaps, snapExports []Disk, n int, err error) {
	items, err := pageItems("list disks", cmd, sections, markDisks, asJSON)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	for _, m := range items {
		d, err := DiskFromFields(m)
		if err != nil {
			return nil, nil, nil, 0, &Error{Op: "list disks", Command: cmd, Err: err}
		}
		switch {
		case !c.managed(d):
		case !IsSnapshotSlot(d.Slot, c.v.prefix):
			disks = append(disks, d)
		case !d.Export:
			snaps = append(snaps, d)
		case d.NQN != "":
			snapExports = append(snapExports, d)
		}
	}
	return disks, snaps, snapExports, len(items), nil
}

// listFiles returns the files section's files that could be a leftover
// <BasePath>/<slot>.img.
func (c *SSHClient) listFiles(cmd string, sections map[string]string, asJSON bool) ([]File, error) {
	items, err := pageItems("list files", cmd, sections, markFiles, asJSON)
	if err != nil {
		return nil, err
	}
	var files []File
	for _, m := range items {
		f, err := FileFromFields(m)
		if err != nil {
			return nil, &Error{Op: "list files", Command: cmd, Err: err}
		}
		if _, err := c.v.leftoverFile(f.Name); err == nil {
			files = append(files, f)
		}
	}
	return files, nil
}

// listExports returns the exports section's disks that are not ours but are
// exported with an NQN, and how many items the section held.
func (c *SSHClient) listExports(cmd string, sections map[string]string, asJSON bool) ([]Disk, int, error) {
	items, err := pageItems("list exports", cmd, sections, markExports, asJSON)
	if err != nil {
		return nil, 0, err
	}
	var exports []Disk
	for _, m := range items {
		d, err := DiskFromFields(m)
		if err != nil {
			return nil, 0, &Error{Op: "list exports", Command: cmd, Err: err}
		}
		// A snapshot slot exported is neither a volume nor a snapshot of
		// ours: listed as someone else's export.
		if (!c.managed(d) || IsSnapshotSlot(d.Slot, c.v.prefix)) && d.Export && d.NQN != "" {
			exports = append(exports, d)
		}
	}
	return exports, len(items), nil
}

// managed reports whether d belongs to us: slot prefix when one is set,
// otherwise a file disk under BasePath.
func (c *SSHClient) managed(d Disk) bool {
	if c.v.prefix != "" {
		return strings.HasPrefix(d.Slot, c.v.prefix)
	}
	return d.Type == "file" && strings.HasPrefix(d.FilePath, c.v.base+"/")
}

// splitSections cuts List output at the marker lines.
func splitSections(out string) (map[string]string, error) {
	sections := make(map[string]string, 3)
	cur := ""
	var b strings.Builder
	seenEnd := false
	for _, line := range splitLines(out) {
		if t := strings.TrimSpace(line); isMarker(t) {
			if cur != "" {
				sections[cur] = b.String()
			}
			b.Reset()
			cur = t
			if t == markEnd {
				seenEnd = true
			}
			continue
		}
		if cur == "" {
			if strings.TrimSpace(line) != "" {
				// Text before the first marker: RouterOS refused the
				// script as a whole.
				return nil, outputError("list", "", "", line)
			}
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	if !seenEnd {
		if line := errorLine(b.String()); line != "" {
			return nil, outputError("list", "", "", line)
		}
		return nil, fmt.Errorf("%w: list output truncated (no end marker)", ErrConnection)
	}
	return sections, nil
}
