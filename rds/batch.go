package rds

// Batches: several writes in one command line, so N changes cost one round
// trip instead of N. Each write runs in its own block,
//
//	:do { <command> ; :put "<mark> ok <i>" } on-error={ :put "<mark> err <i>" }
//
// and the batch may end with a read of the disks it touched, between marks.
// <mark> carries a random nonce per batch, so no text a command prints (a
// disk's field, an error) can pass for a result. An item without its mark is
// unknown: it may or may not have run, and the caller must look before
// deciding again; a failed item is run again alone, the normal way, to get
// RouterOS's own error text (on-error does not give it). The scripting
// assumption and its source are in docs/rds.md.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// MaxBatchBytes bounds the command line of one batch. How long an exec
// request RouterOS takes is not documented and was never measured on
// hardware (docs/rds.md); 32 KiB is a guess kept well below the limits
// OpenSSH-era servers use (256 KiB) while still carrying ~100 creates.
const MaxBatchBytes = 32 << 10

// BatchOp is one write of a batch, built from validated values by the
// client's *Op constructors.
type BatchOp struct {
	Op   string // "create", "set-export", "delete", "remove-file"
	Slot string // "" for remove-file
	// cmds run in order in the item's block; the first that fails ends it.
	cmds []string
}

// BatchStatus is how one item of a batch went.
type BatchStatus int

const (
	// BatchUnknown: the item's mark is missing (the answer was cut, the
	// connection dropped, RouterOS refused the script, text nobody expected
	// stood before the mark). It may or may not have run.
	BatchUnknown BatchStatus = iota
	// BatchOK: the item's commands all ran without error.
	BatchOK
	// BatchFailed: one of the item's commands failed; what ran before it
	// in the same item stays done. Run it again alone for the error.
	BatchFailed
)

func (s BatchStatus) String() string {
	switch s {
	case BatchOK:
		return "ok"
	case BatchFailed:
		return "failed"
	}
	return "unknown"
}

// BatchResult is what a batch did, item by item.
type BatchResult struct {
	Status []BatchStatus // one per op, in order
	// Inventory is what the read at the end of the batch showed: the
	// managed disks of the slots asked for and their <BasePath>/<slot>.img
	// files (no pool, no exports). Read says it came back whole for every
	// chunk.
	Inventory Inventory
	Read      bool
	// Sessions is the number of command lines (round trips) sent.
	Sessions int
	// Err is the first error of a chunk that could not be sent or
	// understood (its items stay unknown); nil otherwise.
	Err error
}

// CreateOp is Create as a batch item.
func (c *SSHClient) CreateOp(r CreateRequest) (BatchOp, error) {
	const op = "create"
	if err := c.v.slot(r.Slot); err != nil {
		return BatchOp{}, &Error{Op: op, Slot: r.Slot, Err: err}
	}
	fp, err := c.v.filePath(r.FilePath, r.Slot)
	if err != nil {
		return BatchOp{}, &Error{Op: op, Slot: r.Slot, Err: err}
	}
	r.FilePath = fp
	if err := firstErr(validSize(r.Size), validPort(r.Port), validNQN(r.NQN)); err != nil {
		return BatchOp{}, &Error{Op: op, Slot: r.Slot, Err: err}
	}
	cmd, err := cmdAdd(r)
	if err != nil {
		return BatchOp{}, &Error{Op: op, Slot: r.Slot, Err: err}
	}
	return BatchOp{Op: op, Slot: r.Slot, cmds: []string{cmd}}, nil
}

// SetExportOp is SetExport as a batch item.
func (c *SSHClient) SetExportOp(r ExportRequest) (BatchOp, error) {
	const op = "set-export"
	if err := firstErr(c.v.slot(r.Slot), validPort(r.Port), validNQN(r.NQN)); err != nil {
		return BatchOp{}, &Error{Op: op, Slot: r.Slot, Err: err}
	}
	cmd, err := cmdSetExport(r)
	if err != nil {
		return BatchOp{}, &Error{Op: op, Slot: r.Slot, Err: err}
	}
	return BatchOp{Op: op, Slot: r.Slot, cmds: []string{cmd}}, nil
}

// DeleteOp is Delete as a batch item: the disk, then its file. [find] of a
// missing disk or file selects nothing, so both are no-ops then, as in
// Delete.
func (c *SSHClient) DeleteOp(slot, filePath string) (BatchOp, error) {
	const op = "delete"
	if err := c.v.slot(slot); err != nil {
		return BatchOp{}, &Error{Op: op, Slot: slot, Err: err}
	}
	fp, err := c.v.filePath(filePath, slot)
	if err != nil {
		return BatchOp{}, &Error{Op: op, Slot: slot, Err: err}
	}
	disk, err := cmdRemoveDisk(slot)
	if err != nil {
		return BatchOp{}, &Error{Op: op, Slot: slot, Err: err}
	}
	file, err := cmdRemoveFile(fp)
	if err != nil {
		return BatchOp{}, &Error{Op: op, Slot: slot, Err: err}
	}
	return BatchOp{Op: op, Slot: slot, cmds: []string{disk, file}}, nil
}

// RemoveFileOp is RemoveFile as a batch item.
func (c *SSHClient) RemoveFileOp(path string) (BatchOp, error) {
	const op = "remove-file"
	fp, err := c.v.leftoverFile(path)
	if err != nil {
		return BatchOp{}, &Error{Op: op, Err: err}
	}
	cmd, err := cmdRemoveFile(fp)
	if err != nil {
		return BatchOp{}, &Error{Op: op, Err: err}
	}
	return BatchOp{Op: op, cmds: []string{cmd}}, nil
}

// Batch runs ops in as few command lines as MaxBatchBytes allows (usually
// one), in order, and, when read names slots, reads those disks at the end
// of each line. Chunks run one after the other, so the order holds across
// them. Batch fails as a whole only when nothing could be built or ctx
// ended before anything was sent; otherwise every item has a status and a
// chunk that could not be sent or understood leaves its items unknown
// (BatchResult.Err says why).
func (c *SSHClient) Batch(ctx context.Context, ops []BatchOp, read []string) (BatchResult, error) {
	return c.batch(ctx, ops, read, false)
}

// BatchUnordered is Batch for items that need no order between them
// (each volume's one write of an apply phase): when they take several
// lines, the lines are sent side by side within MaxSessions, so N writes
// cost about N/(lines per session slot) round trips of wall time.
func (c *SSHClient) BatchUnordered(ctx context.Context, ops []BatchOp, read []string) (BatchResult, error) {
	return c.batch(ctx, ops, read, true)
}

func (c *SSHClient) batch(ctx context.Context, ops []BatchOp, read []string, unordered bool) (BatchResult, error) {
	res := BatchResult{Status: make([]BatchStatus, len(ops)), Read: len(read) > 0}
	if len(ops) == 0 && len(read) == 0 {
		return res, nil
	}
	for _, s := range read {
		if err := c.v.slot(s); err != nil {
			return res, &Error{Op: "batch", Slot: s, Err: err}
		}
	}
	var p Profile
	probed := false
	for _, o := range ops {
		if len(o.cmds) == 0 {
			return res, &Error{Op: "batch", Slot: o.Slot, Err: fmt.Errorf("%w: empty batch item %q (build items with the client's *Op)", ErrInvalid, o.Op)}
		}
		for _, cmd := range o.cmds {
			if needsProfile(cmd) && !probed {
				var err error
				if p, err = c.profile(ctx); err != nil {
					return res, err
				}
				probed = true
			}
		}
	}
	var rc readCommands
	if len(read) > 0 {
		var err error
		if rc, err = c.reads(ctx); err != nil {
			return res, err
		}
	}
	nonce, err := batchNonce()
	if err != nil {
		return res, &Error{Op: "batch", Err: err}
	}
	chunks := chunkBatch(ops, read, p, nonce, rc)
	outs := make([]chunkOut, len(chunks))
	if unordered && len(chunks) > 1 {
		// The caller's items need no order between them: the lines go
		// side by side, within the session slots (MaxSessions).
		var wg sync.WaitGroup
		for i := range chunks {
			wg.Go(func() { outs[i] = c.runChunk(ctx, chunks[i], nonce, rc) })
		}
		wg.Wait()
	} else {
		for i := range chunks {
			if err := ctx.Err(); err != nil {
				if i == 0 {
					return res, c.ctxError("batch", "", "", err, false)
				}
				outs[i] = chunkOut{err: err}
				continue
			}
			outs[i] = c.runChunk(ctx, chunks[i], nonce, rc)
		}
	}
	for i, o := range outs {
		if o.sent {
			res.Sessions++
		}
		copy(res.Status[chunks[i].first:], o.status)
		res.Inventory.Disks = append(res.Inventory.Disks, o.inv.Disks...)
		res.Inventory.Files = append(res.Inventory.Files, o.inv.Files...)
		if len(chunks[i].read) > 0 && !o.read {
			res.Read = false
		}
		if o.err != nil && res.Err == nil {
			res.Err = o.err
		}
	}
	return res, nil
}

// chunkOut is what one line of a batch did.
type chunkOut struct {
	sent   bool
	status []BatchStatus // nil: all unknown
	inv    Inventory
	read   bool // the chunk's read came back whole
	err    error
}

// runChunk sends one line of a batch and reads its answer.
func (c *SSHClient) runChunk(ctx context.Context, ch batchChunk, nonce string, rc readCommands) chunkOut {
	o := chunkOut{sent: true}
	out, err := c.run(ctx, "batch", "", ch.script, true)
	if err != nil {
		o.err = err
		return o
	}
	st, sections, whole := parseBatch(out, nonce, ch.first, len(ch.ops))
	o.status = st
	if len(ch.read) == 0 {
		return o
	}
	if !whole {
		o.err = &Error{Op: "batch", Command: ch.script, Output: capOutput(out), Err: fmt.Errorf("%w: batch answer cut before its end mark", ErrConnection)}
		return o
	}
	if err := c.batchInventory(&o.inv, ch, sections, rc.json); err != nil {
		o.err = err
		o.inv = Inventory{}
		return o
	}
	o.read = true
	return o
}

// batchInventory adds the disks and files a chunk's read showed to inv:
// managed disks of the slots read, and their leftover-file names.
func (c *SSHClient) batchInventory(inv *Inventory, ch batchChunk, sections map[string]string, asJSON bool) error {
	items, err := parseSection("batch read", "", ch.script, sections["read"], asJSON)
	if err != nil {
		return err
	}
	for _, m := range items {
		d, err := DiskFromFields(m)
		if err != nil {
			return &Error{Op: "batch read", Command: ch.script, Err: err}
		}
		if c.managed(d) && containsString(ch.read, d.Slot) {
			inv.Disks = append(inv.Disks, d)
		}
	}
	items, err = parseSection("batch read files", "", ch.script, sections["files"], asJSON)
	if err != nil {
		return err
	}
	for _, m := range items {
		f, err := FileFromFields(m)
		if err != nil {
			return &Error{Op: "batch read files", Command: ch.script, Err: err}
		}
		if _, err := c.v.leftoverFile(f.Name); err == nil {
			inv.Files = append(inv.Files, f)
		}
	}
	return nil
}

// ListScope reads the disks of slots and their <BasePath>/<slot>.img files
// in one command line, and nothing else (no pool, no exports, no other
// disk): the observation of a reconcile scoped to these volumes.
func (c *SSHClient) ListScope(ctx context.Context, slots []string) (Inventory, error) {
	if len(slots) == 0 {
		return Inventory{}, nil
	}
	res, err := c.Batch(ctx, nil, slots)
	if err != nil {
		return Inventory{}, err
	}
	if !res.Read {
		if res.Err != nil {
			return Inventory{}, res.Err
		}
		return Inventory{}, &Error{Op: "list scope", Err: fmt.Errorf("%w: no whole answer", ErrConnection)}
	}
	return res.Inventory, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// batchNonce is 8 random bytes in hex: a command's output cannot guess it.
func batchNonce() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("batch nonce: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// batchMark is the mark of one batch; lines are "<mark> ok <i>",
// "<mark> err <i>", "<mark> read" and "<mark> end".
func batchMark(nonce string) string { return "##rds-reconcile:batch:" + nonce }

// batchChunk is one command line of a batch.
type batchChunk struct {
	first  int // index of ops[0] in the whole batch
	ops    []BatchOp
	read   []string
	script string
}

// batchItem renders op i as one :do block; its commands are adapted to the
// release (the NQN property's name).
func batchItem(mark string, i int, op BatchOp, p Profile) string {
	var b strings.Builder
	b.WriteString(":do { ")
	for _, cmd := range op.cmds {
		if needsProfile(cmd) {
			cmd = p.Adapt(cmd)
		}
		b.WriteString(cmd)
		b.WriteString(" ; ")
	}
	n := strconv.Itoa(i)
	b.WriteString(`:put "` + mark + ` ok ` + n + `" } on-error={ :put "` + mark + ` err ` + n + `" }`)
	return b.String()
}

// batchRead renders the read of slots and their files between the read,
// files and end marks.
func batchRead(mark string, slots []string, rc readCommands) string {
	w := make([]string, len(slots))
	f := make([]string, len(slots))
	for i, s := range slots {
		// Validated: slots are [a-z0-9-], the base path [A-Za-z0-9._/-].
		w[i] = `slot="` + s + `"`
		f[i] = `name="` + rc.v.base + "/" + s + `.img"`
	}
	return `:put "` + mark + ` read"; ` + rc.print("/disk", strings.Join(w, " or ")) +
		`; :put "` + mark + ` files"; ` + rc.print("/file", strings.Join(f, " or ")) + `; :put "` + mark + ` end"`
}

// chunkBatch cuts ops into command lines of at most MaxBatchBytes (an item
// longer than that goes alone). Each chunk reads the slots of read that its
// own items touch; slots no item touches are read by the last chunk (a
// chunk of its own when there are no ops).
func chunkBatch(ops []BatchOp, read []string, p Profile, nonce string, rc readCommands) []batchChunk {
	mark := batchMark(nonce)
	// Room kept in each line for the read of its slots and files.
	readRoom, perSlot := 0, 0
	if len(read) > 0 {
		readRoom, perSlot = 512, 32+2*maxSlotLen+len(rc.v.base)
	}
	var chunks []batchChunk
	var items []string
	size := 0
	cur := batchChunk{}
	for i, op := range ops {
		item := batchItem(mark, i, op, p)
		if len(cur.ops) > 0 && size+len(item)+2+readRoom+perSlot*(len(cur.ops)+1) > MaxBatchBytes {
			cur.script = strings.Join(items, "; ")
			chunks = append(chunks, cur)
			cur, items, size = batchChunk{first: i}, nil, 0
		}
		items = append(items, item)
		size += len(item) + 2
		cur.ops = append(cur.ops, op)
	}
	if len(cur.ops) > 0 {
		cur.script = strings.Join(items, "; ")
		chunks = append(chunks, cur)
	}
	if len(read) > 0 && len(chunks) == 0 {
		chunks = append(chunks, batchChunk{})
	}
	done := map[string]bool{}
	for i := range chunks {
		ch := &chunks[i]
		for _, o := range ch.ops {
			if o.Slot != "" && containsString(read, o.Slot) && !done[o.Slot] {
				done[o.Slot] = true
				ch.read = append(ch.read, o.Slot)
			}
		}
		if i == len(chunks)-1 {
			for _, s := range read {
				if !done[s] {
					done[s] = true
					ch.read = append(ch.read, s)
				}
			}
		}
		if len(ch.read) > 0 {
			if ch.script != "" {
				ch.script += "; "
			}
			ch.script += batchRead(mark, ch.read, rc)
		}
	}
	return chunks
}

// parseBatch reads the answer of one chunk of n items numbered from first:
// each item's status, the text of the read's sections ("read": the disks,
// "files") and whether the end mark came (the read is whole). An item is ok or failed only on
// its own mark, in order, with nothing else before it since the previous
// mark (a successful write prints nothing; other text is a sign that
// something unexpected ran); everything else is unknown.
func parseBatch(out, nonce string, first, n int) (status []BatchStatus, sections map[string]string, whole bool) {
	status = make([]BatchStatus, n)
	mark := batchMark(nonce)
	seen := make([]bool, n)
	noise := false
	next := 0 // items before next are decided or lost: marks come in order
	sections = map[string]string{}
	section := "" // the read section being collected
	var rb strings.Builder
	for _, line := range splitLines(out) {
		t := strings.TrimSpace(line)
		rest, isMark := strings.CutPrefix(t, mark+" ")
		if !isMark {
			if section != "" {
				rb.WriteString(line)
				rb.WriteByte('\n')
			} else if t != "" {
				noise = true
			}
			continue
		}
		switch rest {
		case "read", "files", "end":
			if section != "" {
				sections[section] = rb.String()
				rb.Reset()
			}
			whole = rest == "end" && section == "files"
			section = rest
			if rest == "end" {
				section = ""
			}
			continue
		}
		verdict, idx, ok := strings.Cut(rest, " ")
		i, err := strconv.Atoi(idx)
		if !ok || err != nil || (verdict != "ok" && verdict != "err") {
			noise = true
			continue
		}
		i -= first
		if i < 0 || i >= n || i < next || seen[i] {
			// Out of order or repeated: nothing about it can be trusted.
			if i >= 0 && i < n {
				status[i] = BatchUnknown
			}
			noise = true
			continue
		}
		seen[i] = true
		next = i + 1
		switch {
		case noise:
			status[i] = BatchUnknown
		case verdict == "ok":
			status[i] = BatchOK
		default:
			status[i] = BatchFailed
		}
		noise = false
	}
	if section != "" {
		sections[section] = rb.String() // cut: kept for messages only
	}
	return status, sections, whole
}

// The guarded items below make a write conditional on the live state the
// caller assumed, checked by RouterOS in the same line (`:if`), so that one
// session can write and read back without a read before: when the
// assumption does not hold the item does nothing (and still reports ok),
// and the read at the end shows what is there. The caller decides from
// that read, never from the item's status alone.

// fileIs matches a disk's file-path to p: RouterOS prints it with a
// leading '/' (captured output); whether it keeps one given without it is
// unverified, so both are accepted.
func fileIs(p string) string {
	return `(file-path="/` + p + `" or file-path="` + p + `")`
}

// EnsureCreateOp is Create when, and only when, no disk has the slot or
// the NQN and no file is at the path: it never touches or shadows
// anything that exists.
func (c *SSHClient) EnsureCreateOp(r CreateRequest) (BatchOp, error) {
	op, err := c.CreateOp(r)
	if err != nil {
		return BatchOp{}, err
	}
	fp, _ := c.v.filePath(r.FilePath, r.Slot) // validated by CreateOp
	guard := `:if ([:len [/disk find slot="` + r.Slot + `"]] = 0 && [:len [/disk find nvme-tcp-server-nqn="` + r.NQN +
		`"]] = 0 && [:len [/file find name="` + fp + `"]] = 0) do={ ` + op.cmds[0] + ` }`
	op.cmds = []string{guard}
	return op, nil
}

// EnsureDeleteOp is Delete of a disk whose slot, file path and NQN are all
// the managed ones (a disk failing any of them is not removed), then of
// its file, only once no disk uses that path.
func (c *SSHClient) EnsureDeleteOp(slot, filePath, nqn string) (BatchOp, error) {
	const op = "delete"
	if err := firstErr(c.v.slot(slot), validNQN(nqn)); err != nil {
		return BatchOp{}, &Error{Op: op, Slot: slot, Err: err}
	}
	fp, err := c.v.filePath(filePath, slot)
	if err != nil {
		return BatchOp{}, &Error{Op: op, Slot: slot, Err: err}
	}
	file, err := cmdRemoveFile(fp)
	if err != nil {
		return BatchOp{}, &Error{Op: op, Slot: slot, Err: err}
	}
	// Validated: slot [a-z0-9-], path [A-Za-z0-9._/-], NQN [A-Za-z0-9.:_-].
	disk := `/disk remove [find slot="` + slot + `" and ` + fileIs(fp) + ` and nvme-tcp-server-nqn="` + nqn + `"]`
	guard := `:if ([:len [/disk find slot="` + slot + `"]] = 0 && [:len [/disk find ` + fileIs(fp) + `]] = 0) do={ ` + file + ` }`
	return BatchOp{Op: op, Slot: slot, cmds: []string{disk, guard}}, nil
}

// EnsureGrowOp is Grow of the disk with the slot and the managed file path
// when it is smaller than size: RouterOS compares in the same line, so
// it never shrinks, whatever changed since the caller looked.
func (c *SSHClient) EnsureGrowOp(slot, filePath string, size int64) (BatchOp, error) {
	const op = "grow"
	if err := firstErr(c.v.slot(slot), validSize(size)); err != nil {
		return BatchOp{}, &Error{Op: op, Slot: slot, Err: err}
	}
	fp, err := c.v.filePath(filePath, slot)
	if err != nil {
		return BatchOp{}, &Error{Op: op, Slot: slot, Err: err}
	}
	set, err := cmdGrow(slot, size)
	if err != nil {
		return BatchOp{}, &Error{Op: op, Slot: slot, Err: err}
	}
	n := strconv.FormatInt(size, 10)
	guard := `:if ([:len [/disk find slot="` + slot + `" and ` + fileIs(fp) + `]] = 1) do={ :if ([/disk get [find slot="` + slot +
		`"] size] < ` + n + `) do={ ` + set + ` } }`
	return BatchOp{Op: op, Slot: slot, cmds: []string{guard}}, nil
}
