package bot

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"
)

// Policy is the YAML policy file (DESIGN.md §4): where checks may reach,
// limits, and (for the permission, approval and inventory layers) roles,
// users, approvals, hosts and groups. It is decoded strictly: an unknown
// key is an error that names its line.
type Policy struct {
	Targets TargetRules         `yaml:"targets"`
	Limits  Limits              `yaml:"limits"`
	Roles   map[string]Role     `yaml:"roles"`
	Users   map[string][]string `yaml:"users"`
	// People maps a person to their identities on each platform
	// ("slack:U024BE7LH", "mattermost:carol", "shell:carol"): self-approval
	// and the count of approvers compare people, not accounts.
	People   map[string][]string `yaml:"people"`
	Approval ApprovalPolicy      `yaml:"approval"`
	Hosts    map[string]HostSpec `yaml:"hosts"`
	Groups   map[string][]string `yaml:"groups"`
	// Audit is retention: how long records stay, where they go after.
	Audit AuditPolicy `yaml:"audit"`
	// TLS is what /tls verifies against and when it warns.
	TLS TLSPolicy `yaml:"tls"`

	// Source is the file the policy came from, "" for the built-in default.
	Source string `yaml:"-"`
}

// TargetRules say which addresses /portcheck and /scan may reach. Entries
// are CIDRs, single addresses, or DNS names where a leading "*." matches
// any subdomain.
type TargetRules struct {
	Allow []string `yaml:"allow"`
	Deny  []string `yaml:"deny"`
}

// Limits bound what one request may do.
type Limits struct {
	ScanPorts       int      `yaml:"scan_ports"`        // most ports one /scan may probe
	ScanConcurrency int      `yaml:"scan_concurrency"`  // most probes in flight per scan
	ScanRate        int      `yaml:"scan_rate"`         // most new probes per second per scan; 0 = no limit
	PortcheckPorts  int      `yaml:"portcheck_ports"`   // most ports one /portcheck may name
	ListenFor       Duration `yaml:"listen_for"`        // longest /listen
	UserPerMinute   int      `yaml:"user_per_minute"`   // commands per user per minute
	TargetPerMinute int      `yaml:"target_per_minute"` // checks of one address per minute, all users together
	RollBatch       int      `yaml:"roll_batch"`        // hosts of a group changed at once after the canary
	JobsPerUser     int      `yaml:"jobs_per_user"`     // commands one user may have running at once
	JobsTotal       int      `yaml:"jobs_total"`        // commands running at once, all users together
	// AddressesPerRequest bounds the addresses one /scan or /portcheck of
	// a subnet or an inventory group may probe.
	AddressesPerRequest int `yaml:"addresses_per_request"`
}

// TLSPolicy is /tls's settings.
type TLSPolicy struct {
	// CABundle is a PEM file of the roots /tls trusts instead of the
	// system's (a private CA); "" = the system roots.
	CABundle string `yaml:"ca_bundle"`
	// ExpiryWarnDays: a certificate with fewer days left is called out.
	ExpiryWarnDays int `yaml:"expiry_warn_days"`
}

// Roots reads the CA bundle; nil (the system roots) when none is named.
func (t TLSPolicy) Roots() (*x509.CertPool, error) {
	if t.CABundle == "" {
		return nil, nil
	}
	data, err := os.ReadFile(t.CABundle) //nolint:gosec // the operator names the bundle
	if err != nil {
		return nil, fmt.Errorf("tls.ca_bundle: cannot read %s: %w", t.CABundle, errors.Unwrap(err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("tls.ca_bundle: %s holds no PEM certificate: accepted is a file of -----BEGIN CERTIFICATE----- blocks", t.CABundle)
	}
	return pool, nil
}

// Role grants commands ("scan", "apache reload", "*") and approvals.
type Role struct {
	Commands []string `yaml:"commands"`
	Approve  []string `yaml:"approve"`
	Channels []string `yaml:"channels"`
	// Hosts limits the role's commands to these inventory hosts: host
	// names, group names, "tag:NAME", or "*". Empty means every host.
	Hosts []string `yaml:"hosts"`
}

// ApprovalPolicy names the actions that need a second person.
type ApprovalPolicy struct {
	Required    []string `yaml:"required"`
	TTL         Duration `yaml:"ttl"`
	Approvals   int      `yaml:"approvals"`
	SelfApprove bool     `yaml:"self_approve"`
}

// HostSpec is one inventory host: the fields every host has, and the
// settings blocks of the commands that act on it (apache:, relayd:),
// which those commands decode and validate (HostBlock).
type HostSpec struct {
	HostFields
	// Settings are the commands' blocks, by key, as the file has them.
	Settings map[string]HostSettings `yaml:"-"`
	values   map[string]any          // what each command made of its block
}

// HostFields are what every inventory host has.
type HostFields struct {
	Address string   `yaml:"address"`
	Via     string   `yaml:"via"`
	User    string   `yaml:"user"`
	Port    int      `yaml:"port"`
	Become  string   `yaml:"become"`
	Tags    []string `yaml:"tags"`
	Timeout Duration `yaml:"timeout"`
}

// Default limits, used for every key the file leaves out.
const (
	DefaultScanPorts       = 65535
	DefaultScanConcurrency = 1024
	DefaultPortcheckPorts  = 100
	DefaultListenFor       = 10 * time.Minute
	DefaultUserPerMinute   = 60
	DefaultTargetPerMinute = 120
	DefaultApprovalTTL     = 15 * time.Minute
	DefaultRollBatch       = 1
	DefaultJobsPerUser     = 4
	DefaultJobsTotal       = 32
	// DefaultAddressesPerRequest: a /24, or a group of that many hosts.
	DefaultAddressesPerRequest = 256
	// DefaultTLSExpiryWarnDays: /tls calls out a certificate with fewer
	// days left.
	DefaultTLSExpiryWarnDays = 14
)

// DefaultApprovalRequired are the actions that wait for a second person
// when the policy file does not set approval.required (DESIGN.md §1: a
// hard restart, and every relayd change). `required: []` turns them off.
var DefaultApprovalRequired = []string{"apache restart", "relayd reload", "relayd restart", "relayd host", "relayd table", "relayd redirect"}

// DefaultAllow is where checks may reach with no policy file: loopback,
// RFC 1918 and IPv6 unique-local addresses.
var DefaultAllow = []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"}

// DefaultPolicy is the policy with no file (DESIGN.md §4).
func DefaultPolicy() *Policy {
	p := &Policy{}
	p.defaults()
	return p
}

// LoadPolicy reads and validates a policy file; blocks are the settings
// the commands that act on hosts accept in a host's entry.
func LoadPolicy(path string, blocks ...HostBlock) (*Policy, error) {
	data, err := os.ReadFile(path) //nolint:gosec // the operator names the policy file
	if err != nil {
		return nil, &Error{Code: ECONFIG, Message: fmt.Sprintf("cannot read policy file %s: %v", path, errors.Unwrap(err)), Err: err}
	}
	p, err := ParsePolicy(data, blocks...)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			sep := ": "
			if e.Message != "" && e.Message[0] >= '0' && e.Message[0] <= '9' {
				sep = ":" // "FILE:6:3: unknown field", as compilers print it
			}
			e.Message = path + sep + e.Message
		}
		return nil, err
	}
	p.Source = path
	return p, nil
}

// ParsePolicy decodes and validates policy YAML. Errors name the line. A
// host's entry may hold a settings block for each of blocks, decoded and
// validated by its command; any other key is unknown.
func ParsePolicy(data []byte, blocks ...HostBlock) (*Policy, error) {
	var p Policy
	p.defaults()
	if err := yaml.UnmarshalWithOptions(data, &p, yaml.Strict(), yaml.DisallowUnknownField()); err != nil {
		return nil, &Error{Code: ECONFIG, Message: yamlMessage(err), Err: err}
	}
	if problems := append(p.decodeSettings(blocks), p.validate()...); len(problems) > 0 {
		msgs := make([]string, len(problems))
		for i, pr := range problems {
			msgs[i] = pr.at(data)
		}
		sort.Strings(msgs)
		return nil, &Error{Code: ECONFIG, Message: strings.Join(msgs, "\n")}
	}
	return &p, nil
}

func yamlUnmarshal(b []byte, v any) error { return yaml.Unmarshal(b, v) }

// Duration is a time.Duration written as "30s", "10m", "1h". A value that
// does not parse is kept and reported by validation, which knows its line.
type Duration struct {
	D   time.Duration
	bad string
}

// UnmarshalYAML implements yaml.BytesUnmarshaler.
func (d *Duration) UnmarshalYAML(b []byte) error {
	var s string
	if err := yaml.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		d.bad = s
		return nil
	}
	d.D = v
	return nil
}

// problem is one validation failure with the YAML path of the value, so the
// message can name its line.
type problem struct {
	path, msg string
}

func (p problem) at(data []byte) string {
	if line := lineOf(data, p.path); line != "" {
		return line + ": " + p.msg
	}
	return p.msg
}

// lineOf finds "line:column" of the value at a YAML path like
// "$.limits.scan_ports", or "" when the file does not have it.
func lineOf(data []byte, path string) string {
	if path == "" {
		return ""
	}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return ""
	}
	pp, err := yaml.PathString(path)
	if err != nil {
		return ""
	}
	n, err := pp.FilterFile(f)
	if err != nil || n == nil || n.GetToken() == nil {
		return ""
	}
	pos := n.GetToken().Position
	return fmt.Sprintf("%d:%d", pos.Line, pos.Column)
}

// yamlMessage keeps goccy/go-yaml's "[line:col] message" and its source
// excerpt, which is what a person fixing the file needs, and drops the Go
// type names.
func yamlMessage(err error) string {
	msg := yaml.FormatError(err, false, true)
	msg = strings.Replace(msg, "Go struct field ", "field ", 1)
	// "[6:3] unknown field" -> "6:3: unknown field"
	if strings.HasPrefix(msg, "[") {
		if i := strings.Index(msg, "] "); i > 0 {
			msg = msg[1:i] + ": " + msg[i+2:]
		}
	}
	return strings.TrimRight(msg, "\n")
}

// defaults fills every key a file may leave out. ParsePolicy decodes over
// it, so an absent key keeps its default while an explicit 0 stays 0 and
// fails validation instead of silently becoming the default.
func (p *Policy) defaults() {
	p.Targets.Allow = append([]string(nil), DefaultAllow...)
	p.Limits = Limits{
		ScanPorts:       DefaultScanPorts,
		ScanConcurrency: DefaultScanConcurrency,
		PortcheckPorts:  DefaultPortcheckPorts,
		ListenFor:       Duration{D: DefaultListenFor},
		UserPerMinute:   DefaultUserPerMinute,
		TargetPerMinute: DefaultTargetPerMinute,
		RollBatch:       DefaultRollBatch,
		JobsPerUser:     DefaultJobsPerUser,
		JobsTotal:       DefaultJobsTotal,

		AddressesPerRequest: DefaultAddressesPerRequest,
	}
	p.TLS = TLSPolicy{ExpiryWarnDays: DefaultTLSExpiryWarnDays}
	p.Approval = ApprovalPolicy{TTL: Duration{D: DefaultApprovalTTL}, Approvals: 1,
		Required: append([]string(nil), DefaultApprovalRequired...)}
}

func (p *Policy) validate() []problem {
	var problems []problem
	bad := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		problems = append(problems, problem{path: pathOf(msg), msg: msg})
	}

	if _, err := compileRules(p.Targets); err != nil {
		bad("%s", ErrorMessage(err))
	}
	l := p.Limits
	if l.ScanPorts < 1 || l.ScanPorts > 65535 {
		bad("limits.scan_ports is %d: accepted 1 to 65535", l.ScanPorts)
	}
	if l.ScanConcurrency < 1 || l.ScanConcurrency > 10000 {
		bad("limits.scan_concurrency is %d: accepted 1 to 10000", l.ScanConcurrency)
	}
	if l.ScanRate < 0 {
		bad("limits.scan_rate is %d: accepted 0 (no limit) or more probes per second", l.ScanRate)
	}
	if l.PortcheckPorts < 1 || l.PortcheckPorts > 1000 {
		bad("limits.portcheck_ports is %d: accepted 1 to 1000", l.PortcheckPorts)
	}
	if l.ListenFor.bad != "" {
		bad("limits.listen_for is %q: write a duration such as 30s, 10m or 1h", l.ListenFor.bad)
	} else if l.ListenFor.D < time.Second || l.ListenFor.D > 24*time.Hour {
		bad("limits.listen_for is %s: accepted 1s to 24h", l.ListenFor.D)
	}
	if p.Approval.TTL.bad != "" {
		bad("approval.ttl is %q: write a duration such as 15m", p.Approval.TTL.bad)
	} else if p.Approval.TTL.D < time.Second || p.Approval.TTL.D > 7*24*time.Hour {
		bad("approval.ttl is %s: accepted 1s to 168h", p.Approval.TTL.D)
	}
	if l.UserPerMinute < 1 || l.UserPerMinute > 100000 {
		bad("limits.user_per_minute is %d: accepted 1 to 100000", l.UserPerMinute)
	}
	if l.TargetPerMinute < 1 || l.TargetPerMinute > 100000 {
		bad("limits.target_per_minute is %d: accepted 1 to 100000", l.TargetPerMinute)
	}
	for user, roles := range p.Users {
		if !strings.Contains(user, ":") {
			bad("users: %q must be platform:user (shell:alice, slack:U024BE7LH, mattermost:carol)", user)
		} else if msg := slackIdentity("users", user); msg != "" {
			bad("%s", msg)
		}
		for _, r := range roles {
			if _, ok := p.Roles[r]; !ok {
				bad("users: %q has role %q, which roles does not define", user, r)
			}
		}
	}
	owner := map[string]string{}
	for _, person := range sortedKeys(p.People) {
		if person == "" || strings.ContainsAny(person, ": \t") {
			bad("people: %q is not a person's name (no spaces or colons: carol, not slack:carol)", person)
		}
		for _, id := range p.People[person] {
			if !strings.Contains(id, ":") {
				bad("people: %q has %q, which must be platform:user (slack:U024BE7LH, mattermost:carol, shell:carol)", person, id)
			} else if msg := slackIdentity("people", id); msg != "" {
				bad("%s", msg)
			}
			if prev, ok := owner[id]; ok && prev != person {
				bad("people: %q is listed for both %q and %q: an identity belongs to one person", id, prev, person)
			}
			owner[id] = person
		}
	}
	if l.JobsPerUser < 1 || l.JobsPerUser > 1000 {
		bad("limits.jobs_per_user is %d: accepted 1 to 1000", l.JobsPerUser)
	}
	if l.AddressesPerRequest < 1 || l.AddressesPerRequest > 65536 {
		bad("limits.addresses_per_request is %d: accepted 1 to 65536", l.AddressesPerRequest)
	}
	if l.JobsTotal < 1 || l.JobsTotal > 10000 {
		bad("limits.jobs_total is %d: accepted 1 to 10000", l.JobsTotal)
	} else if l.JobsPerUser > l.JobsTotal {
		bad("limits.jobs_per_user is %d, more than limits.jobs_total (%d): accepted at most jobs_total", l.JobsPerUser, l.JobsTotal)
	}
	if l.RollBatch < 1 || l.RollBatch > 1000 {
		bad("limits.roll_batch is %d: accepted 1 to 1000", l.RollBatch)
	}
	p.validateInventory(bad)
	if p.TLS.ExpiryWarnDays < 0 || p.TLS.ExpiryWarnDays > 3650 {
		bad("tls.expiry_warn_days is %d: accepted 0 to 3650", p.TLS.ExpiryWarnDays)
	}
	if _, err := p.TLS.Roots(); err != nil {
		bad("%s", err.Error())
	}
	for _, msg := range p.Audit.problems() {
		bad("%s", msg)
	}
	if p.Approval.Approvals < 1 {
		bad("approval.approvals must be at least 1")
	}
	return problems
}

// slackIdentity refuses a Slack identity that is not a user ID: Slack's
// usernames are deprecated and not unique (two people may hold one, and
// a user may change theirs), so a grant by name could reach anyone. It
// returns "" for a user ID (U024BE7LH, or W... on Enterprise Grid) and for
// other platforms.
func slackIdentity(key, id string) string {
	name, ok := strings.CutPrefix(id, "slack:")
	if !ok || slackUserID(name) {
		return ""
	}
	return fmt.Sprintf("%s: %q is not a Slack user ID: Slack grants by user ID only (slack:U024BE7LH; in Slack, a profile's \"Copy member ID\"), because Slack usernames are deprecated and not unique", key, id)
}

// slackUserID reports whether s reads as a Slack user ID: U or W, then
// upper-case letters and digits.
func slackUserID(s string) bool {
	if len(s) < 2 || len(s) > 32 || s[0] != 'U' && s[0] != 'W' {
		return false
	}
	for _, c := range s {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// pathOf takes the YAML path from the start of a validation message
// ("limits.scan_ports is ..." -> "$.limits.scan_ports").
func pathOf(msg string) string {
	key, _, _ := strings.Cut(msg, " ")
	key = strings.TrimSuffix(key, ":")
	if !strings.Contains(key, ".") && key != "users" && key != "groups" && key != "hosts" && key != "people" {
		return ""
	}
	return "$." + key
}

func sortedKeys(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
