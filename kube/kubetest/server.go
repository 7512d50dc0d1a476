// Package kubetest is a fake Kubernetes API server for tests: ConfigMaps
// only, with the API server's concurrency rules kept faithfully (a
// resourceVersion per write from one global counter, 409 Conflict on a
// stale update, 409 AlreadyExists on a create of an existing name, 404
// NotFound) and, optionally, bearer token checks and per-verb RBAC that
// answer 401 and 403 as the real server does.
package kubetest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/rds-reconcile/rds-reconcile/kube"
)

// Server is a running fake API server.
type Server struct {
	*httptest.Server
	// Token, when set, is the only bearer token accepted.
	Token string

	mu      sync.Mutex
	rv      int64
	objects map[string]map[string]any // ns/name -> object
	denied  map[string]bool           // verb -> forbidden
	// BeforeUpdate, when set, runs under no lock before each PUT is
	// applied (tests use it to slip a competing write in).
	BeforeUpdate func(ns, name string)
	counts       map[string]int
}

// New starts a TLS fake API server; Close it when done.
func New() *Server {
	s := &Server{objects: map[string]map[string]any{}, denied: map[string]bool{}, counts: map[string]int{}}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	return s
}

// Deny makes verb (get, create, update) on configmaps answer 403.
func (s *Server) Deny(verb string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denied[verb] = true
}

// Count is how many requests of a kind were answered: "get", "create",
// "update", "conflict" (409 on update), "exists" (409 on create),
// "unconditional" (an update without resourceVersion).
func (s *Server) Count(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[kind]
}

// Data returns a ConfigMap's data (nil when missing).
func (s *Server) Data(ns, name string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	obj := s.objects[ns+"/"+name]
	if obj == nil {
		return nil
	}
	out := map[string]string{}
	if d, ok := obj["data"].(map[string]any); ok {
		for k, v := range d {
			out[k], _ = v.(string)
		}
	}
	return out
}

// Put stores a ConfigMap directly (as kubectl apply would), bumping the
// resourceVersion.
func (s *Server) Put(ns, name string, data map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := map[string]any{}
	for k, v := range data {
		d[k] = v
	}
	s.rv++
	s.objects[ns+"/"+name] = map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": ns, "resourceVersion": strconv.FormatInt(s.rv, 10),
			"labels": map[string]any{"set-by": "test"}},
		"data": d}
}

// Delete removes a ConfigMap.
func (s *Server) Delete(ns, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objects, ns+"/"+name)
}

func writeStatus(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{},
		"status": "Failure", "message": msg, "reason": reason, "code": code})
}

func writeObject(w http.ResponseWriter, code int, obj map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(obj)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if s.Token != "" && r.Header.Get("Authorization") != "Bearer "+s.Token {
		writeStatus(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
		return
	}
	// /api/v1/namespaces/{ns}/configmaps[/{name}]
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if len(parts) < 5 || parts[0] != "api" || parts[1] != "v1" || parts[2] != "namespaces" || parts[4] != "configmaps" || len(parts) > 6 {
		writeStatus(w, http.StatusNotFound, "NotFound", "the server could not find the requested resource")
		return
	}
	ns, name := parts[3], ""
	if len(parts) == 6 {
		name = parts[5]
	}
	verb := map[string]string{http.MethodGet: "get", http.MethodPost: "create", http.MethodPut: "update"}[r.Method]
	if verb == "" || (verb == "create") != (name == "") {
		writeStatus(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "the server does not allow this method on the requested resource")
		return
	}
	var body map[string]any
	if r.Method != http.MethodGet {
		b, err := io.ReadAll(r.Body)
		if err == nil {
			err = json.Unmarshal(b, &body)
		}
		if err != nil {
			writeStatus(w, http.StatusBadRequest, "BadRequest", "cannot decode the body: "+err.Error())
			return
		}
	}
	if verb == "update" && s.BeforeUpdate != nil {
		s.BeforeUpdate(ns, name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[verb]++
	if s.denied[verb] {
		writeStatus(w, http.StatusForbidden, "Forbidden", fmt.Sprintf(`configmaps %q is forbidden: User "system:serviceaccount:%s:test" cannot %s resource "configmaps" in API group "" in the namespace %q`, name, ns, verb, ns))
		return
	}
	meta, _ := body["metadata"].(map[string]any)
	switch verb {
	case "get":
		obj := s.objects[ns+"/"+name]
		if obj == nil {
			writeStatus(w, http.StatusNotFound, "NotFound", fmt.Sprintf(`configmaps %q not found`, name))
			return
		}
		writeObject(w, http.StatusOK, obj)
	case "create":
		name, _ = meta["name"].(string)
		if name == "" {
			writeStatus(w, http.StatusUnprocessableEntity, "Invalid", "metadata.name: Required value")
			return
		}
		if rv, _ := meta["resourceVersion"].(string); rv != "" {
			writeStatus(w, http.StatusInternalServerError, "InternalError", "resourceVersion should not be set on objects to be created")
			return
		}
		if s.objects[ns+"/"+name] != nil {
			s.counts["exists"]++
			writeStatus(w, http.StatusConflict, "AlreadyExists", fmt.Sprintf(`configmaps %q already exists`, name))
			return
		}
		s.store(ns, name, body, meta)
		writeObject(w, http.StatusCreated, body)
	case "update":
		if n, _ := meta["name"].(string); n != name {
			writeStatus(w, http.StatusBadRequest, "BadRequest", "the name of the object does not match the name on the URL")
			return
		}
		cur := s.objects[ns+"/"+name]
		if cur == nil {
			writeStatus(w, http.StatusNotFound, "NotFound", fmt.Sprintf(`configmaps %q not found`, name))
			return
		}
		rv, _ := meta["resourceVersion"].(string)
		if rv == "" {
			s.counts["unconditional"]++
		} else if curRV := cur["metadata"].(map[string]any)["resourceVersion"]; rv != curRV {
			s.counts["conflict"]++
			writeStatus(w, http.StatusConflict, "Conflict", fmt.Sprintf(`Operation cannot be fulfilled on configmaps %q: the object has been modified; please apply your changes to the latest version and try again`, name))
			return
		}
		s.store(ns, name, body, meta)
		writeObject(w, http.StatusOK, body)
	}
}

func (s *Server) store(ns, name string, body, meta map[string]any) {
	if meta == nil {
		meta = map[string]any{}
		body["metadata"] = meta
	}
	s.rv++
	meta["namespace"] = ns
	meta["resourceVersion"] = strconv.FormatInt(s.rv, 10)
	s.objects[ns+"/"+name] = body
}

// Config is a client configuration for this server (its CA, s.Token).
func (s *Server) Config() *kube.Config {
	pool := x509.NewCertPool()
	pool.AddCert(s.Certificate())
	return &kube.Config{Server: s.URL, TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, Token: s.Token, Source: "kubetest"}
}

// Client is a kube client for this server.
func (s *Server) Client() *kube.Client {
	c, err := kube.New(s.Config())
	if err != nil {
		panic(err) // New fails only without a server URL
	}
	return c
}

// WriteKubeconfig writes a kubeconfig for this server to path: its CA as
// certificate-authority-data and s.Token, in context "test".
func (s *Server) WriteKubeconfig(path string) error {
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
current-context: test
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: test
  user:
    token: %q
contexts:
- name: test
  context: {cluster: test, user: test, namespace: default}
`, s.URL, base64.StdEncoding.EncodeToString(ca), s.Token)
	return os.WriteFile(path, []byte(kc), 0o600)
}
