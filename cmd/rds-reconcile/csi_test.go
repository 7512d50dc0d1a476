package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"gopkg.in/yaml.v3"

	"github.com/rds-reconcile/rds-reconcile/csi"
	"github.com/rds-reconcile/rds-reconcile/kube"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

func TestCSIFlagErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"csi", "--mode", "both", "--state-dir", t.TempDir()}, 2, `--mode "both"`},
		{[]string{"csi", "--mode", "controller", "--state-dir", t.TempDir()}, 2, "pass -f base.yaml"},
		{[]string{"csi", "--mode", "node", "--fabric", "none", "--state-dir", t.TempDir(), "--endpoint", "unix://" + t.TempDir() + "/s.sock"}, 1, "needs a host fabric"},
		{[]string{"csi", "--mode", "node", "--kubelet-dir", "var/lib/kubelet", "--state-dir", t.TempDir()}, 2, "--kubelet-dir"},
		{[]string{"csi", "--mode", "node", "--kubelet-dir", "/var/lib/kubelet/", "--state-dir", t.TempDir()}, 2, "absolute, clean"},
		{[]string{"csi", "--mode", "controller", "-f", "base.yaml", "--gather-window", "-1ms", "--state-dir", t.TempDir()}, 2, "--gather-window -1ms: give 0 (no gathering) up to 100ms"},
		{[]string{"csi", "--mode", "controller", "-f", "base.yaml", "--gather-window", "1s", "--state-dir", t.TempDir()}, 2, "--gather-window 1s"},
	} {
		var out, errb strings.Builder
		code := run(tt.args, strings.NewReader(""), &out, &errb)
		if code != tt.code || !strings.Contains(errb.String(), tt.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", tt.args, code, errb.String(), tt.code, tt.msg)
		}
	}
}

// TestCSICommand runs `rds-reconcile csi --mode all` against `rds-reconcile
// sim` and a simulated host, creates and publishes a volume over gRPC, and
// checks that `plan -f base -f <csi layer>` agrees there is nothing to do:
// the git layer and the CSI layer never fight.
func TestCSICommand(t *testing.T) {
	tg, _ := startSimCmd(t)
	dir := t.TempDir()
	base := filepath.Join(dir, "base.yaml")
	err := os.WriteFile(base, []byte(fmt.Sprintf(`apiVersion: rds-reconcile/v1
kind: State
target:
  address: 127.0.0.1
  basePath: %s
  ssh: {address: %q, user: %s, privateKeyFile: %q, knownHostsFile: %q}
`, tg.BasePath, tg.SSH.Address, tg.SSH.User, tg.SSH.PrivateKeyFile, tg.SSH.KnownHostsFile)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "csi.sock")
	stateDir := filepath.Join(dir, "state")
	fabricDir := filepath.Join(dir, "host")
	// An older version made the state dir 0750; csi makes it 0700.
	if err := os.Mkdir(stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	runCSICommand(t, sock, []string{"csi", "--mode", "all", "--endpoint", "unix://" + sock, "--state-dir", stateDir,
		"-f", base, "--node-id", "node-a", "--host", "node-a", "--fabric", "sim:" + fabricDir})
	if fi, err := os.Stat(stateDir); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %v, want 0700", fi.Mode())
	}
	// The socket file exists from bind(2), a moment before listen(2): wait
	// for readiness instead of failing an RPC with "connection refused".
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	info, err := csipb.NewIdentityClient(conn).GetPluginInfo(ctx, &csipb.GetPluginInfoRequest{})
	if err != nil || info.GetName() != "rds.csi.rds-reconcile.io" {
		t.Fatalf("GetPluginInfo: %v %v", info, err)
	}
	// Serving: Listen has returned, and with it the chmod.
	if fi, err := os.Stat(sock); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != csi.SocketMode {
		t.Errorf("socket mode %v, want %o", fi.Mode(), csi.SocketMode)
	}
	cc := csipb.NewControllerClient(conn)
	mount := &csipb.VolumeCapability{AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}},
		AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}
	if _, err := cc.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: "pvc-1", CapacityRange: &csipb.CapacityRange{RequiredBytes: 64 << 20},
		VolumeCapabilities: []*csipb.VolumeCapability{mount}, Parameters: map[string]string{"ctrlLossTmo": "120"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cc.ControllerPublishVolume(ctx, &csipb.ControllerPublishVolumeRequest{VolumeId: "pvc-1", NodeId: "node-a", VolumeCapability: mount}); err != nil {
		t.Fatal(err)
	}
	// Plan over both layers, RDS side only: connecting the published
	// volume is the node's job (NodeStage), not the plan's concern here.
	var pout, perr strings.Builder
	code := run([]string{"plan", "-f", base, "-f", filepath.Join(stateDir, "csi-volumes.yaml"), "--fabric", "none",
		"--host", "node-a", "--detailed-exitcode"}, strings.NewReader(""), &pout, &perr)
	if code != 0 || !strings.Contains(pout.String(), "No changes") {
		t.Errorf("plan over base + CSI layer: exit %d\n%s\n%s", code, pout.String(), perr.String())
	}
}

// Small local types for the Kubernetes objects in examples/kubernetes: only
// the fields the manifests use, decoded with KnownFields so that a typo
// ("mountPropogation") or a field in the wrong place fails the test.
type (
	k8sMeta struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	}
	k8sHeader struct {
		APIVersion string  `yaml:"apiVersion"`
		Kind       string  `yaml:"kind"`
		Metadata   k8sMeta `yaml:"metadata"`
	}
	k8sPlain struct {
		APIVersion string  `yaml:"apiVersion"`
		Kind       string  `yaml:"kind"`
		Metadata   k8sMeta `yaml:"metadata"`
	}
	k8sCSIDriver struct {
		APIVersion string  `yaml:"apiVersion"`
		Kind       string  `yaml:"kind"`
		Metadata   k8sMeta `yaml:"metadata"`
		Spec       struct {
			AttachRequired       bool     `yaml:"attachRequired"`
			PodInfoOnMount       bool     `yaml:"podInfoOnMount"`
			FSGroupPolicy        string   `yaml:"fsGroupPolicy"`
			VolumeLifecycleModes []string `yaml:"volumeLifecycleModes"`
		} `yaml:"spec"`
	}
	k8sStorageClass struct {
		APIVersion           string            `yaml:"apiVersion"`
		Kind                 string            `yaml:"kind"`
		Metadata             k8sMeta           `yaml:"metadata"`
		Provisioner          string            `yaml:"provisioner"`
		ReclaimPolicy        string            `yaml:"reclaimPolicy"`
		VolumeBindingMode    string            `yaml:"volumeBindingMode"`
		AllowVolumeExpansion bool              `yaml:"allowVolumeExpansion"`
		Parameters           map[string]string `yaml:"parameters"`
	}
	k8sVolumeSnapshotClass struct {
		APIVersion     string            `yaml:"apiVersion"`
		Kind           string            `yaml:"kind"`
		Metadata       k8sMeta           `yaml:"metadata"`
		Driver         string            `yaml:"driver"`
		DeletionPolicy string            `yaml:"deletionPolicy"`
		Parameters     map[string]string `yaml:"parameters"`
	}
	k8sSecret struct {
		APIVersion string            `yaml:"apiVersion"`
		Kind       string            `yaml:"kind"`
		Metadata   k8sMeta           `yaml:"metadata"`
		Type       string            `yaml:"type"`
		StringData map[string]string `yaml:"stringData"`
	}
	k8sConfigMap struct {
		APIVersion string            `yaml:"apiVersion"`
		Kind       string            `yaml:"kind"`
		Metadata   k8sMeta           `yaml:"metadata"`
		Data       map[string]string `yaml:"data"`
	}
	k8sRole struct {
		APIVersion string  `yaml:"apiVersion"`
		Kind       string  `yaml:"kind"`
		Metadata   k8sMeta `yaml:"metadata"`
		Rules      []struct {
			APIGroups     []string `yaml:"apiGroups"`
			Resources     []string `yaml:"resources"`
			ResourceNames []string `yaml:"resourceNames"`
			Verbs         []string `yaml:"verbs"`
		} `yaml:"rules"`
	}
	k8sBinding struct {
		APIVersion string  `yaml:"apiVersion"`
		Kind       string  `yaml:"kind"`
		Metadata   k8sMeta `yaml:"metadata"`
		Subjects   []struct {
			Kind      string `yaml:"kind"`
			Name      string `yaml:"name"`
			Namespace string `yaml:"namespace"`
		} `yaml:"subjects"`
		RoleRef struct {
			Kind     string `yaml:"kind"`
			Name     string `yaml:"name"`
			APIGroup string `yaml:"apiGroup"`
		} `yaml:"roleRef"`
	}
	k8sContainer struct {
		Name  string   `yaml:"name"`
		Image string   `yaml:"image"`
		Args  []string `yaml:"args"`
		Env   []struct {
			Name      string `yaml:"name"`
			ValueFrom struct {
				FieldRef struct {
					FieldPath string `yaml:"fieldPath"`
				} `yaml:"fieldRef"`
			} `yaml:"valueFrom"`
		} `yaml:"env"`
		SecurityContext struct {
			Privileged bool `yaml:"privileged"`
		} `yaml:"securityContext"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		LivenessProbe *struct {
			HTTPGet struct {
				Path string `yaml:"path"`
				Port string `yaml:"port"`
			} `yaml:"httpGet"`
			InitialDelaySeconds int `yaml:"initialDelaySeconds"`
			PeriodSeconds       int `yaml:"periodSeconds"`
			TimeoutSeconds      int `yaml:"timeoutSeconds"`
			FailureThreshold    int `yaml:"failureThreshold"`
		} `yaml:"livenessProbe"`
		VolumeMounts []struct {
			Name             string `yaml:"name"`
			MountPath        string `yaml:"mountPath"`
			ReadOnly         bool   `yaml:"readOnly"`
			MountPropagation string `yaml:"mountPropagation"`
		} `yaml:"volumeMounts"`
	}
	k8sVolume struct {
		Name      string    `yaml:"name"`
		EmptyDir  *struct{} `yaml:"emptyDir"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		Secret *struct {
			SecretName  string `yaml:"secretName"`
			DefaultMode int    `yaml:"defaultMode"`
		} `yaml:"secret"`
		HostPath *struct {
			Path string `yaml:"path"`
			Type string `yaml:"type"`
		} `yaml:"hostPath"`
	}
	k8sPodSpec struct {
		ServiceAccountName string         `yaml:"serviceAccountName"`
		HostNetwork        bool           `yaml:"hostNetwork"`
		HostPID            bool           `yaml:"hostPID"`
		PriorityClassName  string         `yaml:"priorityClassName"`
		Containers         []k8sContainer `yaml:"containers"`
		Volumes            []k8sVolume    `yaml:"volumes"`
	}
	k8sWorkload struct {
		APIVersion string  `yaml:"apiVersion"`
		Kind       string  `yaml:"kind"`
		Metadata   k8sMeta `yaml:"metadata"`
		Spec       struct {
			ServiceName string `yaml:"serviceName"`
			Replicas    *int   `yaml:"replicas"`
			Strategy    struct {
				Type string `yaml:"type"`
			} `yaml:"strategy"`
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			Template struct {
				Metadata k8sMeta    `yaml:"metadata"`
				Spec     k8sPodSpec `yaml:"spec"`
			} `yaml:"template"`
			VolumeClaimTemplates []struct {
				Metadata k8sMeta `yaml:"metadata"`
				Spec     struct {
					AccessModes []string `yaml:"accessModes"`
					Resources   struct {
						Requests map[string]string `yaml:"requests"`
					} `yaml:"resources"`
				} `yaml:"spec"`
			} `yaml:"volumeClaimTemplates"`
		} `yaml:"spec"`
	}
)

// manifests is everything decoded from examples/kubernetes, by kind.
type manifests struct {
	drivers   []k8sCSIDriver
	classes   []k8sStorageClass
	configs   []k8sConfigMap
	secrets   []k8sSecret
	workloads []k8sWorkload
	accounts  map[string]bool
	roles     map[string]bool // kind/name
	roleDefs  map[string]*k8sRole
	bindings  []k8sBinding
}

func decodeStrict(doc []byte, into any) error {
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
	return dec.Decode(into)
}

func loadManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob("../../examples/kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	m := manifests{accounts: map[string]bool{}, roles: map[string]bool{}, roleDefs: map[string]*k8sRole{}}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for i := 0; ; i++ {
			var node yaml.Node
			if err := dec.Decode(&node); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			doc, err := yaml.Marshal(&node)
			if err != nil {
				t.Fatal(err)
			}
			var h k8sHeader
			if err := yaml.Unmarshal(doc, &h); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			where := f + ": " + h.Kind + "/" + h.Metadata.Name
			if h.APIVersion == "" || h.Kind == "" || h.Metadata.Name == "" {
				t.Errorf("%s document %d lacks apiVersion, kind or metadata.name", f, i)
				continue
			}
			switch h.Kind {
			case "Namespace", "CSIDriver", "StorageClass", "VolumeSnapshotClass", "ClusterRole", "ClusterRoleBinding":
				if h.Metadata.Namespace != "" {
					t.Errorf("%s: a cluster-scoped object has a namespace", where)
				}
			default:
				if h.Metadata.Namespace != "rds-reconcile" {
					t.Errorf("%s: namespace %q, want rds-reconcile", where, h.Metadata.Namespace)
				}
			}
			var target any
			switch h.Kind {
			case "Namespace":
				target = &k8sPlain{}
			case "ServiceAccount":
				target = &k8sPlain{}
				m.accounts[h.Metadata.Name] = true
			case "CSIDriver":
				m.drivers = append(m.drivers, k8sCSIDriver{})
				target = &m.drivers[len(m.drivers)-1]
			case "StorageClass":
				m.classes = append(m.classes, k8sStorageClass{})
				target = &m.classes[len(m.classes)-1]
			case "VolumeSnapshotClass":
				target = &k8sVolumeSnapshotClass{} // checked in k8s-e2e/manifest
			case "Secret":
				m.secrets = append(m.secrets, k8sSecret{})
				target = &m.secrets[len(m.secrets)-1]
			case "ConfigMap":
				m.configs = append(m.configs, k8sConfigMap{})
				target = &m.configs[len(m.configs)-1]
			case "ClusterRole", "Role":
				r := &k8sRole{}
				target = r
				m.roles[h.Kind+"/"+h.Metadata.Name] = true
				m.roleDefs[h.Kind+"/"+h.Metadata.Name] = r
			case "ClusterRoleBinding", "RoleBinding":
				m.bindings = append(m.bindings, k8sBinding{})
				target = &m.bindings[len(m.bindings)-1]
			case "StatefulSet", "Deployment", "DaemonSet":
				m.workloads = append(m.workloads, k8sWorkload{})
				target = &m.workloads[len(m.workloads)-1]
			default:
				t.Errorf("%s: kind %s has no strict type in this test; add one", where, h.Kind)
				continue
			}
			if err := decodeStrict(doc, target); err != nil {
				t.Errorf("%s: %v", where, err)
			}
		}
	}
	return m
}

// TestKubernetesManifests decodes every manifest strictly and checks that
// they agree with each other and with the csi command.
func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t)
	if len(m.drivers) != 1 || m.drivers[0].Metadata.Name != csi.DefaultDriverName || !m.drivers[0].Spec.AttachRequired {
		t.Errorf("want one CSIDriver %s with attachRequired", csi.DefaultDriverName)
	}
	for _, sc := range m.classes {
		if sc.Provisioner != csi.DefaultDriverName {
			t.Errorf("StorageClass %s: provisioner %q", sc.Metadata.Name, sc.Provisioner)
		}
		if _, err := csi.ParseParams(sc.Parameters); err != nil {
			t.Errorf("StorageClass %s: %v", sc.Metadata.Name, err)
		}
	}
	for _, w := range m.workloads {
		// The node plugin's in-use detection must see host processes.
		if w.Kind == "DaemonSet" && (!w.Spec.Template.Spec.HostPID || !w.Spec.Template.Spec.HostNetwork) {
			t.Errorf("DaemonSet %s: want hostPID and hostNetwork", w.Metadata.Name)
		}
	}
	for _, b := range m.bindings {
		if !m.roles[b.RoleRef.Kind+"/"+b.RoleRef.Name] {
			t.Errorf("%s %s refers to missing %s %s", b.Kind, b.Metadata.Name, b.RoleRef.Kind, b.RoleRef.Name)
		}
		for _, s := range b.Subjects {
			if s.Kind == "ServiceAccount" && !m.accounts[s.Name] {
				t.Errorf("%s %s binds missing ServiceAccount %s", b.Kind, b.Metadata.Name, s.Name)
			}
		}
	}

	// The base state in the ConfigMap is valid and its key files live
	// where the controller mounts the Secret.
	var base *spec.State
	for _, cm := range m.configs {
		if text, ok := cm.Data["base.yaml"]; ok {
			st, err := spec.LoadBytes("configmap/"+cm.Metadata.Name+"/base.yaml", []byte(text))
			if err != nil {
				t.Fatalf("base state in ConfigMap %s: %v", cm.Metadata.Name, err)
			}
			base = st
		}
	}
	if base == nil {
		t.Fatal("no ConfigMap holds base.yaml")
	}
	var secretKeys []string
	for _, s := range m.secrets {
		for k := range s.StringData {
			secretKeys = append(secretKeys, k)
		}
	}

	image := ""
	sidecars := map[string]bool{}
	modes := map[string]bool{}
	for _, w := range m.workloads {
		where := w.Kind + "/" + w.Metadata.Name
		pod := w.Spec.Template.Spec
		if !m.accounts[pod.ServiceAccountName] {
			t.Errorf("%s: service account %q is not declared", where, pod.ServiceAccountName)
		}
		for k, v := range w.Spec.Selector.MatchLabels {
			if w.Spec.Template.Metadata.Labels[k] != v {
				t.Errorf("%s: selector %s=%s does not match the template labels", where, k, v)
			}
		}
		volumes := map[string]k8sVolume{}
		for _, v := range pod.Volumes {
			volumes[v.Name] = v
		}
		for _, vct := range w.Spec.VolumeClaimTemplates {
			volumes[vct.Metadata.Name] = k8sVolume{Name: vct.Metadata.Name}
		}
		for _, c := range pod.Containers {
			mounts := map[string]string{} // path -> volume
			for _, vm := range c.VolumeMounts {
				if _, ok := volumes[vm.Name]; !ok {
					t.Errorf("%s container %s mounts undeclared volume %q", where, c.Name, vm.Name)
				}
				mounts[vm.MountPath] = vm.Name
			}
			if !strings.HasPrefix(c.Image, "ghcr.io/rds-reconcile/rds-reconcile:") {
				for _, s := range []string{"csi-provisioner", "csi-attacher", "csi-resizer", "csi-snapshotter", "livenessprobe", "csi-node-driver-registrar"} {
					if strings.Contains(c.Image, "/"+s+":") {
						sidecars[w.Kind+"/"+s] = true
					}
				}
				if slices.Contains(c.Args, "--csi-address=/csi/csi.sock") && mounts["/csi"] != "socket-dir" {
					t.Errorf("%s container %s: /csi is not the socket volume", where, c.Name)
				}
				continue
			}
			if image == "" {
				image = c.Image
			} else if c.Image != image {
				t.Errorf("%s: image %s, elsewhere %s", where, c.Image, image)
			}
			flags := checkCSIArgs(t, where, c.Args)
			modes[flags["mode"]] = true
			if flags["endpoint"] != "unix:///csi/csi.sock" || mounts["/csi"] != "socket-dir" {
				t.Errorf("%s: endpoint %q must be unix:///csi/csi.sock on the socket volume", where, flags["endpoint"])
			}
			if mounts[flags["state-dir"]] == "" {
				t.Errorf("%s: --state-dir %s is not a mounted volume", where, flags["state-dir"])
			}
			switch flags["mode"] {
			case "controller":
				checkControllerLayer(t, m, w, flags["layer"])
				if f := flags["file"]; mounts[filepath.Dir(f)] == "" {
					t.Errorf("%s: --file %s is not on a mounted volume", where, f)
				}
				for _, p := range []string{base.Target.SSH.PrivateKeyFile, base.Target.SSH.KnownHostsFile} {
					dir := filepath.Dir(p)
					if v := volumes[mounts[dir]]; v.Secret == nil || !slices.Contains(secretKeys, filepath.Base(p)) {
						t.Errorf("%s: %s is not a key of the mounted SSH Secret", where, p)
					}
				}
			case "node":
				if !c.SecurityContext.Privileged {
					t.Errorf("%s: the node plugin must be privileged", where)
				}
				ok := false
				for _, vm := range c.VolumeMounts {
					if vm.MountPath == "/var/lib/kubelet" && vm.MountPropagation == "Bidirectional" {
						ok = true
					}
				}
				if !ok {
					t.Errorf("%s: /var/lib/kubelet needs Bidirectional mount propagation", where)
				}
				for _, p := range []string{"/dev", "/sys"} {
					if v := volumes[mounts[p]]; v.HostPath == nil || v.HostPath.Path != p {
						t.Errorf("%s: %s must be the host's", where, p)
					}
				}
				if v := volumes[mounts[flags["state-dir"]]]; v.HostPath == nil {
					t.Errorf("%s: the node state dir must be on the host", where)
				}
			}
		}
	}
	for _, want := range []string{"Deployment/csi-provisioner", "Deployment/csi-attacher", "Deployment/csi-resizer",
		"Deployment/csi-snapshotter", "Deployment/livenessprobe", "DaemonSet/csi-node-driver-registrar", "DaemonSet/livenessprobe"} {
		if !sidecars[want] {
			t.Errorf("missing sidecar %s", want)
		}
	}
	if !modes["controller"] || !modes["node"] {
		t.Errorf("modes served: %v; want controller and node", modes)
	}
}

// checkControllerLayer: the controller keeps its layer in a ConfigMap of
// its namespace that its service account may get and update (that one by
// name) and create, and needs no storage of its own: a one-replica
// Deployment replaced whole (Recreate), no claim templates, every sidecar
// with leader election.
func checkControllerLayer(t *testing.T, m manifests, w k8sWorkload, layer string) {
	t.Helper()
	where := w.Kind + "/" + w.Metadata.Name
	if w.Kind != "Deployment" || w.Spec.Replicas == nil || *w.Spec.Replicas != 1 || w.Spec.Strategy.Type != "Recreate" {
		t.Errorf("%s: want a Deployment with replicas: 1 and strategy Recreate", where)
	}
	if len(w.Spec.VolumeClaimTemplates) > 0 {
		t.Errorf("%s: the controller must need no storage class (volumeClaimTemplates)", where)
	}
	for _, c := range w.Spec.Template.Spec.Containers {
		if strings.Contains(c.Image, "/csi-") && !slices.Contains(c.Args, "--leader-election") {
			t.Errorf("%s container %s: no --leader-election", where, c.Name)
		}
	}
	ref, err := kube.ParseLayerRef(layer)
	if err != nil {
		t.Errorf("%s: --layer: %v", where, err)
		return
	}
	if ref.Namespace != w.Metadata.Namespace {
		t.Errorf("%s: --layer %s is not in the controller's namespace", where, ref)
	}
	granted := map[string]bool{}
	for _, b := range m.bindings {
		if b.Metadata.Namespace != ref.Namespace && b.Kind == "RoleBinding" {
			continue
		}
		bound := slices.ContainsFunc(b.Subjects, func(s struct {
			Kind      string `yaml:"kind"`
			Name      string `yaml:"name"`
			Namespace string `yaml:"namespace"`
		}) bool {
			return s.Kind == "ServiceAccount" && s.Name == w.Spec.Template.Spec.ServiceAccountName && s.Namespace == w.Metadata.Namespace
		})
		r := m.roleDefs[b.RoleRef.Kind+"/"+b.RoleRef.Name]
		if !bound || r == nil {
			continue
		}
		for _, rule := range r.Rules {
			if !slices.Contains(rule.APIGroups, "") || !slices.Contains(rule.Resources, "configmaps") {
				continue
			}
			if len(rule.ResourceNames) > 0 && !slices.Contains(rule.ResourceNames, ref.Name) {
				continue
			}
			for _, v := range rule.Verbs {
				granted[v] = true
			}
		}
	}
	for _, v := range []string{"get", "update", "create"} {
		if !granted[v] {
			t.Errorf("%s: the service account may not %s ConfigMap %s (rbac.yaml)", where, v, ref)
		}
	}
}

// checkCSIArgs parses a container's args with the real csi command, so a
// manifest can never pass a flag the binary does not have.
func checkCSIArgs(t *testing.T, where string, args []string) map[string]string {
	t.Helper()
	if len(args) == 0 || args[0] != "csi" {
		t.Errorf("%s: args %v must start with the csi subcommand", where, args)
		return map[string]string{}
	}
	root := newRootCmd(strings.NewReader(""), io.Discard, io.Discard)
	cmd, rest, err := root.Find(args)
	if err != nil || cmd.Name() != "csi" {
		t.Errorf("%s: %v", where, err)
		return map[string]string{}
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Errorf("%s: args %v: %v", where, rest, err)
	}
	out := map[string]string{}
	for _, name := range []string{"mode", "endpoint", "state-dir", "file", "fabric", "node-id", "layer"} {
		if f := cmd.Flags().Lookup(name); f != nil {
			out[name] = strings.Trim(f.Value.String(), "[]")
		}
	}
	return out
}

// runInProcess runs `rds-reconcile ARGS` in-process until the test ends
// (cancelled then, and it must return nil) and gives its stderr and its
// result channel.
func runInProcess(t *testing.T, args []string) (*syncBuffer, <-chan error) {
	t.Helper()
	var out, errb syncBuffer
	root := newRootCmd(strings.NewReader(""), &out, &errb)
	root.SetArgs(args)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s returned %v\n%s", strings.Join(args, " "), err, errb.String())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not stop on cancel", strings.Join(args, " "))
		}
	})
	return &errb, done
}

// runCSICommand runs a csi command in-process until the test ends, waits
// for its socket, and returns its stderr.
func runCSICommand(t *testing.T, sock string, args []string) *syncBuffer {
	t.Helper()
	errb, done := runInProcess(t, args)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			return errb
		}
		select {
		case err := <-done:
			t.Fatalf("csi exited early: %v\n%s", err, errb.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket; stderr:\n%s", errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
