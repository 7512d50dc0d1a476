package csi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

// DefaultKubeletDir is the kubelet's root directory (kubelet --root-dir):
// every staging and target path the node accepts lies below it.
const DefaultKubeletDir = "/var/lib/kubelet"

// checkPath checks a staging or target path from a request: absolute,
// clean, strictly below the kubelet directory, and no component below the
// kubelet directory is a symbolic link (so neither the path nor a later
// mount, unmount or remove can leave that directory). Components that do
// not exist yet are fine: the node creates them as directories. The kubelet
// directory itself is the operator's (--kubelet-dir) and may be a link.
func (n *node) checkPath(what, p string) error {
	switch {
	case !filepath.IsAbs(p):
		return invalid("%s %q must be an absolute path", what, p)
	case filepath.Clean(p) != p:
		return invalid("%s %q is not a clean path (no '.', '..', '//' or trailing '/')", what, p)
	}
	rel, err := filepath.Rel(n.kubeletDir, p)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return invalid("%s %q is not below the kubelet directory %s (csi --kubelet-dir)", what, p, n.kubeletDir)
	}
	cur := n.kubeletDir
	for _, part := range strings.Split(rel, "/") {
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return statusOf("checking "+what, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return invalid("%s %q: %s is a symbolic link; the node follows none below the kubelet directory", what, p, cur)
		}
	}
	return nil
}

// stagedRecord is what the node records next to its layer about each
// staged volume that the layer (a spec.State, strict) cannot hold: the
// staging path NodeStage was given. It lives in <layer>.staged.json
// (node-<node-id>.staged.json) and is written, atomically, only while the
// layer's lock is held. A volume in the layer without an entry was staged
// by an older version: any staging path below the kubelet directory is
// accepted for it until the next NodeStage records one.
type stagedRecord struct {
	Volumes map[string]stagedVolume `json:"volumes"`
}

type stagedVolume struct {
	StagingPath string `json:"stagingPath"`
}

func (n *node) recordPath() string {
	return strings.TrimSuffix(n.cfg.Layer.Path(), ".yaml") + ".staged.json"
}

// readRecord reads the staged record; a missing file is an empty record.
func (n *node) readRecord() (stagedRecord, error) {
	rec := stagedRecord{Volumes: map[string]stagedVolume{}}
	data, err := os.ReadFile(n.recordPath())
	if errors.Is(err, fs.ErrNotExist) {
		return rec, nil
	}
	if err != nil {
		return rec, fmt.Errorf("reading the staged record: %w", err)
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, fmt.Errorf("reading the staged record %s: %w", n.recordPath(), err)
	}
	if rec.Volumes == nil {
		rec.Volumes = map[string]stagedVolume{}
	}
	return rec, nil
}

// writeRecord replaces the staged record atomically (temp file, fsync,
// rename, fsync of the directory). Callers hold the layer's lock.
func (n *node) writeRecord(rec stagedRecord) (err error) {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	path := n.recordPath()
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing the staged record: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("writing the staged record: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("syncing the staged record: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing the staged record: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replacing the staged record: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing the state directory: %w", err)
	}
	defer d.Close()
	return d.Sync()
}

// setRecord sets (path != "") or removes (path == "") the staged record of
// volume id. Callers hold the layer's lock.
func (n *node) setRecord(id, path string) error {
	rec, err := n.readRecord()
	if err != nil {
		return err
	}
	if old, ok := rec.Volumes[id]; (path == "" && !ok) || (ok && old.StagingPath == path) {
		return nil
	}
	if path == "" {
		delete(rec.Volumes, id)
	} else {
		rec.Volumes[id] = stagedVolume{StagingPath: path}
	}
	return n.writeRecord(rec)
}

// editRecord is setRecord under the layer's lock.
func (n *node) editRecord(ctx context.Context, id, path string) error {
	err := n.cfg.Layer.Update(ctx, func(*spec.State) error {
		if err := n.setRecord(id, path); err != nil {
			return err
		}
		return errUnchanged
	})
	if errors.Is(err, errUnchanged) {
		return nil
	}
	return err
}

// layerProblems lists the problems of a layer that failed validation
// without their file positions: the file was never written.
func layerProblems(es spec.Errors) string {
	var out []string
	for _, e := range es {
		if e.Path != "" {
			out = append(out, e.Path+": "+e.Msg)
		} else {
			out = append(out, e.Msg)
		}
	}
	return strings.Join(out, "; ")
}

// checkStaged checks that staging is where volume id was staged (the
// recorded path; any path for a volume staged before paths were recorded).
func (n *node) checkStaged(id, staging string) error {
	rec, err := n.readRecord()
	if err != nil {
		return statusOf("reading the staged record", err)
	}
	if r, ok := rec.Volumes[id]; ok && r.StagingPath != staging {
		return invalid("staging target path %q is not where volume %q is staged (%s)", staging, id, r.StagingPath)
	}
	return nil
}

// removeStaleTemps removes the temporary files an interrupted atomic write
// of layer (or of a file next to it named in also) left in the layer's
// directory: exactly ".<name>.tmp-*", regular files, nothing else. It runs
// under the layer's lock, so no writer is between CreateTemp and rename.
func removeStaleTemps(ctx context.Context, layer LayerStore, log *slog.Logger, also ...string) {
	dir := filepath.Dir(layer.Path())
	names := append([]string{filepath.Base(layer.Path())}, also...)
	err := layer.Update(ctx, func(*spec.State) error {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if !e.Type().IsRegular() || !staleTemp(e.Name(), names) {
				continue
			}
			p := filepath.Join(dir, e.Name())
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				log.WarnContext(ctx, "cannot remove a stale temporary file", "file", p, "error", err)
				continue
			}
			log.InfoContext(ctx, "removed a temporary file an interrupted write left", "file", p)
		}
		return errUnchanged
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		log.WarnContext(ctx, "stale temporary files were not checked", "layer", layer.Path(), "error", err)
	}
}

// staleTemp reports whether name is ".<one of names>.tmp-<something>".
func staleTemp(name string, names []string) bool {
	for _, n := range names {
		rest, ok := strings.CutPrefix(name, "."+n+".tmp-")
		if ok && rest != "" && !strings.Contains(rest, "/") {
			return true
		}
	}
	return false
}

// removeTarget removes what NodePublish created at target, now unmounted:
// an empty directory (mount access) or an empty file (block access). A
// file with content is not something the node made, and is kept.
func removeTarget(target string) error {
	fi, err := os.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().IsRegular() && fi.Size() > 0 {
		return fmt.Errorf("%s is a file with %d bytes, not the empty file NodePublish creates; it is kept", target, fi.Size())
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// notStagedHere is the NotFound of a volume this node has not staged.
func (n *node) notStagedHere(id string) error {
	return status.Errorf(codes.NotFound, "volume %q is not staged on node %s", id, n.id)
}
