package kube_test

import (
	"context"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/kube"
	"github.com/rds-reconcile/rds-reconcile/kube/kubetest"
)

func TestClientErrors(t *testing.T) {
	srv := kubetest.New()
	defer srv.Close()
	srv.Token = "s3cret-token-value"
	ctx := context.Background()
	c := srv.Client()
	if _, err := c.GetConfigMap(ctx, "ns", "a"); !errors.Is(err, kube.ErrNotFound) {
		t.Errorf("get of a missing ConfigMap: %v", err)
	}
	cm, err := c.CreateConfigMap(ctx, &kube.ConfigMap{Namespace: "ns", Name: "a", Data: map[string]string{"k": "v"}})
	if err != nil || cm.ResourceVersion == "" {
		t.Fatalf("create: %+v, %v", cm, err)
	}
	if _, err := c.CreateConfigMap(ctx, &kube.ConfigMap{Namespace: "ns", Name: "a"}); !errors.Is(err, kube.ErrAlreadyExists) || errors.Is(err, kube.ErrConflict) {
		t.Errorf("second create: %v", err)
	}
	stale := *cm
	cm.Data["k"] = "w"
	if _, err := c.UpdateConfigMap(ctx, cm); err != nil {
		t.Fatal(err)
	}
	stale.Data = map[string]string{"k": "lost"}
	if _, err := c.UpdateConfigMap(ctx, &stale); !errors.Is(err, kube.ErrConflict) {
		t.Errorf("stale update: %v", err)
	}
	if _, err := c.UpdateConfigMap(ctx, &kube.ConfigMap{Namespace: "ns", Name: "a"}); err == nil {
		t.Error("an update without resourceVersion was sent")
	}
	got, err := c.GetConfigMap(ctx, "ns", "a")
	if err != nil || got.Data["k"] != "w" {
		t.Errorf("get: %+v, %v", got, err)
	}

	srv.Deny("update")
	_, err = c.UpdateConfigMap(ctx, got)
	if !errors.Is(err, kube.ErrForbidden) || !strings.Contains(err.Error(), "resourceNames: [a], verbs: [update]") {
		t.Errorf("forbidden update: %v", err)
	}
	srv.Deny("create")
	_, err = c.CreateConfigMap(ctx, &kube.ConfigMap{Namespace: "ns", Name: "b"})
	if !errors.Is(err, kube.ErrForbidden) || !strings.Contains(err.Error(), "create cannot be limited by resourceNames") {
		t.Errorf("forbidden create: %v", err)
	}

	cfg := srv.Config()
	cfg.Token = "wrong"
	bad, _ := kube.New(cfg)
	_, err = bad.GetConfigMap(ctx, "ns", "a")
	if !errors.Is(err, kube.ErrUnauthorized) {
		t.Errorf("wrong token: %v", err)
	}
	for _, s := range []string{err.Error(), cfg.String()} {
		if strings.Contains(s, "wrong") || strings.Contains(s, srv.Token) {
			t.Errorf("a token reached a message: %s", s)
		}
	}
}

// TestTokenFileIsReadEachTime: a rotated service account token is used at
// once.
func TestTokenFileIsReadEachTime(t *testing.T) {
	srv := kubetest.New()
	defer srv.Close()
	srv.Token = "first"
	file := filepath.Join(t.TempDir(), "token")
	writeFile(t, file, "first\n")
	cfg := srv.Config()
	cfg.Token, cfg.TokenFile = "", file
	c, _ := kube.New(cfg)
	ctx := context.Background()
	if _, err := c.GetConfigMap(ctx, "ns", "a"); !errors.Is(err, kube.ErrNotFound) {
		t.Fatalf("first token: %v", err)
	}
	srv.Token = "second"
	writeFile(t, file, "second")
	if _, err := c.GetConfigMap(ctx, "ns", "a"); !errors.Is(err, kube.ErrNotFound) {
		t.Fatalf("rotated token: %v", err)
	}
}

func TestKubeconfig(t *testing.T) {
	srv := kubetest.New()
	defer srv.Close()
	srv.Token = "kc-token"
	dir := t.TempDir()
	kc := filepath.Join(dir, "config")
	if err := srv.WriteKubeconfig(kc); err != nil {
		t.Fatal(err)
	}
	cfg, err := kube.FromKubeconfig(kc, "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Namespace != "default" || strings.Contains(cfg.String(), "kc-token") {
		t.Errorf("config %s, namespace %q", cfg, cfg.Namespace)
	}
	c, _ := kube.New(cfg)
	if _, err := c.GetConfigMap(context.Background(), "ns", "a"); !errors.Is(err, kube.ErrNotFound) {
		t.Errorf("through the kubeconfig: %v", err)
	}

	// A CA file relative to the kubeconfig, a token file, another context.
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	writeFile(t, filepath.Join(dir, "ca.crt"), string(ca))
	writeFile(t, filepath.Join(dir, "tok"), "kc-token")
	writeFile(t, kc, `apiVersion: v1
kind: Config
current-context: other
clusters:
- name: c
  cluster: {server: `+srv.URL+`, certificate-authority: ca.crt}
- name: insecure
  cluster: {server: `+srv.URL+`, insecure-skip-tls-verify: true}
users:
- name: u
  user: {tokenFile: tok}
- name: plugin
  user:
    exec: {command: aws}
contexts:
- name: files
  context: {cluster: c, user: u}
- name: other
  context: {cluster: insecure, user: plugin}
- name: nocluster
  context: {cluster: gone, user: u}
`)
	cfg, err = kube.FromKubeconfig(kc, "files")
	if err != nil {
		t.Fatal(err)
	}
	c, _ = kube.New(cfg)
	if _, err := c.GetConfigMap(context.Background(), "ns", "a"); !errors.Is(err, kube.ErrNotFound) {
		t.Errorf("CA and token files: %v", err)
	}
	for ctxName, want := range map[string]string{
		"":          "exec or auth-provider plugin",
		"nocluster": `names cluster "gone"`,
		"missing":   `no context "missing"`,
	} {
		if _, err := kube.FromKubeconfig(kc, ctxName); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("context %q: %v, want %q", ctxName, err, want)
		}
	}
}

func TestInCluster(t *testing.T) {
	srv := kubetest.New()
	defer srv.Close()
	srv.Token = "pod-token"
	dir := t.TempDir()
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if _, err := kube.InCluster(dir, getenv); !errors.Is(err, kube.ErrNotInCluster) {
		t.Errorf("outside a pod: %v", err)
	}
	host, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, "https://"), ":")
	env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"] = host, port
	if _, err := kube.InCluster(dir, getenv); err == nil || !strings.Contains(err.Error(), "token") {
		t.Errorf("no token: %v", err)
	}
	writeFile(t, filepath.Join(dir, "token"), "pod-token")
	writeFile(t, filepath.Join(dir, "ca.crt"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	writeFile(t, filepath.Join(dir, "namespace"), "rds-reconcile\n")
	cfg, err := kube.InCluster(dir, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Namespace != "rds-reconcile" {
		t.Errorf("namespace %q", cfg.Namespace)
	}
	c, _ := kube.New(cfg)
	if _, err := c.GetConfigMap(context.Background(), "ns", "a"); !errors.Is(err, kube.ErrNotFound) {
		t.Errorf("in-cluster: %v", err)
	}
	_ = os.Remove(filepath.Join(dir, "ca.crt"))
	if _, err := kube.InCluster(dir, getenv); err == nil {
		t.Error("no CA: no error")
	}
}
