package manifest

import (
	"fmt"
	"slices"
	"strings"
)

// csi-provisioner's reading of StorageClass parameters, as in
// external-provisioner v5.3.0 pkg/controller/controller.go (Provision and
// removePrefixedParameters). The real sidecar runs in `make k8s-e2e`; this
// copy lets `go test` catch the same mistakes in a second, without it.

// ProvisionerPrefix marks the keys csi-provisioner keeps for itself and
// strips before CreateVolume.
const ProvisionerPrefix = "csi.storage.k8s.io/"

// provisionerKeys are the reserved keys csi-provisioner knows; any other key
// under the prefix fails every PVC ("found unknown parameter key ... with
// reserved namespace").
var provisionerKeys = []string{
	"csi.storage.k8s.io/fstype",
	"csi.storage.k8s.io/provisioner-secret-name",
	"csi.storage.k8s.io/provisioner-secret-namespace",
	"csi.storage.k8s.io/controller-publish-secret-name",
	"csi.storage.k8s.io/controller-publish-secret-namespace",
	"csi.storage.k8s.io/node-stage-secret-name",
	"csi.storage.k8s.io/node-stage-secret-namespace",
	"csi.storage.k8s.io/node-publish-secret-name",
	"csi.storage.k8s.io/node-publish-secret-namespace",
	"csi.storage.k8s.io/controller-expand-secret-name",
	"csi.storage.k8s.io/controller-expand-secret-namespace",
	"csi.storage.k8s.io/secret-name",
	"csi.storage.k8s.io/secret-namespace",
	"csi.storage.k8s.io/node-expand-secret-name",
	"csi.storage.k8s.io/node-expand-secret-namespace",
}

// DriverParameters returns the parameters csi-provisioner passes to
// CreateVolume for a StorageClass, or the error with which it would fail
// every PVC of the class. Besides the provisioner's own rules it refuses two
// keys that differ only in case: the provisioner lower-cases some keys
// ("fstype") and not others, so such a pair means something else to each
// reader.
func DriverParameters(params map[string]string) (map[string]string, error) {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var problems []string
	seen := map[string]string{}
	var fstypes []string
	for _, k := range keys {
		if prev, ok := seen[strings.ToLower(k)]; ok {
			problems = append(problems, fmt.Sprintf("keys %q and %q differ only in case", prev, k))
		}
		seen[strings.ToLower(k)] = k
		// The provisioner's fstype rule: the reserved key, or any key whose
		// lower-case form is "fstype" (deprecated), and at most one of them.
		if strings.ToLower(k) == "fstype" || k == ProvisionerPrefix+"fstype" {
			fstypes = append(fstypes, k)
		}
	}
	if len(fstypes) > 1 {
		problems = append(problems, fmt.Sprintf(`fstype specified in parameters with both "fstype" and "csi.storage.k8s.io/fstype" keys (%s); keep csi.storage.k8s.io/fstype only`,
			strings.Join(fstypes, ", ")))
	}
	out := map[string]string{}
	for _, k := range keys {
		if !strings.HasPrefix(k, ProvisionerPrefix) {
			out[k] = params[k]
			continue
		}
		if !slices.Contains(provisionerKeys, k) {
			problems = append(problems, fmt.Sprintf("found unknown parameter key %q with reserved namespace %s", k, ProvisionerPrefix))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("csi-provisioner would refuse every PVC: %s", strings.Join(problems, "; "))
	}
	return out, nil
}
