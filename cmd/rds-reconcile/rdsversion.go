package main

import (
	"fmt"

	"github.com/rds-reconcile/rds-reconcile/rds"
)

// rdsProfile is the RDS's RouterOS as plan and status print it ("RouterOS
// 7.21 (stable)") when the client has read it (it does once per
// connection, before its first listing); "" otherwise.
func rdsProfile(c *rds.SSHClient) string {
	if c == nil {
		return ""
	}
	if p, ok := c.LastProfile(); ok {
		return fmt.Sprint(p)
	}
	return ""
}
