package sim

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkServerList measures the simulator's side of listing n managed
// disks over SSH: one command, one round trip, whatever n.
func BenchmarkServerList(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		for _, form := range []struct{ name, cmd string }{
			{"detail", `/disk print detail where slot~"^pvc-"`},
			{"json", `:put [:serialize to=json [/disk print detail as-value where slot~"^pvc-"]]`},
		} {
			b.Run(fmt.Sprintf("%s/n=%d", form.name, n), func(b *testing.B) {
				s := startServer(b, Options{JSON: true})
				if err := s.SeedDisks(n, "pvc-"); err != nil {
					b.Fatal(err)
				}
				c := dial(b, s, "admin")
				before := len(s.Commands())
				var out string
				b.ResetTimer()
				for b.Loop() {
					out = mustRun(b, c, form.cmd)
				}
				b.StopTimer()
				if got := strings.Count(out, `slot`); got < n {
					b.Fatalf("listed %d slots, want %d", got, n)
				}
				b.ReportMetric(float64(len(s.Commands())-before)/float64(b.N), "roundtrips/op")
				b.ReportMetric(float64(len(out)), "bytes/list")
				b.ReportMetric(float64(s.Handshakes()), "handshakes")
			})
		}
	}
}

// BenchmarkSeedDisks: cost of adding disks (parse, checks, accounting).
func BenchmarkSeedDisks(b *testing.B) {
	for b.Loop() {
		s := newTestServer(b, Options{PoolSize: 1 << 50})
		if err := s.SeedDisks(1000, "pvc-"); err != nil {
			b.Fatal(err)
		}
	}
}
