// Command benchtable prints the benchmark table of README.md: CSI calls and
// apply against rds/sim over real SSH, with the simulator charging a fixed
// latency per SSH session (a round trip to an RDS), next to the peer CSI
// driver's figures measured on a mock charging the same (issue 14).
//
//	go run ./internal/benchtable [-latency 20ms,0s] [-n 20,100,1000]
//
// Sessions and commands are counted by the simulator: a session is one
// round trip, a command one RouterOS menu command it ran (print, add, set,
// remove; not the [find] inside them).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rds-reconcile/rds-reconcile/csi"
	"github.com/rds-reconcile/rds-reconcile/rds"
	"github.com/rds-reconcile/rds-reconcile/rds/sim"
	"github.com/rds-reconcile/rds-reconcile/reconcile"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// peer is the peer driver's figure for one work item (issue 14: rds-csi on
// a mock RDS charging 20 ms per SSH session, medians of 3 runs): ms per
// volume, or the total for concurrent work. Zero: no figure.
type peer struct {
	msPerVolume float64
	total       float64
}

// row is one measured work item.
type row struct {
	latency  time.Duration
	work     string
	n        int
	sessions int64
	commands int64
	wall     time.Duration
	peer     peer
}

func main() {
	if err := run(os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, args []string) error {
	fs := flag.NewFlagSet("benchtable", flag.ContinueOnError)
	lat := fs.String("latency", "20ms,0s", "session latencies the simulator charges, comma-separated")
	ns := fs.String("n", "20,100,1000", "apply sizes (new volumes), comma-separated")
	csiN := fs.Int("csi", 20, "CSI calls per work item")
	shm := fs.String("tmpfs", "/dev/shm", "a tmpfs directory for a second run of the CSI rows with the controller's layer file there (no fsync cost), to tell the RDS's share from the layer's; empty: none")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lats []time.Duration
	for _, s := range strings.Split(*lat, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("-latency: %w", err)
		}
		lats = append(lats, d)
	}
	var sizes []int
	for _, s := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return fmt.Errorf("-n: %q is not a positive number", s)
		}
		sizes = append(sizes, n)
	}
	ctx := context.Background()
	var rows []row
	layers := []string{""}
	if fi, err := os.Stat(*shm); *shm != "" && err == nil && fi.IsDir() {
		layers = append(layers, *shm)
	}
	for _, l := range lats {
		for _, dir := range layers {
			r, err := csiRows(ctx, l, *csiN, dir)
			if err != nil {
				return err
			}
			rows = append(rows, r...)
		}
		for _, n := range sizes {
			r, err := applyRow(ctx, l, n)
			if err != nil {
				return err
			}
			rows = append(rows, r)
		}
	}
	render(w, rows)
	return nil
}

func render(w io.Writer, rows []row) {
	fmt.Fprintln(w, "| session latency | work | N | sessions | commands | wall ms | ms/volume | peer | ratio |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		per := float64(r.wall.Microseconds()) / 1000 / float64(r.n)
		peerCol, ratio := "–", "–"
		switch {
		case r.peer.total > 0:
			peerCol = fmt.Sprintf("%.0f ms total", r.peer.total)
			ratio = fmt.Sprintf("%.2fx", float64(r.wall.Microseconds())/1000/r.peer.total)
		case r.peer.msPerVolume > 0:
			peerCol = fmt.Sprintf("%.1f ms/volume", r.peer.msPerVolume)
			ratio = fmt.Sprintf("%.2fx", per/r.peer.msPerVolume)
		}
		fmt.Fprintf(w, "| %v | %s | %d | %d | %d | %.0f | %.1f | %s | %s |\n",
			r.latency, r.work, r.n, r.sessions, r.commands, float64(r.wall.Microseconds())/1000, per, peerCol, ratio)
	}
}

// simServer starts rds/sim on loopback charging latency per session.
func simServer(ctx context.Context, latency time.Duration) (*sim.Server, error) {
	srv, err := sim.New(sim.Options{Backend: sim.NewMemoryBackend(1 << 50), JSON: true,
		Faults: sim.Faults{SessionLatency: latency}})
	if err != nil {
		return nil, err
	}
	if err := srv.Start(ctx, "127.0.0.1:0"); err != nil {
		return nil, err
	}
	return srv, nil
}

// measure runs fn and returns the sessions, commands and wall time it took.
func measure(srv *sim.Server, fn func() error) (int64, int64, time.Duration, error) {
	s0, c0 := srv.Sessions(), srv.Statements()
	t0 := time.Now()
	err := fn()
	return srv.Sessions() - s0, srv.Statements() - c0, time.Since(t0), err
}

// csiRows measures the CSI calls, the controller's layer file in layerDir
// ("" = the default temporary directory, on disk).
func csiRows(ctx context.Context, latency time.Duration, n int, layerDir string) ([]row, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv, err := simServer(ctx, latency)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	dir, err := os.MkdirTemp(layerDir, "benchtable-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	// The state names the simulator; the driver uses the client below.
	if err := os.WriteFile(filepath.Join(dir, "id_ed25519"), srv.ClientKeyPEM(), 0o600); err != nil {
		return nil, err
	}
	base := filepath.Join(dir, "base.yaml")
	if err := os.WriteFile(base, []byte(`apiVersion: rds-reconcile/v1
kind: State
target:
  address: 127.0.0.1
  nvmePort: 4420
  basePath: storage-pool/volumes
  ssh: {address: `+srv.Addr()+`, user: admin, privateKeyFile: id_ed25519, insecureIgnoreHostKey: true}
`), 0o600); err != nil {
		return nil, err
	}
	client, err := rds.New(rds.Config{Address: srv.Addr(), User: "admin", PrivateKey: srv.ClientKeyPEM(),
		InsecureIgnoreHostKey: true, BasePath: "storage-pool/volumes", KeepAlive: -1,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	defer client.Close()
	d, err := csi.New(csi.Options{Mode: csi.ModeController, Version: "bench", Controller: &csi.ControllerConfig{
		BaseFiles:  []string{base},
		Layer:      spec.OpenStore(filepath.Join(dir, "csi-volumes.yaml")),
		Reconciler: csi.FromEngine(reconcile.New(reconcile.Options{RDS: client})),
		Pool:       client,
	}})
	if err != nil {
		return nil, err
	}
	if err := d.Start(ctx); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "csi.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		return nil, err
	}
	go func() { _ = d.Serve(ctx, lis) }()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	cc := csipb.NewControllerClient(conn)
	// Warm up: the connection, the release probe, the gRPC channel.
	if _, err := cc.GetCapacity(ctx, &csipb.GetCapacityRequest{}); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	const size = 16 << 20
	create := func(name string) error {
		_, err := cc.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: name,
			CapacityRange:      &csipb.CapacityRange{RequiredBytes: size},
			VolumeCapabilities: []*csipb.VolumeCapability{mountCap()}})
		return err
	}
	var rows []row
	add := func(work string, p peer, fn func() error) error {
		if layerDir != "" {
			work += " (layer in tmpfs)"
		}
		s, c, wall, err := measure(srv, fn)
		if err != nil {
			return fmt.Errorf("%s: %w", work, err)
		}
		rows = append(rows, row{latency: latency, work: work, n: n, sessions: s, commands: c, wall: wall, peer: p})
		return nil
	}
	seq := func(name func(int) string, fn func(string) error) func() error {
		return func() error {
			for i := range n {
				if err := fn(name(i)); err != nil {
					return err
				}
			}
			return nil
		}
	}
	seqName := func(i int) string { return fmt.Sprintf("seq-%03d", i) }
	if err := add("CSI CreateVolume, sequential", peer{msPerVolume: 70.2}, seq(seqName, create)); err != nil {
		return nil, err
	}
	err = add("CSI CreateVolume, concurrent", peer{total: 114}, func() error {
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() { errs[i] = create(fmt.Sprintf("con-%03d", i)) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	expand := func(name string) error {
		_, err := cc.ControllerExpandVolume(ctx, &csipb.ControllerExpandVolumeRequest{
			VolumeId: volumeID(name), CapacityRange: &csipb.CapacityRange{RequiredBytes: 2 * size}})
		return err
	}
	if err := add("CSI ControllerExpandVolume, sequential", peer{}, seq(seqName, expand)); err != nil {
		return nil, err
	}
	del := func(name string) error {
		_, err := cc.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: volumeID(name)})
		return err
	}
	if err := add("CSI DeleteVolume, sequential", peer{msPerVolume: 91.7}, seq(seqName, del)); err != nil {
		return nil, err
	}
	return rows, nil
}

// volumeID is the volume id CreateVolume returns for a name (no slot
// prefix in the bench's base state).
func volumeID(name string) string { return csi.VolumeName(name, "") }

func mountCap() *csipb.VolumeCapability {
	return &csipb.VolumeCapability{
		AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}},
		AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
}

// applyRow applies a state of n new volumes (plan, apply, the verifying
// observation) and counts it all.
func applyRow(ctx context.Context, latency time.Duration, n int) (row, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv, err := simServer(ctx, latency)
	if err != nil {
		return row{}, err
	}
	defer srv.Close()
	client, err := rds.New(rds.Config{Address: srv.Addr(), User: "admin", PrivateKey: srv.ClientKeyPEM(),
		InsecureIgnoreHostKey: true, BasePath: "storage-pool/volumes", SlotPrefix: "b-", KeepAlive: -1,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return row{}, err
	}
	defer client.Close()
	var b strings.Builder
	b.WriteString(`apiVersion: rds-reconcile/v1
kind: State
target: {address: 127.0.0.1, basePath: storage-pool/volumes, slotPrefix: b-}
volumes:
`)
	for i := range n {
		fmt.Fprintf(&b, "  - {name: b-%05d, size: 16Mi}\n", i)
	}
	st, err := spec.LoadBytes("bench.yaml", []byte(b.String()))
	if err != nil {
		return row{}, err
	}
	r := reconcile.New(reconcile.Options{RDS: client})
	if _, err := client.List(ctx); err != nil { // warm up: dial, release probe
		return row{}, err
	}
	s, c, wall, err := measure(srv, func() error {
		p, err := r.Plan(ctx, st, reconcile.Full(false))
		if err != nil {
			return err
		}
		res, err := r.Apply(ctx, st, p, reconcile.ApplyOptions{})
		if err != nil {
			return err
		}
		if res.Succeeded != n {
			return fmt.Errorf("%d of %d creates succeeded: %v", res.Succeeded, n, res.Err())
		}
		return res.Err()
	})
	if err != nil {
		return row{}, fmt.Errorf("apply %d: %w", n, err)
	}
	return row{latency: latency, work: "apply, new volumes (plan, apply, verify)", n: n, sessions: s, commands: c, wall: wall}, nil
}
