package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// readyInterval is how often serve checks readiness on its own, so that a
// platform that stops answering is logged (and in opsbot_ready) even when
// nothing probes /readyz.
const readyInterval = 30 * time.Second

// readiness checks the store and every chat adapter, says why one is not
// ready, and logs each change (not ready, ready again) once.
type readiness struct {
	store    interface{ Ping(context.Context) error }
	adapters []chatAdapter
	names    []string
	log      *slog.Logger
	set      func(component string, ok bool) // opsbot_ready
	policy   func() string                   // why the last policy reload failed, or ""

	mu   sync.Mutex
	last map[string]string // component -> cause ("" = ready), as last logged
}

// readyReport is one check: a cause per component, "" when it is ready.
type readyReport struct {
	components []string // "store", then the platforms, in order
	causes     map[string]string
	policy     string
}

// ready is whether this process should take traffic: the store answers
// and at least one chat platform is ready. One platform's outage does not
// take the others down with it (a Mattermost server that is unreachable
// must not stop Slack's commands from reaching this replica).
func (r readyReport) ready() bool {
	if r.causes["store"] != "" {
		return false
	}
	for _, c := range r.components[1:] {
		if r.causes[c] == "" {
			return true
		}
	}
	return len(r.components) == 1
}

// all is whether every component is ready.
func (r readyReport) all() bool {
	for _, c := range r.components {
		if r.causes[c] != "" {
			return false
		}
	}
	return true
}

// body is /readyz's answer: the verdict, then one line per component.
func (r readyReport) body() string {
	var b strings.Builder
	switch {
	case r.all():
		b.WriteString("ready\n")
	case r.ready():
		b.WriteString("ready, but not every chat platform is\n")
	default:
		b.WriteString("not ready\n")
	}
	for _, c := range r.components {
		if cause := r.causes[c]; cause != "" {
			fmt.Fprintf(&b, "%s: not ready: %s\n", c, cause)
		} else {
			fmt.Fprintf(&b, "%s: ok\n", c)
		}
	}
	if r.policy != "" {
		fmt.Fprintf(&b, "policy: %s\n", r.policy)
	}
	return b.String()
}

// check asks every component, within ctx, and logs what changed.
func (rd *readiness) check(ctx context.Context) readyReport {
	rep := readyReport{components: append([]string{"store"}, rd.names...), causes: map[string]string{}}
	if err := rd.store.Ping(ctx); err != nil {
		rep.causes["store"] = "the store does not answer: " + err.Error()
	}
	for i, a := range rd.adapters {
		if err := a.Ready(ctx); err != nil {
			rep.causes[rd.names[i]] = err.Error()
		}
	}
	if rd.policy != nil {
		rep.policy = rd.policy()
	}
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.last == nil {
		rd.last = map[string]string{}
	}
	for _, c := range rep.components {
		cause := rep.causes[c]
		if rd.set != nil {
			rd.set(c, cause == "")
		}
		prev, seen := rd.last[c]
		switch {
		case seen && prev == cause:
		case cause != "":
			rd.log.Warn("not ready", "component", c, "cause", cause)
		case seen:
			rd.log.Info("ready again", "component", c)
		}
		rd.last[c] = cause
	}
	return rep
}

// serveHTTP is GET /readyz: 200 when ready, 503 when not, and the causes
// in the body either way. ?all answers 503 unless every component is
// ready (for a check that one platform is down, not for load balancers).
func (rd *readiness) serveHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	rep := rd.check(ctx)
	ok := rep.ready()
	if _, strict := r.URL.Query()["all"]; strict {
		ok = rep.all()
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_, _ = io.WriteString(w, rep.body())
}

// watch checks readiness at start (Slack's auth.test, Mattermost's
// users/me: a wrong token is logged now, not at the first command) and
// every readyInterval until ctx ends.
func (rd *readiness) watch(ctx context.Context) {
	t := time.NewTicker(readyInterval)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		rd.check(cctx)
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
