package slack

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/opsbot/opsbot/bot"
	"github.com/opsbot/opsbot/internal/text"
)

// Slack's Block Kit limits (docs.slack.dev, "Blocks" and "Block elements"),
// kept a little under the documented maxima.
const (
	maxHeaderChars  = 150   // header block text
	maxSectionChars = 3000  // section text
	maxFieldChars   = 2000  // one section field
	maxFields       = 10    // fields per section
	maxButtons      = 25    // elements per actions block
	maxButtonLabel  = 75    // button text
	maxButtonValue  = 2000  // button value
	maxBlocks       = 45    // per message (Slack's hard limit is 50)
	maxMessageChars = 36000 // text across a message's blocks (Slack: 40 000)
	maxFallback     = 3000  // the plain `text` fallback
)

// rendered is one rendered reply: the first message, and the follow-up
// messages that carry the rest of an output too long for one message.
type rendered struct {
	Text      string        `json:"text"`
	Blocks    []slack.Block `json:"blocks"`
	Ephemeral bool          `json:"ephemeral"`
	// More holds the block groups of the follow-up messages, in order.
	More []followUp `json:"more,omitempty"`
	// File is the whole output as a text file, when it needs more than
	// maxMore follow-ups: it is shared after them, in their thread.
	File *File `json:"file,omitempty"`
}

// File is a text file to share with a message (Slack's external upload:
// files.getUploadURLExternal, the bytes, files.completeUploadExternal).
type File struct {
	Name    string `json:"name"`
	Title   string `json:"title"`
	Content string `json:"-"`
}

// maxMore is the most follow-up messages one reply posts: a longer output
// is cut there, and shared whole as a file (or, to the asker alone, where
// no file can go, cut with a note).
const maxMore = 3

// followUp is one follow-up message of a split reply.
type followUp struct {
	Text   string        `json:"text"`
	Blocks []slack.Block `json:"blocks"`
}

// ResponseType is the slash-command response type of the message.
func (m rendered) ResponseType() string {
	if m.Ephemeral {
		return slack.ResponseTypeEphemeral
	}
	return slack.ResponseTypeInChannel
}

// Ephemeral reports whether a reply of this status is shown only to the
// asker: help, usage errors and refusals are; verdicts, failures and
// approval prompts go to the channel, where the incident is worked.
func Ephemeral(s bot.Status) bool {
	switch s {
	case bot.StatusInfo, bot.StatusUsage, bot.StatusDenied:
		return true
	}
	return false
}

var statusEmoji = map[bot.Status]string{
	bot.StatusOK:       ":white_check_mark:",
	bot.StatusNegative: ":x:",
	bot.StatusInfo:     ":information_source:",
	bot.StatusRunning:  ":hourglass_flowing_sand:",
	bot.StatusUsage:    ":warning:",
	bot.StatusDenied:   ":no_entry:",
	bot.StatusPending:  ":raised_hand:",
	bot.StatusFailed:   ":rotating_light:",
}

// render turns a reply into Block Kit: the verdict as a header, the fields,
// result lines and table as monospace blocks, the explanation, and the
// actions as buttons whose value is the command line they run. Output that
// does not fit one message is split into follow-up messages, and the first
// message says so: nothing is cut silently.
func render(r bot.Reply) rendered {
	m := rendered{Text: fallback(r), Ephemeral: Ephemeral(r.Status)}

	var head []slack.Block
	title := r.Title
	if title == "" {
		title = r.Status.String()
	}
	emoji := statusEmoji[r.Status]
	if utf8.RuneCountInString(title)+len(emoji)+1 <= maxHeaderChars {
		head = append(head, slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, emoji+" "+title, true, false)))
	} else {
		for _, chunk := range splitText(escape(title), maxSectionChars-len(emoji)-8) {
			head = append(head, mrkdwnSection(emoji+" *"+chunk+"*"))
		}
	}
	if who := mentionOf(r); who != "" {
		// In the text (what the notification shows) and in the blocks (what
		// the channel shows): Slack notifies for <@U123> in either.
		m.Text = who + " " + m.Text
		head = append(head, mrkdwnSection(who))
	}
	head = append(head, fieldSections(r.Fields)...)

	var body []slack.Block
	if len(r.Lines) > 0 {
		body = append(body, codeBlocks(r.Lines)...)
	}
	if r.Table != nil {
		body = append(body, codeBlocks(r.Table.Aligned())...)
	}
	if r.Text != "" {
		for _, chunk := range splitText(r.Text, maxSectionChars) {
			body = append(body, slack.NewSectionBlock(slack.NewTextBlockObject(slack.PlainTextType, chunk, false, false), nil, nil))
		}
	}
	actions := actionBlocks(r.WithActions())

	// Pack: the head and the actions stay on the first message; the body
	// fills it up to the limits, and the rest goes to follow-ups.
	budgetBlocks := maxBlocks - len(head) - len(actions)
	budgetChars := maxMessageChars - blocksChars(head) - blocksChars(actions)
	first, rest := pack(body, budgetBlocks, budgetChars)
	if len(rest) > 0 {
		first, rest = pack(body, budgetBlocks-1, budgetChars-200) // room for the split note
	}
	m.Blocks = append(append([]slack.Block{}, head...), first...)
	if len(rest) > 0 {
		for len(rest) > 0 {
			var part []slack.Block
			part, rest = pack(rest, maxBlocks, maxMessageChars)
			if len(part) == 0 { // one block larger than a message cannot happen: blocks are ≤ 3000 chars
				part, rest = rest[:1], rest[1:]
			}
			m.More = append(m.More, followUp{Blocks: part})
		}
		for i := range m.More {
			m.More[i].Text = fmt.Sprintf("%s (continued, part %d of %d)", truncateRunes(plainTitle(r), 200), i+2, len(m.More)+1)
			m.More[i].Blocks = append([]slack.Block{contextBlock(fmt.Sprintf("_continued: part %d of %d_", i+2, len(m.More)+1))}, m.More[i].Blocks...)
		}
		note := fmt.Sprintf(":scissors: The output is too long for one Slack message: it continues in %d more message(s).", len(m.More))
		if len(m.More) > maxMore {
			total := len(m.More) + 1
			m.More = m.More[:maxMore]
			if m.Ephemeral {
				note = fmt.Sprintf(":scissors: The output is %d Slack messages long: the first %d are shown. Narrow the command (fewer ports or hosts) to see the rest.", total, maxMore+1)
			} else {
				m.File = &File{Name: "opsbot-output.txt", Title: truncateRunes(plainTitle(r), 200), Content: r.Plain()}
				note = fmt.Sprintf(":scissors: The output is %d Slack messages long: the first %d are shown, and all of it is in the file %s in the thread.", total, maxMore+1, m.File.Name)
			}
		}
		m.Blocks = append(m.Blocks, contextBlock(note))
	}
	m.Blocks = append(m.Blocks, actions...)
	return m
}

func plainTitle(r bot.Reply) string {
	if r.Title != "" {
		return r.Title
	}
	return r.Status.String()
}

// fallback is the plain-text `text` Slack shows in notifications and to
// clients that cannot draw blocks.
func fallback(r bot.Reply) string {
	var b strings.Builder
	b.WriteString(plainTitle(r))
	for i, l := range r.Lines {
		if i == 3 {
			fmt.Fprintf(&b, "\n(%d more lines)", len(r.Lines)-3)
			break
		}
		b.WriteString("\n" + l)
	}
	return escape(truncateRunes(b.String(), maxFallback))
}

// pack takes blocks from the front while they fit in n blocks and chars
// characters.
func pack(blocks []slack.Block, n, chars int) (taken, rest []slack.Block) {
	total := 0
	for i, b := range blocks {
		c := blockChars(b)
		if i >= n || total+c > chars {
			return blocks[:i], blocks[i:]
		}
		total += c
	}
	return blocks, nil
}

func blocksChars(bs []slack.Block) int {
	n := 0
	for _, b := range bs {
		n += blockChars(b)
	}
	return n
}

// blockChars approximates what a block adds to a message's size.
func blockChars(b slack.Block) int {
	n := 40
	switch b := b.(type) {
	case *slack.SectionBlock:
		if b.Text != nil {
			n += len(b.Text.Text)
		}
		for _, f := range b.Fields {
			n += len(f.Text) + 20
		}
	case *slack.HeaderBlock:
		n += len(b.Text.Text)
	case *slack.ContextBlock:
		for _, e := range b.ContextElements.Elements {
			if t, ok := e.(*slack.TextBlockObject); ok {
				n += len(t.Text)
			}
		}
	case *slack.ActionBlock:
		for _, e := range b.Elements.ElementSet {
			if btn, ok := e.(*slack.ButtonBlockElement); ok {
				n += len(btn.Value) + len(btn.Text.Text) + 100
			}
		}
	}
	return n
}

func mrkdwnSection(text string) *slack.SectionBlock {
	return slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, text, false, false), nil, nil)
}

func contextBlock(mrkdwn string) *slack.ContextBlock {
	return slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, mrkdwn, false, false))
}

// fieldSections puts the fields into sections of at most ten.
func fieldSections(fields []bot.Field) []slack.Block {
	var out []slack.Block
	for len(fields) > 0 {
		n := min(len(fields), maxFields)
		objs := make([]*slack.TextBlockObject, n)
		for i, f := range fields[:n] {
			text := "*" + escape(f.Name) + "*\n" + escape(f.Value)
			objs[i] = slack.NewTextBlockObject(slack.MarkdownType, truncateRunes(text, maxFieldChars), false, false)
		}
		out = append(out, slack.NewSectionBlock(nil, objs, nil))
		fields = fields[n:]
	}
	return out
}

// codeBlocks puts lines into monospace sections of at most 3000
// characters each, split at line ends (a line longer than a section is
// split within itself).
func codeBlocks(lines []string) []slack.Block {
	const fence = "```"
	limit := maxSectionChars - 2*len(fence) - 2
	var out []slack.Block
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, mrkdwnSection(fence+"\n"+cur.String()+"\n"+fence))
			cur.Reset()
		}
	}
	for _, l := range lines {
		// A fence inside the output would end the code block early.
		l = escape(strings.ReplaceAll(l, fence, "`\u200b``"))
		if l == "" {
			l = " "
		}
		for _, piece := range splitText(l, limit) {
			if cur.Len() > 0 && cur.Len()+1+len(piece) > limit {
				flush()
			}
			if cur.Len() > 0 {
				cur.WriteByte('\n')
			}
			cur.WriteString(piece)
		}
	}
	flush()
	return out
}

// splitText cuts s into pieces of at most n bytes, at line ends where it
// can, never inside a rune or an HTML entity (&amp; &lt; &gt;).
func splitText(s string, n int) []string {
	var out []string
	for len(s) > n {
		cut := strings.LastIndexByte(s[:n], '\n')
		if cut <= 0 {
			cut = n
			for cut > 0 && !utf8.RuneStart(s[cut]) {
				cut--
			}
			if amp := strings.LastIndexByte(s[:cut], '&'); amp >= 0 && amp > cut-5 && !strings.Contains(s[amp:cut], ";") {
				cut = amp
			}
			out = append(out, s[:cut])
			s = s[cut:]
			continue
		}
		out = append(out, s[:cut])
		s = s[cut+1:]
	}
	return append(out, s)
}

// actionBlocks turns actions into buttons. A danger button asks for
// confirmation, so the disruptive choice is never one slip of the mouse.
func actionBlocks(actions []bot.Action) []slack.Block {
	var out []slack.Block
	for start := 0; start < len(actions); start += maxButtons {
		end := min(start+maxButtons, len(actions))
		var elems []slack.BlockElement
		for i, a := range actions[start:end] {
			label := truncateRunes(a.Label, maxButtonLabel)
			btn := slack.NewButtonBlockElement(fmt.Sprintf("opsbot%d", start+i), truncateRunes(a.Command, maxButtonValue),
				slack.NewTextBlockObject(slack.PlainTextType, label, true, false))
			switch a.Style {
			case bot.ActionPrimary:
				btn.WithStyle(slack.StylePrimary)
			case bot.ActionDanger:
				btn.WithStyle(slack.StyleDanger)
				btn.WithConfirm(slack.NewConfirmationBlockObject(
					slack.NewTextBlockObject(slack.PlainTextType, truncateRunes(label+"?", 100), false, false),
					slack.NewTextBlockObject(slack.MarkdownType, truncateRunes("This runs `"+escape(a.Command)+"`.", 300), false, false),
					slack.NewTextBlockObject(slack.PlainTextType, truncateRunes(label, 30), false, false),
					slack.NewTextBlockObject(slack.PlainTextType, "Cancel", false, false),
				).WithStyle(slack.StyleDanger))
			}
			elems = append(elems, btn)
		}
		out = append(out, slack.NewActionBlock("", elems...))
	}
	return out
}

// slackUserID is what Slack user IDs look like (U024BE7LH, W012A3CDE).
var slackUserID = regexp.MustCompile(`^[UW][A-Z0-9]{2,20}$`)

// mentionOf is Slack's mention of the person a reply is news for
// (bot.Reply.Mention), "" when there is none or they are not a Slack user.
func mentionOf(r bot.Reply) string {
	if r.Mention == nil || r.Mention.Platform != "slack" || !slackUserID.MatchString(r.Mention.User) {
		return ""
	}
	return "<@" + r.Mention.User + ">"
}

// escape makes text safe in mrkdwn: Slack reads &, < and > as markup.
func escape(s string) string {
	return mrkdwnEscaper.Replace(s)
}

var mrkdwnEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// truncateRunes is text.TruncateRunes, under a name that a local text
// (the message text, in this package) does not hide.
var truncateRunes = text.TruncateRunes
