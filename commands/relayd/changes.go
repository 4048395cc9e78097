package relayd

import (
	"strings"

	"github.com/opsbot/opsbot/bot"
)

var _ bot.Changer = (*Command)(nil)

// Changes implements bot.Changer: status, show and check (relayd -n) only
// look; poll, enable, disable, reload and restart act on relayd and are
// recorded as started before they do.
func (*Command) Changes(key string) bool {
	switch strings.TrimPrefix(key, "relayd ") {
	case "status", "show", "check":
		return false
	}
	return true
}
