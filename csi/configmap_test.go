package csi

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/rds-reconcile/rds-reconcile/kube"
	"github.com/rds-reconcile/rds-reconcile/kube/kubetest"
	"github.com/rds-reconcile/rds-reconcile/reconcile"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// TestTwoControllersShareAConfigMapLayer: two controllers (two engines, two
// ConfigMap layers, one fake API server), as during a leader hand-over or
// with two replicas, create and publish 24 volumes interleaved and at once:
// every edit of both survives, on the layer and on the RDS.
func TestTwoControllersShareAConfigMapLayer(t *testing.T) {
	e := newEnv(t, 64<<30)
	data, err := os.ReadFile(e.base)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(e.dir, "base-hosts.yaml")
	if err := os.WriteFile(base, append(data, []byte(`hosts:
  node-a: {hostNQN: "nqn.2014-08.org.nvmexpress:uuid:0a0a0a0a-0000-4000-8000-00000000000a"}
  node-b: {hostNQN: "nqn.2014-08.org.nvmexpress:uuid:0b0b0b0b-0000-4000-8000-00000000000b"}
`)...), 0o600); err != nil {
		t.Fatal(err)
	}
	api := kubetest.New()
	defer api.Close()
	ref := kube.LayerRef{Namespace: "rds-reconcile", Name: "rds-csi-volumes"}
	var layers []*kube.ConfigMapLayer
	var clients []csi.ControllerClient
	for range 2 {
		l := kube.NewConfigMapLayer(api.Client(), ref, nil)
		layers = append(layers, l)
		cfg := &ControllerConfig{
			BaseFiles:  []string{base},
			Layer:      l,
			Reconciler: FromEngine(reconcile.New(reconcile.Options{RDS: e.client})),
			Pool:       e.client,
		}
		_, conn, _ := e.serveWith(t, cfg)
		clients = append(clients, csi.NewControllerClient(conn))
	}
	const n = 24
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc := clients[i%2] // interleaved between the two controllers
			name := fmt.Sprintf("pvc-%02d", i)
			if _, err := cc.CreateVolume(ctx, createReq(name, 8*mib, nil)); err != nil {
				errs <- fmt.Errorf("create %s: %w", name, err)
				return
			}
			node := []string{"node-a", "node-b"}[i%2]
			// Published through the other controller than the one that
			// created it.
			if _, err := clients[(i+1)%2].ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{
				VolumeId: name, NodeId: node, VolumeCapability: mountCap()}); err != nil {
				errs <- fmt.Errorf("publish %s: %w", name, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st, err := spec.ParseLayer("layer", []byte(api.Data(ref.Namespace, ref.Name)[kube.LayerKey]))
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Volumes) != n {
		t.Errorf("the layer holds %d volumes, want %d", len(st.Volumes), n)
	}
	for i := range n {
		name := fmt.Sprintf("pvc-%02d", i)
		v := st.Volume(name)
		if want := []string{"node-a", "node-b"}[i%2]; v == nil || len(v.Attachments) != 1 || v.Attachments[0] != want {
			t.Errorf("%s in the layer: %+v, want attached to %s", name, v, want)
		}
	}
	inv, err := e.client.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pvcs := 0
	for _, d := range inv.Disks {
		if strings.HasPrefix(d.Slot, "pvc-") {
			pvcs++
		}
	}
	if pvcs != n {
		t.Errorf("the RDS holds %d pvc disks, want %d", pvcs, n)
	}
	// Both controllers list all of them, and the base's git-owned.
	for i, cc := range clients {
		resp, err := cc.ListVolumes(ctx, &csi.ListVolumesRequest{})
		if err != nil || len(resp.GetEntries()) != n+1 {
			t.Errorf("controller %d lists %d volumes (%v), want %d", i, len(resp.GetEntries()), err, n+1)
		}
	}
	var writes, conflicts int64
	for _, l := range layers {
		w, c := l.Stats()
		writes, conflicts = writes+w, conflicts+c
	}
	t.Logf("%d creates and %d publishes through 2 controllers: %d layer writes, %d conflicts retried (API server: %d 409 Conflict, %d AlreadyExists, %d GETs)",
		n, n, writes, conflicts, api.Count("conflict"), api.Count("exists"), api.Count("get"))
	// Concurrent edits share writes (group commit, layerbatch.go): that
	// every edit landed is checked in the layer above, not counted here.
	if writes == 0 || writes > 2*n {
		t.Errorf("%d layer writes, want 1 to %d (at most one per edit)", writes, 2*n)
	}
}
