// Package shell is the terminal adapter: `opsbot shell` (interactive) and
// `opsbot run 'LINE'` (one command, exit code for scripts). Both go through
// the same bot.Handler as chat, as user "shell:NAME".
package shell

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/opsbot/opsbot/bot"
)

// Shell runs command lines typed in a terminal.
type Shell struct {
	Handler bot.Handler
	User    string    // the name after "shell:" in policy
	Out     io.Writer // replies
	Err     io.Writer // progress lines (only when ShowProgress)
	// ShowProgress redraws one progress line on Err; set it when Err is a
	// terminal, so scripts reading stdout see only results.
	ShowProgress bool
	// SelfAsserted marks User as given on the command line (--as): the
	// audit records the identity as asserted, not proven.
	SelfAsserted bool
}

// RunLine runs one line and returns the exit code of DESIGN.md §4.
func (s *Shell) RunLine(ctx context.Context, line string) int {
	st := &stream{out: s.Out, err: s.Err, progress: s.ShowProgress}
	reply := s.Handler.Handle(ctx, bot.Request{
		Platform: "shell",
		User:     s.User,
		UserName: s.User,
		Channel:  "terminal",
		Line:     line,
		Stream:   st,

		SelfAsserted: s.SelfAsserted,
	})
	st.clear()
	st.mu.Lock()
	defer st.mu.Unlock()
	fmt.Fprint(s.Out, Render(reply))
	return reply.Status.ExitCode()
}

// Loop reads lines from in until EOF or "exit". An interrupt (a value on
// interrupts) cancels the running command, not the shell.
func (s *Shell) Loop(ctx context.Context, in io.Reader, interrupts <-chan os.Signal) error {
	fmt.Fprintf(s.Out, "opsbot terminal, as shell:%s. Type help, or exit. Ctrl-C cancels a running command.\n", s.User)
	lines := make(chan string)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			lines <- sc.Text()
		}
		readErr <- sc.Err()
		close(lines)
	}()
	for {
		fmt.Fprint(s.Out, "opsbot> ")
		var line string
		select {
		case <-ctx.Done():
			return nil
		case l, ok := <-lines:
			if !ok {
				fmt.Fprintln(s.Out)
				return <-readErr
			}
			line = l
		case <-interrupts:
			fmt.Fprintln(s.Out, "\n(type exit or press Ctrl-D to leave)")
			continue
		}
		switch strings.TrimSpace(line) {
		case "":
			continue
		case "exit", "quit":
			return nil
		}
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			select {
			case <-interrupts:
				fmt.Fprintln(s.Err, "\ncanceling...")
				cancel()
			case <-done:
			}
		}()
		s.RunLine(cctx, line)
		close(done)
		cancel()
	}
}

// stream shows a command's progress and posts while it runs.
type stream struct {
	mu       sync.Mutex
	out, err io.Writer
	progress bool
	shown    bool
}

func (st *stream) Progress(r bot.Reply) {
	if !st.progress {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	line := r.Title
	if r.Text != "" {
		line += ": " + strings.ReplaceAll(r.Text, "\n", " ")
	}
	fmt.Fprintf(st.err, "\r\033[K%s", line)
	st.shown = true
}

func (st *stream) Post(r bot.Reply) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.clearLocked()
	fmt.Fprint(st.out, Render(r))
}

func (st *stream) clear() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.clearLocked()
}

func (st *stream) clearLocked() {
	if st.shown {
		fmt.Fprint(st.err, "\r\033[K")
		st.shown = false
	}
}
