// Package kube is the small part of the Kubernetes API rds-reconcile needs:
// a REST client configured in-cluster or from a kubeconfig file that reads,
// creates and updates ConfigMaps with optimistic concurrency, and
// ConfigMapLayer, the CSI controller's desired-state layer kept in a
// ConfigMap. client-go would bring dozens of modules for these three calls.
package kube

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config says how to reach an API server and who to be there. It never
// prints its secrets: String names the server and the kind of credential.
type Config struct {
	// Server is the API server's base URL (https://host:port).
	Server string
	// TLS is the client TLS configuration: the CA pool, the server name,
	// a client certificate.
	TLS *tls.Config
	// Token is a static bearer token; TokenFile, when set, is read again
	// at every request (Kubernetes rotates projected service account
	// tokens in place, about every hour).
	Token     string
	TokenFile string
	// Namespace is the namespace of the context (kubeconfig) or of the pod
	// (in-cluster); "" when neither says.
	Namespace string
	// Source says where the configuration came from, for messages.
	Source string
}

// String describes the configuration without its secrets.
func (c *Config) String() string {
	cred := "no credentials"
	switch {
	case c.TokenFile != "":
		cred = "token file " + c.TokenFile
	case c.Token != "":
		cred = "a bearer token"
	case c.TLS != nil && (len(c.TLS.Certificates) > 0 || c.TLS.GetClientCertificate != nil):
		cred = "a client certificate"
	}
	return fmt.Sprintf("%s (%s, %s)", c.Server, c.Source, cred)
}

// In-cluster paths and variables (the service account Kubernetes mounts
// into every pod that does not opt out).
const (
	ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	envServiceHost    = "KUBERNETES_SERVICE_HOST"
	envServicePort    = "KUBERNETES_SERVICE_PORT"
)

// ErrNotInCluster: the process does not run in a pod (no
// KUBERNETES_SERVICE_HOST), so there is no in-cluster configuration.
var ErrNotInCluster = errors.New("not running in a Kubernetes pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set; pass --kubeconfig")

// InCluster is the configuration of a pod: the API server from the
// environment, the service account's token (read at every request), CA and
// namespace from dir (ServiceAccountDir in a pod).
func InCluster(dir string, getenv func(string) string) (*Config, error) {
	host, port := getenv(envServiceHost), getenv(envServicePort)
	if host == "" || port == "" {
		return nil, ErrNotInCluster
	}
	token := filepath.Join(dir, "token")
	if _, err := os.Stat(token); err != nil {
		return nil, fmt.Errorf("in-cluster: the service account token: %w (is automountServiceAccountToken off?)", err)
	}
	pem, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("in-cluster: the API server's CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("in-cluster: %s holds no PEM certificate", filepath.Join(dir, "ca.crt"))
	}
	ns, _ := os.ReadFile(filepath.Join(dir, "namespace"))
	return &Config{
		Server:    "https://" + net.JoinHostPort(host, port),
		TLS:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		TokenFile: token,
		Namespace: strings.TrimSpace(string(ns)),
		Source:    "in-cluster",
	}, nil
}

// kubeconfig is the part of a kubeconfig file this client understands.
type kubeconfig struct {
	CurrentContext string `yaml:"current-context"`
	Clusters       []struct {
		Name    string `yaml:"name"`
		Cluster struct {
			Server                string `yaml:"server"`
			CertificateAuthority  string `yaml:"certificate-authority"`
			CAData                string `yaml:"certificate-authority-data"`
			InsecureSkipTLSVerify bool   `yaml:"insecure-skip-tls-verify"`
			TLSServerName         string `yaml:"tls-server-name"`
			ProxyURL              string `yaml:"proxy-url"`
		} `yaml:"cluster"`
	} `yaml:"clusters"`
	Users []struct {
		Name string `yaml:"name"`
		User struct {
			Token          string    `yaml:"token"`
			TokenFile      string    `yaml:"tokenFile"`
			ClientCert     string    `yaml:"client-certificate"`
			ClientCertData string    `yaml:"client-certificate-data"`
			ClientKey      string    `yaml:"client-key"`
			ClientKeyData  string    `yaml:"client-key-data"`
			Username       string    `yaml:"username"`
			Exec           yaml.Node `yaml:"exec"`
			AuthProvider   yaml.Node `yaml:"auth-provider"`
		} `yaml:"user"`
	} `yaml:"users"`
	Contexts []struct {
		Name    string `yaml:"name"`
		Context struct {
			Cluster   string `yaml:"cluster"`
			User      string `yaml:"user"`
			Namespace string `yaml:"namespace"`
		} `yaml:"context"`
	} `yaml:"contexts"`
}

// FromKubeconfig reads a kubeconfig file: the named context, or its
// current-context when contextName is empty. It understands server,
// certificate-authority(-data), insecure-skip-tls-verify, tls-server-name,
// token, tokenFile and client-certificate/key(-data); relative file paths
// are relative to the kubeconfig's folder, as kubectl reads them. Exec and
// auth-provider plugins are refused with a message (a service account
// token or a client certificate works with every cluster).
func FromKubeconfig(path, contextName string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	var kc kubeconfig
	if err := yaml.Unmarshal(data, &kc); err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	if contextName == "" {
		contextName = kc.CurrentContext
	}
	if contextName == "" {
		return nil, fmt.Errorf("kubeconfig %s: no current-context; name one with --context", path)
	}
	ci := -1
	for i, c := range kc.Contexts {
		if c.Name == contextName {
			ci = i
		}
	}
	if ci < 0 {
		return nil, fmt.Errorf("kubeconfig %s: no context %q", path, contextName)
	}
	ctx := kc.Contexts[ci].Context
	cfg := &Config{Namespace: ctx.Namespace, Source: fmt.Sprintf("kubeconfig %s, context %s", path, contextName)}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	cfg.TLS = tc
	dir := filepath.Dir(path)
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	found := false
	for _, c := range kc.Clusters {
		if c.Name != ctx.Cluster {
			continue
		}
		found = true
		cl := c.Cluster
		u, err := url.Parse(cl.Server)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("kubeconfig %s: cluster %q: server %q is not a URL such as https://host:6443", path, c.Name, cl.Server)
		}
		if cl.ProxyURL != "" {
			return nil, fmt.Errorf("kubeconfig %s: cluster %q: proxy-url is not supported", path, c.Name)
		}
		cfg.Server = strings.TrimSuffix(cl.Server, "/")
		tc.ServerName = cl.TLSServerName
		tc.InsecureSkipVerify = cl.InsecureSkipTLSVerify //nolint:gosec // the user asked for it in the kubeconfig
		var pem []byte
		switch {
		case cl.CAData != "":
			if pem, err = base64.StdEncoding.DecodeString(cl.CAData); err != nil {
				return nil, fmt.Errorf("kubeconfig %s: cluster %q: certificate-authority-data: %w", path, c.Name, err)
			}
		case cl.CertificateAuthority != "":
			if pem, err = os.ReadFile(rel(cl.CertificateAuthority)); err != nil {
				return nil, fmt.Errorf("kubeconfig %s: cluster %q: %w", path, c.Name, err)
			}
		}
		if pem != nil {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kubeconfig %s: cluster %q: the certificate authority holds no PEM certificate", path, c.Name)
			}
			tc.RootCAs = pool
		}
	}
	if !found {
		return nil, fmt.Errorf("kubeconfig %s: context %q names cluster %q, which is not in the file", path, contextName, ctx.Cluster)
	}
	if ctx.User == "" {
		return cfg, nil
	}
	found = false
	for _, u := range kc.Users {
		if u.Name != ctx.User {
			continue
		}
		found = true
		us := u.User
		switch {
		case !us.Exec.IsZero() || !us.AuthProvider.IsZero():
			return nil, fmt.Errorf("kubeconfig %s: user %q uses an exec or auth-provider plugin, which this client does not run; use a kubeconfig with a token or a client certificate (e.g. a service account's)", path, u.Name)
		case us.Username != "":
			return nil, fmt.Errorf("kubeconfig %s: user %q: basic authentication is not supported", path, u.Name)
		}
		cfg.Token = us.Token
		cfg.TokenFile = rel(us.TokenFile)
		certPEM, keyPEM := []byte(nil), []byte(nil)
		var err error
		switch {
		case us.ClientCertData != "":
			certPEM, err = base64.StdEncoding.DecodeString(us.ClientCertData)
		case us.ClientCert != "":
			certPEM, err = os.ReadFile(rel(us.ClientCert))
		}
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: user %q: client certificate: %w", path, u.Name, err)
		}
		switch {
		case us.ClientKeyData != "":
			keyPEM, err = base64.StdEncoding.DecodeString(us.ClientKeyData)
		case us.ClientKey != "":
			keyPEM, err = os.ReadFile(rel(us.ClientKey))
		}
		if err != nil {
			// Never the key's bytes in a message.
			return nil, fmt.Errorf("kubeconfig %s: user %q: client key: %w", path, u.Name, err)
		}
		if (certPEM == nil) != (keyPEM == nil) {
			return nil, fmt.Errorf("kubeconfig %s: user %q: a client certificate and its key go together", path, u.Name)
		}
		if certPEM != nil {
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				return nil, fmt.Errorf("kubeconfig %s: user %q: the client certificate and key do not load", path, u.Name)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
	}
	if !found {
		return nil, fmt.Errorf("kubeconfig %s: context %q names user %q, which is not in the file", path, contextName, ctx.User)
	}
	return cfg, nil
}
