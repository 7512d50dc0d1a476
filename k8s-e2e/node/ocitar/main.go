// Command ocitar writes a one-layer OCI image archive, the format
// `ctr images import` reads, from local files: the pause image and the test
// image of `make k8s-node-e2e` are built this way, since there is no
// container registry here.
//
//	ocitar -o out.tar -name registry.k8s.io/pause:3.10 -entrypoint /pause pause=/pause
//	ocitar -o out.tar -name example.invalid/busybox:e2e -entrypoint /bin/sh /bin/busybox=/bin/busybox busybox=/bin/sh@link
//
// Each argument is SRC=DST (a file, mode 0755) or TARGET=DST@link (a
// symlink DST -> TARGET). The archive holds oci-layout, index.json (the
// manifest annotated with the image name, which ctr uses as the image's
// name) and the blobs: the uncompressed layer, the config and the manifest.
package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"strings"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ocitar:", err)
		os.Exit(1)
	}
}

type blob struct {
	digest string
	data   []byte
}

func newBlob(data []byte) blob {
	sum := sha256.Sum256(data)
	return blob{"sha256:" + hex.EncodeToString(sum[:]), data}
}

func run(args []string) error {
	fs := flag.NewFlagSet("ocitar", flag.ContinueOnError)
	out := fs.String("o", "", "archive to write")
	name := fs.String("name", "", "image name with a tag, e.g. registry.k8s.io/pause:3.10")
	entry := fs.String("entrypoint", "", "the image's entrypoint (space separated)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tag := (*name)[strings.LastIndex(*name, ":")+1:]
	if *out == "" || *entry == "" || !strings.Contains(*name, ":") || strings.Contains(tag, "/") || fs.NArg() == 0 {
		return errors.New("usage: ocitar -o OUT.tar -name NAME:TAG -entrypoint CMD SRC=DST|TARGET=DST@link...")
	}
	layer, err := buildLayer(fs.Args())
	if err != nil {
		return err
	}
	l := newBlob(layer)
	cfg, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Entrypoint": strings.Fields(*entry), "Env": []string{"PATH=/bin"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{l.digest}},
	})
	if err != nil {
		return err
	}
	c := newBlob(cfg)
	man, err := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c.digest, "size": len(c.data)},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l.digest, "size": len(l.data)}},
	})
	if err != nil {
		return err
	}
	m := newBlob(man)
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"manifests": []any{map[string]any{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m.digest, "size": len(m.data),
			"platform":    map[string]string{"architecture": "amd64", "os": "linux"},
			"annotations": map[string]string{"io.containerd.image.name": *name, "org.opencontainers.image.ref.name": tag},
		}},
	})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := add("index.json", index); err != nil {
		return err
	}
	for _, b := range []blob{l, c, m} {
		if err := add("blobs/sha256/"+strings.TrimPrefix(b.digest, "sha256:"), b.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(*out, buf.Bytes(), 0o644)
}

// buildLayer is the image's one layer: the parent directories, the files
// and the symlinks of the SRC=DST arguments.
func buildLayer(specs []string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, s := range specs {
		src, dst, ok := strings.Cut(s, "=")
		if !ok || src == "" || dst == "" {
			return nil, fmt.Errorf("%q: want SRC=DST or TARGET=DST@link", s)
		}
		dst, link := strings.CutSuffix(dst, "@link")
		dst = strings.TrimPrefix(path.Clean("/"+dst), "/")
		var parents []string
		for d := path.Dir(dst); d != "." && d != "/"; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if !dirs[d] {
				dirs[d] = true
				if err := tw.WriteHeader(&tar.Header{Name: d + "/", Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
					return nil, err
				}
			}
		}
		if link {
			if err := tw.WriteHeader(&tar.Header{Name: dst, Linkname: src, Mode: 0o777, Typeflag: tar.TypeSymlink}); err != nil {
				return nil, err
			}
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Name: dst, Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
