package rds_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/rds/sim"
)

// TestDetailMatchesJSONAcrossWidths renders random disks with the
// simulator's own printer at many console widths and checks that parsing
// `print detail` gives the same disks as parsing its JSON form: the wrap
// heuristics are checked against an independent renderer.
func TestDetailMatchesJSONAcrossWidths(t *testing.T) {
	for seed := range uint64(8) {
		checkDetailMatchesJSON(t, seed)
	}
}

func checkDetailMatchesJSON(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 2))
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-"
	var script strings.Builder
	for i := range 40 {
		n := 1 + rng.IntN(58)
		var b strings.Builder
		for range n {
			b.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		slot := fmt.Sprintf("pvc-%s%d", strings.Trim(b.String(), "-"), i)
		size := 1 + rng.Int64N(1<<34)
		fmt.Fprintf(&script, "/disk add type=file file-path=storage-pool/volumes/%s.img file-size=%d slot=%q nvme-tcp-export=yes nvme-tcp-server-port=%d nvme-tcp-server-nqn=%q\n",
			slot, size, slot, 1+rng.IntN(65535), "nqn.2000-02.com.mikrotik:"+slot)
	}
	for _, width := range []int{16, 17, 19, 20, 21, 23, 24, 26, 28, 31, 32, 36, 40, 47, 55, 64, 80, 100, 132} {
		srv, err := sim.New(sim.Options{Backend: sim.NewMemoryBackend(1 << 50), JSON: true, Width: width})
		if err != nil {
			t.Fatal(err)
		}
		if out := srv.Exec(script.String()); out != "" {
			t.Fatalf("seed: %s", out)
		}
		detail, err := rds.ParseDetail(srv.Exec(`/disk print detail where slot~"^pvc-"`))
		if err != nil {
			t.Fatalf("seed %d width %d: %v", seed, width, err)
		}
		js, err := rds.ParseJSON(srv.Exec(`:put [:serialize to=json [/disk print detail as-value where slot~"^pvc-"]]`))
		if err != nil {
			t.Fatal(err)
		}
		terse, err := rds.ParseTerse(srv.Exec(`/disk print terse where slot~"^pvc-"`))
		if err != nil {
			t.Fatal(err)
		}
		_ = srv.Close()
		if len(detail) != 40 || len(js) != 40 || len(terse) != 40 {
			t.Fatalf("width %d: %d detail items, %d json items, %d terse items", width, len(detail), len(js), len(terse))
		}
		for i := range js {
			a, err1 := rds.DiskFromFields(detail[i])
			b, err2 := rds.DiskFromFields(js[i])
			c, err3 := rds.DiskFromFields(terse[i])
			if err1 != nil || err2 != nil || err3 != nil {
				t.Fatalf("seed %d width %d item %d: %v %v %v", seed, width, i, err1, err2, err3)
			}
			a.Fields, b.Fields, c.Fields = nil, nil, nil
			if !reflect.DeepEqual(a, b) || !reflect.DeepEqual(c, b) {
				t.Errorf("seed %d width %d item %d:\ndetail %+v\nterse  %+v\njson   %+v", seed, width, i, a, c, b)
			}
		}
	}
}
