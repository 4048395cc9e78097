package slack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/slack-go/slack"

	"github.com/opsbot/opsbot/bot"
)

const (
	maxBody         = 64 << 10        // Slack's slash commands and clicks are a few KiB
	signatureWindow = 5 * time.Minute // Slack's replay window
)

// verified reads the body of a request from Slack and checks its signature
// before anything in it is parsed. On failure it answers 401 (413 for an
// oversized body), audits the rejection and returns false.
func (a *Adapter) verified(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, status, reason := a.verify(w, r)
	if status == 0 {
		return body, true
	}
	a.reject(r.Context(), r.URL.Path, r.RemoteAddr, reason)
	http.Error(w, http.StatusText(status), status)
	return nil, false
}

// verify returns the body, or the status to answer and why.
func (a *Adapter) verify(w http.ResponseWriter, r *http.Request) (body []byte, status int, reason string) {
	if a.secret == "" {
		return nil, http.StatusUnauthorized, "no signing secret is configured, so HTTP requests cannot be verified"
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", maxBody)
		}
		return nil, http.StatusBadRequest, "body unreadable"
	}
	ts := r.Header.Get("X-Slack-Request-Timestamp")
	if ts == "" || r.Header.Get("X-Slack-Signature") == "" {
		return nil, http.StatusUnauthorized, "missing X-Slack-Signature or X-Slack-Request-Timestamp"
	}
	// The library checks the window against the system clock; check it
	// against ours first, so the window holds for a faked clock too.
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return nil, http.StatusUnauthorized, "malformed X-Slack-Request-Timestamp"
	}
	if age := a.now().Sub(time.Unix(sec, 0)); age > signatureWindow || age < -signatureWindow {
		return nil, http.StatusUnauthorized, fmt.Sprintf("timestamp outside the 5-minute window (%s off)", age.Round(time.Second).Abs())
	}
	sv, err := slack.NewSecretsVerifier(r.Header, a.secret)
	if err != nil {
		return nil, http.StatusUnauthorized, "signature rejected: " + verifyReason(err)
	}
	if _, err := sv.Write(body); err != nil {
		return nil, http.StatusUnauthorized, "signature rejected: " + err.Error()
	}
	if err := sv.Ensure(); err != nil {
		return nil, http.StatusUnauthorized, "signature rejected: " + verifyReason(err)
	}
	return body, 0, ""
}

func verifyReason(err error) string {
	switch {
	case errors.Is(err, slack.ErrExpiredTimestamp):
		return "timestamp outside the 5-minute window"
	case errors.Is(err, slack.ErrInvalidSignature):
		return "signature does not match"
	case errors.Is(err, slack.ErrMissingHeaders):
		return "missing signature headers"
	}
	return "malformed signature"
}

// reject audits a request that failed verification. Nothing from the
// request but its path and peer address is recorded: the rest is unproven.
// A flood of forged requests is audited at a bounded rate, with a count of
// those left out.
func (a *Adapter) reject(ctx context.Context, path, remote, reason string) {
	a.log.Warn("slack request rejected", "path", path, "remote", remote, "reason", reason)
	if a.audit == nil {
		return
	}
	if !a.rejectLimit.Allow() {
		a.suppressed.Add(1)
		return
	}
	msg := fmt.Sprintf("slack request to %s from %s rejected: %s", path, remote, reason)
	if n := a.suppressed.Swap(0); n > 0 {
		msg += fmt.Sprintf(" (and %d more rejections not audited one by one)", n)
	}
	rec := bot.AuditRecord{Time: a.now().UTC(), Kind: bot.AuditRejected, Platform: "slack", Result: "rejected", Message: msg}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := a.audit.AppendAudit(actx, rec); err != nil {
		a.log.Error("audit write failed", "err", err, "message", msg)
	}
}
