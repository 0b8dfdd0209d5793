// Package cron parses the cron expressions of Gantry's schedules and
// computes their ticks in an IANA time zone, with defined behaviour across
// daylight-saving changes. Parsing is github.com/robfig/cron/v3's
// (5 fields, or 6 with seconds first; @hourly-style macros; @every
// <duration>); this package adds the time zone, validation with
// field-naming errors and the DST rules below.
//
// Daylight-saving time: a schedule whose hour field matches every hour
// (e.g. "*/15 * * * *", "@hourly", "0 * * * *") follows real time: no tick
// is lost when clocks spring forward nor doubled when they fall back (its
// ticks are simply those that exist on the wall clock). Any other schedule
// follows the wall clock, once per matching wall-clock time:
//   - a time that does not exist (the spring-forward gap, e.g. 02:30 in
//     Europe/Berlin on the last Sunday of March) fires once, at the end of
//     the gap (03:00 local time); several ticks inside one gap fire once;
//   - a time that occurs twice (the fall-back repeat, e.g. 02:30 in
//     Europe/Berlin on the last Sunday of October) fires only at its first
//     occurrence.
//
// So a daily 02:30 job fires exactly once every day. @every schedules count
// real durations and ignore the time zone.
package cron

import (
	"fmt"
	"strings"
	"time"

	_ "time/tzdata" // IANA zones on machines without a zoneinfo database

	robfig "github.com/robfig/cron/v3"
)

// parser accepts 5 or 6 fields (seconds first), and macros.
var parser = robfig.NewParser(robfig.SecondOptional | robfig.Minute | robfig.Hour |
	robfig.Dom | robfig.Month | robfig.Dow | robfig.Descriptor)

// MaxExprLen bounds the length of an expression.
const MaxExprLen = 256

// MinEvery is the shortest @every interval.
const MinEvery = time.Second

// Error says which input of [Parse] is wrong ("cron" or "timezone") and why.
type Error struct {
	Field   string
	Problem string
}

func (e *Error) Error() string { return fmt.Sprintf("invalid %s: %s", e.Field, e.Problem) }

// Schedule is a parsed expression in its time zone. Its methods are safe
// for concurrent use.
type Schedule struct {
	expr  string
	loc   *time.Location
	spec  *robfig.SpecSchedule // nil for @every
	every time.Duration
}

// Parse parses expr in the IANA time zone tz ("" is UTC). An error is an
// *[Error] naming "cron" or "timezone". An expression that never fires
// (such as "0 0 30 2 *") is an error.
func Parse(expr, tz string) (*Schedule, error) {
	bad := func(field, format string, args ...any) error {
		return &Error{Field: field, Problem: fmt.Sprintf(format, args...)}
	}
	if tz == "" {
		tz = "UTC"
	}
	if len(tz) > 64 || strings.ContainsAny(tz, " \t\n") {
		return nil, bad("timezone", "must be an IANA time zone name such as Europe/Berlin")
	}
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "Local" {
		return nil, bad("timezone", "%q is not an IANA time zone name such as Europe/Berlin", tz)
	}
	expr = strings.TrimSpace(expr)
	switch {
	case expr == "":
		return nil, bad("cron", "is required")
	case len(expr) > MaxExprLen:
		return nil, bad("cron", "is longer than %d bytes", MaxExprLen)
	case strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ="):
		return nil, bad("cron", "must not name a time zone: use the timezone field")
	}
	s := &Schedule{expr: expr, loc: loc}
	if d, ok := strings.CutPrefix(expr, "@every "); ok {
		every, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil {
			return nil, bad("cron", "@every needs a duration such as 30s or 5m: %v", err)
		}
		if every < MinEvery || every%time.Second != 0 {
			return nil, bad("cron", "@every needs a whole number of seconds, at least %s", MinEvery)
		}
		s.every = every
		return s, nil
	}
	sched, err := parser.Parse(expr)
	if err != nil {
		return nil, bad("cron", "%v", err)
	}
	spec, ok := sched.(*robfig.SpecSchedule)
	if !ok {
		return nil, bad("cron", "is not a cron expression")
	}
	c := *spec
	c.Location = loc
	s.spec = &c
	if s.spec.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() && s.spec.Next(time.Now()).IsZero() {
		return nil, bad("cron", "never fires")
	}
	return s, nil
}

// String returns the expression as parsed.
func (s *Schedule) String() string { return s.expr }

// Location returns the schedule's time zone.
func (s *Schedule) Location() *time.Location { return s.loc }

// Every returns the interval of an @every schedule, 0 for others.
func (s *Schedule) Every() time.Duration { return s.every }

// Next returns the first tick strictly after t, in UTC, or the zero time
// if there is none within five years. Ticks fall on whole seconds.
func (s *Schedule) Next(t time.Time) time.Time {
	switch {
	case s.spec == nil:
		// On the second, as robfig's ConstantDelaySchedule.
		return t.Add(s.every).Truncate(time.Second).UTC()
	case s.everyHour():
		// Real time: robfig adds absolute hours, so a tick exists exactly
		// when its wall-clock time does.
		n := s.spec.Next(t)
		if n.IsZero() {
			return n
		}
		return n.UTC()
	}
	return s.nextWall(t)
}

// starBit is robfig's mark of a field given as "*".
const starBit = 1 << 63

// everyHour reports whether the hour field matches every hour: such
// schedules follow real time across DST changes.
func (s *Schedule) everyHour() bool {
	const allHours = 1<<24 - 1
	return s.spec.Hour&allHours == allHours
}

// nextWall is Next for schedules that follow the wall clock: it walks the
// matching wall-clock times from t's local day on and maps each to an
// instant (see [Schedule.instant]); that mapping never decreases, so the
// first instant after t is the answer.
func (s *Schedule) nextWall(t time.Time) time.Time {
	lt := t.In(s.loc)
	// Wall-clock times are handled as UTC times with the same fields.
	day := time.Date(lt.Year(), lt.Month(), lt.Day()-1, 0, 0, 0, 0, time.UTC)
	limit := day.AddDate(5, 0, 2)
	for ; day.Before(limit); day = day.AddDate(0, 0, 1) {
		if !s.dayMatches(day) || !s.instant(day.Add(24*time.Hour-time.Second)).After(t) {
			continue
		}
		for h := range 24 {
			hs := day.Add(time.Duration(h) * time.Hour)
			if s.spec.Hour&(1<<h) == 0 || !s.instant(hs.Add(time.Hour-time.Second)).After(t) {
				continue
			}
			for m := range 60 {
				ms := hs.Add(time.Duration(m) * time.Minute)
				if s.spec.Minute&(1<<m) == 0 || !s.instant(ms.Add(time.Minute-time.Second)).After(t) {
					continue
				}
				for sec := range 60 {
					if s.spec.Second&(1<<sec) == 0 {
						continue
					}
					if i := s.instant(ms.Add(time.Duration(sec) * time.Second)); i.After(t) {
						return i.UTC()
					}
				}
			}
		}
	}
	return time.Time{}
}

// dayMatches reports whether the wall-clock day matches the month, day of
// month and day of week fields (as robfig decides: both must match when
// either is "*", else either).
func (s *Schedule) dayMatches(day time.Time) bool {
	if s.spec.Month&(1<<uint(day.Month())) == 0 {
		return false
	}
	dom := s.spec.Dom&(1<<uint(day.Day())) != 0
	dow := s.spec.Dow&(1<<uint(day.Weekday())) != 0
	if s.spec.Dom&starBit != 0 || s.spec.Dow&starBit != 0 {
		return dom && dow
	}
	return dom || dow
}

// instant maps wall-clock time w (given as a UTC time with the wall
// clock's fields) to the instant it fires at in the schedule's zone: the
// instant itself when it exists once, its first occurrence when clocks
// fell back over it, and the end of the gap (the first instant of the new
// offset) when clocks sprang forward over it.
func (s *Schedule) instant(w time.Time) time.Time {
	offset := func(i time.Time) int {
		_, o := i.In(s.loc).Zone()
		return o
	}
	// The offsets in force around w; zones change offset at most once a
	// day.
	oa, ob := offset(w.Add(-24*time.Hour)), offset(w.Add(24*time.Hour))
	var first time.Time
	for _, o := range []int{oa, ob} {
		i := w.Add(-time.Duration(o) * time.Second)
		if offset(i) == o && (first.IsZero() || i.Before(first)) {
			first = i
		}
	}
	if !first.IsZero() {
		return first
	}
	// In a gap (ob > oa): the transition lies between w-ob and w-oa.
	lo, hi := w.Add(-time.Duration(ob)*time.Second).Unix(), w.Add(-time.Duration(oa)*time.Second).Unix()
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if offset(time.Unix(mid, 0)) == oa {
			lo = mid
		} else {
			hi = mid
		}
	}
	return time.Unix(hi, 0)
}
