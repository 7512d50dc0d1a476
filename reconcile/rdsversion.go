package reconcile

import "github.com/rds-reconcile/rds-reconcile/rds"

// rdsVersion is the RouterOS release the RDS client last read, as printed
// ("7.21 (stable)"), without asking the RDS again; "" when the client has
// not read it or cannot say.
func (r *Reconciler) rdsVersion() string {
	if c, ok := r.opts.RDS.(interface{ LastProfile() (rds.Profile, bool) }); ok {
		if p, ok := c.LastProfile(); ok {
			return p.Raw
		}
	}
	return ""
}
