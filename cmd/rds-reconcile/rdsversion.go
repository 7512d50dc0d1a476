package main

import (
	"fmt"
	"io"

	"github.com/rds-reconcile/rds-reconcile/rds"
)

// writeRDSVersion prints "RDS: RouterOS 7.21 (stable)" when the client has
// read the RDS's version (it does once per connection, before its first
// listing); nothing otherwise.
func writeRDSVersion(w io.Writer, c *rds.SSHClient) {
	if c == nil {
		return
	}
	if p, ok := c.LastProfile(); ok {
		fmt.Fprintf(w, "RDS: %s\n", p)
	}
}
