package csi

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

// StorageClass parameter keys, the same names as the state file's
// connection fields so a user reads one vocabulary everywhere.
const (
	ParamCtrlLossTmo    = "ctrlLossTmo"
	ParamReconnectDelay = "reconnectDelay"
	ParamKeepAliveTmo   = "keepAliveTmo"
	ParamFSType         = "fsType"
)

// Volume context keys: everything a node needs to connect without asking the
// controller or the RDS.
const (
	CtxAddress        = "address"
	CtxPort           = "port"
	CtxNQN            = "nqn"
	CtxNQNPrefix      = "nqnPrefix"
	CtxBasePath       = "basePath"
	CtxSize           = "size" // bytes at creation; informational on the node
	CtxCtrlLossTmo    = ParamCtrlLossTmo
	CtxReconnectDelay = ParamReconnectDelay
	CtxKeepAliveTmo   = ParamKeepAliveTmo
	CtxFSType         = ParamFSType
)

// k8sParamPrefix marks parameters the external-provisioner adds itself
// (csi.storage.k8s.io/pvc/name with --extra-create-metadata); they are not
// ours to validate.
const k8sParamPrefix = "csi.storage.k8s.io/"

// maxTimeout bounds the timeouts to a week: anything larger is a typo
// (milliseconds for seconds), and -1 already means "forever".
const maxTimeout = 7 * 24 * 3600

// supportedFSTypes are the filesystems the node formats and grows.
var supportedFSTypes = []string{"ext4", "xfs"}

// Params are the validated StorageClass parameters of a volume. Nil
// timeouts inherit the state's defaults.
type Params struct {
	Connection spec.Connection
	FSType     string
}

// ParseParams validates StorageClass parameters. Unknown keys are rejected so
// a typo ("ctrlLossTimeout") is reported instead of silently ignored; keys
// the Kubernetes provisioner adds (csi.storage.k8s.io/...) are skipped.
// Every problem is reported at once, sorted by key.
func ParseParams(in map[string]string) (Params, error) {
	var p Params
	var problems []string
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := strings.TrimSpace(in[k])
		switch k {
		case ParamCtrlLossTmo:
			n, err := parseTimeout(k, v, -1, "-1 (reconnect forever) or a number of seconds >= 0")
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			p.Connection.CtrlLossTmo = &n
		case ParamReconnectDelay:
			n, err := parseTimeout(k, v, 1, "a number of seconds >= 1 between reconnect attempts")
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			p.Connection.ReconnectDelay = &n
		case ParamKeepAliveTmo:
			n, err := parseTimeout(k, v, 0, "a number of seconds >= 0 (0 keeps the kernel default)")
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			p.Connection.KeepAliveTmo = &n
		case ParamFSType:
			if !slices.Contains(supportedFSTypes, v) {
				problems = append(problems, fmt.Sprintf("parameter %s: %q is not supported; use one of %s", k, v, strings.Join(supportedFSTypes, ", ")))
				continue
			}
			p.FSType = v
		default:
			if strings.HasPrefix(k, k8sParamPrefix) {
				continue
			}
			problems = append(problems, fmt.Sprintf("parameter %q is unknown; the supported parameters are %s, %s, %s and %s",
				k, ParamCtrlLossTmo, ParamReconnectDelay, ParamKeepAliveTmo, ParamFSType))
		}
	}
	if len(problems) > 0 {
		return Params{}, fmt.Errorf("invalid StorageClass parameters: %s", strings.Join(problems, "; "))
	}
	return p, nil
}

func parseTimeout(key, v string, lowest int, want string) (int, error) {
	if v == "" {
		return 0, fmt.Errorf("parameter %s is empty; it must be %s", key, want)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("parameter %s: %q is not a whole number; it must be %s", key, v, want)
	}
	if n < lowest || n > maxTimeout {
		return 0, fmt.Errorf("parameter %s: %d is out of range; it must be %s, at most %d (a week)", key, n, want, maxTimeout)
	}
	return n, nil
}

// volumeContext is what CreateVolume hands the node: where to connect and how.
func volumeContext(st *spec.State, v *spec.Volume) map[string]string {
	t := st.TimeoutsFor(v)
	fs := v.FSType
	if fs == "" && st.Defaults != nil {
		fs = st.Defaults.FSType
	}
	if fs == "" {
		fs = spec.DefaultFSType
	}
	port := spec.DefaultNVMePort
	var addr, prefix, base string
	if st.Target != nil {
		addr, prefix, base = st.Target.Address, st.Target.NQNPrefix, st.Target.BasePath
		if st.Target.NVMePort != 0 {
			port = st.Target.NVMePort
		}
	}
	if prefix == "" {
		prefix = spec.DefaultNQNPrefix
	}
	return map[string]string{
		CtxAddress:        addr,
		CtxPort:           strconv.Itoa(port),
		CtxNQN:            prefix + v.Name,
		CtxNQNPrefix:      prefix,
		CtxBasePath:       base,
		CtxSize:           strconv.FormatInt(v.Size.Bytes, 10),
		CtxCtrlLossTmo:    strconv.Itoa(t.CtrlLossTmo),
		CtxReconnectDelay: strconv.Itoa(t.ReconnectDelay),
		CtxKeepAliveTmo:   strconv.Itoa(t.KeepAliveTmo),
		CtxFSType:         fs,
	}
}

// nodeVolume is a volume context decoded and checked on the node.
type nodeVolume struct {
	Address   string
	Port      int
	NQN       string
	NQNPrefix string
	BasePath  string
	Size      int64
	Timeouts  spec.Timeouts
	FSType    string
}

// contextKeyOf names the volume context key a node layer field comes from.
var contextKeyOf = map[string]string{
	"target.address":   CtxAddress,
	"target.basePath":  CtxBasePath,
	"target.nqnPrefix": CtxNQNPrefix,
}

// checkContextTarget checks address, basePath and nqnPrefix by the rules the
// node layer is validated with (spec), on a state made of them alone, and
// names the problems by context key: the layer file has no such lines yet.
func checkContextTarget(name string, nv nodeVolume) []string {
	// JSON is YAML: spec reads it as a state file.
	data, err := json.Marshal(map[string]any{
		"apiVersion": spec.APIVersion, "kind": spec.Kind,
		"target":  map[string]any{"address": nv.Address, "basePath": nv.BasePath, "nqnPrefix": nv.NQNPrefix},
		"volumes": []map[string]any{{"name": name, "size": "1Mi"}},
	})
	if err != nil {
		return []string{err.Error()}
	}
	_, err = spec.LoadBytes("volume context", data)
	var es *spec.Errors
	if err == nil || !errors.As(err, &es) {
		if err != nil {
			return []string{err.Error()}
		}
		return nil
	}
	var out []string
	for _, e := range *es {
		if k, ok := contextKeyOf[e.Path]; ok {
			out = append(out, k+" "+e.Msg)
		} else if e.Path != "" {
			out = append(out, e.Path+": "+e.Msg)
		} else {
			out = append(out, e.Msg)
		}
	}
	return out
}

// parseVolumeContext checks a volume context before anything from it reaches
// the kernel; the node layer's validation (spec) checks it again on write.
func parseVolumeContext(name string, vc map[string]string) (nodeVolume, error) {
	var nv nodeVolume
	var problems []string
	need := func(k string) string {
		v := vc[k]
		if v == "" {
			problems = append(problems, fmt.Sprintf("%s is missing", k))
		}
		return v
	}
	nv.Address = need(CtxAddress)
	nv.NQN = need(CtxNQN)
	nv.NQNPrefix = need(CtxNQNPrefix)
	nv.BasePath = need(CtxBasePath)
	if p := need(CtxPort); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			problems = append(problems, fmt.Sprintf("%s %q is not a TCP port", CtxPort, p))
		}
		nv.Port = n
	}
	nv.Size = spec.SizeAlign
	if sz := vc[CtxSize]; sz != "" {
		n, err := strconv.ParseInt(sz, 10, 64)
		if err != nil || n <= 0 || n%spec.SizeAlign != 0 || n > spec.MaxVolumeSize {
			problems = append(problems, fmt.Sprintf("%s %q is not a positive multiple of 1 MiB up to 1 PiB", CtxSize, sz))
		}
		nv.Size = n
	}
	if nv.NQNPrefix != "" && nv.NQN != "" && nv.NQN != nv.NQNPrefix+name {
		problems = append(problems, fmt.Sprintf("%s %q is not %s%s", CtxNQN, nv.NQN, nv.NQNPrefix, name))
	}
	params := map[string]string{}
	for _, k := range []string{CtxCtrlLossTmo, CtxReconnectDelay, CtxKeepAliveTmo, CtxFSType} {
		if v, ok := vc[k]; ok {
			params[k] = v
		}
	}
	p, err := ParseParams(params)
	if err != nil {
		problems = append(problems, err.Error())
	}
	if nv.Address != "" && nv.NQNPrefix != "" && nv.BasePath != "" {
		problems = append(problems, checkContextTarget(name, nv)...)
	}
	if len(problems) > 0 {
		return nodeVolume{}, fmt.Errorf("invalid volume context: %s", strings.Join(problems, "; "))
	}
	nv.Timeouts = (&spec.State{Defaults: &spec.Defaults{Connection: p.Connection}}).TimeoutsFor(nil)
	nv.FSType = p.FSType
	if nv.FSType == "" {
		nv.FSType = spec.DefaultFSType
	}
	return nv, nil
}
