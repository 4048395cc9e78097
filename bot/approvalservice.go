package bot

import (
	"context"
	"log/slog"
	"time"
)

// ApprovalService is the approvals of one process: it stores a request
// bound to its action, decides on it (people, roles, hosts), runs the
// approved action exactly as bound, holds and renews the leases of what
// runs, expires what nobody decided, records as interrupted or abandoned
// what a dead process left running, and tells the requester's channel how
// each ended. Its clock and tickers are injected. The Router parses,
// checks permissions and rate limits, audits and dispatches; it hands the
// service the requests that need a second person and the actions that
// change something, and the service asks the Router back for a command
// (to run an approved one) and to audit.
type ApprovalService struct {
	store    Store
	perms    *Permissions
	approval ApprovalPolicy
	notifier Notifier
	log      *slog.Logger
	obs      Observer
	clock    Clock
	now      func() time.Time // clock.Now
	// replica names this process in the leases of the actions it runs;
	// lease is how long such a claim holds unless renewed.
	replica string
	lease   time.Duration
	// sweepPlatforms limits the interrupted actions this process records
	// and announces to those asked from these platforms (nil: all).
	sweepPlatforms []string

	command func(name string) (Command, bool) // the Router's commands
	audit   func(ctx context.Context, req Request, info auditInfo, reply Reply, took time.Duration)
}

func newApprovalService(r *Router, cfg RouterConfig) *ApprovalService {
	s := &ApprovalService{store: cfg.Store, perms: cfg.Perms, approval: cfg.Approval, notifier: cfg.Notifier,
		log: r.log, obs: r.obs, clock: r.clock, now: r.clock.Now, replica: NewReplicaID(), lease: DefaultLease,
		command: func(name string) (Command, bool) { c, ok := r.commands[name]; return c, ok },
		audit:   r.audit}
	if s.approval.Approvals < 1 {
		s.approval.Approvals = 1
	}
	if s.approval.TTL.D <= 0 {
		s.approval.TTL.D = DefaultApprovalTTL
	}
	return s
}

// The Router's part of the approvals API: each is the service's.

// SetLease is ApprovalService.SetLease.
func (r *Router) SetLease(replica string, d time.Duration) { r.approvals.SetLease(replica, d) }

// SweepPlatforms is ApprovalService.SweepPlatforms.
func (r *Router) SweepPlatforms(platforms []string) { r.approvals.SweepPlatforms(platforms) }

// Replica is ApprovalService.Replica.
func (r *Router) Replica() string { return r.approvals.Replica() }

// Decide is ApprovalService.Decide.
func (r *Router) Decide(ctx context.Context, req Request, id string, approve bool, reason string) (Reply, error) {
	return r.approvals.Decide(ctx, req, id, approve, reason)
}

// Approvals is ApprovalService.Approvals.
func (r *Router) Approvals(ctx context.Context, req Request, all bool) ([]Approval, error) {
	return r.approvals.Approvals(ctx, req, all)
}

// ExpireApprovals is ApprovalService.ExpireApprovals.
func (r *Router) ExpireApprovals(ctx context.Context) { r.approvals.ExpireApprovals(ctx) }

// SweepInterrupted is ApprovalService.SweepInterrupted.
func (r *Router) SweepInterrupted(ctx context.Context) { r.approvals.SweepInterrupted(ctx) }

// ApprovalService is the Router's approvals.
func (r *Router) ApprovalService() *ApprovalService { return r.approvals }
