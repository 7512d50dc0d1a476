package rds_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/rds/sim"
)

// benchSim serves a simulator seeded with n managed disks.
func benchSim(b *testing.B, n int, json bool) *sim.Server {
	b.Helper()
	srv := startSim(b, sim.Options{JSON: json})
	if err := srv.SeedDisks(n, prefix); err != nil {
		b.Fatal(err)
	}
	return srv
}

// BenchmarkList lists 10, 1,000 and 10,000 disks through the simulator over
// SSH on loopback, with JSON (RouterOS >= 7.13) and with `print detail`.
// roundtrips/op must be 1 at every size.
func BenchmarkList(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		for _, format := range []string{"json", "detail"} {
			b.Run(fmt.Sprintf("disks=%d/%s", n, format), func(b *testing.B) {
				srv := benchSim(b, n, format == "json")
				c := newClient(b, clientConfig(b, srv))
				ctx := context.Background()
				// Connect and probe the format outside the measurement.
				if inv, err := c.List(ctx); err != nil || len(inv.Disks) != n {
					b.Fatalf("List: %d disks, %v", len(inv.Disks), err)
				}
				rt := c.RoundTrips()
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if _, err := c.List(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(c.RoundTrips()-rt)/float64(b.N), "roundtrips/op")
			})
		}
	}
}

// BenchmarkParse1000 is the parse time of 1,000 disks as the simulator
// prints them, without SSH.
func BenchmarkParse1000(b *testing.B) {
	srv, err := sim.New(sim.Options{Backend: sim.NewMemoryBackend(1 << 40), JSON: true})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	if err := srv.SeedDisks(1000, prefix); err != nil {
		b.Fatal(err)
	}
	detail := srv.Exec(`/disk print detail where slot~"^pvc-"`)
	jsonOut := srv.Exec(`:put [:serialize to=json [/disk print detail as-value where slot~"^pvc-"]]`)
	for _, tc := range []struct {
		name  string
		out   string
		parse func(string) ([]map[string]string, error)
	}{
		{"detail", detail, rds.ParseDetail},
		{"json", jsonOut, rds.ParseJSON},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.out)))
			b.ReportAllocs()
			for b.Loop() {
				items, err := tc.parse(tc.out)
				if err != nil || len(items) != 1000 {
					b.Fatalf("%d items, %v", len(items), err)
				}
				for _, m := range items {
					if _, err := rds.DiskFromFields(m); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkHandshakesPer100Commands runs 100 commands per op on one client
// and reports SSH handshakes per op: it must be 1 (one connection reused),
// 0 after the first op.
func BenchmarkHandshakesPer100Commands(b *testing.B) {
	srv := benchSim(b, 10, true)
	ctx := context.Background()
	b.ReportAllocs()
	var dials int64
	for b.Loop() {
		c, err := rds.New(clientConfig(b, srv))
		if err != nil {
			b.Fatal(err)
		}
		for i := range 100 {
			if _, err := c.Get(ctx, fmt.Sprintf("%s%05d", prefix, i%10)); err != nil {
				b.Fatal(err)
			}
		}
		dials += c.Dials()
		_ = c.Close()
	}
	b.ReportMetric(float64(dials)/float64(b.N), "dials/op")
}
