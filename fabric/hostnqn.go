package fabric

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// hostNQNNamespace is the UUIDv5 namespace of derived host NQNs (a fixed,
// randomly chosen UUID: changing it would change every derived host NQN).
const hostNQNNamespace = "\x6b\x1f\x3c\x52\x8e\x0d\x4a\x77\x9c\x21\x5d\x3e\xa4\x90\x17\xc8"

// DeriveHostNQN turns a machine id into the host NQN
// nqn.2014-08.org.nvmexpress:uuid:<UUIDv5(namespace, machine id)>: the same
// machine always gets the same NQN, and the machine id itself is not shown.
func DeriveHostNQN(machineID string) string {
	h := sha1.New()
	h.Write([]byte(hostNQNNamespace))
	h.Write([]byte(strings.TrimSpace(machineID)))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return "nqn.2014-08.org.nvmexpress:uuid:" + formatUUID(u)
}

func formatUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// readTrimmed returns the trimmed file content, "" when missing.
func readTrimmed(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// HostNQN is the NQN this host presents, resolved once:
//  1. HostNQNFile (/etc/nvme/hostnqn, what nvme-cli uses) when present;
//  2. else HostNQNStateFile when a previous run persisted one;
//  3. else derived from MachineIDFile (DeriveHostNQN) — or, without a
//     machine id, a random UUID — and persisted to HostNQNStateFile
//     atomically so later runs present the same NQN even if the machine id
//     changes. A failed persist is logged; the derived NQN is still stable.
func (l *Linux) HostNQN(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hostNQN != "" {
		return l.hostNQN, nil
	}
	for _, p := range []string{l.opts.HostNQNFile, l.opts.HostNQNStateFile} {
		v, err := readTrimmed(p)
		if err != nil {
			return "", fmt.Errorf("read host NQN: %w", err)
		}
		if v != "" {
			l.hostNQN = v
			return v, nil
		}
	}
	mid, err := readTrimmed(l.opts.MachineIDFile)
	if err != nil {
		return "", fmt.Errorf("read machine id: %w", err)
	}
	var nqn string
	switch {
	case mid != "" && l.opts.ReadOnly:
		// The same NQN a later write would keep; nothing is written.
		return DeriveHostNQN(mid), nil
	case l.opts.ReadOnly:
		return "", fmt.Errorf("no host NQN yet (%s, %s and %s are all missing or empty); a command that connects creates one",
			l.opts.HostNQNFile, l.opts.HostNQNStateFile, l.opts.MachineIDFile)
	case mid != "":
		nqn = DeriveHostNQN(mid)
	default:
		var u [16]byte
		if _, err := rand.Read(u[:]); err != nil {
			return "", fmt.Errorf("generate host NQN: %w", err)
		}
		u[6] = u[6]&0x0f | 0x40
		u[8] = u[8]&0x3f | 0x80
		nqn = "nqn.2014-08.org.nvmexpress:uuid:" + formatUUID(u)
	}
	if err := WriteFileAtomic(l.opts.HostNQNStateFile, []byte(nqn+"\n"), 0o644); err != nil {
		if mid == "" {
			// A random NQN that is not persisted would change next run.
			return "", fmt.Errorf("persist host NQN: %w", err)
		}
		l.log.Warn("could not persist the derived host NQN", "file", l.opts.HostNQNStateFile, "err", err)
	} else {
		l.log.Info("host NQN generated", "hostnqn", nqn, "file", l.opts.HostNQNStateFile)
	}
	l.hostNQN = nqn
	return nqn, nil
}

// WriteFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path, so readers never see a partial file.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
