package reconcile

// The applier is Apply's executor: a phase at a time, a volume's actions
// in order, each action with retries against the RDS or this host. What
// finished goes to the recorder (apply.go).

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rds-reconcile/rds-reconcile/fabric"
	"github.com/rds-reconcile/rds-reconcile/internal/retryable"
	"github.com/rds-reconcile/rds-reconcile/rds"
)

// applier runs the actions of one Apply. It remembers the controllers
// that connects produced, so that no later phase undoes them: with the
// same NQN reachable twice, a connect may answer with an existing
// controller (EALREADY) that the plan had down as a duplicate.
type applier struct {
	r   *Reconciler
	pol RetryPolicy
	rec *recorder

	mu   sync.Mutex
	made map[string]string // controller -> volume whose connect produced it
}

// runPhase is the executor of one phase: the phase's actions of one volume
// run in plan order, volumes in parallel up to the parallelism of the
// phase's side.
func (ap *applier) runPhase(ctx context.Context, phase Phase, actions []Action) {
	order, groups := phaseGroups(phase, actions)
	if len(order) == 0 {
		return
	}
	if phase.Side() == SideRDS && ap.runBatched(ctx, order, groups) {
		return
	}
	limit := ap.r.opts.Parallelism
	if phase.Side() == SideRDS {
		limit = ap.r.opts.RDSParallelism
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for _, key := range order {
		acts := groups[key]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ctx.Err() == nil {
				select {
				case sem <- struct{}{}:
					defer func() { <-sem }()
				case <-ctx.Done():
				}
			}
			ap.runVolume(ctx, acts)
		}()
	}
	wg.Wait()
}

// phaseGroups collects the actions of phase by volume, in plan order; an
// action of no volume is a group of its own.
func phaseGroups(phase Phase, actions []Action) ([]string, map[string][]Action) {
	groups := map[string][]Action{}
	var order []string
	for i, a := range actions {
		if a.Kind == KindBlocked || a.Kind.Phase() != phase {
			continue
		}
		key := a.Volume
		if key == "" {
			key = fmt.Sprintf("#%d", i)
		}
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		groups[key] = append(groups[key], a)
	}
	return order, groups
}

// runVolume runs one volume's actions of a phase in order. Once ctx ends,
// or when a step an action needs failed, the action is skipped.
func (ap *applier) runVolume(ctx context.Context, acts []Action) {
	for _, a := range acts {
		why, dep := ap.rec.blockedBy(a)
		switch {
		case ctx.Err() != nil:
			ap.rec.record(ActionResult{Action: a, Skipped: true, SkipReason: "cancelled: " + context.Cause(ctx).Error()})
		case dep && a.Volume != "":
			ap.rec.record(ActionResult{Action: a, Skipped: true, SkipReason: fmt.Sprintf("an earlier step (%s) of volume %s failed", why, a.Volume)})
		default:
			ap.rec.record(ap.execute(ctx, a))
		}
	}
}

// execute runs one action with retries, timed and logged.
func (ap *applier) execute(ctx context.Context, a Action) ActionResult {
	t0 := time.Now()
	attempts, err := ap.do(ctx, a)
	ar := ActionResult{Action: a, Duration: time.Since(t0), Attempts: attempts, Err: err}
	if err != nil {
		ap.r.log.Warn("action failed", "kind", a.Kind, "volume", a.Volume, "controller", a.Controller,
			"attempts", attempts, "err", err)
	} else {
		ap.r.log.Debug("action done", "kind", a.Kind, "volume", a.Volume, "controller", a.Controller,
			"attempts", attempts, "duration", ar.Duration)
	}
	return ar
}

// retry runs fn for a under the policy, retrying the errors marked
// retryable and reporting every retried failure.
func (ap *applier) retry(ctx context.Context, a Action, fn func(attempt uint) error) (uint, error) {
	return ap.pol.doNotify(ctx, retryable.Is, fn, func(n uint, err error, next time.Duration) {
		ap.rec.retried(ctx, RetryEvent{Action: a, Attempt: n, Attempts: ap.pol.Attempts, Err: err, Error: err.Error(), Next: next})
	})
}

// do executes one action with retries, on its side.
func (ap *applier) do(ctx context.Context, a Action) (uint, error) {
	if a.Kind.OnRDS() {
		return ap.doRDS(ctx, a)
	}
	return ap.doHost(ctx, a)
}

// doRDS executes an action that changes the RDS.
func (ap *applier) doRDS(ctx context.Context, a Action) (uint, error) {
	r := ap.r
	switch a.Kind {
	case KindCreate:
		return ap.retry(ctx, a, func(attempt uint) error {
			if attempt > 1 {
				// A create whose connection dropped after sending may have
				// been applied: look before sending it again.
				ok, err := r.diskExists(ctx, a.Slot)
				if err != nil {
					return err // retryable read errors wait for the next attempt
				}
				if ok {
					return nil
				}
			}
			return r.opts.RDS.Create(ctx, rds.CreateRequest{Slot: a.Slot, FilePath: a.FilePath, Size: a.Size, Port: a.Port, NQN: a.NQN,
				SetAllowHosts: a.SetAllowHosts, AllowHosts: a.AllowHosts})
		})
	case KindFixExport:
		return ap.retry(ctx, a, func(uint) error {
			return r.opts.RDS.SetExport(ctx, rds.ExportRequest{Slot: a.Slot, Port: a.Port, NQN: a.NQN,
				SetAllowHosts: a.SetAllowHosts, AllowHosts: a.AllowHosts})
		})
	case KindGrow:
		return ap.retry(ctx, a, func(uint) error { return r.opts.RDS.Grow(ctx, a.Slot, a.Size) })
	case KindDelete, KindDeleteSnapshot:
		return ap.retry(ctx, a, func(uint) error { return r.opts.RDS.Delete(ctx, a.Slot, a.FilePath) })
	case KindCreateSnapshot, KindCreateFrom:
		return ap.doCopy(ctx, a)
	case KindRemoveFile:
		return ap.retry(ctx, a, func(uint) error {
			if err := r.opts.RDS.RemoveFile(ctx, a.FilePath); err != nil && !errors.Is(err, rds.ErrNotFound) {
				return err
			}
			return nil
		})
	}
	return 0, fmt.Errorf("unknown action kind %q", a.Kind)
}

// doHost executes an action that changes this host.
func (ap *applier) doHost(ctx context.Context, a Action) (uint, error) {
	r := ap.r
	switch a.Kind {
	case KindConnect:
		return ap.retry(ctx, a, func(uint) error { return ap.connect(ctx, a) })
	case KindSetTimeouts:
		return ap.retry(ctx, a, func(uint) error {
			err := r.opts.Fabric.SetTimeouts(ctx, a.Controller, *a.Timeouts)
			if errors.Is(err, fabric.ErrNeedsReconnect) {
				return fmt.Errorf("%w (the next plan reconnects)", err)
			}
			return err
		})
	case KindRescan:
		return ap.retry(ctx, a, func(uint) error {
			if err := r.opts.Fabric.Rescan(ctx, a.Controller); err != nil {
				return err
			}
			return r.waitNamespace(ctx, a.Controller)
		})
	case KindReconnect:
		n, err := ap.retry(ctx, a, func(uint) error { return r.disconnect(ctx, a.Controller) })
		if err != nil {
			return n, fmt.Errorf("disconnect %s: %w", a.Controller, err)
		}
		m, err := ap.retry(ctx, a, func(uint) error { return ap.connect(ctx, a) })
		return n + m, err
	case KindDisconnect, KindDisconnectOrphan:
		ap.mu.Lock()
		by, made := ap.made[a.Controller]
		ap.mu.Unlock()
		if made {
			return 0, fmt.Errorf("%w: %s is the controller the connect of %s returned", ErrUndo, a.Controller, by)
		}
		return ap.retry(ctx, a, func(uint) error { return r.disconnect(ctx, a.Controller) })
	}
	return 0, fmt.Errorf("unknown action kind %q", a.Kind)
}

func (r *Reconciler) diskExists(ctx context.Context, slot string) (bool, error) {
	inv, err := r.opts.RDS.List(ctx)
	if err != nil {
		return false, err
	}
	for _, d := range inv.Disks {
		if d.Slot == slot {
			return true, nil
		}
	}
	return false, nil
}

func (ap *applier) connect(ctx context.Context, a Action) error {
	req := fabric.ConnectRequest{NQN: a.NQN, Address: a.Address, Port: a.Port, HostNQN: a.HostNQN, DeviceWait: ap.r.opts.DeviceWait}
	if a.Timeouts != nil {
		req.Timeouts = *a.Timeouts
	}
	c, err := ap.r.opts.Fabric.Connect(ctx, req)
	if err == nil && c.Name != "" {
		ap.mu.Lock()
		ap.made[c.Name] = a.Volume
		ap.mu.Unlock()
	}
	return err
}

// waitNamespace waits, up to the device wait, until the controller shows a
// namespace again: the kernel scans asynchronously after a rescan, and a plan
// made before that would see the same gap again.
func (r *Reconciler) waitNamespace(ctx context.Context, name string) error {
	wait := r.opts.DeviceWait
	if wait <= 0 {
		wait = 30 * time.Second
	}
	deadline := time.Now().Add(wait)
	for {
		ctrls, err := r.opts.Fabric.List(ctx)
		if err != nil {
			return err
		}
		for _, c := range ctrls {
			if c.Name == name && len(c.Namespaces) > 0 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return retryable.Mark(fmt.Errorf("controller %s shows no namespace %s after a rescan", name, wait))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (r *Reconciler) disconnect(ctx context.Context, name string) error {
	if err := r.opts.Fabric.Disconnect(ctx, name, false); err != nil && !errors.Is(err, fabric.ErrNotFound) {
		return err
	}
	return nil
}
