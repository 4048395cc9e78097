package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/opsbot/opsbot/bot"
)

// auditLine is one exported audit record. Field names are an interface
// scripts rely on: add, never rename.
type auditLine struct {
	Seq          int64    `json:"seq"`
	Time         string   `json:"time"`
	Kind         string   `json:"kind"`
	RequestID    string   `json:"request_id,omitempty"`
	Platform     string   `json:"platform"`
	User         string   `json:"user,omitempty"`
	UserName     string   `json:"user_name,omitempty"`
	Channel      string   `json:"channel,omitempty"`
	Line         string   `json:"line,omitempty"`
	Command      string   `json:"command,omitempty"`
	Hosts        []string `json:"hosts,omitempty"`
	ApprovalID   string   `json:"approval_id,omitempty"`
	Result       string   `json:"result"`
	Message      string   `json:"message,omitempty"`
	DurationMS   float64  `json:"duration_ms"`
	OutputSHA256 string   `json:"output_sha256,omitempty"`
	Person       string   `json:"person,omitempty"`        // policy people:
	SelfAsserted bool     `json:"self_asserted,omitempty"` // opsbot run --as: nobody verified it
}

func auditCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "prune" {
		return auditPruneCmd(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "export" {
		fmt.Fprintln(stderr, "usage: opsbot audit export [--since TIME] | opsbot audit prune [--config FILE]")
		return 2
	}
	fs := flag.NewFlagSet("opsbot audit export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	since := fs.String("since", "", "only records at or after TIME: RFC 3339 (2026-11-25T10:00:00Z), a date (2026-11-25), or a duration ago (24h)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	from, err := parseSince(*since, time.Now())
	if err != nil {
		fmt.Fprintln(stderr, "opsbot audit export:", err)
		return 2
	}
	env, err := loadEnv()
	if err != nil {
		return configError(stderr, err)
	}
	st, _, err := openStore(ctx, env.Database)
	if err != nil {
		return configError(stderr, err)
	}
	defer func() { _ = st.Close() }()
	recs, err := st.Audit(ctx, bot.AuditQuery{Since: from})
	if err != nil {
		fmt.Fprintln(stderr, "opsbot audit export:", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	for _, r := range recs {
		if err := enc.Encode(toAuditLine(r)); err != nil {
			fmt.Fprintln(stderr, "opsbot audit export:", err)
			return 1
		}
	}
	return 0
}

func toAuditLine(r bot.AuditRecord) auditLine {
	return auditLine{
		Seq: r.Seq, Time: r.Time.UTC().Format(time.RFC3339Nano), Kind: r.Kind, RequestID: r.RequestID,
		Platform: r.Platform, User: r.User, UserName: r.UserName, Channel: r.Channel, Line: r.Line,
		Command: r.Command, Hosts: r.Hosts, ApprovalID: r.ApprovalID, Result: r.Result, Message: r.Message,
		DurationMS: float64(r.Duration) / float64(time.Millisecond), OutputSHA256: r.OutputSHA256,
		Person: r.Person, SelfAsserted: r.SelfAsserted,
	}
}

// parseSince reads RFC 3339, a date, or a duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: give RFC 3339 (2026-11-25T10:00:00Z), a date (2026-11-25), or a duration ago (24h)", s)
}
