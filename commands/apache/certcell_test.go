package apache

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/opsbot/opsbot/commands/tlscheck"
)

func TestCertCell_TheCertificateThatExpiresFirst(t *testing.T) {
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	served := func(days int) siteCert {
		return siteCert{Served: &tlscheck.Cert{NotAfter: at.Add(time.Duration(days)*24*time.Hour + time.Hour)}, At: at}
	}
	none := siteCert{ServedErr: errors.New("connection refused"), At: at}
	for _, tc := range []struct {
		name string
		snap snapshot
		want string
	}{
		{"no TLS virtual host", snapshot{}, "-"},
		{"virtual hosts unknown", snapshot{SitesErr: errors.New("apache2ctl -S exited 1")}, "?"},
		{"one", snapshot{Certs: []siteCert{served(59)}}, "59 days left"},
		{"the soonest of several", snapshot{Certs: []siteCert{served(300), served(12), served(90)}}, "12 days left (soonest of 3)"},
		{"expired", snapshot{Certs: []siteCert{served(300), served(-3)}}, "EXPIRED (soonest of 2)"},
		{"one not served", snapshot{Certs: []siteCert{served(30), none}}, "30 days left (soonest of 2), 1 not served"},
		{"nothing served", snapshot{Certs: []siteCert{none}}, "1 not served"},
	} {
		assert.Equal(t, tc.want, certCell(tc.snap), tc.name)
	}
}
