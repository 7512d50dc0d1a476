package spec

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkLoadBytes measures loading a state with 500 volumes, the size of
// a busy CSI layer; "volumes/op" makes the per-volume cost readable.
func BenchmarkLoadBytes(b *testing.B) {
	var doc strings.Builder
	doc.WriteString(minimal)
	for i := range 499 {
		fmt.Fprintf(&doc, "  - {name: pvc-%04d, size: %dGi, attachments: [h1], connection: {ctrlLossTmo: 60}}\n", i, i%50+1)
	}
	doc.WriteString("hosts:\n  h1: {hostNQN: nqn.2014-08.org.nvmexpress:uuid:1}\n")
	data := []byte(doc.String())
	if _, err := LoadBytes("bench.yaml", data); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := LoadBytes("bench.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(500, "volumes/op")
}

// BenchmarkStoreUpdate measures one locked, validated, fsynced layer write.
func BenchmarkStoreUpdate(b *testing.B) {
	path := filepath.Join(b.TempDir(), "layer.yaml")
	st := OpenStore(path)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		if err := st.Update(ctx, addVolume(fmt.Sprintf("v-%06d", i))); err != nil {
			b.Fatal(err)
		}
		if i%100 == 0 {
			b.StopTimer()
			os.Remove(path) // keep the layer small so each op measures the same work
			b.StartTimer()
		}
	}
}
