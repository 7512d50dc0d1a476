package main

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rds-reconcile/rds-reconcile/csi"
	"github.com/rds-reconcile/rds-reconcile/rds"
)

// diskSeries counts the rds_reconcile_disk_write_ops_total series reg
// serves, by volume.
func diskSeries(t *testing.T, reg prometheus.Gatherer) map[string]bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != "rds_reconcile_disk_write_ops_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				out[l.GetValue()] = true
			}
		}
	}
	return out
}

// TestPollTraffic: the CSI controller samples every managed disk's RDS
// counters each --traffic-interval (the real client over SSH against the
// simulator); --traffic-interval 0 registers nothing.
func TestPollTraffic(t *testing.T) {
	tg, _ := startSimCmd(t)
	key, err := os.ReadFile(tg.SSH.PrivateKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	client, err := rds.New(rds.Config{Address: tg.SSH.Address, User: tg.SSH.User, PrivateKey: key, KnownHostsFile: tg.SSH.KnownHostsFile,
		BasePath: tg.BasePath})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx := context.Background()
	for _, s := range []string{"pvc-t1", "pvc-t2"} {
		if err := client.Create(ctx, rds.CreateRequest{Slot: s, FilePath: tg.BasePath + "/" + s + ".img", Size: 16 << 20, Port: 4420,
			NQN: "nqn.2000-02.com.mikrotik:" + s}); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.DiscardHandler)
	reg := prometheus.NewPedanticRegistry()
	stop, err := pollTraffic(ctx, &csiFlags{trafficEvery: 20 * time.Millisecond}, &csi.ControllerConfig{Inventory: client}, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for got := diskSeries(t, reg); !got["pvc-t1"] || !got["pvc-t2"]; got = diskSeries(t, reg) {
		if time.Now().After(deadline) {
			t.Fatalf("series for %v, want pvc-t1 and pvc-t2", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	off := prometheus.NewPedanticRegistry()
	stop, err = pollTraffic(ctx, &csiFlags{}, &csi.ControllerConfig{Inventory: client}, off, log)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if mfs, _ := off.Gather(); len(mfs) != 0 {
		t.Errorf("--traffic-interval 0 registered %d metric families", len(mfs))
	}
	if stop, err := pollTraffic(ctx, &csiFlags{trafficEvery: time.Second}, nil, off, log); err != nil {
		t.Error(err)
	} else {
		stop() // node mode: no controller, nothing to poll
	}
}
