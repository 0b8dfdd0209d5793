package main

import (
	"bytes"
	"encoding/xml"
	"flag"
	"io"
	"strings"
	"testing"
)

func TestChartSVGIsWellFormed(t *testing.T) {
	svg := chartSVG([]int{0, 10000, 1000000}, []float64{12000, 11000, 9000}, []float64{8000, 7000, 5000}, "a <subtitle> & more")
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		_, err := d.Token()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
	}
	for _, want := range []string{">1M<", ">10k<", ">12000<", ">5000<", "River v0.51.1", "Gantry"} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name      string
		sc        scenario
		river     []measurement
		gantry    []measurement
		wantRatio float64
	}{
		{"throughput: Gantry ÷ River of the medians", scenario{name: "a"}, []measurement{{jobsPerSec: 100}, {jobsPerSec: 300}, {jobsPerSec: 200}}, []measurement{{jobsPerSec: 50}, {jobsPerSec: 100}, {jobsPerSec: 900}}, 0.5},
		{"latency: River ÷ Gantry of the medians", scenario{name: "c", latency: true}, []measurement{{p50ms: 2}, {p50ms: 4}}, []measurement{{p50ms: 6}}, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := summarize(tt.sc, tt.river, tt.gantry)
			if r.Ratio != tt.wantRatio {
				t.Errorf("ratio %v, want %v", r.Ratio, tt.wantRatio)
			}
			if tt.sc.latency != (r.RiverJobsPerSec == nil && r.RiverP50Ms != nil) {
				t.Errorf("latency scenario %v but jobs/s %v and p50 %v", tt.sc.latency, r.RiverJobsPerSec, r.RiverP50Ms)
			}
		})
	}
}

// parseOptions returns the options after parsing args.
func parseOptions(t *testing.T, args ...string) options {
	t.Helper()
	var o options
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.flags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return o
}

func TestOptionsCheckSQLiteJobs(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{nil, ""},
		{[]string{"-sqlite-jobs", "1"}, ""},
		{[]string{"-sqlite-jobs", "0"}, "-sqlite-jobs"},
		{[]string{"-sqlite-jobs", "-3"}, "-sqlite-jobs"},
	}
	for _, tt := range tests {
		o := parseOptions(t, tt.args...)
		err := o.check()
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%q: %v", tt.args, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%q: error %v, want one naming %s", tt.args, err, tt.wantErr)
		}
	}
}

func TestDefaultScenariosRunOnTheirDatabases(t *testing.T) {
	o := parseOptions(t, "-sqlite-jobs", "1234", "-jobs", "5678")
	byKey := map[string]scenario{}
	for _, sc := range scenarios(&o) {
		byKey[sc.key] = sc
	}
	want := map[string]string{"a": dbPostgres, "b": dbPostgres, "c": dbPostgres, "d": dbPostgres, "e": dbSQLite, "f": dbSQLite}
	for _, key := range strings.Split(o.scenarios, ",") {
		sc, ok := byKey[key]
		if !ok {
			t.Errorf("default scenario %q does not exist", key)
			continue
		}
		if sc.database() != want[key] {
			t.Errorf("scenario %s runs on %s, want %s", key, sc.database(), want[key])
		}
		delete(want, key)
	}
	if len(want) > 0 {
		t.Errorf("scenarios not run by default: %v", want)
	}
	if !strings.Contains(byKey["e"].name, "1234") || !strings.Contains(byKey["a"].name, "5678") {
		t.Errorf("(a) and (e) name their own counts: %q, %q", byKey["a"].name, byKey["e"].name)
	}
}

func TestTableHeaderNamesTheDatabasesRun(t *testing.T) {
	o := parseOptions(t)
	v := 1.0
	pg := scenarioResult{Name: "(a) x", Database: dbPostgres, RiverJobsPerSec: &v, GantryJobsPerSec: &v}
	lite := scenarioResult{Name: "(e) y", Database: dbSQLite, RiverJobsPerSec: &v, GantryJobsPerSec: &v}
	tests := []struct {
		rs             []scenarioResult
		wantPG, wantSQ bool
	}{
		{[]scenarioResult{pg}, true, false},
		{[]scenarioResult{lite}, false, true},
		{[]scenarioResult{pg, lite}, true, true},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		if err := writeTable(&b, &o, tt.rs); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		if got := strings.Contains(out, "\nPostgreSQL:"); got != tt.wantPG {
			t.Errorf("PostgreSQL line %v, want %v:\n%s", got, tt.wantPG, out)
		}
		if got := strings.Contains(out, "\nSQLite:"); got != tt.wantSQ {
			t.Errorf("SQLite line %v, want %v:\n%s", got, tt.wantSQ, out)
		}
	}
}
