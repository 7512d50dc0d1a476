package kube

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rds-reconcile/rds-reconcile/spec"
)

// LayerKey is the ConfigMap key that holds the layer: the same YAML the
// file store writes, so `kubectl get cm NAME -o jsonpath='{.data.csi-volumes\.yaml}'`
// is a state file `rds-reconcile plan -f` reads.
const LayerKey = "csi-volumes.yaml"

// MaxConfigMapData is what the API server accepts in one ConfigMap's data
// (etcd's object limit is about 1.5 MiB; the API refuses data over 1 MiB).
const MaxConfigMapData = 1 << 20

// DefaultAttempts bounds the read-edit-write rounds of one Update when
// other writers keep winning.
const DefaultAttempts = 30

// LayerRef names a ConfigMap that holds a layer: configmap://NAMESPACE/NAME.
type LayerRef struct{ Namespace, Name string }

func (r LayerRef) String() string { return "configmap://" + r.Namespace + "/" + r.Name }

// dnsLabel and dnsSubdomain are Kubernetes' rules for namespace and
// ConfigMap names.
var (
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// ParseLayerRef reads configmap://NAMESPACE/NAME.
func ParseLayerRef(s string) (LayerRef, error) {
	rest, ok := strings.CutPrefix(s, "configmap://")
	if !ok {
		return LayerRef{}, fmt.Errorf("%q: write configmap://NAMESPACE/NAME", s)
	}
	ns, name, ok := strings.Cut(rest, "/")
	switch {
	case !ok || ns == "" || name == "":
		return LayerRef{}, fmt.Errorf("%q: write configmap://NAMESPACE/NAME", s)
	case len(ns) > 63 || !dnsLabel.MatchString(ns):
		return LayerRef{}, fmt.Errorf("%q: namespace %q is not a Kubernetes namespace name (lower-case letters, digits and '-', at most 63)", s, ns)
	case len(name) > 253 || !dnsSubdomain.MatchString(name):
		return LayerRef{}, fmt.Errorf("%q: %q is not a ConfigMap name (lower-case letters, digits, '-' and '.', at most 253)", s, name)
	}
	return LayerRef{Namespace: ns, Name: name}, nil
}

// ConfigMapLayer is a state layer kept in a ConfigMap (key LayerKey),
// edited with optimistic concurrency: read (with its resourceVersion),
// edit, write back conditionally; when another writer got there first the
// API server answers 409 Conflict and the edit is redone on a fresh read.
// Nothing is cached: every Load and every Update reads the API server, so
// any number of processes on any nodes share one truth.
type ConfigMapLayer struct {
	c        *Client
	ref      LayerRef
	log      *slog.Logger
	attempts int
	// sem serialises this process's own writers: they would only conflict
	// with each other. Other processes are kept apart by resourceVersion.
	sem       chan struct{}
	conflicts atomic.Int64
	writes    atomic.Int64
}

// NewConfigMapLayer is the layer in ref, reached through c.
func NewConfigMapLayer(c *Client, ref LayerRef, log *slog.Logger) *ConfigMapLayer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ConfigMapLayer{c: c, ref: ref, log: log, attempts: DefaultAttempts, sem: make(chan struct{}, 1)}
}

// Name is configmap://NAMESPACE/NAME: the layer's name in messages and the
// Source of its volumes.
func (l *ConfigMapLayer) Name() string { return l.ref.String() }

// Stats are the writes made and the conflicts retried since the layer was
// opened.
func (l *ConfigMapLayer) Stats() (writes, conflicts int64) {
	return l.writes.Load(), l.conflicts.Load()
}

// Load returns the layer's YAML; nil when the ConfigMap or its key is not
// there (an empty layer).
func (l *ConfigMapLayer) Load(ctx context.Context) ([]byte, error) {
	cm, err := l.c.GetConfigMap(ctx, l.ref.Namespace, l.ref.Name)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return []byte(cm.Data[LayerKey]), nil
}

// Read returns the layer as written, without defaults (spec.ParseLayer).
func (l *ConfigMapLayer) Read(ctx context.Context) (*spec.State, error) {
	data, err := l.Load(ctx)
	if err != nil {
		return nil, err
	}
	return spec.ParseLayer(l.Name(), data)
}

// Update runs fn on a fresh read of the layer and writes the result back
// if nobody wrote in between; otherwise it reads again and runs fn again,
// up to DefaultAttempts times. So fn may run more than once, and must
// depend only on the state it is given. If fn returns an error or panics,
// or the result is not a valid layer, nothing is written.
func (l *ConfigMapLayer) Update(ctx context.Context, fn func(*spec.State) error) error {
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("waiting to edit %s: %w", l.Name(), ctx.Err())
	}
	defer func() { <-l.sem }()
	wait := 5 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := l.updateOnce(ctx, fn)
		if !errors.Is(err, ErrConflict) && !errors.Is(err, ErrAlreadyExists) {
			return err
		}
		l.conflicts.Add(1)
		if attempt >= l.attempts {
			return fmt.Errorf("editing %s: other writers changed it %d times in a row: %w", l.Name(), attempt, err)
		}
		l.log.DebugContext(ctx, "the CSI layer changed under an edit; reading it again", "layer", l.Name(), "attempt", attempt)
		// Jitter keeps two controllers that lost to each other from
		// colliding again in lockstep.
		select {
		case <-time.After(wait/2 + rand.N(wait)):
		case <-ctx.Done():
			return fmt.Errorf("editing %s: %w", l.Name(), ctx.Err())
		}
		wait = min(wait*2, 500*time.Millisecond)
	}
}

func (l *ConfigMapLayer) updateOnce(ctx context.Context, fn func(*spec.State) error) error {
	cm, err := l.c.GetConfigMap(ctx, l.ref.Namespace, l.ref.Name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	var data []byte
	if cm != nil {
		data = []byte(cm.Data[LayerKey])
	}
	cur, err := spec.ParseLayer(l.Name(), data)
	if err != nil {
		return err
	}
	if err := spec.EditLayer(fn, cur); err != nil {
		return err
	}
	out, err := spec.EncodeLayer(l.Name(), cur)
	if err != nil {
		return err
	}
	return l.write(ctx, cm, out)
}

// write stores data as the layer: a create when cm is nil (ErrAlreadyExists
// when someone created it first), else a conditional update at cm's
// resourceVersion (ErrConflict when someone wrote since).
func (l *ConfigMapLayer) write(ctx context.Context, cm *ConfigMap, data []byte) error {
	if len(data) > MaxConfigMapData-1024 {
		return fmt.Errorf("%w: %s: the layer is %d bytes, more than a ConfigMap holds (1 MiB); delete unused volumes", spec.ErrLayer, l.Name(), len(data))
	}
	var err error
	if cm == nil {
		_, err = l.c.CreateConfigMap(ctx, &ConfigMap{
			Namespace: l.ref.Namespace, Name: l.ref.Name,
			Labels:      map[string]string{"app.kubernetes.io/managed-by": "rds-reconcile"},
			Annotations: map[string]string{"rds-reconcile.io/layer": "the volumes Kubernetes created through the rds-reconcile CSI controller; rds-reconcile plan -f base.yaml -f <this key's content> shows the whole truth"},
			Data:        map[string]string{LayerKey: string(data)},
		})
	} else {
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[LayerKey] = string(data)
		_, err = l.c.UpdateConfigMap(ctx, cm)
	}
	if err == nil {
		l.writes.Add(1)
	}
	return err
}

// Import copies a layer file (the file store of an older version:
// <state-dir>/csi-volumes.yaml) into the ConfigMap once: only when the
// ConfigMap or its key is missing. Concurrent importers are safe: the
// create or update is conditional, and the loser finds the layer there.
// The file is then renamed to <file>.imported so that it is never taken
// for the truth again (nor imported again over a ConfigMap someone
// deleted on purpose). It reports whether this call imported it.
func (l *ConfigMapLayer) Import(ctx context.Context, file string) (bool, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("importing %s: %w", file, err)
	}
	st, err := spec.ParseLayer(file, data)
	if err != nil {
		return false, fmt.Errorf("importing %s: %w", file, err)
	}
	out, err := spec.EncodeLayer(l.Name(), st)
	if err != nil {
		return false, fmt.Errorf("importing %s: %w", file, err)
	}
	imported := false
	for attempt := 1; ; attempt++ {
		cm, err := l.c.GetConfigMap(ctx, l.ref.Namespace, l.ref.Name)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return false, fmt.Errorf("importing %s: %w", file, err)
		}
		if cm != nil && strings.TrimSpace(cm.Data[LayerKey]) != "" {
			l.log.InfoContext(ctx, "the CSI layer is in the ConfigMap already; the old layer file is not imported",
				"layer", l.Name(), "file", file)
			break
		}
		err = l.write(ctx, cm, out)
		if err == nil {
			imported = true
			l.log.InfoContext(ctx, "imported the CSI layer file into the ConfigMap",
				"layer", l.Name(), "file", file, "volumes", len(st.Volumes), "hosts", len(st.Hosts))
			break
		}
		if (!errors.Is(err, ErrConflict) && !errors.Is(err, ErrAlreadyExists)) || attempt >= l.attempts {
			return false, fmt.Errorf("importing %s: %w", file, err)
		}
		// Someone wrote first: look again.
	}
	if err := os.Rename(file, file+".imported"); err != nil {
		return imported, fmt.Errorf("the layer is in %s, but renaming %s failed (it will not be imported again): %w", l.Name(), file, err)
	}
	return imported, nil
}
