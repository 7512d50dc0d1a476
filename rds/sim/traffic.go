package sim

import (
	"hash/fnv"
	"strconv"
	"strings"
	"time"
)

// trafficRec is one disk's I/O as /disk monitor-traffic reports it:
// counters that only grow, kept in state.json so they survive a restart,
// and the rates of the last interval.
type trafficRec struct {
	ReadOps    int64 `json:"readOps,omitempty"`
	ReadBytes  int64 `json:"readBytes,omitempty"`
	WriteOps   int64 `json:"writeOps,omitempty"`
	WriteBytes int64 `json:"writeBytes,omitempty"`
	FlushOps   int64 `json:"flushOps,omitempty"`
	// At is when the counters were last brought up to date.
	At time.Time `json:"at"`
	// Exported is how long the disk has been exported in all (the memory
	// model's clock: an unexported disk has no I/O).
	Exported time.Duration `json:"exported,omitempty"`
	// Allocated and Modified are what a file backend last showed of the
	// file (FileUsage); growth of either counts as writes.
	Allocated int64     `json:"allocated,omitempty"`
	Modified  time.Time `json:"modified"`

	// Rates of the last interval, per second.
	readOpsRate, readRate, writeOpsRate, writeRate int64
}

// Memory model constants: the size of one simulated I/O and how many
// reads each disk does per write.
const (
	modelIOSize      = 16 << 10
	modelReadPerWrit = 2
	// fileWriteIO is the size one observed write counts for when a file
	// backend sees the file change without growing: the smallest page.
	fileWriteIO = 4 << 10
	// fileOpSize is the size of one write op when a file's allocation
	// grows: the kernel target's usual largest transfer.
	fileOpSize = 128 << 10
)

// modelWriteOps is the memory model's steady write rate of a disk, in ops
// per second: 20 to 99, fixed by the slot name so runs repeat.
func modelWriteOps(slot string) int64 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(slot))
	return 20 + int64(h.Sum32()%80)
}

// advance brings d's counters up to now. With a file backend they follow
// the file (allocation growth and writes seen through its mtime); without
// one (memory) they follow a deterministic model: a steady rate per disk
// while it is exported. Counters never go back, whatever the clock does.
func (in *interp) advance(d *diskRec, now time.Time) {
	t := d.Traffic
	if t == nil {
		t = &trafficRec{At: now}
		d.Traffic = t
		in.sampleFile(d, t)
		return
	}
	dt := now.Sub(t.At)
	if dt < 0 {
		dt = 0
	}
	prev := *t
	if ub, ok := in.s.backend.(usageBackend); ok {
		if u, err := ub.Usage(d.FilePath); err == nil {
			if grown := u.Allocated - t.Allocated; grown > 0 {
				t.WriteBytes += grown
				t.WriteOps += (grown + fileOpSize - 1) / fileOpSize
			} else if u.Modified.After(t.Modified) {
				t.WriteBytes += fileWriteIO
				t.WriteOps++
			}
			if u.Modified.After(t.Modified) {
				t.FlushOps++
			}
			t.Allocated, t.Modified = u.Allocated, u.Modified
		}
	} else if d.Export && !d.Disabled {
		t.Exported += dt
		w := modelWriteOps(d.Slot)
		secs := t.Exported.Nanoseconds()
		t.WriteOps = w * secs / 1e9
		t.WriteBytes = t.WriteOps * modelIOSize
		t.ReadOps = modelReadPerWrit * t.WriteOps
		t.ReadBytes = t.ReadOps * modelIOSize
		t.FlushOps = secs / 1e9
	}
	t.At = now
	if dt > 0 {
		per := func(a, b int64) int64 { return (a - b) * int64(time.Second) / int64(dt) }
		t.readOpsRate = per(t.ReadOps, prev.ReadOps)
		t.readRate = per(t.ReadBytes, prev.ReadBytes)
		t.writeOpsRate = per(t.WriteOps, prev.WriteOps)
		t.writeRate = per(t.WriteBytes, prev.WriteBytes)
	}
}

// sampleFile takes a file backend's first look at a new disk's file, so
// only later changes count as writes (a copy's data was not written by
// its host).
func (in *interp) sampleFile(d *diskRec, t *trafficRec) {
	if ub, ok := in.s.backend.(usageBackend); ok {
		if u, err := ub.Usage(d.FilePath); err == nil {
			t.Allocated, t.Modified = u.Allocated, u.Modified
		}
	}
}

// monitorFields are the rows of /disk monitor-traffic, in the order of an
// RDS capture (rds-csi's TestParseDiskMetrics, "full output with active
// writes"). Times, merges, discards and in-flight ops are not simulated:
// they print as zero.
func monitorFields(slot string, t trafficRec) [][2]string {
	n := thousands
	ms := func(v int64) string { return strconv.FormatInt(v, 10) + "ms" }
	return [][2]string{
		{"slot", slot},
		{"read-ops", n(t.ReadOps)},
		{"read-ops-per-second", n(t.readOpsRate)},
		{"read-bytes", n(t.ReadBytes)},
		{"read-rate", bitRate(t.readRate * 8)},
		{"read-merges", n(0)},
		{"read-time", ms(0)},
		{"write-ops", n(t.WriteOps)},
		{"write-ops-per-second", n(t.writeOpsRate)},
		{"write-bytes", n(t.WriteBytes)},
		{"write-rate", bitRate(t.writeRate * 8)},
		{"write-merges", n(0)},
		{"write-time", ms(0)},
		{"in-flight-ops", n(0)},
		{"active-time", ms(0)},
		{"wait-time", ms(0)},
		{"discard-ops", n(0)},
		{"discard-bytes", n(0)},
		{"discard-merges", n(0)},
		{"discard-time", ms(0)},
		{"flush-ops", n(t.FlushOps)},
		{"flush-time", ms(0)},
	}
}

// bitRate prints bits per second as RouterOS prints rates: "0bps",
// "950bps", "12.8Mbps" (decimal units, one decimal above 1000).
func bitRate(bps int64) string {
	if bps < 1000 {
		return strconv.FormatInt(max(bps, 0), 10) + "bps"
	}
	v := float64(bps)
	units := []string{"kbps", "Mbps", "Gbps", "Tbps"}
	u := -1
	for v >= 1000 && u < len(units)-1 {
		v /= 1000
		u++
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + units[u]
}

// renderMonitor prints one monitor sample the way RouterOS prints a
// monitor command: a row per field, names right-aligned before ": ", and
// a column per monitored item, each right-aligned to its widest value (the
// capture has one column; two spaces between columns are assumed).
func renderMonitor(b *strings.Builder, cols [][][2]string) {
	if len(cols) == 0 {
		return
	}
	nameW := 0
	for _, f := range cols[0] {
		nameW = max(nameW, len(f[0]))
	}
	nameW += 2
	widths := make([]int, len(cols))
	for i, c := range cols {
		for _, f := range c {
			widths[i] = max(widths[i], len(f[1]))
		}
	}
	for r, f := range cols[0] {
		b.WriteString(strings.Repeat(" ", nameW-len(f[0])))
		b.WriteString(f[0])
		b.WriteString(":")
		for i, c := range cols {
			if i == 0 {
				b.WriteString(" ")
			} else {
				b.WriteString("  ")
			}
			v := c[r][1]
			b.WriteString(strings.Repeat(" ", widths[i]-len(v)))
			b.WriteString(v)
		}
		b.WriteString("\n")
	}
}
