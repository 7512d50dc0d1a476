// Command tool does the parts of `make k8s-e2e` (k8s-e2e/run.sh) a shell
// script does badly: certificates without openssl, free ports, kubeconfigs,
// reading container args out of the shipped manifests, projecting ConfigMaps
// and Secrets into folders as the kubelet would, and reading the simulated
// RDS's state. Each subcommand prints what it made; errors go to stderr with
// exit status 1.
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"gopkg.in/yaml.v3"

	"github.com/rds-reconcile/rds-reconcile/k8s-e2e/manifest"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tool ports|certs|kubeconfig|pod|project|basestate|storageclass|rds|wait-http|nodeinfo ...")
		os.Exit(2)
	}
	cmds := map[string]func(args []string, in io.Reader, out io.Writer) error{
		"ports":        ports,
		"certs":        certs,
		"kubeconfig":   kubeconfig,
		"pod":          pod,
		"project":      project,
		"basestate":    basestate,
		"storageclass": storageclass,
		"rds":          rdsState,
		"wait-http":    waitHTTP,
		"nodeinfo":     nodeInfo,
	}
	f, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "tool: unknown subcommand %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := f(os.Args[2:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "tool %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before ours binds it; the window is short and a collision fails
// the run loudly (a process that cannot listen), never silently.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ports N: N distinct free loopback ports, one a line.
func ports(args []string, in io.Reader, out io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: ports N")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 {
		return fmt.Errorf("N: %q is not a positive number", args[0])
	}
	// Hold them all open until every one is picked, so they differ.
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		fmt.Fprintln(out, l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}

// certs DIR: a CA, the apiserver's serving certificate (loopback and the
// in-cluster names), the service-account signing key pair and static tokens
// (tokens.csv for --token-auth-file, <user>.token for the clients).
func certs(args []string, in io.Reader, out io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: certs DIR")
	}
	dir := args[0]
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "k8s-e2e-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	files := map[string][]byte{}
	files["ca.crt"] = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	files["apiserver.crt"] = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER})
	if files["apiserver.key"], err = pemKey(srvKey); err != nil {
		return err
	}
	if files["sa.key"], err = pemKey(saKey); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	files["sa.pub"] = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	// Static tokens: the admin (kubectl, the harness) and the
	// controller-manager, both in system:masters. The sidecars and the driver
	// get service-account tokens instead, so RBAC applies to them.
	var csv strings.Builder
	for _, u := range []string{"admin", "kube-controller-manager"} {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		tok := hex.EncodeToString(b)
		files[u+".token"] = []byte(tok)
		fmt.Fprintf(&csv, "%s,%s,%s,\"system:masters\"\n", tok, u, u)
	}
	files["tokens.csv"] = []byte(csv.String())
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), files[n], 0o600); err != nil {
			return err
		}
		fmt.Fprintln(out, filepath.Join(dir, n))
	}
	return nil
}

func pemKey(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// kubeconfig --server URL --ca FILE --token-file FILE --out FILE [--namespace NS]
func kubeconfig(args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("kubeconfig", flag.ContinueOnError)
	server := fs.String("server", "", "apiserver URL")
	caFile := fs.String("ca", "", "CA certificate")
	tokenFile := fs.String("token-file", "", "bearer token file")
	outFile := fs.String("out", "", "kubeconfig to write")
	ns := fs.String("namespace", "", "default namespace")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *server == "" || *caFile == "" || *tokenFile == "" || *outFile == "" {
		return errors.New("--server, --ca, --token-file and --out are required")
	}
	ca, err := os.ReadFile(*caFile)
	if err != nil {
		return err
	}
	tok, err := os.ReadFile(*tokenFile)
	if err != nil {
		return err
	}
	type named struct {
		Name    string         `yaml:"name"`
		Cluster map[string]any `yaml:"cluster,omitempty"`
		User    map[string]any `yaml:"user,omitempty"`
		Context map[string]any `yaml:"context,omitempty"`
	}
	ctx := map[string]any{"cluster": "k8s-e2e", "user": "user"}
	if *ns != "" {
		ctx["namespace"] = *ns
	}
	cfg := map[string]any{
		"apiVersion":      "v1",
		"kind":            "Config",
		"current-context": "k8s-e2e",
		"clusters": []named{{Name: "k8s-e2e", Cluster: map[string]any{
			"server": *server, "certificate-authority-data": base64.StdEncoding.EncodeToString(ca)}}},
		"users":    []named{{Name: "user", User: map[string]any{"token": strings.TrimSpace(string(tok))}}},
		"contexts": []named{{Name: "k8s-e2e", Context: ctx}},
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(*outFile, data, 0o600)
}

func loadWorkload(file, name string) (manifest.Workload, error) {
	docs, err := manifest.LoadFile(file)
	if err != nil {
		return manifest.Workload{}, err
	}
	return manifest.FindWorkload(docs, name)
}

// pod --manifest F --name N --root DIR --node NODE: lays the workload's
// (Deployment, StatefulSet or DaemonSet) pod out below DIR (manifest.Layout) and writes, in DIR/pod:
// <container>.args and <container>.env (one entry a line), <container>.image,
// ports.env (port_<name>=<loopback port>), volumes.tsv (name kind source mode
// dir), rewrites.log, and meta.env (namespace, service account).
func pod(args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("pod", flag.ContinueOnError)
	file := fs.String("manifest", "", "manifest file")
	name := fs.String("name", "", "workload name")
	root := fs.String("root", "", "folder the pod lives in")
	node := fs.String("node", "", "spec.nodeName")
	if err := fs.Parse(args); err != nil {
		return err
	}
	w, err := loadWorkload(*file, *name)
	if err != nil {
		return err
	}
	podName := w.PodName()
	p, err := manifest.Layout(w, *root, manifest.PodEnv{PodName: podName, NodeName: *node}, func(int) (int, error) { return freePort() })
	if err != nil {
		return err
	}
	podDir := filepath.Join(*root, "pod")
	if err := os.MkdirAll(podDir, 0o755); err != nil {
		return err
	}
	write := func(name string, lines []string) error {
		var b strings.Builder
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
		return os.WriteFile(filepath.Join(podDir, name), []byte(b.String()), 0o644)
	}
	var rewrites []string
	for _, c := range p.Processes {
		if err := write(c.Name+".args", c.Args); err != nil {
			return err
		}
		if err := write(c.Name+".env", c.Env); err != nil {
			return err
		}
		if err := write(c.Name+".image", []string{c.Image}); err != nil {
			return err
		}
		for _, r := range c.Rewrites {
			rewrites = append(rewrites, c.Name+": "+r)
		}
	}
	var portLines []string
	for k, v := range p.Ports {
		portLines = append(portLines, "port_"+regexp.MustCompile(`[^A-Za-z0-9_]`).ReplaceAllString(k, "_")+"="+strconv.Itoa(v))
	}
	sort.Strings(portLines)
	var volLines []string
	for _, v := range p.Volumes {
		src := v.Source
		if src == "" {
			src = "-"
		}
		volLines = append(volLines, fmt.Sprintf("%s\t%s\t%s\t%o\t%s", v.Name, v.Kind, src, v.Mode, v.Dir))
	}
	var names []string
	for _, c := range p.Processes {
		names = append(names, c.Name)
	}
	meta := []string{"pod_namespace=" + p.Namespace, "pod_service_account=" + p.ServiceAccount,
		"pod_name=" + podName, "pod_kind=" + w.Kind, "pod_containers='" + strings.Join(names, " ") + "'"}
	for name, lines := range map[string][]string{"ports.env": portLines, "volumes.tsv": volLines, "rewrites.log": rewrites, "meta.env": meta} {
		if err := write(name, lines); err != nil {
			return err
		}
	}
	fmt.Fprintln(out, podDir)
	return nil
}

// project DIR [MODE]: reads a ConfigMap or Secret as JSON (kubectl get -o
// json) on stdin and writes each key as a file in DIR, as the kubelet
// projects a configMap or secret volume (Secret values base64-decoded; MODE
// octal, default 0644).
func project(args []string, in io.Reader, out io.Writer) error {
	if len(args) < 1 || len(args) > 2 {
		return errors.New("usage: project DIR [MODE] < object.json")
	}
	mode := os.FileMode(0o644)
	if len(args) == 2 {
		m, err := strconv.ParseUint(args[1], 8, 32)
		if err != nil {
			return fmt.Errorf("MODE %q: %w", args[1], err)
		}
		if m != 0 {
			mode = os.FileMode(m)
		}
	}
	var obj struct {
		Kind string            `json:"kind"`
		Data map[string]string `json:"data"`
	}
	if err := json.NewDecoder(in).Decode(&obj); err != nil {
		return fmt.Errorf("reading the object: %w", err)
	}
	if err := os.MkdirAll(args[0], 0o755); err != nil {
		return err
	}
	for k, v := range obj.Data {
		if strings.ContainsAny(k, "/\x00") || k == "." || k == ".." {
			return fmt.Errorf("key %q is not a file name", k)
		}
		data := []byte(v)
		if obj.Kind == "Secret" {
			d, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				return fmt.Errorf("secret key %s: %w", k, err)
			}
			data = d
		}
		p := filepath.Join(args[0], k)
		if err := os.WriteFile(p, data, mode); err != nil {
			return err
		}
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
		fmt.Fprintln(out, p)
	}
	return nil
}

// basestate: the shipped ConfigMap's base state pointed at the simulator.
// Rewrites, and nothing else: target.address and target.ssh.address become the
// simulator's; target.ssh.privateKeyFile and knownHostsFile (paths in the
// controller container, where the Secret is mounted) are mapped through that
// container's mounts as its args are; hosts become the test's nodes
// (NAME=NQN) when --host is given; without it the shipped hosts stay.
// Defaults, basePath, nqnPrefix and the rest are kept. Prints the ConfigMap,
// ready for kubectl apply.
func basestate(args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("basestate", flag.ContinueOnError)
	cmFile := fs.String("configmap", "", "the shipped configmap.yaml")
	key := fs.String("key", "base.yaml", "the ConfigMap key holding the base state")
	ctlFile := fs.String("controller", "", "the shipped controller.yaml")
	ctlName := fs.String("controller-name", "rds-csi-controller", "the controller workload")
	container := fs.String("container", "rds-reconcile", "the driver's container")
	root := fs.String("root", "", "the controller pod's folder (as for pod --root)")
	sshAddr := fs.String("ssh", "", "the simulator's SSH address host:port")
	var hosts []string
	fs.Func("host", "NAME=NQN (repeatable)", func(s string) error { hosts = append(hosts, s); return nil })
	if err := fs.Parse(args); err != nil {
		return err
	}
	docs, err := manifest.LoadFile(*cmFile)
	if err != nil {
		return err
	}
	var cmDoc *manifest.Doc
	for i, d := range docs {
		if d.Kind == "ConfigMap" {
			cmDoc = &docs[i]
		}
	}
	if cmDoc == nil {
		return fmt.Errorf("no ConfigMap in %s", *cmFile)
	}
	var cm struct {
		APIVersion string            `yaml:"apiVersion"`
		Kind       string            `yaml:"kind"`
		Metadata   manifest.Meta     `yaml:"metadata"`
		Data       map[string]string `yaml:"data"`
	}
	if err := cmDoc.Decode(&cm); err != nil {
		return err
	}
	text, ok := cm.Data[*key]
	if !ok {
		return fmt.Errorf("ConfigMap %s has no key %s", cm.Metadata.Name, *key)
	}
	w, err := loadWorkload(*ctlFile, *ctlName)
	if err != nil {
		return err
	}
	var st yaml.Node
	if err := yaml.Unmarshal([]byte(text), &st); err != nil {
		return fmt.Errorf("base state: %w", err)
	}
	host, _, err := net.SplitHostPort(*sshAddr)
	if err != nil {
		return fmt.Errorf("--ssh: %w", err)
	}
	set := func(path []string, value string) error {
		n := lookup(&st, path)
		if n == nil {
			return fmt.Errorf("base state has no %s", strings.Join(path, "."))
		}
		n.Value, n.Tag, n.Style = value, "!!str", 0
		return nil
	}
	if err := set([]string{"target", "address"}, host); err != nil {
		return err
	}
	if err := set([]string{"target", "ssh", "address"}, *sshAddr); err != nil {
		return err
	}
	for _, f := range []string{"privateKeyFile", "knownHostsFile"} {
		p := []string{"target", "ssh", f}
		n := lookup(&st, p)
		if n == nil {
			return fmt.Errorf("base state has no %s", strings.Join(p, "."))
		}
		mapped, ok := manifest.MapPath(w, *root, *container, n.Value)
		if !ok {
			return fmt.Errorf("%s %s is on no volume the %s container mounts", strings.Join(p, "."), n.Value, *container)
		}
		n.Value = mapped
	}
	hostMap := &yaml.Node{Kind: yaml.MappingNode}
	for _, h := range hosts {
		name, nqn, ok := strings.Cut(h, "=")
		if !ok {
			return fmt.Errorf("--host %q: want NAME=NQN", h)
		}
		hostMap.Content = append(hostMap.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Value: name},
			&yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
				{Kind: yaml.ScalarNode, Value: "hostNQN"}, {Kind: yaml.ScalarNode, Value: nqn}}})
	}
	if len(hosts) > 0 {
		if n := lookup(&st, []string{"hosts"}); n != nil {
			*n = *hostMap
		} else {
			top := st.Content[0]
			top.Content = append(top.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "hosts"}, hostMap)
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&st); err != nil {
		return err
	}
	cm.Data = map[string]string{*key: buf.String()}
	data, err := yaml.Marshal(cm)
	if err != nil {
		return err
	}
	_, err = out.Write(data)
	return err
}

// lookup walks mapping keys from a document node.
func lookup(n *yaml.Node, path []string) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for _, k := range path {
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

// storageclass --manifest F --name N --as NEW --binding MODE: prints the
// shipped StorageClass under another name with another volumeBindingMode,
// everything else (parameters, expansion, reclaim policy) as shipped.
func storageclass(args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("storageclass", flag.ContinueOnError)
	file := fs.String("manifest", "", "storageclass.yaml")
	name := fs.String("name", "", "the shipped class")
	as := fs.String("as", "", "the copy's name")
	binding := fs.String("binding", "Immediate", "the copy's volumeBindingMode")
	if err := fs.Parse(args); err != nil {
		return err
	}
	docs, err := manifest.LoadFile(*file)
	if err != nil {
		return err
	}
	d, err := manifest.Find(docs, "StorageClass", *name)
	if err != nil {
		return err
	}
	var obj map[string]any
	if err := d.Decode(&obj); err != nil {
		return err
	}
	meta, _ := obj["metadata"].(map[string]any)
	if meta == nil {
		return errors.New("no metadata")
	}
	meta["name"] = *as
	obj["volumeBindingMode"] = *binding
	data, err := yaml.Marshal(obj)
	if err != nil {
		return err
	}
	_, err = out.Write(data)
	return err
}

// rds STATE.json: the simulated RDS's disks and files, as the simulator
// persists them (rds/sim state.json): "disk <slot> <file-path> <file-size>
// export=<yes|no> nqn=<nqn>" and "file <name> <size>" lines, sorted.
func rdsState(args []string, in io.Reader, out io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: rds STATE.json")
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	var st struct {
		Disks []struct {
			Slot     string `json:"slot"`
			FilePath string `json:"filePath"`
			Export   bool   `json:"export"`
			NQN      string `json:"nqn"`
		} `json:"disks"`
		Files []struct {
			Name string `json:"name"`
			Size int64  `json:"size"`
		} `json:"files"`
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	size := map[string]int64{}
	var lines []string
	for _, fl := range st.Files {
		size[fl.Name] = fl.Size
		lines = append(lines, fmt.Sprintf("file %s %d", fl.Name, fl.Size))
	}
	for _, d := range st.Disks {
		exp := "no"
		if d.Export {
			exp = "yes"
		}
		nqn := d.NQN
		if nqn == "" {
			nqn = d.Slot
		}
		s, ok := size[d.FilePath]
		if !ok {
			return fmt.Errorf("disk %s: its file %s is not in the state", d.Slot, d.FilePath)
		}
		lines = append(lines, fmt.Sprintf("disk %s %s %d export=%s nqn=%s", d.Slot, d.FilePath, s, exp, nqn))
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
	return nil
}

// wait-http URL [--ca FILE] [--token-file FILE] [--insecure] [--timeout D]:
// polls URL until it answers 200 and prints the body; curl is not on a fresh
// CI machine.
func waitHTTP(args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("wait-http", flag.ContinueOnError)
	caFile := fs.String("ca", "", "CA certificate for https")
	tokenFile := fs.String("token-file", "", "bearer token file")
	insecure := fs.Bool("insecure", false, "do not verify the server certificate (a self-signed serving cert)")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: wait-http [flags] URL")
	}
	url := fs.Arg(0)
	tlsCfg := &tls.Config{InsecureSkipVerify: *insecure} //nolint:gosec // only for a loopback self-signed serving cert, on request
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s: no certificate", *caFile)
		}
		tlsCfg.RootCAs = pool
	}
	var token string
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return err
		}
		token = strings.TrimSpace(string(b))
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	last := errors.New("no answer yet")
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if resp, err := client.Do(req); err != nil {
			last = err
		} else {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				_, err := out.Write(body)
				return err
			}
			last = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w", url, *timeout, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// nodeinfo unix:///PATH: what node-driver-registrar asks a node plugin before
// the kubelet writes the CSINode: NodeGetInfo's node id, printed.
func nodeInfo(args []string, in io.Reader, out io.Writer) error {
	if len(args) != 1 || !strings.HasPrefix(args[0], "unix://") {
		return errors.New("usage: nodeinfo unix:///path/to/csi.sock")
	}
	conn, err := grpc.NewClient("unix://"+strings.TrimPrefix(args[0], "unix://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", args[0], err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := csipb.NewNodeClient(conn).NodeGetInfo(ctx, &csipb.NodeGetInfoRequest{})
	if err != nil {
		return fmt.Errorf("NodeGetInfo: %w", err)
	}
	_, err = fmt.Fprintln(out, resp.GetNodeId())
	return err
}
