// Package sim owns the RouterOS simulator: a real SSH server
// (golang.org/x/crypto/ssh) that speaks the subset of RouterOS 7 the rds
// client uses against a MikroTik RDS — /disk add|set|remove|print|find|get,
// /file print|remove|find|get, :put, :serialize to=json (switchable, like
// RouterOS >= 7.13), /system resource — and prints what real hardware
// prints: wrapped `print detail` with row numbers and flags, thousand
// separators, rounded file sizes, errors as text with exit status 0.
//
// It keeps its own model of disks, files and the storage pool and does not
// use the client code, so a client that passes against it is tested against
// an independent reading of the RouterOS reference. Backends store the
// files: in memory, as sparse files, or exported for real through the Linux
// kernel NVMe target (nvmet configfs). Faults (latency, dropped
// connections, failing commands, a session cap) are injected from Go or
// from `rds-reconcile sim` flags.
package sim
