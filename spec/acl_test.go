package spec

import (
	"strings"
	"testing"
)

func TestPolicyExportACL(t *testing.T) {
	doc := func(policy string) string {
		return "apiVersion: rds-reconcile/v1\nkind: State\ntarget:\n  address: 10.0.0.1\n  basePath: pool/vols\n" + policy
	}
	for _, tc := range []struct{ policy, want string }{
		{"", ""},
		{"policy: {orphans: report}\n", ""},
		{"policy: {exportACL: open}\n", ExportACLOpen},
		{"policy: {exportACL: attached}\n", ExportACLAttached},
	} {
		st, err := LoadBytes("s.yaml", []byte(doc(tc.policy)))
		if err != nil {
			t.Fatalf("%q: %v", tc.policy, err)
		}
		if st.Policy.ExportACL != tc.want {
			t.Errorf("%q: exportACL = %q, want %q (unset leaves allow lists alone)", tc.policy, st.Policy.ExportACL, tc.want)
		}
	}
	_, err := LoadBytes("s.yaml", []byte(doc("policy: {exportACL: closed}\n")))
	if err == nil || !strings.Contains(err.Error(), "policy.exportACL") || !strings.Contains(err.Error(), "open, attached") {
		t.Errorf("exportACL closed: %v", err)
	}
}
