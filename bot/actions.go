package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Audit before action: an action that changes something is recorded as
// started, durably, before it acts, and is in flight under a lease until
// its outcome is recorded. If the start cannot be written the action does
// not run. A start whose replica died before the outcome is found by the
// next sweep of any replica and recorded once as interrupted.

// Changer is implemented by commands that say which of their actions
// change something (a reload, a restart) and which only look (status,
// show). A command that does not implement it is taken to change
// something with every action: the Router then refuses to run it when the
// audit log cannot record its start.
type Changer interface {
	Changes(key string) bool
}

func changes(cmd Command, key string) bool {
	if c, ok := cmd.(Changer); ok {
		return c.Changes(key)
	}
	return true
}

// flight is an action recorded as started and not yet ended.
type flight struct {
	stop func() (lost bool) // stops renewing its lease
}

// startAction records req's start and keeps its lease until the returned
// flight's stop. The error, user-safe, says why nothing may run.
func (s *ApprovalService) startAction(ctx context.Context, req Request, key string, hosts []string) (*flight, error) {
	now := s.now()
	rec := AuditRecord{
		Time: now.UTC(), Kind: AuditStarted, RequestID: req.ID,
		Platform: req.Platform, User: req.User, UserName: req.UserName, Channel: req.Channel,
		Line: req.Line, Command: key, Hosts: hosts, Result: "running", Message: "started on replica " + s.replica,
		Person: s.perms.Person(WhoOf(req)), SelfAsserted: req.SelfAsserted,
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := s.store.BeginAction(actx, rec, Lease{Holder: s.replica, Until: now.Add(s.lease)}); err != nil {
		s.obs.AuditFailed(AuditStarted)
		s.log.Error("audit write failed: the action did not run", "err", err, "record", fmt.Sprintf("%+v", rec))
		return nil, &Error{Code: EFAILED, Err: err, Message: fmt.Sprintf(
			"nothing ran: the audit log could not record that %q is starting (%s), and opsbot changes nothing it cannot audit. Try again once the store is back; the bot's log has the details (ref %s)",
			key, storeTrouble(err), req.ID)}
	}
	return &flight{stop: s.renewing(func(now time.Time) error {
		return s.store.RenewAction(context.WithoutCancel(ctx), req.ID, Lease{Holder: s.replica, Until: now.Add(s.lease)})
	}, "action", req.ID)}, nil
}

// startApproved records, durably, that an approved action is starting.
// Its approval's lease already marks it in flight: if this replica dies,
// the sweep that finds the lease lapsed records it abandoned (outcome
// unknown) and announces it.
func (s *ApprovalService) startApproved(ctx context.Context, req Request, a Approval) error {
	rec := AuditRecord{
		Time: s.now().UTC(), Kind: AuditStarted, RequestID: req.ID,
		Platform: req.Platform, User: req.User, UserName: req.UserName, Channel: req.Channel,
		Line: req.Line, Command: a.Command, Hosts: a.Hosts, ApprovalID: a.ID, Result: "running", Message: "started on replica " + s.replica,
		Person: s.perms.Person(WhoOf(req)),
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := s.store.AppendAudit(actx, rec); err != nil {
		s.obs.AuditFailed(AuditStarted)
		s.log.Error("audit write failed: the approved action did not run", "err", err, "record", fmt.Sprintf("%+v", rec))
		return &Error{Code: EFAILED, Err: err, Message: fmt.Sprintf(
			"nothing ran: the audit log could not record that the approved %q is starting (%s), and opsbot changes nothing it cannot audit. Request it again once the store is back (ref %s)",
			a.Command, storeTrouble(err), req.ID)}
	}
	return nil
}

// renewing calls renew every third of the lease until the returned stop,
// which reports whether renew said the claim was lost (ECONFLICT).
func (s *ApprovalService) renewing(renew func(now time.Time) error, what, id string) (stop func() (lost bool)) {
	every := max(s.lease/3, time.Millisecond)
	done, quit := make(chan struct{}), make(chan struct{})
	var gone atomic.Bool
	go func() {
		defer close(done)
		t := s.clock.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C():
			}
			err := renew(s.now())
			switch {
			case err == nil:
			case ErrorCode(err) == ECONFLICT:
				s.log.Error("lost the lease of a running "+what+": another replica declared it interrupted; it goes on and its outcome will be audited", what, id, "replica", s.replica, "err", err)
				gone.Store(true)
				return
			default:
				s.log.Warn("renewing the lease of a running "+what, what, id, "replica", s.replica, "err", err)
			}
		}
	}()
	return func() bool {
		close(quit)
		<-done
		return gone.Load()
	}
}

// storeTrouble says in a few user-safe words why the store refused a
// write; the full error goes to the log.
func storeTrouble(err error) string {
	msg := strings.ToLower(err.Error())
	switch {
	case errors.Is(err, syscall.ENOSPC) || strings.Contains(msg, "disk is full") || strings.Contains(msg, "no space left"):
		return "its disk is full"
	case errors.Is(err, syscall.EROFS) || strings.Contains(msg, "readonly") || strings.Contains(msg, "read-only") || strings.Contains(msg, "read only"):
		return "the database is read-only"
	case errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(msg, "connect") || strings.Contains(msg, "closed") || strings.Contains(msg, "shutting down") || strings.Contains(msg, "terminat"):
		return "the database is unreachable"
	case errors.Is(err, context.DeadlineExceeded):
		return "the database did not answer in time"
	}
	return "the database refused the write"
}

// SweepInterrupted records as interrupted, and announces, the actions
// started by a process that died before their outcome (see
// SweepPlatforms). ExpireApprovals does it too; a process that does not
// sweep on a ticker (opsbot run) calls this as it starts.
func (s *ApprovalService) SweepInterrupted(ctx context.Context) {
	if s.store != nil {
		s.interruptLapsed(ctx)
	}
}

// interruptLapsed records as interrupted the started actions whose
// replica stopped renewing their lease, and announces each in its channel.
func (s *ApprovalService) interruptLapsed(ctx context.Context) {
	recs, err := s.store.InterruptLapsed(ctx, s.now(), s.sweepPlatforms)
	if err != nil {
		s.log.Error("recording interrupted actions", "err", err)
		return
	}
	for _, rec := range recs {
		s.log.Warn("action interrupted: its replica stopped between start and outcome", "req", rec.RequestID,
			"line", rec.Line, "user", rec.Platform+":"+rec.User, "channel", rec.Channel, "by", s.replica)
		s.obs.Approval(AuditInterrupted)
		a := Approval{ID: rec.ApprovalID, Line: rec.Line, Platform: rec.Platform, User: rec.User, UserName: rec.UserName,
			Channel: rec.Channel, RequestID: rec.RequestID, Hosts: rec.Hosts}
		s.notify(ctx, a, interruptedReply(rec))
	}
}

// interruptedReply tells the channel that an action started and nobody
// knows how it ended.
func interruptedReply(rec AuditRecord) Reply {
	fields := []Field{{Name: "requested by", Value: rec.Platform + ":" + rec.User}}
	if len(rec.Hosts) > 0 {
		fields = append(fields, Field{Name: "hosts", Value: strings.Join(rec.Hosts, ", ")})
	}
	return Reply{
		Status: StatusFailed,
		Title:  "Interrupted: " + rec.Line,
		Fields: fields,
		Text:   strings.TrimPrefix(rec.Message, "interrupted: ") + ". It will not be run again by itself: ask again once you know its state.",
	}
}
