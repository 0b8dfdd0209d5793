package cli

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// snapshot is the state of a batch at one moment, as the views draw it.
type snapshot struct {
	// Title heads the live view ("Gantry demo"); Label heads its list of
	// jobs reporting progress ("slow jobs running:").
	Title, Label string
	Elapsed      time.Duration
	Total        int
	// Counts of the batch's jobs by state.
	Queued, Running, Retrying, Succeeded, Failed, Canceled int
	// Slow lists running jobs that report progress, in a stable order.
	Slow []slowJob
}

// Done is the number of jobs in a terminal state.
func (s *snapshot) Done() int { return s.Succeeded + s.Failed + s.Canceled }

// slowJob is a running job that reports progress.
type slowJob struct {
	Name    string
	Percent int
	Message string
}

// summary is what a batch achieved.
type summary struct {
	Elapsed     time.Duration
	Total       int
	Succeeded   int
	Retried     int // jobs that needed more than one attempt
	Failed      int // dead letter
	Canceled    int
	Interrupted bool
}

// bar draws a bar of width cells filled in proportion to done/total; it is
// full only when done >= total.
func bar(width, done, total int) string {
	if width <= 0 {
		return ""
	}
	filled := width
	if done < total {
		filled = max(0, done) * width / total
	}
	return strings.Repeat("█", filled) + strings.Repeat("░", width-filled)
}

// percent returns done/total in percent, rounded down (100 only when done).
func percent(done, total int) int {
	if total <= 0 || done >= total {
		return 100
	}
	return max(0, done) * 100 / total
}

// fit cuts s to at most width runes, marking a cut with "…".
func fit(s string, width int) string {
	if width <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= width {
		return s
	}
	r := []rune(s)
	return string(r[:width-1]) + "…"
}

// seconds formats d as seconds with one decimal.
func seconds(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

// countsLine is the one-line account of a snapshot's counts.
func countsLine(s *snapshot) string {
	line := fmt.Sprintf("succeeded %d  failed %d  retrying %d  running %d  queued %d",
		s.Succeeded, s.Failed, s.Retrying, s.Running, s.Queued)
	if s.Canceled > 0 {
		line += fmt.Sprintf("  canceled %d", s.Canceled)
	}
	return line
}

// maxSlowBars bounds the slow jobs drawn in the live view.
const maxSlowBars = 8

// renderBlock draws the live view of s in lines of at most width columns.
func renderBlock(s *snapshot, width int) []string {
	width = max(width, 40)
	done := s.Done()
	tail := fmt.Sprintf(" %d/%d %3d%%", done, s.Total, percent(done, s.Total))
	lines := []string{
		fit(fmt.Sprintf("%s · %d jobs · %s", s.Title, s.Total, seconds(s.Elapsed)), width),
		bar(width-utf8.RuneCountInString(tail), done, s.Total) + tail,
		fit(countsLine(s), width),
	}
	if len(s.Slow) == 0 {
		return lines
	}
	lines = append(lines, s.Label)
	const nameWidth, barWidth = 12, 20
	for i, j := range s.Slow {
		if i == maxSlowBars {
			lines = append(lines, fmt.Sprintf("  … and %d more", len(s.Slow)-maxSlowBars))
			break
		}
		line := fmt.Sprintf("  %-*s %s %3d%%  %s", nameWidth, fit(j.Name, nameWidth), bar(barWidth, j.Percent, 100), j.Percent, j.Message)
		lines = append(lines, fit(strings.TrimRight(line, " "), width))
	}
	return lines
}

// renderLine is the plain, one-line account of s for logs.
func renderLine(s *snapshot) string {
	done := s.Done()
	return fmt.Sprintf("%6s  done %d/%d (%d%%)  %s", seconds(s.Elapsed), done, s.Total, percent(done, s.Total), countsLine(s))
}

// writeSummary writes the closing account of a run.
func writeSummary(w io.Writer, r summary) error {
	done := r.Succeeded + r.Failed + r.Canceled
	rate := 0.0
	if r.Elapsed > 0 {
		rate = float64(done) / r.Elapsed.Seconds()
	}
	head := fmt.Sprintf("Done: %d jobs in %s, %.1f jobs/s", done, seconds(r.Elapsed), rate)
	if r.Interrupted {
		head = fmt.Sprintf("Interrupted: %d of %d jobs done in %s, %.1f jobs/s", done, r.Total, seconds(r.Elapsed), rate)
	}
	lines := []string{
		head,
		fmt.Sprintf("  succeeded  %5d", r.Succeeded),
		fmt.Sprintf("  retried    %5d  (needed more than one attempt)", r.Retried),
		fmt.Sprintf("  failed     %5d  (dead letter)", r.Failed),
	}
	if r.Canceled > 0 {
		lines = append(lines, fmt.Sprintf("  canceled   %5d", r.Canceled))
	}
	_, err := io.WriteString(w, strings.Join(lines, "\n")+"\n")
	return err
}

// ANSI control sequences of the live view.
const (
	hideCursor = "\x1b[?25l"
	showCursor = "\x1b[?25h"
	clearDown  = "\x1b[J" // erase from the cursor to the end of the screen
	clearLine  = "\x1b[K" // erase from the cursor to the end of the line
)

// liveView redraws a block of lines in place on a terminal.
type liveView struct {
	w     io.Writer
	width int
	drawn int // lines drawn by the last Draw
}

// Draw replaces the block drawn last with s.
func (v *liveView) Draw(s *snapshot) error {
	var b strings.Builder
	if v.drawn == 0 {
		b.WriteString(hideCursor)
	} else {
		fmt.Fprintf(&b, "\r\x1b[%dA", v.drawn)
	}
	b.WriteString(clearDown)
	lines := renderBlock(s, v.width)
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	v.drawn = len(lines)
	_, err := io.WriteString(v.w, b.String())
	return err
}

// Close shows the cursor again, leaving the last block on screen. The next
// Draw starts a new block below it; a second Close does nothing.
func (v *liveView) Close() error {
	if v.drawn == 0 {
		return nil
	}
	v.drawn = 0
	_, err := io.WriteString(v.w, showCursor)
	return err
}
