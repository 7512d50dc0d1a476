package rds_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/rds/sim"
)

// seedSpread adds n managed disks whose slots start with every hex digit
// after the prefix (as pvc-<uuid> do), plus slots given as is.
func seedSpread(t *testing.T, srv *sim.Server, n int, extra ...string) []string {
	t.Helper()
	var slots []string
	for i := range n {
		slots = append(slots, fmt.Sprintf("%s%x%d", prefix, i%16, i/16))
	}
	slots = append(slots, extra...)
	var b strings.Builder
	for i, s := range slots {
		fmt.Fprintf(&b, "/disk add type=file file-path=%s/%s.img file-size=1048576 slot=%q nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn=%q\n",
			base, s, s, nqnPfx+s)
		if i%200 == 199 || i == len(slots)-1 {
			if out := srv.Exec(b.String()); out != "" {
				t.Fatalf("seed: %s", out)
			}
			b.Reset()
		}
	}
	return slots
}

// handDisk adds an exported disk outside the base path.
func handDisk(t *testing.T, srv *sim.Server, slot string) {
	t.Helper()
	if out := srv.Exec(`/disk add type=file file-path=storage-pool/` + slot + `.img file-size=1048576 slot="` + slot +
		`" nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn="nqn.x:` + slot + `"`); out != "" {
		t.Fatalf("add %s: %s", slot, out)
	}
}

// listCommands are the List commands the simulator received.
func listCommands(srv *sim.Server) []string {
	var cmds []string
	for _, c := range srv.Commands() {
		if strings.HasPrefix(c, `:put "##rds-reconcile:disks`) {
			cmds = append(cmds, c)
		}
	}
	return cmds
}

func slotsOf(ds []rds.Disk) []string {
	var s []string
	for _, d := range ds {
		s = append(s, d.Slot)
	}
	slices.Sort(s)
	return s
}

// A JSON section larger than RouterOS lets one :put print is read in pages
// in the same command, not through print detail; every later List is one
// round trip.
func TestSimListPagesUnderPutCap(t *testing.T) {
	srv := startSim(t, sim.Options{JSON: true})
	want := seedSpread(t, srv, 600, "pvc-zed", "pvc-9tail")
	// Exported disks nobody manages, one with a slot outside [a-z0-9].
	handDisk(t, srv, "hand")
	handDisk(t, srv, "Up")
	slices.Sort(want)
	whole := srv.Exec(`:put [:serialize to=json options=json.no-string-conversion [/disk print detail as-value where slot~"^pvc-"]]`)
	page := srv.Exec(`:put [:serialize to=json options=json.no-string-conversion [/disk print detail as-value where slot~"^[89]"]]`)
	limit := len(whole) / 3
	if len(page) >= limit {
		t.Fatalf("a page (%d bytes) does not fit a third of the whole (%d bytes)", len(page), len(whole))
	}
	srv.SetFaults(sim.Faults{MaxPutBytes: limit})
	c := newClient(t, clientConfig(t, srv))
	ctx := ctxT(t)
	for i := range 3 {
		rt := c.RoundTrips()
		inv, err := c.List(ctx)
		if err != nil {
			t.Fatalf("List %d: %v", i, err)
		}
		if got := slotsOf(inv.Disks); !slices.Equal(got, want) {
			t.Fatalf("List %d: %d disks, want %d", i, len(got), len(want))
		}
		if got := slotsOf(inv.Exports); !slices.Equal(got, []string{"Up", "hand"}) {
			t.Fatalf("List %d: exports %v", i, got)
		}
		if len(inv.Files) != len(want) || inv.Pool == nil {
			t.Fatalf("List %d: %d files, pool %v", i, len(inv.Files), inv.Pool)
		}
		if i > 0 && c.RoundTrips()-rt != 1 {
			t.Errorf("List %d: %d round trips, want 1", i, c.RoundTrips()-rt)
		}
	}
	cmds := listCommands(srv)
	for i, cmd := range cmds {
		if !strings.Contains(cmd, ":serialize") || strings.Contains(cmd, " print detail where") {
			t.Errorf("List command %d fell back to print detail: %.120s", i, cmd)
		}
	}
	// The first tries the single section, is cut and pages; then pages.
	if len(cmds) != 4 || strings.Contains(cmds[0], ":disks:0") {
		t.Fatalf("%d list commands; first %.80s", len(cmds), cmds[0])
	}
	for _, cmd := range cmds[1:] {
		if !strings.Contains(cmd, `:put "##rds-reconcile:disks:0"`) {
			t.Errorf("not paged: %.80s", cmd)
		}
	}
}

// More than the threshold of disks pages the next List even when nothing
// is cut; the listing is the same.
func TestSimListPagesLargeInventory(t *testing.T) {
	srv := startSim(t, sim.Options{JSON: true})
	want := seedSpread(t, srv, 300, "pvc-Up")
	slices.Sort(want)
	// Slots at every edge of the export pages: each a proper prefix of
	// the slot prefix, and parting from it at each character.
	for _, s := range []string{"p", "pv", "pvc", "hand", "px", "pvx", "pvcx"} {
		handDisk(t, srv, s)
	}
	c := newClient(t, clientConfig(t, srv))
	ctx := ctxT(t)
	first, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rt := c.RoundTrips()
	second, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.RoundTrips()-rt != 1 {
		t.Errorf("%d round trips, want 1", c.RoundTrips()-rt)
	}
	if !slices.Equal(slotsOf(first.Disks), want) || !slices.Equal(slotsOf(second.Disks), want) ||
		len(second.Files) != len(want)-1 || second.Pool == nil || *second.Pool != *first.Pool {
		t.Fatalf("paged listing differs: %d/%d disks, %d files", len(first.Disks), len(second.Disks), len(second.Files))
	}
	if !reflect.DeepEqual(first, second) {
		t.Fatalf("paged listing differs from the single one")
	}
	if got := slotsOf(second.Exports); !slices.Equal(got, []string{"hand", "p", "pv", "pvc", "pvcx", "pvx", "px"}) {
		t.Fatalf("exports %v", got)
	}
	cmds := listCommands(srv)
	if len(cmds) != 2 || strings.Contains(cmds[0], ":disks:0") || !strings.Contains(cmds[1], ":disks:0") {
		t.Fatalf("list commands: %d, first paged %v", len(cmds), len(cmds) > 0 && strings.Contains(cmds[0], ":disks:0"))
	}
}

// Without a slot prefix the pages cover every slot, those outside
// [a-z0-9] too, and the client keeps only file disks under the base path.
func TestSimListPagesNoPrefix(t *testing.T) {
	srv := startSim(t, sim.Options{JSON: true})
	want := seedSpread(t, srv, 300, "Zed", "_x")
	handDisk(t, srv, "hand")
	slices.Sort(want)
	cfg := clientConfig(t, srv)
	cfg.SlotPrefix = ""
	c := newClient(t, cfg)
	ctx := ctxT(t)
	for i := range 2 {
		inv, err := c.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := slotsOf(inv.Disks); !slices.Equal(got, want) {
			t.Fatalf("List %d: %d disks, want %d", i, len(got), len(want))
		}
		if got := slotsOf(inv.Exports); !slices.Equal(got, []string{"hand"}) {
			t.Fatalf("List %d: exports %v", i, got)
		}
	}
	if cmds := listCommands(srv); len(cmds) != 2 || !strings.Contains(cmds[1], `where slot~"^[^0-9a-z]"`) {
		t.Fatalf("second list not paged")
	}
}

// A small inventory keeps the single command, byte for byte.
func TestSimListSmallCommandUnchanged(t *testing.T) {
	srv := startSim(t, sim.Options{JSON: true})
	seedSpread(t, srv, 5)
	c := newClient(t, clientConfig(t, srv))
	ctx := ctxT(t)
	for range 2 {
		if _, err := c.List(ctx); err != nil {
			t.Fatal(err)
		}
	}
	const ser = `:put [:serialize to=json options=json.no-string-conversion [`
	want := `:put "##rds-reconcile:disks"; ` + ser + `/disk print detail as-value where slot~"^pvc-"]]; ` +
		`:put "##rds-reconcile:files"; ` + ser + `/file print detail as-value where name~"storage-pool/volumes/"]]; ` +
		`:put "##rds-reconcile:pool"; ` + ser + `/disk print detail as-value where mount-point="storage-pool"]]; ` +
		`:put "##rds-reconcile:exports"; ` + ser + `/disk print detail as-value where nvme-tcp-export=yes]]; ` +
		`:put "##rds-reconcile:end"`
	cmds := listCommands(srv)
	if len(cmds) != 2 || cmds[0] != want || cmds[1] != want {
		t.Fatalf("list commands %q\nwant twice %q", cmds, want)
	}
}
