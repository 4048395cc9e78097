package bot

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// AuditPruner removes audit records past retention (policy audit.retain),
// never without exporting them first.
type AuditPruner interface {
	// PruneAudit takes, oldest first, at most limit records whose Time is
	// before before, hands them to export, and removes exactly those when
	// export returns nil, in one transaction: when export fails, or the
	// removal does, nothing is removed. It returns how many it removed
	// (0 when none is that old). Replicas pruning at once never remove a
	// record twice; a record may be exported twice when a removal fails
	// after its export succeeded.
	PruneAudit(ctx context.Context, before time.Time, limit int, export func([]AuditRecord) error) (int, error)
}

// AuditPruned is the audit kind of the record retention leaves behind:
// how many records it removed, up to when, and where they were exported.
const AuditPruned = "pruned"

// AuditPolicy is the policy's audit key: how long the audit log keeps
// records, and where records past that go before they are removed.
//
//	audit:
//	  retain: 400d                      # days (d), weeks (w) or hours (h)
//	  export: /var/lib/opsbot/audit-archive
type AuditPolicy struct {
	Retain Age    `yaml:"retain"`
	Export string `yaml:"export"`
}

// Age is a duration that may be written in days or weeks ("400d", "8w")
// as well as Go's units ("9600h").
type Age struct {
	D   time.Duration
	bad string
}

// UnmarshalYAML implements yaml.BytesUnmarshaler.
func (a *Age) UnmarshalYAML(b []byte) error {
	var s string
	if err := yamlUnmarshal(b, &s); err != nil {
		return err
	}
	d, ok := parseAge(s)
	if !ok {
		a.bad = s
		return nil
	}
	a.D = d
	return nil
}

// parseAge reads "400d", "8w", or anything time.ParseDuration reads.
func parseAge(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.Atoi(n)
			if err != nil || v < 0 || v > 1<<20 {
				return 0, false
			}
			return time.Duration(v) * unit, true
		}
	}
	d, err := time.ParseDuration(s)
	return d, err == nil
}

// Retention bounds.
const (
	MinAuditRetain = 24 * time.Hour
	MaxAuditRetain = 100 * 366 * 24 * time.Hour
)

// problems are the audit key's validation failures, as validate words
// them ("audit.retain ..." names the line).
func (a AuditPolicy) problems() []string {
	var out []string
	switch {
	case a.Retain.bad != "":
		out = append(out, fmt.Sprintf("audit.retain is %q: write an age such as 400d, 8w or 720h", a.Retain.bad))
	case a.Retain.D == 0 && a.Export != "":
		out = append(out, "audit.export is set without audit.retain: say how long records stay, such as retain: 400d")
	case a.Retain.D != 0 && (a.Retain.D < MinAuditRetain || a.Retain.D > MaxAuditRetain):
		out = append(out, fmt.Sprintf("audit.retain is %s: accepted 1d to 36600d", a.Retain.D))
	}
	if a.Retain.D != 0 && a.Retain.bad == "" {
		switch {
		case a.Export == "":
			out = append(out, "audit.retain needs audit.export: the directory where records are written (JSON lines) before they are removed")
		case !filepath.IsAbs(a.Export):
			out = append(out, fmt.Sprintf("audit.export is %q: give an absolute directory path, such as /var/lib/opsbot/audit-archive", a.Export))
		}
	}
	return out
}
