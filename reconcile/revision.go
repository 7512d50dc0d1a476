package reconcile

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Revision names the git commit of the work tree holding the state files
// (short hash, "+dirty" when one of them has uncommitted changes), like
// Flux's revision. It returns "" when the files are not in a git work tree
// or git is missing: the revision is informative, never required.
func Revision(ctx context.Context, files []string) string {
	if len(files) == 0 {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	dir := filepath.Dir(files[0])
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	rev := strings.TrimSpace(string(out))
	args := []string{"-C", dir, "status", "--porcelain", "--"}
	for _, f := range files {
		if abs, err := filepath.Abs(f); err == nil {
			f = abs
		}
		args = append(args, f)
	}
	if st, err := exec.CommandContext(ctx, "git", args...).Output(); err == nil && strings.TrimSpace(string(st)) != "" {
		rev += "+dirty"
	}
	return rev
}
