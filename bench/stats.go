package bench

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Timings are the wall times of repeated runs of one tool.
type Timings []time.Duration

func (t Timings) sorted() []time.Duration {
	s := append([]time.Duration(nil), t...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s
}

// Median is the middle value (the mean of the two middle ones for an even
// count); 0 when empty.
func (t Timings) Median() time.Duration {
	s := t.sorted()
	switch n := len(s); {
	case n == 0:
		return 0
	case n%2 == 1:
		return s[n/2]
	default:
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// Quantile is the nearest-rank q-quantile (q in 0..1); 0 when empty.
func (t Timings) Quantile(q float64) time.Duration {
	s := t.sorted()
	if len(s) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(s)))) - 1
	i = max(0, min(i, len(s)-1))
	return s[i]
}

// Min is the smallest value; 0 when empty.
func (t Timings) Min() time.Duration { return t.Quantile(0) }

// Max is the largest value; 0 when empty.
func (t Timings) Max() time.Duration { return t.Quantile(1) }

// secs formats a duration in seconds for a table: "0.612", "97.3".
func secs(d time.Duration) string {
	s := d.Seconds()
	switch {
	case s >= 100:
		return fmt.Sprintf("%.1f", s)
	case s >= 10:
		return fmt.Sprintf("%.2f", s)
	default:
		return fmt.Sprintf("%.3f", s)
	}
}

// millis formats a duration in milliseconds: "0.42", "12.3".
func millis(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	if ms >= 10 {
		return fmt.Sprintf("%.1f", ms)
	}
	return fmt.Sprintf("%.2f", ms)
}

// ratio says how a tool's median compares to opsbot's: "1.95" means the
// tool took 1.95 times as long as opsbot.
func ratio(tool, opsbot time.Duration) string {
	if tool <= 0 || opsbot <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(tool)/float64(opsbot))
}

// printf and sayln write to the report; a failed write to stdout has
// nowhere better to be reported.
func printf(w io.Writer, format string, a ...any) { _, _ = fmt.Fprintf(w, format, a...) }

func sayln(w io.Writer, a ...any) { _, _ = fmt.Fprintln(w, a...) }

// Table is a plain-text table with aligned columns.
type Table struct {
	Header []string
	Rows   [][]string
}

// Add appends a row.
func (t *Table) Add(cells ...string) { t.Rows = append(t.Rows, cells) }

// Write prints the table, each line indented by two spaces.
func (t *Table) Write(w io.Writer) {
	widths := make([]int, len(t.Header))
	measure := func(row []string) {
		for i, c := range row {
			if i < len(widths) {
				widths[i] = max(widths[i], utf8.RuneCountInString(c))
			}
		}
	}
	measure(t.Header)
	for _, r := range t.Rows {
		measure(r)
	}
	line := func(row []string) {
		var b strings.Builder
		b.WriteString("  ")
		for i, c := range row {
			if i >= len(widths) {
				break
			}
			b.WriteString(c)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+2))
			}
		}
		sayln(w, strings.TrimRight(b.String(), " "))
	}
	line(t.Header)
	sep := make([]string, len(t.Header))
	for i := range sep {
		sep[i] = strings.Repeat("-", widths[i])
	}
	line(sep)
	for _, r := range t.Rows {
		line(r)
	}
}
