package kube_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rds-reconcile/rds-reconcile/kube"
	"github.com/rds-reconcile/rds-reconcile/kube/kubetest"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

var ref = kube.LayerRef{Namespace: "rds-reconcile", Name: "rds-csi-volumes"}

func addVolume(name string) func(*spec.State) error {
	return func(l *spec.State) error {
		if l.Volume(name) != nil {
			return nil
		}
		l.Volumes = append(l.Volumes, spec.Volume{Name: name, Size: spec.Quantity{Bytes: 16 << 20}})
		return nil
	}
}

func volumes(t *testing.T, srv *kubetest.Server) []string {
	t.Helper()
	st, err := spec.ParseLayer("x", []byte(srv.Data(ref.Namespace, ref.Name)[kube.LayerKey]))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range st.Volumes {
		names = append(names, v.Name)
	}
	return names
}

func TestParseLayerRef(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{"configmap://rds-reconcile/rds-csi-volumes", "configmap://rds-reconcile/rds-csi-volumes", ""},
		{"configmap://ns/a.b-c", "configmap://ns/a.b-c", ""},
		{"file:///x", "", "write configmap://NAMESPACE/NAME"},
		{"configmap://ns", "", "write configmap://NAMESPACE/NAME"},
		{"configmap:///name", "", "write configmap://NAMESPACE/NAME"},
		{"configmap://NS/name", "", "not a Kubernetes namespace name"},
		{"configmap://ns/Name", "", "not a ConfigMap name"},
		{"configmap://ns/a/b", "", "not a ConfigMap name"},
	} {
		got, err := kube.ParseLayerRef(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.in, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && got.String() != tc.want:
			t.Errorf("%s: %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestLayerConcurrentWriters: two processes (two layers, two clients) on
// one API server, many goroutines each: every edit survives, and the
// conflicts they caused were retried.
func TestLayerConcurrentWriters(t *testing.T) {
	srv := kubetest.New()
	defer srv.Close()
	a := kube.NewConfigMapLayer(srv.Client(), ref, nil)
	b := kube.NewConfigMapLayer(srv.Client(), ref, nil)
	const per = 15
	var wg sync.WaitGroup
	errs := make(chan error, 4*per)
	for i := range per {
		for j, l := range []*kube.ConfigMapLayer{a, b, a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- l.Update(context.Background(), addVolume(fmt.Sprintf("pvc-%d-%02d", j, i)))
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := len(volumes(t, srv)); got != 4*per {
		t.Errorf("the layer holds %d volumes, want %d", got, 4*per)
	}
	wa, ca := a.Stats()
	wb, cb := b.Stats()
	t.Logf("writes %d+%d, conflicts retried %d+%d, server: %d conflicts, %d creates refused", wa, wb, ca, cb,
		srv.Count("conflict"), srv.Count("exists"))
	if wa+wb != 4*per {
		t.Errorf("%d writes, want %d", wa+wb, 4*per)
	}
	if srv.Count("unconditional") != 0 {
		t.Errorf("%d updates without a resourceVersion", srv.Count("unconditional"))
	}
	if int64(srv.Count("conflict")+srv.Count("exists")) != ca+cb {
		t.Errorf("server refused %d writes, layers retried %d", srv.Count("conflict")+srv.Count("exists"), ca+cb)
	}
}

// TestLayerRetriesAConflict: a write slipped in between the read and the
// update is not lost; the edit runs again on the fresh read.
func TestLayerRetriesAConflict(t *testing.T) {
	srv := kubetest.New()
	defer srv.Close()
	l := kube.NewConfigMapLayer(srv.Client(), ref, nil)
	ctx := context.Background()
	if err := l.Update(ctx, addVolume("pvc-a")); err != nil {
		t.Fatal(err)
	}
	other := kube.NewConfigMapLayer(srv.Client(), ref, nil)
	fired := false // only the test's goroutine updates until the hook has fired
	srv.BeforeUpdate = func(string, string) {
		if fired {
			return
		}
		fired = true // before the nested update, which runs this hook too
		if err := other.Update(ctx, addVolume("pvc-other")); err != nil {
			t.Error(err)
		}
	}
	runs := 0
	err := l.Update(ctx, func(s *spec.State) error {
		runs++
		return addVolume("pvc-b")(s)
	})
	if err != nil {
		t.Fatal(err)
	}
	if runs != 2 {
		t.Errorf("the edit ran %d times, want 2 (once more after the conflict)", runs)
	}
	if got := strings.Join(volumes(t, srv), ","); got != "pvc-a,pvc-b,pvc-other" {
		t.Errorf("volumes %s", got)
	}
	if _, c := l.Stats(); c != 1 {
		t.Errorf("%d conflicts counted, want 1", c)
	}
}

func TestLayerGivesUpAfterAttempts(t *testing.T) {
	srv := kubetest.New()
	defer srv.Close()
	ctx := context.Background()
	l := kube.NewConfigMapLayer(srv.Client(), ref, nil)
	if err := l.Update(ctx, addVolume("pvc-a")); err != nil {
		t.Fatal(err)
	}
	n := 0
	srv.BeforeUpdate = func(ns, name string) { // someone always wins
		n++
		srv.Put(ns, name, map[string]string{kube.LayerKey: fmt.Sprintf("apiVersion: rds-reconcile/v1\nkind: State\nvolumes: [{name: pvc-x%d, size: 1Gi}]\n", n)})
	}
	err := l.Update(ctx, addVolume("pvc-b"))
	if !errors.Is(err, kube.ErrConflict) || !strings.Contains(err.Error(), fmt.Sprintf("%d times in a row", kube.DefaultAttempts)) {
		t.Fatalf("error %v, want a conflict after %d attempts", err, kube.DefaultAttempts)
	}
	if srv.Count("conflict") != kube.DefaultAttempts {
		t.Errorf("%d conflicts, want %d", srv.Count("conflict"), kube.DefaultAttempts)
	}
}

func TestLayerRefusesBadEdits(t *testing.T) {
	srv := kubetest.New()
	defer srv.Close()
	ctx := context.Background()
	l := kube.NewConfigMapLayer(srv.Client(), ref, nil)
	if err := l.Update(ctx, addVolume("pvc-a")); err != nil {
		t.Fatal(err)
	}
	before := srv.Count("update")
	for name, fn := range map[string]func(*spec.State) error{
		"error":   func(*spec.State) error { return errors.New("no") },
		"panic":   func(*spec.State) error { panic("boom") },
		"invalid": func(s *spec.State) error { s.Volumes = append(s.Volumes, spec.Volume{Name: "Bad Name!"}); return nil },
	} {
		if err := l.Update(ctx, fn); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if srv.Count("update") != before {
		t.Errorf("a refused edit was written")
	}
	if got := strings.Join(volumes(t, srv), ","); got != "pvc-a" {
		t.Errorf("volumes %s", got)
	}
	// An empty or missing layer loads as empty.
	srv.Delete(ref.Namespace, ref.Name)
	if data, err := l.Load(ctx); err != nil || data != nil {
		t.Errorf("missing ConfigMap: %q, %v", data, err)
	}
	st, err := l.Read(ctx)
	if err != nil || len(st.Volumes) != 0 {
		t.Errorf("missing ConfigMap reads %v, %v", st, err)
	}
}

// TestLayerKeepsOtherFields: an update sends back labels and keys it does
// not own.
func TestLayerKeepsOtherFields(t *testing.T) {
	srv := kubetest.New()
	defer srv.Close()
	srv.Put(ref.Namespace, ref.Name, map[string]string{"notes": "kept"})
	l := kube.NewConfigMapLayer(srv.Client(), ref, nil)
	if err := l.Update(context.Background(), addVolume("pvc-a")); err != nil {
		t.Fatal(err)
	}
	if d := srv.Data(ref.Namespace, ref.Name); d["notes"] != "kept" || !strings.Contains(d[kube.LayerKey], "pvc-a") {
		t.Errorf("data %v", d)
	}
	cm, err := srv.Client().GetConfigMap(context.Background(), ref.Namespace, ref.Name)
	if err != nil {
		t.Fatal(err)
	}
	if cm.Labels["set-by"] != "test" {
		t.Errorf("labels %v: the update dropped a label", cm.Labels)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

const oldLayer = `apiVersion: rds-reconcile/v1
kind: State
volumes:
  - name: pvc-old-1
    size: 1Gi
  - name: pvc-old-2
    size: 2Gi
    attachments: [node-a]
hosts:
  node-a: {hostNQN: "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"}
`

func TestImport(t *testing.T) {
	ctx := context.Background()
	t.Run("once", func(t *testing.T) {
		srv := kubetest.New()
		defer srv.Close()
		file := filepath.Join(t.TempDir(), "csi-volumes.yaml")
		writeFile(t, file, oldLayer)
		l := kube.NewConfigMapLayer(srv.Client(), ref, nil)
		imported, err := l.Import(ctx, file)
		if err != nil || !imported {
			t.Fatalf("import: %v, %v", imported, err)
		}
		if got := strings.Join(volumes(t, srv), ","); got != "pvc-old-1,pvc-old-2" {
			t.Errorf("volumes %s", got)
		}
		st, err := l.Read(ctx)
		if err != nil || st.Hosts["node-a"].HostNQN == "" || len(st.Volume("pvc-old-2").Attachments) != 1 {
			t.Errorf("imported layer %+v, %v", st, err)
		}
		if _, err := os.Stat(file); !os.IsNotExist(err) {
			t.Errorf("the file is still there: %v", err)
		}
		if _, err := os.Stat(file + ".imported"); err != nil {
			t.Errorf("no .imported file: %v", err)
		}
		// Idempotent: nothing left to import, nothing written.
		writes := srv.Count("create") + srv.Count("update")
		if imported, err := l.Import(ctx, file); err != nil || imported {
			t.Errorf("second import: %v, %v", imported, err)
		}
		if srv.Count("create")+srv.Count("update") != writes {
			t.Errorf("the second import wrote")
		}
	})
	t.Run("the ConfigMap holds a layer already", func(t *testing.T) {
		srv := kubetest.New()
		defer srv.Close()
		srv.Put(ref.Namespace, ref.Name, map[string]string{kube.LayerKey: "apiVersion: rds-reconcile/v1\nkind: State\nvolumes: [{name: pvc-new, size: 1Gi}]\n"})
		file := filepath.Join(t.TempDir(), "csi-volumes.yaml")
		writeFile(t, file, oldLayer)
		l := kube.NewConfigMapLayer(srv.Client(), ref, nil)
		if imported, err := l.Import(ctx, file); err != nil || imported {
			t.Fatalf("import: %v, %v", imported, err)
		}
		if got := strings.Join(volumes(t, srv), ","); got != "pvc-new" {
			t.Errorf("volumes %s: an old file overwrote the ConfigMap", got)
		}
		if _, err := os.Stat(file); !os.IsNotExist(err) {
			t.Errorf("the file is still there: %v", err)
		}
	})
	t.Run("the ConfigMap exists without the key", func(t *testing.T) {
		srv := kubetest.New()
		defer srv.Close()
		srv.Put(ref.Namespace, ref.Name, map[string]string{"other": "x"})
		file := filepath.Join(t.TempDir(), "csi-volumes.yaml")
		writeFile(t, file, oldLayer)
		l := kube.NewConfigMapLayer(srv.Client(), ref, nil)
		if imported, err := l.Import(ctx, file); err != nil || !imported {
			t.Fatalf("import: %v, %v", imported, err)
		}
		if d := srv.Data(ref.Namespace, ref.Name); d["other"] != "x" || !strings.Contains(d[kube.LayerKey], "pvc-old-1") {
			t.Errorf("data %v", d)
		}
	})
	t.Run("two importers at once", func(t *testing.T) {
		srv := kubetest.New()
		defer srv.Close()
		var wg sync.WaitGroup
		results := make(chan bool, 2)
		for range 2 {
			file := filepath.Join(t.TempDir(), "csi-volumes.yaml")
			writeFile(t, file, oldLayer)
			l := kube.NewConfigMapLayer(srv.Client(), ref, nil)
			wg.Add(1)
			go func() {
				defer wg.Done()
				imported, err := l.Import(ctx, file)
				if err != nil {
					t.Error(err)
				}
				results <- imported
			}()
		}
		wg.Wait()
		close(results)
		n := 0
		for r := range results {
			if r {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d importers imported, want 1", n)
		}
	})
	t.Run("a broken file is refused", func(t *testing.T) {
		srv := kubetest.New()
		defer srv.Close()
		file := filepath.Join(t.TempDir(), "csi-volumes.yaml")
		writeFile(t, file, "apiVersion: rds-reconcile/v1\nkind: State\nvolumes: [{name: BAD}]\n")
		l := kube.NewConfigMapLayer(srv.Client(), ref, nil)
		if _, err := l.Import(ctx, file); err == nil {
			t.Error("no error")
		}
		if srv.Data(ref.Namespace, ref.Name) != nil {
			t.Error("a broken file was imported")
		}
		if _, err := os.Stat(file); err != nil {
			t.Errorf("the broken file was moved: %v", err)
		}
	})
	t.Run("no file", func(t *testing.T) {
		srv := kubetest.New()
		defer srv.Close()
		l := kube.NewConfigMapLayer(srv.Client(), ref, nil)
		if imported, err := l.Import(ctx, filepath.Join(t.TempDir(), "csi-volumes.yaml")); err != nil || imported {
			t.Errorf("import: %v, %v", imported, err)
		}
	})
}
