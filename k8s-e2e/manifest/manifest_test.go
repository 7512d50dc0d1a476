package manifest

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/csi"
)

const examples = "../../examples/kubernetes"

func shipped(t *testing.T) []Doc {
	t.Helper()
	docs, err := LoadDir(examples)
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// TestShippedStorageClasses reads every StorageClass in examples/kubernetes as
// csi-provisioner v5.3.0 does, then hands what it would pass on to the
// driver's own parameter parser. The shipped class once set both fsType and
// csi.storage.k8s.io/fstype: the real provisioner refused every PVC and no
// test noticed.
func TestShippedStorageClasses(t *testing.T) {
	n := 0
	for _, d := range shipped(t) {
		if d.Kind != "StorageClass" {
			continue
		}
		n++
		var sc StorageClass
		if err := d.Decode(&sc); err != nil {
			t.Fatal(err)
		}
		where := filepath.Base(d.File) + ": StorageClass " + sc.Metadata.Name
		if sc.Provisioner != csi.DefaultDriverName {
			t.Errorf("%s: provisioner %q, want %q", where, sc.Provisioner, csi.DefaultDriverName)
		}
		params, err := DriverParameters(sc.Parameters)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		if _, err := csi.ParseParams(params); err != nil {
			t.Errorf("%s: the driver refuses what the provisioner passes: %v", where, err)
		}
		// The filesystem reaches the driver as the volume capability's fs_type,
		// which CreateVolume and NodeStage accept for ext4 and xfs only.
		if fs, ok := sc.Parameters[ProvisionerPrefix+"fstype"]; ok && fs != "ext4" && fs != "xfs" {
			t.Errorf("%s: csi.storage.k8s.io/fstype %q: the driver formats ext4 or xfs", where, fs)
		}
		if !sc.AllowVolumeExpansion {
			t.Errorf("%s: allowVolumeExpansion is off, but the driver grows volumes online", where)
		}
	}
	if n == 0 {
		t.Fatal("no StorageClass in examples/kubernetes")
	}
}

// TestSidecarVersions: the sidecar images the shipped controller names are
// the versions `make k8s-e2e` builds and runs (k8s-e2e/versions.env).
func TestSidecarVersions(t *testing.T) {
	versions := readVersions(t)
	want := map[string]string{
		"csi-provisioner": versions["PROVISIONER_VERSION"],
		"csi-attacher":    versions["ATTACHER_VERSION"],
		"csi-resizer":     versions["RESIZER_VERSION"],
		"csi-snapshotter": versions["SNAPSHOTTER_VERSION"],
	}
	for name, v := range want {
		if v == "" {
			t.Errorf("k8s-e2e/versions.env gives no version for %s", name)
		}
	}
	seen := map[string]bool{}
	for _, d := range shipped(t) {
		if !slices.Contains([]string{"StatefulSet", "Deployment", "DaemonSet"}, d.Kind) {
			continue
		}
		var w Workload
		if err := d.Decode(&w); err != nil {
			t.Fatal(err)
		}
		for _, c := range w.Spec.Template.Spec.Containers {
			name, tag := Image(c.Image)
			v, tested := want[name]
			if !tested {
				continue
			}
			seen[name] = true
			if tag != v {
				t.Errorf("%s %s container %s: image %s, but k8s-e2e tests %s %s (k8s-e2e/versions.env)",
					w.Kind, w.Metadata.Name, c.Name, c.Image, name, v)
			}
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("no workload runs %s, which k8s-e2e builds", name)
		}
	}
}

// TestShippedVolumeSnapshotClasses: every VolumeSnapshotClass shipped is for
// this driver with a deletion policy the API accepts, and passes the driver
// nothing: CreateSnapshot takes no parameters, so a key there would be
// silently ignored (csi-snapshotter strips only its own
// csi.storage.k8s.io/snapshotter-* keys and passes the rest on).
func TestShippedVolumeSnapshotClasses(t *testing.T) {
	n := 0
	for _, d := range shipped(t) {
		if d.Kind != "VolumeSnapshotClass" {
			continue
		}
		n++
		var c VolumeSnapshotClass
		if err := d.Decode(&c); err != nil {
			t.Fatal(err)
		}
		where := filepath.Base(d.File) + ": VolumeSnapshotClass " + c.Metadata.Name
		if d.APIVersion != "snapshot.storage.k8s.io/v1" {
			t.Errorf("%s: apiVersion %q, want snapshot.storage.k8s.io/v1 (the only version the v8 CRDs serve)", where, d.APIVersion)
		}
		if c.Driver != csi.DefaultDriverName {
			t.Errorf("%s: driver %q, want %q", where, c.Driver, csi.DefaultDriverName)
		}
		if c.DeletionPolicy != "Delete" && c.DeletionPolicy != "Retain" {
			t.Errorf("%s: deletionPolicy %q, want Delete or Retain (required)", where, c.DeletionPolicy)
		}
		for k := range c.Parameters {
			if !strings.HasPrefix(k, ProvisionerPrefix+"snapshotter-") {
				t.Errorf("%s: parameter %q reaches CreateSnapshot, which takes none", where, k)
			}
		}
	}
	if n == 0 {
		t.Fatal("no VolumeSnapshotClass in examples/kubernetes")
	}
}

func readVersions(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("../versions.env")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("versions.env: %q is not NAME=value", line)
		}
		out[k] = v
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestShippedControllerLayout: the harness can run every container of the
// shipped controller as a process, and every absolute path an arg names
// lands in the pod's folders (a path outside every mount would be a path
// of the test machine, not of the pod).
func TestShippedControllerLayout(t *testing.T) {
	w, err := FindWorkload(shipped(t), "rds-csi-controller")
	if err != nil {
		t.Fatal(err)
	}
	root := "/tmp/k8s-e2e-root"
	next := 40000
	pod, err := Layout(w, root, PodEnv{PodName: w.PodName(), NodeName: "n"}, func(int) (int, error) { next++; return next, nil })
	if err != nil {
		t.Fatal(err)
	}
	if pod.ServiceAccount == "" || pod.Namespace == "" {
		t.Errorf("service account %q, namespace %q", pod.ServiceAccount, pod.Namespace)
	}
	abs := regexp.MustCompile(`(?:^|=|unix://)(/[^,]*)`)
	for _, p := range pod.Processes {
		for _, a := range p.Args {
			for _, m := range abs.FindAllStringSubmatch(a, -1) {
				if !strings.HasPrefix(m[1], root+"/") {
					t.Errorf("container %s: arg %q names %s, which no volume mount holds", p.Name, a, m[1])
				}
			}
		}
	}
}

func TestDriverParameters(t *testing.T) {
	tests := []struct {
		name    string
		in      map[string]string
		want    map[string]string
		wantErr string
	}{
		{name: "reserved fstype is stripped",
			in:   map[string]string{"ctrlLossTmo": "600", "csi.storage.k8s.io/fstype": "ext4"},
			want: map[string]string{"ctrlLossTmo": "600"}},
		{name: "the deprecated fstype is passed on",
			in:   map[string]string{"fsType": "xfs"},
			want: map[string]string{"fsType": "xfs"}},
		{name: "both fstype keys (the shipped defect)",
			in:      map[string]string{"fsType": "ext4", "csi.storage.k8s.io/fstype": "ext4"},
			wantErr: `fstype specified in parameters with both "fstype" and "csi.storage.k8s.io/fstype" keys`},
		{name: "two spellings of the deprecated key",
			in:      map[string]string{"fsType": "ext4", "FSTYPE": "ext4"},
			wantErr: "differ only in case"},
		{name: "keys differing in case",
			in:      map[string]string{"ctrlLossTmo": "1", "ctrllosstmo": "2"},
			wantErr: `keys "ctrlLossTmo" and "ctrllosstmo" differ only in case`},
		{name: "unknown reserved key",
			in:      map[string]string{"csi.storage.k8s.io/fs-type": "ext4"},
			wantErr: `unknown parameter key "csi.storage.k8s.io/fs-type"`},
		{name: "secrets are the provisioner's",
			in:   map[string]string{"csi.storage.k8s.io/provisioner-secret-name": "s", "reconnectDelay": "5"},
			want: map[string]string{"reconnectDelay": "5"}},
		{name: "empty", in: nil, want: map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DriverParameters(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

const testPod = `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: ctl, namespace: ns}
spec:
  template:
    spec:
      serviceAccountName: sa
      containers:
        - name: main
          image: example.org/x/main:v1
          env:
            - {name: NODE_NAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
            - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
            - {name: PLAIN, value: v}
          args:
            - --endpoint=unix:///csi/csi.sock
            - --state-dir=/var/lib/x
            - --file=/etc/x/base/base.yaml
            - --key=/etc/x/ssh/id
            - --other=/etc/xy/z
            - /csi
            - --csi-address=/csi-other/csi.sock
            - --node-id=$(NODE_NAME)
            - --who=$(POD)-$(PLAIN)-$(UNKNOWN)
            - --metrics-listen=:9808
            - --http=0.0.0.0:9809
            - --not-a-port=:1234
            - --addr=10.0.0.1:9808
          ports: [{name: metrics, containerPort: 9808}, {containerPort: 9809}]
          volumeMounts:
            - {name: socket, mountPath: /csi}
            - {name: state, mountPath: /var/lib/x}
            - {name: etc, mountPath: /etc/x}
            - {name: ssh, mountPath: /etc/x/ssh/}
            - {name: cfg, mountPath: /etc/x/base, subPath: sub}
        - name: side
          image: registry.k8s.io/sig-storage/csi-attacher:v4.13.0
          args: [--csi-address=/csi/csi.sock]
          volumeMounts: [{name: socket, mountPath: /csi}]
      volumes:
        - {name: socket, emptyDir: {}}
        - {name: etc, hostPath: {path: /etc/x}}
        - {name: ssh, secret: {secretName: s, defaultMode: 0400}}
        - {name: cfg, configMap: {name: c}}
  volumeClaimTemplates:
    - metadata: {name: state}
`

func TestLayout(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "pod.yaml")
	if err := os.WriteFile(f, []byte(testPod), 0o600); err != nil {
		t.Fatal(err)
	}
	docs, err := LoadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	var w Workload
	if err := docs[0].Decode(&w); err != nil {
		t.Fatal(err)
	}
	ports := map[int]int{9808: 41808, 9809: 41809}
	pod, err := Layout(w, "/r", PodEnv{PodName: "ctl-0", NodeName: "node-1"}, func(p int) (int, error) { return ports[p], nil })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"--endpoint=unix:///r/volumes/socket/csi.sock",
		"--state-dir=/r/volumes/state",
		"--file=/r/volumes/cfg/sub/base.yaml",
		"--key=/r/volumes/ssh/id",
		"--other=/etc/xy/z",
		"/r/volumes/socket",
		"--csi-address=/csi-other/csi.sock",
		"--node-id=node-1",
		"--who=ctl-0-v-$(UNKNOWN)",
		"--metrics-listen=127.0.0.1:41808",
		"--http=127.0.0.1:41809",
		"--not-a-port=:1234",
		"--addr=10.0.0.1:9808",
	}
	if got := pod.Processes[0].Args; !slices.Equal(got, want) {
		t.Errorf("args:\n got %q\nwant %q", got, want)
	}
	if got := pod.Processes[0].Env; !slices.Equal(got, []string{"NODE_NAME=node-1", "POD=ctl-0", "PLAIN=v"}) {
		t.Errorf("env %q", got)
	}
	if got := pod.Processes[1].Args; !slices.Equal(got, []string{"--csi-address=/r/volumes/socket/csi.sock"}) {
		t.Errorf("sidecar args %q", got)
	}
	if pod.Ports["metrics"] != 41808 || pod.Ports["9809"] != 41809 {
		t.Errorf("ports %v", pod.Ports)
	}
	kinds := map[string]string{}
	for _, v := range pod.Volumes {
		kinds[v.Name] = v.Kind + ":" + v.Source
	}
	wantKinds := map[string]string{"socket": "emptyDir:", "etc": "hostPath:/etc/x", "ssh": "secret:s",
		"cfg": "configMap:c", "state": "volumeClaimTemplate:state"}
	for k, v := range wantKinds {
		if kinds[k] != v {
			t.Errorf("volume %s: %q, want %q", k, kinds[k], v)
		}
	}
	if p, ok := MapPath(w, "/r", "main", "/etc/x/ssh/known_hosts"); !ok || p != "/r/volumes/ssh/known_hosts" {
		t.Errorf("MapPath: %q %v", p, ok)
	}
	if _, ok := MapPath(w, "/r", "main", "/root/.ssh/id"); ok {
		t.Error("MapPath mapped a path no mount holds")
	}
}

func TestLayoutRefuses(t *testing.T) {
	tests := []struct {
		name, pod, want string
	}{
		{"command", `{kind: StatefulSet, spec: {template: {spec: {containers: [{name: c, command: [sh]}]}}}}`, "a command is not supported"},
		{"undeclared volume", `{kind: StatefulSet, spec: {template: {spec: {containers: [{name: c, volumeMounts: [{name: v, mountPath: /v}]}]}}}}`, `undeclared volume "v"`},
		{"unknown source", `{kind: StatefulSet, spec: {template: {spec: {volumes: [{name: v}]}}}}`, "no source"},
		{"newline", `{kind: StatefulSet, spec: {template: {spec: {containers: [{name: c, args: ["a\nb"]}]}}}}`, "newline"},
		{"fieldRef", `{kind: StatefulSet, spec: {template: {spec: {containers: [{name: c, env: [{name: X, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]}]}}}}`, "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "p.yaml")
			if err := os.WriteFile(f, []byte(tt.pod), 0o600); err != nil {
				t.Fatal(err)
			}
			docs, err := LoadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var w Workload
			if err := docs[0].Decode(&w); err != nil {
				t.Fatal(err)
			}
			_, err = Layout(w, "/r", PodEnv{}, func(int) (int, error) { return 1, nil })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestImage(t *testing.T) {
	tests := []struct{ ref, name, tag string }{
		{"registry.k8s.io/sig-storage/csi-provisioner:v5.3.0", "csi-provisioner", "v5.3.0"},
		{"localhost:5000/csi-attacher", "csi-attacher", ""},
		{"localhost:5000/x/csi-resizer:v2@sha256:abc", "csi-resizer", "v2"},
		{"busybox", "busybox", ""},
	}
	for _, tt := range tests {
		if n, tag := Image(tt.ref); n != tt.name || tag != tt.tag {
			t.Errorf("Image(%q) = %q, %q; want %q, %q", tt.ref, n, tag, tt.name, tt.tag)
		}
	}
}
