// Package manifest reads the Kubernetes manifests in examples/kubernetes the
// way `make k8s-e2e` needs them: the containers of a workload with their
// exact args, rewritten only where a process on the test machine cannot do
// what a container does (its mounts, its listen ports), and the StorageClass
// parameters as csi-provisioner sees them.
//
// The harness runs no container runtime: each container of the controller
// StatefulSet becomes a process. Everything else about it (flags, images,
// service account, RBAC) is taken from the manifest unchanged, so a wrong
// flag or rule in the shipped files fails the test.
package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Meta is the part of metadata the harness uses.
type Meta struct {
	Name      string `yaml:"name"`
	Namespace string `yaml:"namespace"`
}

// Doc is one YAML document of a manifest file.
type Doc struct {
	File       string
	Index      int
	APIVersion string
	Kind       string
	Metadata   Meta
	Node       *yaml.Node
}

// Decode decodes the document into v.
func (d Doc) Decode(v any) error {
	if err := d.Node.Decode(v); err != nil {
		return fmt.Errorf("%s document %d (%s/%s): %w", d.File, d.Index, d.Kind, d.Metadata.Name, err)
	}
	return nil
}

// LoadDir reads every *.yaml file of dir, in name order, document by document.
func LoadDir(dir string) ([]Doc, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("listing manifests: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no *.yaml in %s", dir)
	}
	sort.Strings(files)
	var docs []Doc
	for _, f := range files {
		ds, err := LoadFile(f)
		if err != nil {
			return nil, err
		}
		docs = append(docs, ds...)
	}
	return docs, nil
}

// LoadFile reads the documents of one manifest file.
func LoadFile(file string) ([]Doc, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	var docs []Doc
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		var n yaml.Node
		if err := dec.Decode(&n); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("%s document %d: %w", file, i, err)
		}
		var h struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Metadata   Meta   `yaml:"metadata"`
		}
		if err := n.Decode(&h); err != nil {
			return nil, fmt.Errorf("%s document %d: %w", file, i, err)
		}
		if h.Kind == "" {
			continue // an empty document (a trailing ---)
		}
		docs = append(docs, Doc{File: file, Index: i, APIVersion: h.APIVersion, Kind: h.Kind, Metadata: h.Metadata, Node: &n})
	}
	return docs, nil
}

// Find returns the one document of that kind and name.
func Find(docs []Doc, kind, name string) (Doc, error) {
	var found []Doc
	for _, d := range docs {
		if d.Kind == kind && d.Metadata.Name == name {
			found = append(found, d)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return Doc{}, fmt.Errorf("no %s %q in the manifests", kind, name)
	default:
		return Doc{}, fmt.Errorf("%d documents are %s %q", len(found), kind, name)
	}
}

// WorkloadKinds are the kinds FindWorkload looks at.
var workloadKinds = []string{"Deployment", "StatefulSet", "DaemonSet"}

// FindWorkload returns the one Deployment, StatefulSet or DaemonSet of that
// name, whichever kind the manifests make it: the harness follows the
// manifest when its kind changes.
func FindWorkload(docs []Doc, name string) (Workload, error) {
	var found []Doc
	for _, d := range docs {
		if slices.Contains(workloadKinds, d.Kind) && d.Metadata.Name == name {
			found = append(found, d)
		}
	}
	if len(found) != 1 {
		return Workload{}, fmt.Errorf("want one workload (%s) named %q in the manifests, found %d", strings.Join(workloadKinds, ", "), name, len(found))
	}
	var w Workload
	if err := found[0].Decode(&w); err != nil {
		return Workload{}, err
	}
	return w, nil
}

// PodName is the name a pod of the workload gets: <name>-0 for a
// StatefulSet, <name>-k8s-e2e (standing for the ReplicaSet's hash and
// suffix) otherwise.
func (w Workload) PodName() string {
	if w.Kind == "StatefulSet" {
		return w.Metadata.Name + "-0"
	}
	return w.Metadata.Name + "-k8s-e2e"
}

// Workload is a StatefulSet, Deployment or DaemonSet, reduced to its pod.
type Workload struct {
	Kind     string `yaml:"kind"`
	Metadata Meta   `yaml:"metadata"`
	Spec     struct {
		Template struct {
			Spec PodSpec `yaml:"spec"`
		} `yaml:"template"`
		VolumeClaimTemplates []struct {
			Metadata Meta `yaml:"metadata"`
		} `yaml:"volumeClaimTemplates"`
	} `yaml:"spec"`
}

// PodSpec is the part of a pod spec the harness runs.
type PodSpec struct {
	ServiceAccountName string      `yaml:"serviceAccountName"`
	Containers         []Container `yaml:"containers"`
	Volumes            []Volume    `yaml:"volumes"`
}

// Container is one container of a pod.
type Container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

// Volume is a pod volume; exactly one source is set.
type Volume struct {
	Name      string    `yaml:"name"`
	EmptyDir  *struct{} `yaml:"emptyDir"`
	ConfigMap *struct {
		Name string `yaml:"name"`
	} `yaml:"configMap"`
	Secret *struct {
		SecretName  string `yaml:"secretName"`
		DefaultMode *int   `yaml:"defaultMode"`
	} `yaml:"secret"`
	HostPath *struct {
		Path string `yaml:"path"`
	} `yaml:"hostPath"`
	PersistentVolumeClaim *struct {
		ClaimName string `yaml:"claimName"`
	} `yaml:"persistentVolumeClaim"`
}

// StorageClass is the part of a StorageClass the checks read.
type StorageClass struct {
	Metadata             Meta              `yaml:"metadata"`
	Provisioner          string            `yaml:"provisioner"`
	Parameters           map[string]string `yaml:"parameters"`
	VolumeBindingMode    string            `yaml:"volumeBindingMode"`
	AllowVolumeExpansion bool              `yaml:"allowVolumeExpansion"`
	ReclaimPolicy        string            `yaml:"reclaimPolicy"`
}

// VolumeSnapshotClass is the part of a VolumeSnapshotClass the checks read.
type VolumeSnapshotClass struct {
	Metadata       Meta              `yaml:"metadata"`
	Driver         string            `yaml:"driver"`
	DeletionPolicy string            `yaml:"deletionPolicy"`
	Parameters     map[string]string `yaml:"parameters"`
}

// Image splits an image reference into its last path element and its tag:
// registry.k8s.io/sig-storage/csi-provisioner:v5.3.0 -> csi-provisioner, v5.3.0.
func Image(ref string) (name, tag string) {
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref, tag = ref[:i], ref[i+1:]
	}
	return ref[strings.LastIndex(ref, "/")+1:], tag
}

// PodEnv is what the harness supplies in place of the kubelet: the pod's
// identity, for $(VAR) expansion through fieldRef env entries.
type PodEnv struct {
	PodName  string
	NodeName string
}

// VolumeDir is where a pod volume lives on the test machine.
type VolumeDir struct {
	Name string
	// Kind is emptyDir, configMap, secret, hostPath, persistentVolumeClaim or
	// volumeClaimTemplate.
	Kind string
	// Source names the ConfigMap, Secret, claim or host path.
	Source string
	// Mode is the Secret's defaultMode (0 when not given).
	Mode int
	Dir  string
}

// Process is one container run as a process.
type Process struct {
	Name  string
	Image string
	Args  []string
	Env   []string // NAME=value, from the container's env
	// Rewrites lists each arg the harness changed, "from -> to", for the log.
	Rewrites []string
}

// Pod is a workload's pod laid out below a root folder.
type Pod struct {
	Namespace      string
	ServiceAccount string
	Processes      []Process
	Volumes        []VolumeDir
	// Ports maps each named container port (name, else the number) to the
	// loopback port it got.
	Ports map[string]int
}

// Layout lays a workload's pod out below root: each volume becomes the folder
// root/volumes/<name>, each container a Process whose args are the
// manifest's, with exactly these rewrites (a process has no mount namespace
// and shares the machine's network):
//
//  1. $(VAR) is expanded from the container's env (a value, or a fieldRef to
//     metadata.name, metadata.namespace, spec.nodeName or
//     spec.serviceAccountName), as the kubelet does.
//  2. A path at or below a volumeMount's mountPath, at the start of an arg,
//     after "=" or after "unix://", is moved to the volume's folder
//     (subPath honoured): --endpoint=unix:///csi/csi.sock ->
//     unix://<root>/volumes/socket-dir/csi.sock.
//  3. A listen address ":N" or "0.0.0.0:N" after "=" whose N is one of the
//     pod's containerPorts becomes 127.0.0.1:<port(N)>: containers of many
//     pods share no network namespace here.
//
// A container with a command, a volumeMount of an undeclared volume or an
// arg with a newline is an error: the harness would not run what the
// manifest says.
func Layout(w Workload, root string, env PodEnv, port func(containerPort int) (int, error)) (Pod, error) {
	spec := w.Spec.Template.Spec
	pod := Pod{Namespace: w.Metadata.Namespace, ServiceAccount: spec.ServiceAccountName, Ports: map[string]int{}}
	vols := map[string]VolumeDir{}
	for _, v := range spec.Volumes {
		vd := VolumeDir{Name: v.Name, Dir: filepath.Join(root, "volumes", v.Name)}
		switch {
		case v.EmptyDir != nil:
			vd.Kind = "emptyDir"
		case v.ConfigMap != nil:
			vd.Kind, vd.Source = "configMap", v.ConfigMap.Name
		case v.Secret != nil:
			vd.Kind, vd.Source = "secret", v.Secret.SecretName
			if v.Secret.DefaultMode != nil {
				vd.Mode = *v.Secret.DefaultMode
			}
		case v.HostPath != nil:
			vd.Kind, vd.Source = "hostPath", v.HostPath.Path
		case v.PersistentVolumeClaim != nil:
			vd.Kind, vd.Source = "persistentVolumeClaim", v.PersistentVolumeClaim.ClaimName
		default:
			return Pod{}, fmt.Errorf("volume %q: no source the harness knows", v.Name)
		}
		if _, dup := vols[v.Name]; dup {
			return Pod{}, fmt.Errorf("volume %q declared twice", v.Name)
		}
		vols[v.Name] = vd
		pod.Volumes = append(pod.Volumes, vd)
	}
	for _, t := range w.Spec.VolumeClaimTemplates {
		vd := VolumeDir{Name: t.Metadata.Name, Kind: "volumeClaimTemplate", Source: t.Metadata.Name,
			Dir: filepath.Join(root, "volumes", t.Metadata.Name)}
		if _, dup := vols[vd.Name]; dup {
			return Pod{}, fmt.Errorf("volume %q declared twice", vd.Name)
		}
		vols[vd.Name] = vd
		pod.Volumes = append(pod.Volumes, vd)
	}

	// Every containerPort of the pod gets one loopback port.
	hostPort := map[int]int{}
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			if _, ok := hostPort[p.ContainerPort]; !ok {
				hp, err := port(p.ContainerPort)
				if err != nil {
					return Pod{}, fmt.Errorf("a port for %s/%d: %w", c.Name, p.ContainerPort, err)
				}
				hostPort[p.ContainerPort] = hp
			}
			key := p.Name
			if key == "" {
				key = strconv.Itoa(p.ContainerPort)
			}
			pod.Ports[key] = hostPort[p.ContainerPort]
		}
	}

	for _, c := range spec.Containers {
		if len(c.Command) > 0 {
			return Pod{}, fmt.Errorf("container %s: a command is not supported (the harness runs the image's binary with the args)", c.Name)
		}
		var mounts []mount
		for _, m := range c.VolumeMounts {
			vd, ok := vols[m.Name]
			if !ok {
				return Pod{}, fmt.Errorf("container %s mounts undeclared volume %q", c.Name, m.Name)
			}
			mounts = append(mounts, mount{path: filepath.Clean(m.MountPath), dir: filepath.Join(vd.Dir, m.SubPath)})
		}
		// Longest mount path first: /etc/rds-reconcile/ssh before /etc/rds-reconcile.
		slices.SortStableFunc(mounts, func(a, b mount) int { return len(b.path) - len(a.path) })

		vars := map[string]string{}
		var envs []string
		for _, e := range c.Env {
			val := e.Value
			if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
				switch e.ValueFrom.FieldRef.FieldPath {
				case "metadata.name":
					val = env.PodName
				case "metadata.namespace":
					val = w.Metadata.Namespace
				case "spec.nodeName":
					val = env.NodeName
				case "spec.serviceAccountName":
					val = spec.ServiceAccountName
				default:
					return Pod{}, fmt.Errorf("container %s env %s: fieldRef %q is not supported", c.Name, e.Name, e.ValueFrom.FieldRef.FieldPath)
				}
			} else if e.ValueFrom != nil {
				return Pod{}, fmt.Errorf("container %s env %s: only value and fieldRef are supported", c.Name, e.Name)
			}
			vars[e.Name] = val
			envs = append(envs, e.Name+"="+val)
		}

		p := Process{Name: c.Name, Image: c.Image, Env: envs}
		for _, a := range c.Args {
			if strings.ContainsAny(a, "\n\x00") {
				return Pod{}, fmt.Errorf("container %s: an arg holds a newline or NUL: %q", c.Name, a)
			}
			b := expandVars(a, vars)
			b = rewritePaths(b, mounts)
			b = rewriteListen(b, hostPort)
			if b != a {
				p.Rewrites = append(p.Rewrites, a+" -> "+b)
			}
			p.Args = append(p.Args, b)
		}
		pod.Processes = append(pod.Processes, p)
	}
	return pod, nil
}

type mount struct{ path, dir string }

// MapPath moves an absolute container path into the pod's folders by the
// container's mounts (rule 2 of Layout); ok is false when no mount holds it.
func MapPath(w Workload, root, container, path string) (string, bool) {
	spec := w.Spec.Template.Spec
	for _, c := range spec.Containers {
		if c.Name != container {
			continue
		}
		best, bestLen := "", -1
		clean := filepath.Clean(path)
		for _, m := range c.VolumeMounts {
			mp := filepath.Clean(m.MountPath)
			if (clean == mp || strings.HasPrefix(clean, mp+"/")) && len(mp) > bestLen {
				best = filepath.Join(root, "volumes", m.Name, m.SubPath, strings.TrimPrefix(clean, mp))
				bestLen = len(mp)
			}
		}
		return best, bestLen >= 0
	}
	return "", false
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expandVars replaces $(NAME) by the env value; an unknown name stays as it
// is, as the kubelet leaves it.
func expandVars(s string, vars map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := vars[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

func rewritePaths(s string, mounts []mount) string {
	for _, m := range mounts {
		re := regexp.MustCompile(`(^|=|unix://)` + regexp.QuoteMeta(m.path) + `(/|$)`)
		if loc := re.FindStringSubmatchIndex(s); loc != nil {
			// loc[3] ends the prefix group, loc[4] starts the suffix group.
			return s[:loc[3]] + m.dir + s[loc[4]:]
		}
	}
	return s
}

var listenArg = regexp.MustCompile(`^(--?[A-Za-z0-9-]+=)(0\.0\.0\.0)?:([0-9]+)$`)

func rewriteListen(s string, hostPort map[int]int) string {
	m := listenArg.FindStringSubmatch(s)
	if m == nil {
		return s
	}
	n, _ := strconv.Atoi(m[3])
	hp, ok := hostPort[n]
	if !ok {
		return s
	}
	return m[1] + "127.0.0.1:" + strconv.Itoa(hp)
}
