package reconcile

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestPhaseGroups(t *testing.T) {
	actions := []Action{
		{Kind: KindCreate, Volume: "b"},
		{Kind: KindConnect, Volume: "a"},
		{Kind: KindFixExport, Volume: "a"},
		{Kind: KindGrow, Volume: "b"},
		{Kind: KindBlocked, Wanted: KindGrow, Volume: "c", Phase: PhaseRDS},
		{Kind: KindRemoveFile, FilePath: "x.img"},
		{Kind: KindCreate, Volume: "a"},
		{Kind: KindDisconnectOrphan, Controller: "nvme1"},
		{Kind: KindDisconnectOrphan, Controller: "nvme2"},
	}
	tests := []struct {
		phase Phase
		want  string
	}{
		{PhaseRDS, "b:[create grow] a:[fix-export create]"},
		{PhaseHost, "a:[connect]"},
		{PhaseHostDetach, "#7:[disconnect-orphan] #8:[disconnect-orphan]"}, // no volume: one group each
		{PhaseRDSDelete, "#5:[remove-file]"},
	}
	for _, tt := range tests {
		order, groups := phaseGroups(tt.phase, actions)
		var got []string
		for _, key := range order {
			var kinds []Kind
			for _, a := range groups[key] {
				kinds = append(kinds, a.Kind)
			}
			got = append(got, fmt.Sprintf("%s:%v", key, kinds))
		}
		if s := fmt.Sprint(got); s != "["+tt.want+"]" {
			t.Errorf("%s: %s, want [%s]", tt.phase, s, tt.want)
		}
	}
}

// TestRecorder checks the result recorder alone: counts, what a volume's
// later actions are skipped for, metrics and progress.
func TestRecorder(t *testing.T) {
	var progress []string
	rc := &recorder{r: New(Options{}), res: &Result{}, failed: map[string][]Kind{},
		opts: ApplyOptions{Progress: func(ar ActionResult) { progress = append(progress, string(ar.Action.Kind)) }}}
	rc.record(ActionResult{Action: Action{Kind: KindCreate, Volume: "a"}, Err: errors.New("no space")})
	rc.record(ActionResult{Action: Action{Kind: KindGrow, Volume: "b"}})
	rc.record(ActionResult{Action: Action{Kind: KindFixExport, Volume: "b"}, Skipped: true, SkipReason: "cancelled"})
	rc.record(ActionResult{Action: Action{Kind: KindDisconnectOrphan, Controller: "nvme3"}, Err: errors.New("busy")})
	if r := rc.res; r.Succeeded != 1 || r.Failed != 2 || r.Skipped != 1 || len(r.Actions) != 4 || r.Actions[0].Error != "no space" {
		t.Errorf("counts: %+v", r)
	}
	if !slices.Equal(progress, []string{"create", "grow", "fix-export", "disconnect-orphan"}) {
		t.Errorf("progress %v", progress)
	}
	tests := []struct {
		a    Action
		why  Kind
		skip bool
	}{
		{Action{Kind: KindConnect, Volume: "a"}, KindCreate, true},
		{Action{Kind: KindSetTimeouts, Volume: "a"}, "", false}, // needs nothing
		{Action{Kind: KindRescan, Volume: "b"}, KindFixExport, true},
		{Action{Kind: KindConnect, Volume: "c"}, "", false}, // another volume
		{Action{Kind: KindDelete, Volume: "b"}, "", false},  // needs a disconnect, not a grow
	}
	for _, tt := range tests {
		why, skip := rc.blockedBy(tt.a)
		if why != tt.why || skip != tt.skip {
			t.Errorf("%s %s: blocked by %q %v, want %q %v", tt.a.Kind, tt.a.Volume, why, skip, tt.why, tt.skip)
		}
	}
}
