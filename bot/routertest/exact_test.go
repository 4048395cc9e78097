package routertest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opsbot/opsbot/adapters/local"
	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/commands"
)

// Exact execution: an approved /portcheck, /scan or "from HOST" check runs
// against the addresses the approval bound, never resolving the name again,
// however the DNS answer changed between the request and the approval.

// flipResolver answers one address until flipped, then another, as a
// round-robin or TTL-0 record does; it counts the lookups.
type flipResolver struct {
	mu      sync.Mutex
	addr    netip.Addr
	lookups int
}

func (f *flipResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	return []netip.Addr{f.addr}, nil
}

func (f *flipResolver) set(a string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addr = netip.MustParseAddr(a)
}

func (f *flipResolver) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lookups
}

// countListen accepts and counts TCP connections on addr:port.
func countListen(t *testing.T, addr string, port int) *atomic.Int64 {
	t.Helper()
	ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", addr, port))
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return &n
}

// twoListeners listens on one port at 127.0.0.1 (what the approval binds)
// and 127.0.0.2 (where the name points by the time it is approved).
func twoListeners(t *testing.T) (port int, bound, moved *atomic.Int64) {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		other, err := net.Listen("tcp", fmt.Sprintf("127.0.0.2:%d", port))
		if err != nil {
			continue
		}
		other.Close()
		return port, countListen(t, "127.0.0.1", port), countListen(t, "127.0.0.2", port)
	}
	t.Fatal("no port free on both 127.0.0.1 and 127.0.0.2")
	return 0, nil, nil
}

const exactPolicy = `
targets:
  allow: [127.0.0.0/8]
roles:
  dev:      {commands: [portcheck, scan]}
  approver: {approve: [portcheck, scan]}
users:
  "chat:alice": [dev]
  "chat:carol": [approver]
approval:
  required: [portcheck, scan]
hosts:
  here: {via: local}
`

func exactRouter(t *testing.T) (*bot.Router, *flipResolver) {
	t.Helper()
	p, err := bot.ParsePolicy([]byte(exactPolicy))
	require.NoError(t, err)
	res := &flipResolver{}
	res.set("127.0.0.1")
	targets, err := bot.NewTargets(p.Targets, res, nil)
	require.NoError(t, err)
	perms := bot.NewPermissions(p)
	v := commands.Vantages{Hosts: bot.HostAccess{Inventory: bot.NewInventory(p), Perms: perms}, Runner: bot.Runners{"local": &local.Runner{}}}
	r := bot.NewRouter(bot.RouterConfig{
		Commands: []bot.Command{commands.NewPortcheck(targets, p.Limits.PortcheckPorts).WithVantages(v), commands.NewScan(targets, p.Limits).WithVantages(v)},
		Perms:    perms, Approval: p.Approval, Store: openStore(t),
	})
	r.Add(opsbotLike{r})
	return r, res
}

func TestExact_ApprovedRunUsesTheBoundAddressNotANewLookup(t *testing.T) {
	for _, line := range []string{
		"/portcheck svc.example.com %d timeout 2s",
		"/scan svc.example.com %d timeout 2s",
		"/portcheck svc.example.com %d timeout 2s from here",
		"/scan svc.example.com %d timeout 2s from here",
	} {
		t.Run(strings.TrimPrefix(strings.Fields(line)[0], "/")+map[bool]string{true: "_from", false: ""}[strings.Contains(line, "from")], func(t *testing.T) {
			r, res := exactRouter(t)
			port, bound, moved := twoListeners(t)
			prompt := ask(t, r, "alice", fmt.Sprintf(line, port))
			id := pendingID(t, prompt)
			assert.Contains(t, prompt.Fields, bot.Field{Name: "bound to", Value: boundTo(line)}, "bound to the address of the request")
			require.Equal(t, 1, res.count())

			res.set("127.0.0.2") // the name now points elsewhere
			out := ask(t, r, "carol", "/opsbot approve "+id)
			assert.Equal(t, bot.StatusOK, out.Status, "%s\n%s\n%s", out.Title, strings.Join(out.Lines, "\n"), out.Text)
			assert.Contains(t, out.Title+strings.Join(out.Lines, "\n")+fmt.Sprint(out.Table), "127.0.0.1")
			// The listener counts an accept after the probe has its answer.
			assert.Eventually(t, func() bool { return bound.Load() > 0 }, 10*time.Second, 5*time.Millisecond, "the bound address was probed")
			assert.Zero(t, moved.Load(), "the address the name points to now was not")
			assert.Equal(t, 1, res.count(), "the name was not resolved again")
		})
	}
}

// An approved sweep of a subnet runs on the address list the approval
// bound: the prompt shows it, and the run probes each of those addresses.
func TestExact_ApprovedSubnetRunsTheBoundList(t *testing.T) {
	r, res := exactRouter(t)
	port, _, _ := twoListeners(t)
	prompt := ask(t, r, "alice", fmt.Sprintf("/scan 127.0.0.0/30 %d timeout 2s", port))
	id := pendingID(t, prompt)
	assert.Contains(t, prompt.Fields, bot.Field{Name: "bound to", Value: "127.0.0.1, 127.0.0.2"})
	out := ask(t, r, "carol", "/opsbot approve "+id)
	assert.Equal(t, bot.StatusOK, out.Status, "%s\n%s", out.Title, out.Text)
	assert.Contains(t, out.Title, "127.0.0.0/30 tcp")
	// Both bound addresses were probed: both listen, and both read open
	// (the listeners count their accepts too late to be asked).
	require.NotNil(t, out.Table, out.Title)
	assert.Equal(t, [][]string{{fmt.Sprintf("%d open", port), "2", "127.0.0.1-127.0.0.2"}}, out.Table.Rows)
	assert.Zero(t, res.count(), "a subnet is never looked up")
}

func boundTo(line string) string {
	if strings.Contains(line, "from here") {
		return "127.0.0.1, here"
	}
	return "127.0.0.1"
}

func TestExact_BoundAddressThePolicyNoLongerAllowsIsRefused(t *testing.T) {
	p, err := bot.ParsePolicy([]byte("targets:\n  allow: [127.0.0.1]\n"))
	require.NoError(t, err)
	targets, err := bot.NewTargets(p.Targets, &flipResolver{}, nil)
	require.NoError(t, err)
	_, err = targets.Bound(context.Background(), "svc.example.com", []string{"127.0.0.2"})
	require.Error(t, err)
	assert.Equal(t, bot.EDENIED, bot.ErrorCode(err))
	assert.Contains(t, bot.ErrorMessage(err), "the approved address 127.0.0.2 may no longer be checked: 127.0.0.2 is not in targets.allow")
	_, err = targets.Bound(context.Background(), "svc.example.com", []string{"svc.example.com"})
	assert.Equal(t, bot.EFAILED, bot.ErrorCode(err), "a bound name is not an address: never resolved")
	tg, err := targets.Bound(context.Background(), "svc.example.com", []string{"127.0.0.1"})
	require.NoError(t, err)
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("127.0.0.1")}, tg.Addrs)
	assert.Equal(t, "svc.example.com", tg.Name)
}
