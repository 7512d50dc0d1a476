package csi

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

// BenchmarkCreateVolume measures one CreateVolume end to end over gRPC: the
// layer edit (flock, validate, atomic write with fsyncs), loading base +
// layer, and the scoped reconcile against the RouterOS simulator over SSH.
// roundtrips/op counts RouterOS commands per volume.
func BenchmarkCreateVolume(b *testing.B) {
	for _, par := range []int{1, 8} {
		b.Run(fmt.Sprintf("goroutinesPerCPU=%d", par), func(b *testing.B) {
			e := newEnv(b, 1<<50)
			_, conn, _ := e.serve(b, ModeController)
			cc := csi.NewControllerClient(conn)
			var n atomic.Int64
			start := e.client.RoundTrips()
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					name := fmt.Sprintf("pvc-%d", n.Add(1))
					if _, err := cc.CreateVolume(context.Background(), createReq(name, 8*mib, nil)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(e.client.RoundTrips()-start)/float64(b.N), "roundtrips/op")
		})
	}
}
