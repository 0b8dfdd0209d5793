package cron_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry/internal/cron"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// ticks returns the ticks of expr in tz after from, up to until.
func ticks(t *testing.T, expr, tz string, from, until time.Time) []time.Time {
	t.Helper()
	s, err := cron.Parse(expr, tz)
	if err != nil {
		t.Fatalf("Parse(%q, %q): %v", expr, tz, err)
	}
	var out []time.Time
	for n := s.Next(from); !n.IsZero() && !n.After(until); n = s.Next(n) {
		out = append(out, n)
		if len(out) > 1000 {
			t.Fatal("too many ticks")
		}
	}
	return out
}

func TestNext(t *testing.T) {
	tests := []struct {
		name, expr, tz string
		from, until    string
		want           []string
	}{
		{
			name: "five fields, UTC default", expr: "*/20 * * * *", tz: "",
			from: "2026-01-01T10:05:00Z", until: "2026-01-01T11:00:00Z",
			want: []string{"2026-01-01T10:20:00Z", "2026-01-01T10:40:00Z", "2026-01-01T11:00:00Z"},
		},
		{
			name: "six fields, seconds first", expr: "30 0 12 * * *", tz: "UTC",
			from: "2026-01-01T00:00:00Z", until: "2026-01-02T23:00:00Z",
			want: []string{"2026-01-01T12:00:30Z", "2026-01-02T12:00:30Z"},
		},
		{
			name: "macro in a zone", expr: "@daily", tz: "America/New_York",
			from: "2026-01-01T00:00:00Z", until: "2026-01-02T06:00:00Z",
			want: []string{"2026-01-01T05:00:00Z", "2026-01-02T05:00:00Z"},
		},
		{
			name: "every", expr: "@every 30s", tz: "Europe/Berlin",
			from: "2026-01-01T00:00:00.250Z", until: "2026-01-01T00:01:30Z",
			want: []string{"2026-01-01T00:00:30Z", "2026-01-01T00:01:00Z", "2026-01-01T00:01:30Z"},
		},
		{
			// Berlin springs forward at 02:00 CET (01:00 UTC) on 29 March
			// 2026: 02:30 does not exist and fires at 03:00 CEST.
			name: "daily 02:30 Berlin, spring forward", expr: "30 2 * * *", tz: "Europe/Berlin",
			from: "2026-03-27T00:00:00Z", until: "2026-03-31T00:00:00Z",
			want: []string{"2026-03-27T01:30:00Z", "2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"},
		},
		{
			// Berlin falls back at 03:00 CEST (01:00 UTC) on 25 October
			// 2026: 02:30 happens twice and fires at the first.
			name: "daily 02:30 Berlin, fall back", expr: "30 2 * * *", tz: "Europe/Berlin",
			from: "2026-10-23T00:00:00Z", until: "2026-10-27T00:00:00Z",
			want: []string{"2026-10-23T00:30:00Z", "2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"},
		},
		{
			// New York springs forward at 02:00 EST (07:00 UTC) on 8 March 2026.
			name: "daily 02:30 New York, spring forward", expr: "30 2 * * *", tz: "America/New_York",
			from: "2026-03-07T00:00:00Z", until: "2026-03-10T00:00:00Z",
			want: []string{"2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"},
		},
		{
			// New York falls back at 02:00 EDT (06:00 UTC) on 1 November
			// 2026: 01:30 happens twice and fires at the first.
			name: "daily 01:30 New York, fall back", expr: "30 1 * * *", tz: "America/New_York",
			from: "2026-10-31T00:00:00Z", until: "2026-11-03T00:00:00Z",
			want: []string{"2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"},
		},
		{
			name: "several ticks in the gap fire once", expr: "*/15 2 * * *", tz: "Europe/Berlin",
			from: "2026-03-28T23:00:00Z", until: "2026-03-29T23:59:00Z",
			want: []string{"2026-03-29T01:00:00Z"},
		},
		{
			name: "the repeated hour's ticks fire once", expr: "*/20 2 * * *", tz: "Europe/Berlin",
			from: "2026-10-24T23:00:00Z", until: "2026-10-25T23:00:00Z",
			want: []string{"2026-10-25T00:00:00Z", "2026-10-25T00:20:00Z", "2026-10-25T00:40:00Z"},
		},
		{
			name: "hourly follows real time, spring forward", expr: "@hourly", tz: "Europe/Berlin",
			from: "2026-03-28T23:30:00Z", until: "2026-03-29T03:00:00Z",
			want: []string{"2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z", "2026-03-29T03:00:00Z"},
		},
		{
			name: "hourly follows real time, fall back", expr: "0 * * * *", tz: "Europe/Berlin",
			from: "2026-10-24T23:30:00Z", until: "2026-10-25T03:00:00Z",
			want: []string{"2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ticks(t, tt.expr, tt.tz, utc(tt.from), utc(tt.until))
			var want []time.Time
			for _, w := range tt.want {
				want = append(want, utc(w))
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("ticks of %q in %q (-want +got):\n%s", tt.expr, tt.tz, diff)
			}
		})
	}
}

// TestDailyOncePerDay: a daily job fires exactly once on every local day
// of a year, in zones with DST, whatever its time.
func TestDailyOncePerDay(t *testing.T) {
	for _, tz := range []string{"Europe/Berlin", "America/New_York", "Australia/Lord_Howe"} {
		for _, expr := range []string{"30 2 * * *", "30 1 * * *", "0 2 * * *", "59 23 * * *", "0 0 * * *"} {
			loc, _ := time.LoadLocation(tz)
			got := ticks(t, expr, tz, utc("2025-12-31T00:00:00Z"), utc("2027-01-02T00:00:00Z"))
			days := map[string]int{}
			for _, n := range got {
				days[n.In(loc).Format(time.DateOnly)]++
			}
			for d := time.Date(2026, 1, 1, 12, 0, 0, 0, loc); d.Year() == 2026; d = d.AddDate(0, 0, 1) {
				if n := days[d.Format(time.DateOnly)]; n != 1 {
					t.Errorf("%q in %s fired %d times on %s, want 1", expr, tz, n, d.Format(time.DateOnly))
				}
			}
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		expr, tz, field string
	}{
		{"", "UTC", "cron"},
		{"* * *", "UTC", "cron"},
		{"61 * * * *", "UTC", "cron"},
		{"TZ=UTC * * * * *", "UTC", "cron"},
		{"@every 500ms", "UTC", "cron"},
		{"@every 1.5s", "UTC", "cron"},
		{"@every soon", "UTC", "cron"},
		{"@fortnightly", "UTC", "cron"},
		{"0 0 30 2 *", "UTC", "cron"},
		{"* * * * *", "Mars/Olympus_Mons", "timezone"},
		{"* * * * *", "Local", "timezone"},
		{"* * * * *", "../../etc/passwd", "timezone"},
	}
	for _, tt := range tests {
		_, err := cron.Parse(tt.expr, tt.tz)
		var ce *cron.Error
		if !errors.As(err, &ce) || ce.Field != tt.field {
			t.Errorf("Parse(%q, %q) = %v, want an error naming %s", tt.expr, tt.tz, err, tt.field)
		}
	}
}
