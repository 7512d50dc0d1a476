package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// diskRec is a file-backed disk as the simulator stores it.
type diskRec struct {
	ID        int    `json:"id"`
	Slot      string `json:"slot"`
	FilePath  string `json:"filePath"` // no leading '/'
	Export    bool   `json:"export"`
	Port      int    `json:"port"`
	NQN       string `json:"nqn,omitempty"` // "" = default (the slot)
	AllowHost string `json:"allowHost,omitempty"`
	Comment   string `json:"comment,omitempty"`
	Disabled  bool   `json:"disabled,omitempty"`
	// NoMountFS is mount-filesystem=no; RouterOS's default is yes, so the
	// zero value (and older state files) mean yes.
	NoMountFS bool `json:"noMountFilesystem,omitempty"`
	// Traffic is what /disk monitor-traffic reports; nil until first seen.
	Traffic *trafficRec `json:"traffic,omitempty"`
}

func (d *diskRec) nqn() string {
	if d.NQN == "" {
		return d.Slot
	}
	return d.NQN
}

func (d *diskRec) export() Export {
	return Export{Slot: d.Slot, NQN: d.nqn(), Port: d.Port, Path: d.FilePath, On: d.Export && !d.Disabled, AllowHost: d.AllowHost}
}

type fileRec struct {
	ID      int       `json:"id"`
	Name    string    `json:"name"` // no leading '/'
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
}

// state is everything that persists across restarts.
type state struct {
	NextID int        `json:"nextId"`
	Disks  []*diskRec `json:"disks"`
	Files  []*fileRec `json:"files"`

	// Indexes, rebuilt by index().
	bySlot map[string]*diskRec
	byPath map[string]*diskRec
	byName map[string]*fileRec
	used   int64
	// nqns counts disks with nvme-tcp-export=yes per NQN.
	nqns map[string]int
	// version counts changes; items caches the /disk list of one version.
	version      int
	items        []item
	itemsVersion int
	// json caches each item's :serialize object for one version.
	json        map[int]string
	jsonVersion int
}

// track counts d's NQN in or out (delta +1 or -1) when d is exported.
func (st *state) track(d *diskRec, delta int) {
	if d.Export {
		st.nqns[d.nqn()] += delta
	}
}

// poolID is the storage pool's own /disk id; other ids start after it.
const poolID = 1

func newState() *state {
	st := &state{NextID: poolID + 1}
	st.index()
	return st
}

func (st *state) index() {
	st.bySlot = make(map[string]*diskRec, len(st.Disks))
	st.byPath = make(map[string]*diskRec, len(st.Disks))
	st.byName = make(map[string]*fileRec, len(st.Files))
	st.nqns = map[string]int{}
	st.used = 0
	for _, d := range st.Disks {
		st.bySlot[d.Slot] = d
		st.byPath[d.FilePath] = d
		st.track(d, 1)
	}
	for _, f := range st.Files {
		st.byName[f.Name] = f
		st.used += f.Size
	}
}

func (st *state) newID() int {
	id := st.NextID
	st.NextID++
	return id
}

func loadState(path string) (*state, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return newState(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	st := &state{}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("parse state %s: %w", path, err)
	}
	if st.NextID <= poolID {
		st.NextID = poolID + 1
	}
	st.index()
	return st, nil
}

// save writes the state atomically: a crash leaves the old or the new file.
func (st *state) save(path string) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".state-*.json")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}
