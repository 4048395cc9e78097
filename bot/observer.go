package bot

import (
	"context"
	"time"
)

// Observer is told what the bot does, for metrics. The Router calls it for
// every request and approval outcome; commands find it in their context
// (ObserverFrom) for what only they know, such as ports probed. Adapters
// count their own errors. Implementations must be safe for concurrent use
// and must not block.
type Observer interface {
	// Request is one finished request: its permission key ("scan",
	// "apache reload"), how it ended, and how long it took.
	Request(key string, status Status, took time.Duration)
	// Approval is one step of an approval's life: "requested", "approved",
	// "denied", "expired", "done", "failed", "abandoned".
	Approval(outcome string)
	// RateLimited is one request refused by a rate limit.
	RateLimited()
	// ScanPorts is one finished scan: ports probed and the time it took.
	ScanPorts(ports int, took time.Duration)
	// AdapterError is one failure of a chat adapter to deliver or receive.
	AdapterError(adapter string)
	// AuditFailed is one audit record of this kind (AuditRequest,
	// AuditStarted, ...) the store refused to write.
	AuditFailed(kind string)
}

// NopObserver observes nothing.
type NopObserver struct{}

var _ Observer = NopObserver{}

// Request implements Observer.
func (NopObserver) Request(string, Status, time.Duration) {}

// Approval implements Observer.
func (NopObserver) Approval(string) {}

// RateLimited implements Observer.
func (NopObserver) RateLimited() {}

// ScanPorts implements Observer.
func (NopObserver) ScanPorts(int, time.Duration) {}

// AdapterError implements Observer.
func (NopObserver) AdapterError(string) {}

// AuditFailed implements Observer.
func (NopObserver) AuditFailed(string) {}

type observerKey struct{}

// WithObserver puts o in ctx for the commands the Router runs.
func WithObserver(ctx context.Context, o Observer) context.Context {
	return context.WithValue(ctx, observerKey{}, o)
}

// ObserverFrom returns the Observer in ctx, or a NopObserver.
func ObserverFrom(ctx context.Context) Observer {
	if o, ok := ctx.Value(observerKey{}).(Observer); ok && o != nil {
		return o
	}
	return NopObserver{}
}

// BusyObserver is implemented by observers that count work refused
// because the bot was busy (the metrics adapter does).
type BusyObserver interface {
	Busy(what string)
}

// ObserveBusy tells the Observer in ctx, if it counts such things, that
// work was refused because the bot was busy: what names it ("scan").
func ObserveBusy(ctx context.Context, what string) {
	if b, ok := ObserverFrom(ctx).(BusyObserver); ok {
		b.Busy(what)
	}
}
