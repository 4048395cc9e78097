package mattermost

import (
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/opsbot/opsbot/adapters/mattermost/mmapi"
	"github.com/opsbot/opsbot/bot"
)

// maxRunes is Mattermost's post message limit (mmapi.PostMessageMaxRunes,
// the server's model.PostMessageMaxRunesV2).
// Each page's text is kept under it: a long reply becomes several posts,
// never a silently cut one.
const maxRunes = mmapi.PostMessageMaxRunes

// Colours by verdict: green for yes, red for no or failure, orange while
// waiting for a person, blue while running, grey for information.
const (
	colourOK      = "#2eb886"
	colourBad     = "#d24b4e"
	colourPending = "#f5a623"
	colourRunning = "#1d74f5"
	colourInfo    = "#8d96a0"
)

func colour(s bot.Status) string {
	switch s {
	case bot.StatusOK:
		return colourOK
	case bot.StatusNegative, bot.StatusFailed, bot.StatusDenied:
		return colourBad
	case bot.StatusPending:
		return colourPending
	case bot.StatusRunning:
		return colourRunning
	default:
		return colourInfo
	}
}

// page is one post's worth of a reply: the message and its attachment.
type page struct {
	Message     string                     `json:"message"`
	Attachments []*mmapi.MessageAttachment `json:"attachments,omitempty"`
}

// post is the page as a post for the API or an action response.
func (p page) post(channel, root string) *mmapi.Post {
	post := &mmapi.Post{ChannelID: channel, RootID: root, Message: p.Message}
	// Always set, so that an update replaces the old attachments (and their
	// buttons) rather than keeping them.
	atts := p.Attachments
	if atts == nil {
		atts = []*mmapi.MessageAttachment{}
	}
	post.Props = &mmapi.PostProps{Attachments: atts}
	return post
}

// buttons signs what a reply's actions run.
type buttons struct {
	secret  []byte
	url     string // PublicURL + "/mattermost/action"
	channel string
	ref     string // the request the buttons belong to
	expires time.Time
}

func (b buttons) action(i int, a bot.Action) *mmapi.PostAction {
	style := "default"
	switch a.Style {
	case bot.ActionPrimary:
		style = "primary"
	case bot.ActionDanger:
		style = "danger"
	}
	ref := b.ref
	if f := strings.Fields(a.Command); len(f) == 3 && bot.CheckApprovalID(f[2]) == nil {
		ref = f[2] // approve, deny, cancel: the ID the button acts on
	}
	act := action{Line: a.Command, Ref: ref, Channel: b.channel, Expires: b.expires}
	return &mmapi.PostAction{
		ID:    actionID(i, a.Label),
		Type:  mmapi.PostActionTypeButton,
		Name:  a.Label,
		Style: style,
		Integration: &mmapi.PostActionIntegration{
			URL:     b.url,
			Context: act.context(b.secret),
		},
	}
}

// actionID is unique within a post and alphanumeric only: Mattermost
// routes /posts/{id}/actions/{action_id} and answers 404 for a hyphen.
func actionID(i int, label string) string {
	var b strings.Builder
	b.WriteString("opsbot")
	b.WriteString(strconv.Itoa(i))
	for _, r := range strings.ToLower(label) {
		if b.Len() >= 26 {
			break
		}
		if r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// render turns a reply into posts: one attachment per page coloured by the
// verdict, the title and fields on the first page, the result lines in a
// code block, the table as a markdown table, the explanation as prose, and
// the buttons (signed by btn) on the last page. It is pure: the same reply
// and buttons give the same pages.
func render(r bot.Reply, btn buttons) []page {
	bodies := paginate(blocks(r), maxRunes)
	pages := make([]page, len(bodies))
	for i, body := range bodies {
		att := &mmapi.MessageAttachment{
			Fallback: neutralize(r.Title),
			Color:    colour(r.Status),
			Title:    neutralize(r.Title),
			Text:     body,
		}
		if len(bodies) > 1 {
			suffix := " (" + strconv.Itoa(i+1) + " of " + strconv.Itoa(len(bodies)) + ")"
			if i > 0 {
				suffix = " (continued, " + strconv.Itoa(i+1) + " of " + strconv.Itoa(len(bodies)) + ")"
			}
			att.Title += suffix
			att.Fallback += suffix
		}
		if i == 0 {
			for _, f := range r.Fields {
				v := neutralize(f.Value)
				att.Fields = append(att.Fields, &mmapi.MessageAttachmentField{
					Title: neutralize(f.Name),
					Value: v,
					Short: utf8.RuneCountInString(v) <= 40 && !strings.Contains(v, "\n"),
				})
			}
		}
		if i == len(bodies)-1 {
			for j, a := range r.WithActions() {
				att.Actions = append(att.Actions, btn.action(j, a))
			}
		}
		pages[i] = page{Attachments: []*mmapi.MessageAttachment{att}}
	}
	if who := mentionOf(r); who != "" && len(pages) > 0 {
		// In the message, not the attachment: the message is what
		// Mattermost reads mentions in.
		pages[0].Message = who
	}
	return pages
}

// mattermostUserName is what Mattermost accepts as a username
// (model.IsValidUsername: lower-case letters, digits, '.', '-', '_').
var mattermostUserName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// mentionOf is Mattermost's mention of the person a reply is news for
// (bot.Reply.Mention), "" when there is none, they are not a Mattermost
// user, or their name is not one a mention can carry.
func mentionOf(r bot.Reply) string {
	m := r.Mention
	if m == nil || m.Platform != Platform || !mattermostUserName.MatchString(m.UserName) {
		return ""
	}
	switch m.UserName {
	case "all", "channel", "here":
		return "" // not a person: it would notify everyone
	}
	return "@" + m.UserName
}

// renderText is a reply as one markdown string, for an ephemeral answer to
// a click (which carries text only). An answer that would pass the limit
// says how much it left out.
func renderText(r bot.Reply) string {
	var b strings.Builder
	if r.Title != "" {
		b.WriteString("**" + neutralize(r.Title) + "**")
	}
	for _, f := range r.Fields {
		b.WriteString("\n" + neutralize(f.Name) + ": " + neutralize(f.Value))
	}
	bodies := paginate(blocks(r), maxRunes-utf8.RuneCountInString(b.String())-200)
	if len(bodies) > 0 && bodies[0] != "" {
		b.WriteString("\n" + bodies[0])
	}
	if len(bodies) > 1 {
		left := 0
		for _, p := range bodies[1:] {
			left += utf8.RuneCountInString(p)
		}
		b.WriteString("\n_(" + strconv.Itoa(left) + " more characters not shown: run the command to see all of it)_")
	}
	return b.String()
}

// block is a run of lines rendered together: plain markdown, a code block,
// or a table whose header repeats on every page it spans.
type block struct {
	code   bool
	header []string
	lines  []string
}

func blocks(r bot.Reply) []block {
	var out []block
	if len(r.Lines) > 0 {
		out = append(out, block{code: true, lines: codeLines(r.Lines)})
	}
	if r.Table != nil && len(r.Table.Header) > 0 {
		out = append(out, tableBlock(r.Table))
	}
	if r.Text != "" {
		lines := strings.Split(r.Text, "\n")
		// Usage text is aligned with spaces: keep it aligned.
		indented := false
		for _, l := range lines {
			if strings.HasPrefix(l, "  ") {
				indented = true
			}
		}
		if indented {
			out = append(out, block{code: true, lines: codeLines(lines)})
		} else {
			for i := range lines {
				lines[i] = neutralize(lines[i])
			}
			out = append(out, block{lines: lines})
		}
	}
	return out
}

func codeLines(in []string) []string {
	out := make([]string, len(in))
	for i, l := range in {
		// A fence inside would end the block early.
		out[i] = neutralize(strings.ReplaceAll(l, "```", "`\u200b``"))
	}
	return out
}

var cellEscaper = strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ")

func tableBlock(t *bot.Table) block {
	row := func(cells []string) string {
		var b strings.Builder
		b.WriteString("|")
		for i := range t.Header {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			c = cellEscaper.Replace(c)
			if c == "" {
				c = " "
			}
			b.WriteString(" " + neutralize(c) + " |")
		}
		return b.String()
	}
	sep := "|" + strings.Repeat(" --- |", len(t.Header))
	b := block{header: []string{row(t.Header), sep}}
	for _, r := range t.Rows {
		b.lines = append(b.lines, row(r))
	}
	return b
}

// paginate lays blocks out in pages of at most limit runes, closing and
// reopening a code block or repeating a table header where a page breaks.
// A line longer than a page is broken, and says so.
func paginate(bs []block, limit int) []string {
	if limit < 200 {
		limit = 200
	}
	var pages []string
	var cur strings.Builder
	size := 0
	add := func(s string) {
		cur.WriteString(s)
		cur.WriteByte('\n')
		size += utf8.RuneCountInString(s) + 1
	}
	flush := func() {
		pages = append(pages, strings.TrimRight(cur.String(), "\n"))
		cur.Reset()
		size = 0
	}
	for bi, b := range bs {
		open := b.header
		if b.code {
			open = []string{"```"}
		}
		closing := 0
		if b.code {
			closing = 4
		}
		openSize := 0
		for _, l := range open {
			openSize += utf8.RuneCountInString(l) + 1
		}
		room := limit - openSize - closing - 1 // the widest a line may be
		if bi > 0 && size > 0 {
			if size+1+openSize+closing >= limit {
				flush()
			} else {
				add("")
			}
		}
		for _, l := range open {
			add(l)
		}
		for _, l := range b.lines {
			for _, part := range breakLine(l, room) {
				if size+utf8.RuneCountInString(part)+1+closing > limit {
					if b.code {
						add("```")
					}
					flush()
					for _, o := range open {
						add(o)
					}
				}
				add(part)
			}
		}
		if b.code {
			add("```")
		}
	}
	if size > 0 || len(pages) == 0 {
		flush()
	}
	return pages
}

// breakLine splits a line longer than width runes, marking each break.
func breakLine(l string, width int) []string {
	const mark = " ↩"
	if utf8.RuneCountInString(l) <= width {
		return []string{l}
	}
	rs := []rune(l)
	w := width - utf8.RuneCountInString(mark)
	var out []string
	for len(rs) > width {
		out = append(out, string(rs[:w])+mark)
		rs = rs[w:]
	}
	return append(out, string(rs))
}

// mention is an @ at the start of a word: @channel, @here, @all or a user.
var mention = regexp.MustCompile(`(^|[^\p{L}\p{N}_.\-])@([\p{L}\p{N}_])`)

// neutralize keeps text that came from users or hosts from notifying
// anyone: a zero-width space after the @ stops Mattermost from reading a
// mention (an address like ops@example.com is left alone).
func neutralize(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	return mention.ReplaceAllString(s, "$1@\u200b$2")
}
