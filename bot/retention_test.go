package bot

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParsePolicy_AuditRetention(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"400d": 400 * 24 * time.Hour, "8w": 8 * 7 * 24 * time.Hour, "720h": 720 * time.Hour,
	} {
		p, err := ParsePolicy([]byte("audit:\n  retain: " + in + "\n  export: /var/lib/opsbot/audit-archive\n"))
		require.NoError(t, err, in)
		assert.Equal(t, want, p.Audit.Retain.D, in)
		assert.Equal(t, "/var/lib/opsbot/audit-archive", p.Audit.Export)
	}
	p, err := ParsePolicy([]byte("limits:\n  scan_ports: 10\n"))
	require.NoError(t, err)
	assert.Zero(t, p.Audit.Retain.D, "no audit key: records are kept forever")
}

func TestParsePolicy_AuditRetentionRejectsWhatItCannotDo(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"audit:\n  retain: 400 days\n  export: /x\n", `2:11: audit.retain is "400 days": write an age such as 400d, 8w or 720h`},
		{"audit:\n  retain: 400d\n", "2:11: audit.retain needs audit.export"},
		{"audit:\n  retain: 400d\n  export: archive\n", `3:11: audit.export is "archive": give an absolute directory path`},
		{"audit:\n  export: /x\n", "2:11: audit.export is set without audit.retain"},
		{"audit:\n  retain: 2h\n  export: /x\n", "audit.retain is 2h0m0s: accepted 1d to 36600d"},
		{"audit:\n  retain: 400d\n  export: /x\n  keep: 3\n", `unknown field "keep"`},
	} {
		_, err := ParsePolicy([]byte(tc.yaml))
		require.Error(t, err, tc.yaml)
		assert.Equal(t, ECONFIG, ErrorCode(err))
		assert.Contains(t, ErrorMessage(err), tc.want, tc.yaml)
	}
}
