package mmtest

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/opsbot/opsbot/adapters/mattermost/mmapi"
)

// idEncoding is the server's alphabet for IDs (model.NewId): 16 random
// bytes in base32 without padding, 26 characters.
var idEncoding = base32.NewEncoding("ybndrfg8ejkmcpqxot1uwisza345h769").WithPadding(base32.NoPadding)

// newID is an ID as the server makes them.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])
}

// millis is the server's timestamp (model.GetMillis).
func millis() int64 { return time.Now().UnixMilli() }

// validID is model.IsValidId: 26 letters or digits.
func validID(s string) bool {
	if len(s) != 26 {
		return false
	}
	for _, r := range s {
		if !unicode.IsLetter(r) && !unicode.IsNumber(r) {
			return false
		}
	}
	return true
}

// validHTTPURL is model.IsValidHTTPURL.
func validHTTPURL(s string) bool {
	if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
		return false
	}
	u, err := url.ParseRequestURI(s)
	return err == nil && u.Scheme != "" && u.Host != ""
}

var triggerChars = regexp.MustCompile(`^[A-Za-z0-9_./-]+$`)

// validCommand is model.Command.IsValid for a command made by a user (the
// stand-in has no plugins): the first rule broken, as a 400 with the
// server's error ID.
func validCommand(c *mmapi.Command) *mmapi.AppError {
	bad := func(field string) *mmapi.AppError {
		return &mmapi.AppError{ID: "model.command.is_valid." + field + ".app_error", StatusCode: http.StatusBadRequest}
	}
	switch {
	case !validID(c.ID):
		return bad("id")
	case len(c.Token) != 26:
		return bad("token")
	case c.CreateAt == 0:
		return bad("create_at")
	case c.UpdateAt == 0:
		return bad("update_at")
	case c.CreatorID == "" || c.PluginID != "":
		return bad("plugin_id")
	case !validID(c.CreatorID):
		return bad("user_id")
	case !validID(c.TeamID):
		return bad("team_id")
	case len(c.Trigger) < mmapi.MinTriggerLength || len(c.Trigger) > mmapi.MaxTriggerLength ||
		strings.HasPrefix(c.Trigger, "/") || !triggerChars.MatchString(c.Trigger):
		return bad("trigger")
	case c.URL == "" || len(c.URL) > 1024:
		return bad("url")
	case !validHTTPURL(c.URL):
		return bad("url_http")
	case c.Method != mmapi.CommandMethodGet && c.Method != mmapi.CommandMethodPost:
		return bad("method")
	case len(c.DisplayName) > 64:
		return bad("display_name")
	case len(c.Description) > 128:
		return bad("description")
	}
	return nil
}

var hexColour = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// CheckAttachment applies the server's rules for a message attachment to
// the fields opsbot sets (model.MessageAttachment.IsValid and
// model.PostAction.IsValid): a colour that is good, warning, danger or
// #rrggbb; every action a named button with a known style and an
// integration URL that is http(s) or a plugin's path.
func CheckAttachment(a *mmapi.MessageAttachment) error {
	var errs []error
	if a.Color != "" && !slices.Contains([]string{"good", "warning", "danger"}, a.Color) && !hexColour.MatchString(a.Color) {
		errs = append(errs, fmt.Errorf("invalid style '%s' - must be one of [good, warning, danger] or a hex color", a.Color))
	}
	for i, act := range a.Actions {
		if err := CheckAction(act); err != nil {
			errs = append(errs, fmt.Errorf("action at index %d is invalid: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// CheckAction is model.PostAction.IsValid for a button.
func CheckAction(p *mmapi.PostAction) error {
	var errs []error
	if p.Name == "" {
		errs = append(errs, errors.New("action must have a name"))
	}
	styles := []string{"default", "primary", "success", "good", "warning", "danger"}
	if p.Style != "" && !slices.Contains(styles, p.Style) && !hexColour.MatchString(p.Style) {
		errs = append(errs, fmt.Errorf("invalid style '%s' - must be one of [default, primary, success, good, warning, danger] or a hex color", p.Style))
	}
	if p.Type != mmapi.PostActionTypeButton {
		errs = append(errs, fmt.Errorf("invalid action type %q: opsbot sends buttons only", p.Type))
	}
	switch {
	case p.Integration == nil:
		errs = append(errs, errors.New("action must have integration settings"))
	case p.Integration.URL == "":
		errs = append(errs, errors.New("action must have an integration URL"))
	case !strings.HasPrefix(p.Integration.URL, "/plugins/") && !strings.HasPrefix(p.Integration.URL, "plugins/") && !validHTTPURL(p.Integration.URL):
		errs = append(errs, errors.New("action must have an valid integration URL"))
	}
	return errors.Join(errs...)
}
