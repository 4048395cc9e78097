// Package mmtest is a stand-in for the slash-command part of Mattermost's
// API v4, for tests: no Mattermost server can run here. It enforces what
// the real server enforces on that path (server/channels/api4/command.go,
// app/command.go, model/command.go): a session token on every call, the
// team membership and the manage_slash_commands / manage_others_slash_commands
// permissions, 403 with the server's JSON error body, the command's
// validation (validCommand: the checks of model.Command.IsValid in
// server/public/model/command.go, in its order and with its error IDs:
// trigger 1-128 characters of letters, digits, _ . / -, no leading slash,
// no spaces; an http(s) URL; method P or G), unique triggers per team
// including the built-in commands, and tokens kept on update.
package mmtest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/opsbot/opsbot/adapters/mattermost/mmapi"
)

// Permissions of a user in a team.
type Permissions struct {
	Member       bool // view_team
	Manage       bool // manage_slash_commands
	ManageOthers bool // manage_others_slash_commands
}

// User is an account with an access token.
type User struct {
	ID, Username, Token string
	Teams               map[string]Permissions // by team ID
}

// Team is a team.
type Team struct {
	ID, Name string
	Open     bool // type O with open invite: anyone may read it by name
}

// Call is one request the server answered.
type Call struct {
	Method, Path string
	Status       int
}

// Server is the stand-in.
type Server struct {
	*httptest.Server
	mu       sync.Mutex
	users    map[string]*User // by token
	teams    map[string]*Team // by name
	commands map[string]*mmapi.Command
	calls    []Call
}

// BuiltIn are the server's own slash commands: a custom command may not
// take their triggers.
var BuiltIn = []string{"away", "code", "collapse", "dnd", "echo", "expand", "groupmsg", "header", "help",
	"invite", "invite_people", "join", "kick", "leave", "logout", "me", "msg", "mute", "offline",
	"online", "open", "purpose", "remove", "rename", "search", "settings", "shortcuts", "shrug", "status"}

// New starts a server with the given teams and users; it stops with t.
func New(t testing.TB, teams []Team, users []User) *Server {
	s := &Server{users: map[string]*User{}, teams: map[string]*Team{}, commands: map[string]*mmapi.Command{}}
	for i := range teams {
		s.teams[teams[i].Name] = &teams[i]
	}
	for i := range users {
		s.users[users[i].Token] = &users[i]
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v4/users/me", s.auth(func(w http.ResponseWriter, _ *http.Request, u *User) {
		writeJSON(w, http.StatusOK, &mmapi.User{ID: u.ID, Username: u.Username, IsBot: true})
	}))
	mux.HandleFunc("GET /api/v4/teams/name/{name}", s.auth(s.teamByName))
	mux.HandleFunc("GET /api/v4/commands", s.auth(s.list))
	mux.HandleFunc("POST /api/v4/commands", s.auth(s.create))
	mux.HandleFunc("PUT /api/v4/commands/{id}", s.auth(s.update))
	mux.HandleFunc("DELETE /api/v4/commands/{id}", s.auth(s.remove))
	mux.HandleFunc("PUT /api/v4/commands/{id}/regen_token", s.auth(s.regen))
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// AddCommand puts a command in place as if someone had created it.
func (s *Server) AddCommand(c mmapi.Command) *mmapi.Command {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.ID, c.Token = newID(), newID()
	c.CreateAt, c.UpdateAt = millis(), millis()
	s.commands[c.ID] = &c
	cp := c
	return &cp
}

// Edit changes a command behind the bot's back (a person in the System
// Console).
func (s *Server) Edit(id string, fn func(*mmapi.Command)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s.commands[id])
}

// Commands returns copies of the team's commands, by trigger.
func (s *Server) Commands(teamID string) map[string]mmapi.Command {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]mmapi.Command{}
	for _, c := range s.commands {
		if c.TeamID == teamID && c.DeleteAt == 0 {
			out[c.Trigger] = *c
		}
	}
	return out
}

// Calls returns the requests answered so far; with method != "" only those.
func (s *Server) Calls(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// auth finds the session of the Authorization header ("Bearer TOKEN" or
// "Token TOKEN", any case, as the server reads it) and records the call.
func (s *Server) auth(h func(http.ResponseWriter, *http.Request, *User)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			s.mu.Lock()
			s.calls = append(s.calls, Call{Method: r.Method, Path: r.URL.Path, Status: rec.status})
			s.mu.Unlock()
		}()
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		s.mu.Lock()
		u, ok := s.users[strings.TrimSpace(token)]
		s.mu.Unlock()
		if !ok || (!strings.EqualFold(scheme, "bearer") && !strings.EqualFold(scheme, "token")) {
			appError(rec, http.StatusUnauthorized, "api.context.session_expired.app_error", "Invalid or expired session, please login again.")
			return
		}
		h(rec, r, u)
	}
}

func (s *Server) perm(u *User, teamID string) Permissions { return u.Teams[teamID] }

func (s *Server) teamByName(w http.ResponseWriter, r *http.Request, u *User) {
	s.mu.Lock()
	team, ok := s.teams[r.PathValue("name")]
	s.mu.Unlock()
	if !ok {
		appError(w, http.StatusNotFound, "app.team.get_by_name.missing.app_error", "Unable to find the existing team.")
		return
	}
	if !team.Open && !s.perm(u, team.ID).Member {
		permissionError(w, u, "view_team")
		return
	}
	writeJSON(w, http.StatusOK, &mmapi.Team{ID: team.ID, Name: team.Name, DisplayName: team.Name, Type: mmapi.TeamOpen})
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, u *User) {
	teamID := r.URL.Query().Get("team_id")
	if teamID == "" {
		appError(w, http.StatusBadRequest, "api.context.invalid_url_param.app_error", "Invalid or missing team_id parameter in request URL.")
		return
	}
	p := s.perm(u, teamID)
	if !p.Member {
		permissionError(w, u, "view_team")
		return
	}
	customOnly, _ := strconv.ParseBool(r.URL.Query().Get("custom_only"))
	if !customOnly {
		writeJSON(w, http.StatusOK, []*mmapi.Command{})
		return
	}
	if !p.Manage {
		permissionError(w, u, "manage_slash_commands")
		return
	}
	s.mu.Lock()
	var out []*mmapi.Command
	for _, c := range s.commands {
		if c.TeamID == teamID && c.DeleteAt == 0 {
			cp := *c
			out = append(out, &cp)
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// uniqueTrigger is the server's duplicate check: against the team's other
// commands and the built-ins.
func (s *Server) uniqueTrigger(c *mmapi.Command, except string) bool {
	for _, b := range BuiltIn {
		if c.Trigger == b {
			return false
		}
	}
	for id, o := range s.commands {
		if id != except && o.TeamID == c.TeamID && o.DeleteAt == 0 && o.Trigger == c.Trigger {
			return false
		}
	}
	return true
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, u *User) {
	var c mmapi.Command
	if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
		appError(w, http.StatusBadRequest, "api.context.invalid_body_param.app_error", "Invalid or missing command in request body.")
		return
	}
	if !s.perm(u, c.TeamID).Manage {
		permissionError(w, u, "manage_slash_commands")
		return
	}
	c.CreatorID = u.ID
	c.Trigger = strings.ToLower(c.Trigger)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.uniqueTrigger(&c, "") {
		appError(w, http.StatusBadRequest, "api.command.duplicate_trigger.app_error", "This trigger word is already in use. Please choose another word.")
		return
	}
	c.ID, c.Token = newID(), newID()
	c.CreateAt = millis()
	c.UpdateAt = c.CreateAt
	c.DeleteAt = 0
	if err := validCommand(&c); err != nil {
		appError(w, err.StatusCode, err.ID, err.ID)
		return
	}
	s.commands[c.ID] = &c
	writeJSON(w, http.StatusCreated, &c)
}

// existing finds a command for update, delete or regen and checks the
// caller may change it, as the server does: 404 without
// manage_slash_commands (not to leak it), 403 for another's command
// without manage_others_slash_commands. It returns nil after answering.
func (s *Server) existing(w http.ResponseWriter, id string, u *User) *mmapi.Command {
	old, ok := s.commands[id]
	if !ok || old.DeleteAt != 0 || !s.perm(u, old.TeamID).Manage {
		appError(w, http.StatusNotFound, "api.command.not_found.app_error", "Command not found.")
		return nil
	}
	if old.CreatorID != u.ID && !s.perm(u, old.TeamID).ManageOthers {
		permissionError(w, u, "manage_others_slash_commands")
		return nil
	}
	return old
}

func (s *Server) update(w http.ResponseWriter, r *http.Request, u *User) {
	var c mmapi.Command
	if err := json.NewDecoder(r.Body).Decode(&c); err != nil || c.ID != r.PathValue("id") {
		appError(w, http.StatusBadRequest, "api.context.invalid_body_param.app_error", "Invalid or missing command in request body.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.commands[c.ID]
	if ok && c.TeamID != old.TeamID {
		appError(w, http.StatusBadRequest, "api.command.team_mismatch.app_error", "Unable to update command across teams.")
		return
	}
	if old = s.existing(w, c.ID, u); old == nil {
		return
	}
	c.Trigger = strings.ToLower(c.Trigger)
	c.Token, c.CreateAt, c.CreatorID, c.PluginID, c.TeamID, c.DeleteAt = old.Token, old.CreateAt, old.CreatorID, old.PluginID, old.TeamID, old.DeleteAt
	c.UpdateAt = millis()
	if !s.uniqueTrigger(&c, c.ID) {
		appError(w, http.StatusBadRequest, "api.command.duplicate_trigger.app_error", "This trigger word is already in use. Please choose another word.")
		return
	}
	if err := validCommand(&c); err != nil {
		appError(w, err.StatusCode, err.ID, err.ID)
		return
	}
	s.commands[c.ID] = &c
	writeJSON(w, http.StatusOK, &c)
}

func (s *Server) remove(w http.ResponseWriter, r *http.Request, u *User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.existing(w, r.PathValue("id"), u)
	if old == nil {
		return
	}
	old.DeleteAt = millis()
	writeJSON(w, http.StatusOK, map[string]string{"status": "OK"})
}

func (s *Server) regen(w http.ResponseWriter, r *http.Request, u *User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.existing(w, r.PathValue("id"), u)
	if old == nil {
		return
	}
	old.Token = newID()
	old.UpdateAt = millis()
	writeJSON(w, http.StatusOK, map[string]string{"token": old.Token})
}

// permissionError is the server's answer to a missing permission
// (model.MakePermissionError).
func permissionError(w http.ResponseWriter, u *User, perm string) {
	writeJSON(w, http.StatusForbidden, &mmapi.AppError{ID: "api.context.permissions.app_error",
		Message: "You do not have the appropriate permissions.", DetailedError: "userId=" + u.ID + ", permission=" + perm,
		StatusCode: http.StatusForbidden, RequestID: newID()})
}

func appError(w http.ResponseWriter, status int, id, msg string) {
	writeJSON(w, status, &mmapi.AppError{ID: id, Message: msg, StatusCode: status, RequestID: newID()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}
