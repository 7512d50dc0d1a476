package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestArchive writes an image and reads it back as an OCI layout: every
// blob named by its digest, the index naming the manifest with the image
// name containerd imports it as, the manifest naming the config and the
// layer, the config's diff_id the layer's digest, and the layer holding the
// file, its parent folder and the symlink.
func TestArchive(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "tool")
	if err := os.WriteFile(src, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "img.tar")
	if err := run([]string{"-o", out, "-name", "example.invalid/x/tool:e2e", "-entrypoint", "/bin/tool -v", src + "=/bin/tool", "tool=/bin/sh@link"}); err != nil {
		t.Fatal(err)
	}
	files := readTar(t, mustRead(t, out))
	if string(files["oci-layout"].data) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %q", files["oci-layout"].data)
	}
	blob := func(digest string) []byte {
		t.Helper()
		f, ok := files["blobs/sha256/"+strings.TrimPrefix(digest, "sha256:")]
		if !ok {
			t.Fatalf("no blob %s", digest)
		}
		sum := sha256.Sum256(f.data)
		if "sha256:"+hex.EncodeToString(sum[:]) != digest {
			t.Fatalf("blob %s has another digest", digest)
		}
		return f.data
	}
	type desc struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int               `json:"size"`
		Annotations map[string]string `json:"annotations"`
	}
	var index struct{ Manifests []desc }
	if err := json.Unmarshal(files["index.json"].data, &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json %s: %v", files["index.json"].data, err)
	}
	m := index.Manifests[0]
	if m.Annotations["io.containerd.image.name"] != "example.invalid/x/tool:e2e" || m.Annotations["org.opencontainers.image.ref.name"] != "e2e" {
		t.Errorf("index annotations %v", m.Annotations)
	}
	var man struct {
		Config desc
		Layers []desc
	}
	mb := blob(m.Digest)
	if len(mb) != m.Size || json.Unmarshal(mb, &man) != nil || len(man.Layers) != 1 {
		t.Fatalf("manifest %s", mb)
	}
	var cfg struct {
		Config struct{ Entrypoint []string }
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(blob(man.Config.Digest), &cfg); err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Config.Entrypoint, " ") != "/bin/tool -v" {
		t.Errorf("entrypoint %q", cfg.Config.Entrypoint)
	}
	if len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.DiffIDs[0] != man.Layers[0].Digest {
		t.Errorf("diff_ids %v, layer %s (uncompressed: they must be equal)", cfg.RootFS.DiffIDs, man.Layers[0].Digest)
	}
	layer := readTar(t, blob(man.Layers[0].Digest))
	if f := layer["bin/"]; f.typ != tar.TypeDir {
		t.Errorf("no bin/ folder in the layer: %v", layer)
	}
	if f := layer["bin/tool"]; string(f.data) != "#!/bin/sh\necho hi\n" || f.mode != 0o755 {
		t.Errorf("bin/tool = %q mode %o", f.data, f.mode)
	}
	if f := layer["bin/sh"]; f.typ != tar.TypeSymlink || f.link != "tool" {
		t.Errorf("bin/sh = %+v, want a symlink to tool", f)
	}
}

func TestArchiveRefusesBadArguments(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.tar")
	for _, args := range [][]string{
		{"-o", out, "-name", "no-tag", "-entrypoint", "/x", "a=/x"},
		{"-o", out, "-name", "host:5000/no-tag", "-entrypoint", "/x", "a=/x"},
		{"-o", out, "-name", "x:1", "-entrypoint", "/x", "just-a-path"},
		{"-o", out, "-name", "x:1", "-entrypoint", "/x", "/does/not/exist=/x"},
		{"-o", out, "-name", "x:1", "-entrypoint", "/x"},
	} {
		if err := run(args); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

type entry struct {
	typ  byte
	mode int64
	link string
	data []byte
}

func readTar(t *testing.T, b []byte) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = entry{h.Typeflag, h.Mode, h.Linkname, data}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
