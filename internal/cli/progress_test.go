package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestBar(t *testing.T) {
	tests := []struct {
		width, done, total int
		want               string
	}{
		{10, 0, 100, "░░░░░░░░░░"},
		{10, 50, 100, "█████░░░░░"},
		{10, 99, 100, "█████████░"},
		{10, 100, 100, "██████████"},
		{10, 120, 100, "██████████"},
		{10, -5, 100, "░░░░░░░░░░"},
		{4, 0, 0, "████"},
		{0, 1, 2, ""},
	}
	for _, tt := range tests {
		if got := bar(tt.width, tt.done, tt.total); got != tt.want {
			t.Errorf("bar(%d, %d, %d) = %q, want %q", tt.width, tt.done, tt.total, got, tt.want)
		}
	}
}

func TestPercent(t *testing.T) {
	tests := []struct{ done, total, want int }{
		{0, 300, 0}, {1, 300, 0}, {150, 300, 50}, {299, 300, 99}, {300, 300, 100}, {0, 0, 100},
	}
	for _, tt := range tests {
		if got := percent(tt.done, tt.total); got != tt.want {
			t.Errorf("percent(%d, %d) = %d, want %d", tt.done, tt.total, got, tt.want)
		}
	}
}

func TestFit(t *testing.T) {
	tests := []struct {
		s     string
		width int
		want  string
	}{
		{"slow-1", 12, "slow-1"},
		{"exactly-12ch", 12, "exactly-12ch"},
		{"much-too-long-name", 12, "much-too-lo…"},
		{"ünïcödé", 4, "ünï…"},
		{"x", 0, ""},
	}
	for _, tt := range tests {
		if got := fit(tt.s, tt.width); got != tt.want {
			t.Errorf("fit(%q, %d) = %q, want %q", tt.s, tt.width, got, tt.want)
		}
	}
}

func TestRenderBlock(t *testing.T) {
	s := &snapshot{
		Title: "Gantry demo", Label: "slow jobs running:",
		Elapsed: 4200 * time.Millisecond, Total: 300,
		Queued: 40, Running: 32, Retrying: 3, Succeeded: 220, Failed: 5,
		Slow: []slowJob{
			{Name: "slow-7", Percent: 40, Message: "step 4/10"},
			{Name: "slow-with-a-long-name", Percent: 100, Message: "step 10/10"},
		},
	}
	want := []string{
		"Gantry demo · 300 jobs · 4.2s",
		strings.Repeat("█", 50) + strings.Repeat("░", 17) + " 225/300  75%", // 67 cells, 225/300 of them full
		"succeeded 220  failed 5  retrying 3  running 32  queued 40",
		"slow jobs running:",
		"  slow-7       ████████░░░░░░░░░░░░  40%  step 4/10",
		"  slow-with-a… ████████████████████ 100%  step 10/10",
	}
	got := renderBlock(s, 80)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("renderBlock() mismatch (-want +got):\n%s", diff)
	}
	for _, l := range got {
		if n := utf8.RuneCountInString(l); n > 80 {
			t.Errorf("line %q is %d columns wide, more than 80", l, n)
		}
	}
}

func TestRenderBlockNarrowAndMany(t *testing.T) {
	s := &snapshot{Title: "Batch", Label: "jobs in progress:", Total: 10, Succeeded: 10, Canceled: 1}
	for i := range maxSlowBars + 3 {
		s.Slow = append(s.Slow, slowJob{Name: "s", Percent: i * 10, Message: strings.Repeat("m", 100)})
	}
	got := renderBlock(s, 50)
	if len(got) != 4+maxSlowBars+1 {
		t.Fatalf("renderBlock() drew %d lines, want %d:\n%s", len(got), 4+maxSlowBars+1, strings.Join(got, "\n"))
	}
	if want := "  … and 3 more"; got[len(got)-1] != want {
		t.Errorf("last line = %q, want %q", got[len(got)-1], want)
	}
	if want := "succeeded 10  failed 0  retrying 0  running 0  qu…"; got[2] != want {
		t.Errorf("counts line = %q, want %q", got[2], want)
	}
	for _, l := range got {
		if n := utf8.RuneCountInString(l); n > 50 {
			t.Errorf("line %q is %d columns wide, more than 50", l, n)
		}
	}
}

func TestRenderLine(t *testing.T) {
	s := &snapshot{Elapsed: 12340 * time.Millisecond, Total: 300, Queued: 100, Running: 32, Retrying: 2, Succeeded: 160, Failed: 5, Canceled: 1}
	want := " 12.3s  done 166/300 (55%)  succeeded 160  failed 5  retrying 2  running 32  queued 100  canceled 1"
	if got := renderLine(s); got != want {
		t.Errorf("renderLine() = %q, want %q", got, want)
	}
}

func TestWriteSummary(t *testing.T) {
	tests := []struct {
		name string
		in   summary
		want string
	}{
		{
			name: "finished",
			in:   summary{Elapsed: 4 * time.Second, Total: 300, Succeeded: 291, Retried: 40, Failed: 9},
			want: "Done: 300 jobs in 4.0s, 75.0 jobs/s\n" +
				"  succeeded    291\n" +
				"  retried       40  (needed more than one attempt)\n" +
				"  failed         9  (dead letter)\n",
		},
		{
			name: "interrupted",
			in:   summary{Elapsed: 2 * time.Second, Total: 300, Succeeded: 99, Retried: 3, Failed: 1, Canceled: 2, Interrupted: true},
			want: "Interrupted: 102 of 300 jobs done in 2.0s, 51.0 jobs/s\n" +
				"  succeeded     99\n" +
				"  retried        3  (needed more than one attempt)\n" +
				"  failed         1  (dead letter)\n" +
				"  canceled       2\n",
		},
		{
			name: "no time",
			in:   summary{},
			want: "Done: 0 jobs in 0.0s, 0.0 jobs/s\n" +
				"  succeeded      0\n" +
				"  retried        0  (needed more than one attempt)\n" +
				"  failed         0  (dead letter)\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeSummary(&b, tt.in); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, b.String()); diff != "" {
				t.Errorf("writeSummary() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLiveViewRedrawsInPlace(t *testing.T) {
	var b bytes.Buffer
	v := &liveView{w: &b, width: 60}

	first := &snapshot{Total: 2, Running: 1, Queued: 1, Slow: []slowJob{{Name: "slow-1", Percent: 10}}}
	if err := v.Draw(first); err != nil {
		t.Fatal(err)
	}
	want := hideCursor + clearDown + strings.Join(renderBlock(first, 60), "\n") + "\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Fatalf("first Draw() mismatch (-want +got):\n%s", diff)
	}

	b.Reset()
	second := &snapshot{Total: 2, Succeeded: 2}
	if err := v.Draw(second); err != nil {
		t.Fatal(err)
	}
	// The first block had 5 lines: go up 5, clear, draw the 3 new ones.
	want = "\r\x1b[5A" + clearDown + strings.Join(renderBlock(second, 60), "\n") + "\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Fatalf("second Draw() mismatch (-want +got):\n%s", diff)
	}

	b.Reset()
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != showCursor {
		t.Errorf("Close() wrote %q, want %q", got, showCursor)
	}

	b.Reset()
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if b.Len() != 0 {
		t.Errorf("second Close() wrote %q, want nothing", b.String())
	}
}

func TestLiveViewCloseWithoutDraw(t *testing.T) {
	var b bytes.Buffer
	v := &liveView{w: &b, width: 80}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if b.Len() != 0 {
		t.Errorf("Close() before any Draw wrote %q, want nothing", b.String())
	}
}
