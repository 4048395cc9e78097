package apache

import (
	"strings"

	"github.com/opsbot/opsbot/bot"
)

var _ bot.Changer = (*Command)(nil)

// Changes implements bot.Changer: reload and restart change Apache, and
// are recorded as started before they act; the views only look.
func (*Command) Changes(key string) bool {
	switch strings.TrimPrefix(key, "apache ") {
	case "status", "configtest", "modules", "vhosts":
		return false
	}
	return true
}
