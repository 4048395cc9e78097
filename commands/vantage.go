package commands

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands/probe"
	"github.com/opsbot/opsbot/commands/vantage"
)

// Checks from other hosts (/portcheck ... from VANTAGE, /scan ... from
// VANTAGE): the commands decide who may ask and what is checked, here;
// package vantage finds the tools on each vantage host, probes, and writes
// the answer.

// Vantages is what /portcheck and /scan need to check from inventory
// hosts. The zero value allows no "from".
type Vantages struct {
	Hosts  vantage.Hosts
	Runner bot.Runner
}

// vantagePlan is a vantage.Plan under the names the commands' Prepare
// methods use.
type vantagePlan struct {
	vantage.Plan
	addr netip.Addr
}

func (p vantagePlan) preparedHosts() []string { return p.PreparedHosts() }
func (p vantagePlan) hostList() string        { return p.HostList() }

// resolve decides the vantage hosts first (the asker must be allowed to
// run key on each), then the target, through the same policy and rate
// limits as a check from the bot itself: an unknown or forbidden vantage
// costs no DNS lookup and no rate-limit token. An approved run takes the
// address the approval bound (the first of req.Bound, see
// vantage.Plan.PreparedHosts) and resolves nothing again.
func (v Vantages) resolve(ctx context.Context, req bot.Request, key string, targets *bot.Targets, ta targetArgs) (vantagePlan, error) {
	if v.Hosts == nil {
		return vantagePlan{}, bot.Errorf(bot.ECONFIG, "checks from other hosts (from %s) are not set up here: the bot has no inventory", ta.vantage)
	}
	hosts, group, err := v.Hosts.Resolve(req, key, ta.vantage)
	if err != nil {
		return vantagePlan{}, err
	}
	tg, err := target(ctx, targets, ta, req.Bound, 1)
	if err != nil {
		return vantagePlan{}, err
	}
	p := vantage.Plan{Word: ta.vantage, Group: group, Hosts: hosts, Target: tg, Addr: tg.Addrs[0]}
	return vantagePlan{Plan: p, addr: p.Addr}, nil
}

// runFrom is /portcheck ... from VANTAGE: resolve, probe from every
// vantage host, and let package vantage write the answer.
func (c *Portcheck) runFrom(ctx context.Context, req bot.Request, ta targetArgs) (bot.Reply, error) {
	plan, err := c.vantages.resolve(ctx, req, c.Name(), c.targets, ta)
	if err != nil {
		return bot.Reply{}, err
	}
	now, _ := c.clock()
	job := vantage.Job{Addr: plan.Addr, Proto: ta.proto, Ports: ta.ports, Timeout: ta.timeout}
	eng := vantage.Engine{Runner: c.vantages.Runner, Check: c.check, Scan: probe.Scan, Now: now}
	start := now()
	rows := eng.Run(ctx, plan.Hosts, job, nil)
	return vantage.PortcheckReply(plan.Plan, job, rows, now().Sub(start), portLine), nil
}

// runFrom is /scan ... from VANTAGE: resolve, scan from every vantage
// host with the policy's limits, show progress as each host finishes,
// and let package vantage write the answer.
func (s *Scan) runFrom(ctx context.Context, req bot.Request, ta targetArgs) (bot.Reply, error) {
	plan, err := s.vantages.resolve(ctx, req, s.Name(), s.targets, ta)
	if err != nil {
		return bot.Reply{}, err
	}
	job := vantage.Job{Addr: plan.Addr, Proto: ta.proto, Ports: ta.ports, Timeout: ta.timeout, Scan: true,
		Concurrency: s.limits.ScanConcurrency, Rate: s.limits.ScanRate}
	eng := vantage.Engine{Runner: s.vantages.Runner, Check: probe.Check, Scan: s.scan, Now: s.now}
	title := fmt.Sprintf("%s %s %s from %s", plan.Name(), ta.proto, ta.spec, plan.Word)
	start := s.now()
	progress := func(done int) {
		req.Stream.Progress(bot.Reply{Status: bot.StatusRunning, Title: "Scanning " + title,
			Text: fmt.Sprintf("%d of %d vantage hosts done, %s", done, len(plan.Hosts), human(s.now().Sub(start)))})
	}
	progress(0)
	rows := eng.Run(ctx, plan.Hosts, job, progress)
	return vantage.ScanReply(plan.Plan, ta.spec, job, rows, s.now().Sub(start)), nil
}
