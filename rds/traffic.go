package rds

// Per-disk I/O counters: /disk monitor-traffic, one command for every
// disk asked, parsed column by column.

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// DiskTraffic is one disk's I/O counters as /disk monitor-traffic prints
// them: totals since the RDS started counting (they only grow until the
// RDS restarts or someone resets them).
type DiskTraffic struct {
	Slot       string `json:"slot"`
	ReadOps    int64  `json:"readOps"`
	ReadBytes  int64  `json:"readBytes"`
	WriteOps   int64  `json:"writeOps"`
	WriteBytes int64  `json:"writeBytes"`
	FlushOps   int64  `json:"flushOps"`
}

// trafficRows are the counter rows read into DiskTraffic; every other row
// (rates, merges, times, discards, in-flight) is ignored.
var trafficRows = map[string]func(*DiskTraffic) *int64{
	"read-ops":    func(t *DiskTraffic) *int64 { return &t.ReadOps },
	"read-bytes":  func(t *DiskTraffic) *int64 { return &t.ReadBytes },
	"write-ops":   func(t *DiskTraffic) *int64 { return &t.WriteOps },
	"write-bytes": func(t *DiskTraffic) *int64 { return &t.WriteBytes },
	"flush-ops":   func(t *DiskTraffic) *int64 { return &t.FlushOps },
}

// cmdTraffic builds `/disk monitor-traffic a,b,c once` from managed slots
// (validated: DNS labels, so a bare list needs no quoting).
func (v validator) cmdTraffic(slots []string) (string, error) {
	for _, s := range slots {
		if err := v.slot(s); err != nil {
			return "", err
		}
	}
	return "/disk monitor-traffic " + strings.Join(slots, ",") + " once", nil
}

// Traffic reads the I/O counters of slots in one round trip (one command
// naming them all), keyed by slot. Slots are managed ones (the slot
// prefix); repeats are asked once; none asks nothing. A slot the RDS does
// not have fails the whole command (`no such item`, ErrNotFound): list
// first and ask for what is there.
func (c *SSHClient) Traffic(ctx context.Context, slots []string) (map[string]DiskTraffic, error) {
	const op = "traffic"
	slots = slices.Compact(slices.Sorted(slices.Values(slots)))
	if len(slots) == 0 {
		return map[string]DiskTraffic{}, nil
	}
	cmd, err := c.v.cmdTraffic(slots)
	if err != nil {
		return nil, &Error{Op: op, Err: err}
	}
	out, err := c.run(ctx, op, "", cmd, false)
	if err != nil {
		return nil, err
	}
	if line := errorLine(out); line != "" {
		return nil, outputError(op, "", cmd, line)
	}
	ts, err := ParseTraffic(out)
	if err != nil {
		return nil, &Error{Op: op, Command: cmd, Output: capOutput(out), Err: err}
	}
	byslot := make(map[string]DiskTraffic, len(ts))
	for _, t := range ts {
		byslot[t.Slot] = t
	}
	for _, s := range slots {
		if _, ok := byslot[s]; !ok {
			return nil, &Error{Op: op, Command: cmd, Output: capOutput(out), Err: fmt.Errorf("%w: no column for slot %s", ErrRejected, s)}
		}
	}
	return byslot, nil
}

// ParseTraffic reads one sample of /disk monitor-traffic: a row per field,
// the name right-aligned before ':', then a column per disk, each value
// right-aligned in its column. Values carry thousands separators (a space:
// "30 801 920"), so columns are cut where the slot row's values end, not
// at spaces. Rows it does not know are skipped; a counter that is not a
// whole number is an error.
func ParseTraffic(out string) ([]DiskTraffic, error) {
	var lines []string
	for l := range strings.SplitSeq(strings.ReplaceAll(out, "\r", ""), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return nil, nil
	}
	name, vals, ok := strings.Cut(lines[0], ":")
	if !ok || strings.TrimSpace(name) != "slot" {
		return nil, fmt.Errorf("%w: monitor-traffic output does not start with a slot row: %q", ErrRejected, clip(lines[0]))
	}
	colon := len(name)
	// The right edge of each column, from the slot row (slots have no spaces).
	var edges []int
	var cols []DiskTraffic
	for i := 0; i < len(vals); {
		for i < len(vals) && vals[i] == ' ' {
			i++
		}
		if i == len(vals) {
			break
		}
		j := i
		for j < len(vals) && vals[j] != ' ' {
			j++
		}
		cols = append(cols, DiskTraffic{Slot: vals[i:j]})
		edges = append(edges, colon+1+j)
		i = j
	}
	for _, l := range lines[1:] {
		if len(l) <= colon || l[colon] != ':' {
			return nil, fmt.Errorf("%w: monitor-traffic row not aligned with the slot row: %q", ErrRejected, clip(l))
		}
		field := strings.TrimSpace(l[:colon])
		ptr, known := trafficRows[field]
		if !known {
			continue
		}
		start := colon + 1
		for k, end := range edges {
			if end > len(l) {
				return nil, fmt.Errorf("%w: monitor-traffic row %s has no value for %s: %q", ErrRejected, field, cols[k].Slot, clip(l))
			}
			v := strings.ReplaceAll(strings.TrimSpace(l[start:end]), " ", "")
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: monitor-traffic %s of %s: %q is not a count", ErrRejected, field, cols[k].Slot, l[start:end])
			}
			*ptr(&cols[k]) = n
			start = end
		}
	}
	return cols, nil
}
