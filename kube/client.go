package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Client calls one API server. It is safe for concurrent use.
type Client struct {
	cfg  *Config
	http *http.Client
}

// New builds a client for cfg. It does no I/O.
func New(cfg *Config) (*Client, error) {
	if cfg == nil || cfg.Server == "" {
		return nil, errors.New("kube: no API server")
	}
	if _, err := url.Parse(cfg.Server); err != nil {
		return nil, fmt.Errorf("kube: server: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Proxies from the environment (HTTPS_PROXY, NO_PROXY), as kubectl
	// and client-go use them.
	tr.TLSClientConfig = cfg.TLS
	return &Client{cfg: cfg, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}, nil
}

// Config is the configuration the client was built with.
func (c *Client) Config() *Config { return c.cfg }

// ConfigMap is a ConfigMap as the API server returned it. Update sends back
// every field it had (labels, owner references, managed fields), not only
// those this type names.
type ConfigMap struct {
	Namespace       string
	Name            string
	ResourceVersion string
	Labels          map[string]string
	Annotations     map[string]string
	Data            map[string]string

	raw map[string]json.RawMessage // the object as read, for Update
}

type objectMeta struct {
	Name            string            `json:"name"`
	Namespace       string            `json:"namespace,omitempty"`
	ResourceVersion string            `json:"resourceVersion,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	Annotations     map[string]string `json:"annotations,omitempty"`
}

func decodeConfigMap(body []byte) (*ConfigMap, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("decoding the ConfigMap: %w", err)
	}
	var meta objectMeta
	if m, ok := raw["metadata"]; ok {
		if err := json.Unmarshal(m, &meta); err != nil {
			return nil, fmt.Errorf("decoding the ConfigMap's metadata: %w", err)
		}
	}
	cm := &ConfigMap{Namespace: meta.Namespace, Name: meta.Name, ResourceVersion: meta.ResourceVersion,
		Labels: meta.Labels, Annotations: meta.Annotations, raw: raw}
	if d, ok := raw["data"]; ok {
		if err := json.Unmarshal(d, &cm.Data); err != nil {
			return nil, fmt.Errorf("decoding the ConfigMap's data: %w", err)
		}
	}
	return cm, nil
}

// encode is the object to send: the fields read back, with metadata's
// known fields and data replaced by cm's.
func (cm *ConfigMap) encode() ([]byte, error) {
	obj := map[string]any{}
	for k, v := range cm.raw {
		obj[k] = v
	}
	meta := map[string]any{}
	if m, ok := cm.raw["metadata"]; ok {
		if err := json.Unmarshal(m, &meta); err != nil {
			return nil, err
		}
	}
	meta["name"] = cm.Name
	meta["namespace"] = cm.Namespace
	setOrDelete := func(k string, v any, empty bool) {
		if empty {
			delete(meta, k)
		} else {
			meta[k] = v
		}
	}
	setOrDelete("resourceVersion", cm.ResourceVersion, cm.ResourceVersion == "")
	setOrDelete("labels", cm.Labels, len(cm.Labels) == 0)
	setOrDelete("annotations", cm.Annotations, len(cm.Annotations) == 0)
	obj["apiVersion"], obj["kind"], obj["metadata"] = "v1", "ConfigMap", meta
	if cm.Data != nil {
		obj["data"] = cm.Data
	} else {
		delete(obj, "data")
	}
	return json.Marshal(obj)
}

func configMapPath(ns, name string) string {
	p := "/api/v1/namespaces/" + url.PathEscape(ns) + "/configmaps"
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

// GetConfigMap reads one ConfigMap; ErrNotFound when there is none.
func (c *Client) GetConfigMap(ctx context.Context, ns, name string) (*ConfigMap, error) {
	body, err := c.do(ctx, http.MethodGet, configMapPath(ns, name), nil, "get", ns, name)
	if err != nil {
		return nil, err
	}
	return decodeConfigMap(body)
}

// CreateConfigMap creates cm; ErrAlreadyExists when one of that name
// exists. It returns the object as stored (with its resourceVersion).
func (c *Client) CreateConfigMap(ctx context.Context, cm *ConfigMap) (*ConfigMap, error) {
	send := *cm
	send.ResourceVersion = "" // a create must not carry one
	b, err := send.encode()
	if err != nil {
		return nil, err
	}
	body, err := c.do(ctx, http.MethodPost, configMapPath(cm.Namespace, ""), b, "create", cm.Namespace, cm.Name)
	if err != nil {
		return nil, err
	}
	return decodeConfigMap(body)
}

// UpdateConfigMap replaces cm if it still is at cm.ResourceVersion:
// ErrConflict when someone wrote it since it was read (read again, redo
// the edit, retry). An empty ResourceVersion is refused here: it would
// make the API server overwrite whatever is there.
func (c *Client) UpdateConfigMap(ctx context.Context, cm *ConfigMap) (*ConfigMap, error) {
	if cm.ResourceVersion == "" {
		return nil, errors.New("kube: an update needs the resourceVersion it was read at (optimistic concurrency)")
	}
	b, err := cm.encode()
	if err != nil {
		return nil, err
	}
	body, err := c.do(ctx, http.MethodPut, configMapPath(cm.Namespace, cm.Name), b, "update", cm.Namespace, cm.Name)
	if err != nil {
		return nil, err
	}
	return decodeConfigMap(body)
}

// maxBody bounds what is read from the API server (a ConfigMap is at most
// 1 MiB of data; its JSON a little more).
const maxBody = 8 << 20

func (c *Client) do(ctx context.Context, method, path string, body []byte, verb, ns, name string) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.cfg.Server+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "rds-reconcile")
	token := c.cfg.Token
	if c.cfg.TokenFile != "" {
		t, err := os.ReadFile(c.cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("kube: reading the token file: %w", err)
		}
		token = strings.TrimSpace(string(t))
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// *url.Error names the method and URL only, never a header.
		return nil, fmt.Errorf("kube: %s configmap %s/%s: %w", verb, ns, name, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("kube: %s configmap %s/%s: reading the answer: %w", verb, ns, name, err)
	}
	if len(data) > maxBody {
		return nil, fmt.Errorf("kube: %s configmap %s/%s: the answer is larger than %d bytes", verb, ns, name, maxBody)
	}
	if resp.StatusCode/100 == 2 {
		return data, nil
	}
	return nil, statusError(resp.StatusCode, data, verb, ns, name)
}
