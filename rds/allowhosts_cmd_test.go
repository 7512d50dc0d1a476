package rds

import (
	"errors"
	"testing"
)

func TestAllowHostsCommands(t *testing.T) {
	add, err := cmdAdd(CreateRequest{Slot: "pvc-a", FilePath: "storage-pool/volumes/pvc-a.img", Size: 1 << 30, Port: 4420,
		NQN: "nqn.2000-02.com.mikrotik:pvc-a", SetAllowHosts: true, AllowHosts: []string{hostB, hostA}})
	if err != nil {
		t.Fatal(err)
	}
	set, _ := cmdSetExport(ExportRequest{Slot: "pvc-a", Port: 4420, NQN: "nqn.x:pvc-a", SetAllowHosts: true, AllowHosts: []string{hostA}})
	open, _ := cmdSetExport(ExportRequest{Slot: "pvc-a", Port: 4420, NQN: "nqn.x:pvc-a", SetAllowHosts: true})
	closed, _ := cmdSetExport(ExportRequest{Slot: "pvc-a", Port: 4420, NQN: "nqn.x:pvc-a", SetAllowHosts: true, AllowHosts: []string{NoHostNQN}})
	unset, _ := cmdSetExport(ExportRequest{Slot: "pvc-a", Port: 4420, NQN: "nqn.x:pvc-a", AllowHosts: []string{hostA}})
	for _, tc := range []struct{ got, want string }{
		{add, `/disk add type=file file-path="storage-pool/volumes/pvc-a.img" file-size=1073741824 slot="pvc-a" mount-filesystem=no nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn="nqn.2000-02.com.mikrotik:pvc-a" nvme-tcp-server-allow-host-name="` + hostA + `,` + hostB + `"`},
		{set, `/disk set [find slot="pvc-a"] mount-filesystem=no nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn="nqn.x:pvc-a" nvme-tcp-server-allow-host-name="` + hostA + `"`},
		{open, `/disk set [find slot="pvc-a"] mount-filesystem=no nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn="nqn.x:pvc-a" nvme-tcp-server-allow-host-name=""`},
		{closed, `/disk set [find slot="pvc-a"] mount-filesystem=no nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn="nqn.x:pvc-a" nvme-tcp-server-allow-host-name="nqn.2026-12.invalid.rds-reconcile:no-host"`},
		{unset, `/disk set [find slot="pvc-a"] mount-filesystem=no nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn="nqn.x:pvc-a"`},
	} {
		if tc.got != tc.want {
			t.Errorf("command\n got %s\nwant %s", tc.got, tc.want)
		}
	}
	if _, err := cmdSetExport(ExportRequest{Slot: "pvc-a", Port: 4420, NQN: "n", SetAllowHosts: true, AllowHosts: []string{`a"b`}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad host NQN built a command: %v", err)
	}
}
